"""Sync throughput: rows/s from the relay topic into the downstream, against MariaDB's own
apply of the same binlog range (`mariadb-binlog | mariadb`), and replication lag at a steady
write rate.

Usage: `.venv/bin/python bench/sync.py [--rows N] [--profile] [--workers N]`

1. Starts the local stack if it is not up (and stops what it started at the end).
2. Writes bench/relay.py's sysbench-like workload into a fresh upstream database
   `bench_<random>`: multi-row INSERTs (100 rows a statement, 10 statements a transaction),
   then single-row UPDATEs, then single-row DELETEs (100 a transaction), noting the binlog
   file:pos and GTID set before the workload and at each phase boundary. Not measured.
3. Relays that binlog range into a fresh topic prefix with `producers.relay.Relay` and waits
   until the relay has committed the last phase's GTID set (not measured). Each phase end is
   mapped to the offset of the phase's last relay record: a binary search over the topic for
   the first record whose transaction is not in the phase's end GTID set, then one step back
   over Kafka's transaction markers.
4. Pre-creates the table (the upstream's own `SHOW CREATE TABLE`) in two fresh downstream
   schemas, `<db>_native` and `<db>_kdm`; the range starts after the upstream's CREATE TABLE.
5. BASELINE: for each phase, `mariadb-binlog --read-from-remote-server --start-position
   --stop-position --database <db> --rewrite-db '<db>-><db>_native' <files> | mariadb
   --binary-mode` into the downstream: MariaDB's native, single-threaded apply of the row
   events, one upstream transaction a downstream transaction. Each phase is one pipeline,
   timed from launch to the client's exit.
6. OURS: `consumers.subtask.Subtask` in a thread, with a task routing `<db>` to `<db>_kdm`
   (syncer: worker-count --workers, batch --batch, multiple-rows true, compact false). The
   clock starts when the subtask has chosen its start offset (checkpoint table created,
   Kafka consumer ready). A phase is done when every DML worker's row in
   `<meta-schema>.kdm_checkpoint` has an end offset past the phase's last relay record:
   those rows are written in the same downstream transaction as the changes they cover, and a
   round (the unit whose end offset they carry) only starts after the previous one committed
   on every worker, so the minimum over the workers is exactly what the downstream holds.
   Polled every 10 ms on a connection of its own.
7. Checks both downstream copies against the upstream table (row count and CHECKSUM TABLE);
   a mismatch is printed, and the script exits with status 1 after its last line.
8. LAG: a fresh upstream database, a second relay and subtask running live (default relay
   settings), and a writer committing 20 transactions of 100 single-row changes a second
   (inserts and updates; the last change of each is a marker row numbered in sequence) for
   --lag-seconds. A poller reads the downstream's highest marker every 10 ms. Lag = when the
   marker was first seen downstream - when the upstream COMMIT returned (one process, one
   monotonic clock): p50/p99/max. The subtask's own `secondsBehindMaster` figure
   (`SyncStats.lag_seconds`, from binlog timestamps of one-second resolution) is sampled too.
9. Prints rows/s per phase and overall, the checks, the lag table, then as its last line
   `ratio=<ours/baseline>` of the INSERT phase (the issue's target: at least 0.50).

`--profile` runs OURS under cProfile: the subtask's own thread and, summed, its DML worker
threads (for that run only, the subtask's `Applier` is swapped for a subclass that profiles
each worker thread). cProfile slows Python several times, so rates in that mode are not
comparable with the baseline's.

Everything created is removed at the end: the databases on both servers, the bench topics
and the subtasks' consumer groups.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import itertools
import os
import random
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pymysql
from common import (
    BinlogPoint,
    binlog_point,
    connect,
    drop_databases,
    local_stack,
    log,
    print_profile,
    print_table,
    rate,
    run_script,
    table_checksum,
    unique_suffix,
)
from relay import TABLE_DDL, Workload, binlog_bytes, write_workload

import consumers.subtask as subtask_module
from consumers.applier import Applier, Round
from consumers.subtask import Subtask
from kdm.config.service import KafkaConfig
from kdm.config.source import parse_source
from kdm.config.task import parse_task
from kdm.kafka_admin import admin_client, delete_topics
from kdm.position import GTIDSet, Position
from kdm.relay_log import TopicReader, after_position
from kdm.stack.stack import Endpoints
from kdm.stages import Stage
from kdm.topics import Topics
from producers.relay import Relay
from producers.settings import RelaySettings

DEFAULT_ROWS = 500_000
DEFAULT_WORKERS = 16
DEFAULT_BATCH = 100
POLL_SECONDS = 0.01
TABLE = "sbtest1"
MARKER_DDL = "CREATE TABLE lag_marker (seq INT NOT NULL PRIMARY KEY, written_at DOUBLE NOT NULL)"
LAG_ROWS_PER_SECOND = 2_000
LAG_CHANGES_PER_TXN = 100
LAG_SECONDS = 20.0
LAG_STATUS_SECONDS = 0.1
NO_TABLE_ERRNOS = frozenset({1049, 1146})  # unknown database, unknown table


# -- names --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Names:
    """Everything one run creates, derived from the upstream bench database's name."""

    database: str

    @property
    def suffix(self) -> str:
        """The random part, for task, source and topic names."""
        return self.database.removeprefix("bench_")

    @property
    def native(self) -> str:
        """The downstream schema the baseline applies into."""
        return f"{self.database}_native"

    @property
    def ours(self) -> str:
        """The downstream schema the subtask applies into."""
        return f"{self.database}_kdm"

    @property
    def lag(self) -> str:
        """The upstream database of the lag run."""
        return f"{self.database}_lag"

    @property
    def lag_ours(self) -> str:
        """The downstream schema of the lag run."""
        return f"{self.lag}_kdm"

    @property
    def meta_schema(self) -> str:
        """The subtasks' checkpoint schema."""
        return f"kdm_meta_{self.database}"

    @property
    def source_id(self) -> str:
        """The bench source (and relay topic)."""
        return f"bench-{self.suffix}"

    @property
    def lag_source_id(self) -> str:
        """The lag run's source (and relay topic)."""
        return f"bench-{self.suffix}-lag"

    def task_name(self, lag: bool = False) -> str:
        """The subtask's task name."""
        return f"bench-{self.suffix}{'-lag' if lag else ''}"


def task_yaml(names: Names, endpoints: Endpoints, lag: bool, workers: int, batch: int) -> str:
    """A task routing the bench database (or the lag one) to its `_kdm` schema."""
    down = endpoints.downstream
    upstream, target = (names.lag, names.lag_ours) if lag else (names.database, names.ours)
    source = names.lag_source_id if lag else names.source_id
    return f"""name: {names.task_name(lag)}
task-mode: incremental
meta-schema: {names.meta_schema}
target-database:
  host: {down['host']}
  port: {down['port']}
  user: {down['user']}
  password: "{down.get('password') or ''}"
mysql-instances:
  - source-id: {source}
    syncer-config-name: bench
    route-rules: [bench]
    block-allow-list: bench
routes:
  bench:
    schema-pattern: {upstream}
    target-schema: {target}
block-allow-list:
  bench:
    do-dbs: [{upstream}]
syncers:
  bench:
    worker-count: {workers}
    batch: {batch}
    multiple-rows: true
    compact: false
"""


def copy_tables(endpoints: Endpoints, database: str, tables: Sequence[str],
                targets: Sequence[str]) -> None:
    """Create `targets` downstream, each with the upstream's definition of `tables`."""
    up = connect(endpoints.upstream, database)
    try:
        with up.cursor() as cur:
            definitions = []
            for table in tables:
                cur.execute(f"SHOW CREATE TABLE `{table}`")
                definitions.append(str(cur.fetchone()[1]))
    finally:
        up.close()
    down = connect(endpoints.downstream)
    try:
        with down.cursor() as cur:
            for target in targets:
                cur.execute(f"CREATE DATABASE `{target}`")
                cur.execute(f"USE `{target}`")
                for definition in definitions:
                    cur.execute(definition)
    finally:
        down.close()


# -- threads: a relay and a subtask -------------------------------------------------------


class RelayThread:
    """A relay from a GTID set into the bench topics, in a thread of this process."""

    def __init__(self, endpoints: Endpoints, kafka: KafkaConfig, source_id: str, gtid: str,
                 settings: RelaySettings | None = None) -> None:
        up = endpoints.upstream
        source = parse_source(
            f"source-id: {source_id}\nenable-gtid: true\nrelay-binlog-gtid: \"{gtid}\"\n"
            f"from:\n  host: {up['host']}\n  port: {up['port']}\n  user: {up['user']}\n"
            f"  password: \"{up.get('password') or ''}\"\n")
        self.relay = Relay(source, kafka, settings)
        self.stop_event = threading.Event()
        self.failure: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name=f"bench-relay-{source_id}",
                                       daemon=True)

    def start(self) -> RelayThread:
        """Start relaying."""
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            self.relay.run(self.stop_event)
        except BaseException as exc:
            self.failure.append(exc)

    def check(self) -> None:
        """Raise when the relay failed or paused on an error."""
        if self.failure:
            raise RuntimeError(f"the relay failed: {self.failure[0]!r}") from self.failure[0]
        if self.relay.stage == Stage.PAUSED and self.relay.errors:
            raise RuntimeError(f"the relay paused: {self.relay.errors[0].render()}")

    def has(self, gtids: GTIDSet) -> bool:
        """Whether the relay has committed every transaction of `gtids`."""
        committed = self.relay.committed
        return committed is not None and gtids.issubset(
            GTIDSet.parse(committed["position"]["gtid"] or ""))

    def stop(self) -> None:
        """Commit what was read and stop."""
        self.stop_event.set()
        self.thread.join(60)
        if self.thread.is_alive():
            log("the relay thread did not stop within 60s")


class TimedSubtask(Subtask):
    """The subtask, noting when it has chosen its start offset (so it is about to read)."""

    read_started: float | None = None

    def _start(self, *args: Any, **kwargs: Any) -> int:
        # whatever the subtask's own signature is: only the moment it returns matters here
        offset = super()._start(*args, **kwargs)
        if self.read_started is None:
            self.read_started = time.monotonic()
        return offset


class ProfiledApplier(Applier):
    """The applier, with one cProfile profile a DML worker thread (for --profile)."""

    profiles: ClassVar[list[cProfile.Profile]] = []
    _local: ClassVar[threading.local] = threading.local()

    def _apply(self, worker: int, batch: Round, ready: threading.Semaphore) -> int:
        profile: cProfile.Profile | None = getattr(self._local, "profile", None)
        if profile is None:
            profile = self._local.profile = cProfile.Profile()
            self.profiles.append(profile)
        profile.enable()
        try:
            return super()._apply(worker, batch, ready)
        finally:
            profile.disable()


def _swap_applier(cls: type[Applier]) -> type[Applier]:
    """Make the subtask module build `cls` as its applier; the class it built before."""
    namespace = vars(subtask_module)
    old: type[Applier] = namespace["Applier"]
    namespace["Applier"] = cls
    return old


class SubtaskThread:
    """A subtask in a thread of this process, optionally under cProfile."""

    def __init__(self, task_text: str, source_id: str, kafka: KafkaConfig,
                 profiler: cProfile.Profile | None = None) -> None:
        self.subtask = TimedSubtask(parse_task(task_text), source_id, kafka)
        self.profiler = profiler
        self.stop_event = threading.Event()
        self.failure: list[BaseException] = []
        self.launched = 0.0
        self.thread = threading.Thread(target=self._run, name=f"bench-sync-{source_id}",
                                       daemon=True)

    def start(self) -> SubtaskThread:
        """Start applying."""
        self.launched = time.monotonic()
        self.thread.start()
        return self

    def _run(self) -> None:
        if self.profiler is not None:
            self.profiler.enable()
        try:
            self.subtask.run(self.stop_event)
        except BaseException as exc:
            self.failure.append(exc)
        finally:
            if self.profiler is not None:
                self.profiler.disable()

    def check(self) -> None:
        """Raise when the subtask failed."""
        if self.failure:
            failure = self.failure[0]
            text = failure.render() if hasattr(failure, "render") else repr(failure)
            raise RuntimeError(f"the subtask failed: {text}") from failure

    def stop(self) -> None:
        """Finish the round in flight and stop."""
        self.stop_event.set()
        if self.thread.ident is None:  # never started
            return
        self.thread.join(60)
        if self.thread.is_alive():
            log("the subtask thread did not stop within 60s")


# -- the relayed range --------------------------------------------------------------------


@dataclass
class Relayed:
    """The workload's binlog range in a relay topic, and each phase's last record offset."""

    kafka: KafkaConfig
    source_id: str
    topic: str
    phase_last: list[int]
    records: int


def relay_range(endpoints: Endpoints, work: Workload, names: Names, kafka: KafkaConfig,
                timeout: float) -> Relayed:
    """Relay the workload's binlog range and map the phase ends to relay offsets."""
    assert work.start is not None
    topic = Topics(kafka.topic_prefix).relay(names.source_id).name
    log(f"relaying {work.start} .. {work.end} into {topic} (not timed)")
    started = time.monotonic()
    relay = RelayThread(endpoints, kafka, names.source_id, work.start.gtid).start()
    target = work.end.gtid_set()
    try:
        while not relay.has(target):
            relay.check()
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"the relay did not catch up within {timeout:.0f}s")
            time.sleep(0.05)
    finally:
        relay.stop()
    log(f"relayed {relay.relay.events:,} records in {time.monotonic() - started:.1f}s")
    with TopicReader(kafka, topic) as reader:
        phase_last = []
        for phase in work.phases:
            assert phase.end is not None
            first_after = reader.find(after_position(Position("", 4, phase.end.gtid), True))
            phase_last.append(_last_before(reader, first_after))
    log(f"phase ends at relay offsets {phase_last}")
    return Relayed(kafka, names.source_id, topic, phase_last, relay.relay.events)


def _last_before(reader: TopicReader, offset: int) -> int:
    """The offset of the last record before `offset` (skipping transaction markers)."""
    low, _ = reader.bounds()
    window = 64
    while True:
        start = max(low, offset - window)
        last = None
        for message in reader.read(start, offset):
            last = message.offset
        if last is not None:
            return last
        if start == low:
            raise RuntimeError(f"no relay record before offset {offset}")
        window *= 16


# -- timing -------------------------------------------------------------------------------


@dataclass
class Measured:
    """Seconds each phase took, and the setup time before the clock started."""

    phase_seconds: list[float]
    setup_seconds: float = 0.0

    @property
    def total(self) -> float:
        """Seconds for the whole range."""
        return sum(self.phase_seconds)


# -- BASELINE: mariadb-binlog | mariadb ----------------------------------------------------


def binlog_names(endpoints: Endpoints) -> list[str]:
    """The upstream's binlog files, oldest first."""
    conn = connect(endpoints.upstream)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW BINARY LOGS")
            return [str(row[0]) for row in cur.fetchall()]
    finally:
        conn.close()


def run_baseline(endpoints: Endpoints, work: Workload, names: Names,
                 timeout: float) -> Measured:
    """Apply each phase's binlog range with mariadb-binlog | mariadb; time each pipeline."""
    assert work.start is not None
    up, down = endpoints.upstream, endpoints.downstream
    files = binlog_names(endpoints)
    points: list[BinlogPoint] = [work.start, *(p.end for p in work.phases if p.end)]
    seconds = []
    log(f"BASELINE: mariadb-binlog | mariadb into {names.native}")
    for phase, (start, end) in zip(work.phases, itertools.pairwise(points), strict=True):
        if start.file not in files:
            raise RuntimeError(f"binlog {start.file} is gone from the upstream (purged by "
                               "someone else?): the baseline cannot read its range")
        span = [name for name in files if start.file <= name <= end.file]
        dump = ["mariadb-binlog", "--read-from-remote-server", f"--host={up['host']}",
                f"--port={up['port']}", f"--user={up['user']}",
                f"--start-position={start.pos}", f"--stop-position={end.pos}",
                f"--database={names.database}",
                f"--rewrite-db={names.database}->{names.native}", *span]
        apply = ["mariadb", f"--host={down['host']}", f"--port={down['port']}",
                 f"--user={down['user']}", "--binary-mode", "--max-allowed-packet=64M"]
        took = _pipeline(dump, apply, up.get("password") or "", down.get("password") or "",
                         timeout)
        seconds.append(took)
        log(f"BASELINE: {phase.name} phase applied in {took:.2f}s "
            f"({rate(phase.rows, took):,.0f} rows/s)")
    return Measured(seconds)


def _pipeline(dump: list[str], apply: list[str], dump_password: str, apply_password: str,
              timeout: float) -> float:
    """Run `dump | apply`; its seconds; raise with both stderrs when either fails."""
    with tempfile.TemporaryFile() as dump_err, tempfile.TemporaryFile() as apply_err:
        started = time.monotonic()
        producer = subprocess.Popen(dump, stdout=subprocess.PIPE, stderr=dump_err,
                                    env={**os.environ, "MYSQL_PWD": dump_password})
        consumer = subprocess.Popen(apply, stdin=producer.stdout, stdout=subprocess.DEVNULL,
                                    stderr=apply_err,
                                    env={**os.environ, "MYSQL_PWD": apply_password})
        assert producer.stdout is not None
        producer.stdout.close()  # the client owns the pipe now
        try:
            consumer.wait(timeout)
            producer.wait(30)
        except subprocess.TimeoutExpired:
            producer.kill()
            consumer.kill()
            raise RuntimeError(f"`{' '.join(dump)} | mariadb` took over {timeout:.0f}s") \
                from None
        took = time.monotonic() - started
        dump_err.seek(0)
        apply_err.seek(0)
        dump_text = dump_err.read().decode(errors="replace").strip()
        apply_text = apply_err.read().decode(errors="replace").strip()
    if producer.returncode or consumer.returncode or "ERROR" in dump_text \
            or "Did not reach stop position" in dump_text:
        raise RuntimeError(f"`{' '.join(dump)} | {' '.join(apply)}` failed "
                           f"(exit {producer.returncode}/{consumer.returncode}): "
                           f"{dump_text[-1000:]} {apply_text[-1000:]}")
    return took


# -- OURS: the subtask --------------------------------------------------------------------


class CheckpointWatch:
    """How far the downstream holds a subtask's relay range, from its checkpoint rows."""

    def __init__(self, endpoints: Endpoints, meta_schema: str, task: str, source: str,
                 workers: int) -> None:
        self.conn = connect(endpoints.downstream)
        self.sql = (f"SELECT COUNT(*), MIN(end_offset) FROM `{meta_schema}`.kdm_checkpoint "
                    "WHERE task = %s AND source = %s AND worker >= 0")
        self.args = (task, source)
        self.workers = workers

    def applied_end(self) -> int | None:
        """The end offset every DML worker has committed (None before the first round)."""
        try:
            with self.conn.cursor() as cur:
                cur.execute(self.sql, self.args)
                count, low = cur.fetchone()
        except pymysql.MySQLError as exc:
            if exc.args and exc.args[0] in NO_TABLE_ERRNOS:
                return None
            raise
        return int(low) if count >= self.workers and low is not None else None

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def run_ours(endpoints: Endpoints, work: Workload, names: Names, relayed: Relayed,
             workers: int, batch: int, profiler: cProfile.Profile | None,
             timeout: float) -> Measured:
    """Apply the relayed range with the subtask; time each phase from the checkpoint rows."""
    text = task_yaml(names, endpoints, False, workers, batch)
    original = _swap_applier(ProfiledApplier) if profiler is not None else None
    watch = CheckpointWatch(endpoints, names.meta_schema, names.task_name(),
                            relayed.source_id, workers)
    runner = SubtaskThread(text, relayed.source_id, relayed.kafka, profiler)
    log(f"OURS: subtask {names.task_name()} from {relayed.topic} into {names.ours}")
    marks: list[float] = []
    try:
        runner.start()
        deadline = runner.launched + timeout
        last_end: int | None = None
        while len(marks) < len(relayed.phase_last):
            end = watch.applied_end()
            now = time.monotonic()
            while end is not None and len(marks) < len(relayed.phase_last) and \
                    end > relayed.phase_last[len(marks)]:
                marks.append(now)
                phase = work.phases[len(marks) - 1]
                started = runner.subtask.read_started or runner.launched
                took = now - (marks[-2] if len(marks) > 1 else started)
                log(f"OURS: {phase.name} phase applied in {took:.2f}s "
                    f"({rate(phase.rows, took):,.0f} rows/s)")
            runner.check()
            if now > deadline:
                raise RuntimeError(f"the subtask did not finish within {timeout:.0f}s "
                                   f"(applied up to offset {last_end}, phase ends at "
                                   f"{relayed.phase_last})")
            last_end = end
            time.sleep(POLL_SECONDS)
    finally:
        runner.stop()
        watch.close()
        if original is not None:
            _swap_applier(original)
    started = runner.subtask.read_started or runner.launched
    points = [started, *marks]
    return Measured([b - a for a, b in itertools.pairwise(points)],
                    setup_seconds=started - runner.launched)


# -- LAG: a steady write rate, live ---------------------------------------------------------


@dataclass
class Lag:
    """Marker lags of the live run, and what the writer managed."""

    seconds: list[float] = field(default_factory=list)
    status_seconds: list[float] = field(default_factory=list)
    txns: int = 0
    rows: int = 0
    write_seconds: float = 0.0
    missing: int = 0
    match: bool | None = None
    counts: tuple[int, int] = (0, 0)


def run_lag(endpoints: Endpoints, kafka: KafkaConfig, names: Names, workers: int, batch: int,
            duration: float, rows_per_second: int) -> Lag:
    """Write at a steady rate while a relay and the subtask run; sample marker lags."""
    setup = connect(endpoints.upstream)
    try:
        with setup.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{names.lag}`")
            cur.execute(f"USE `{names.lag}`")
            cur.execute(TABLE_DDL)
            cur.execute(MARKER_DDL)
            point = binlog_point(cur)
    finally:
        setup.close()
    copy_tables(endpoints, names.lag, [TABLE, "lag_marker"], [names.lag_ours])
    text = task_yaml(names, endpoints, True, workers, batch)
    log(f"LAG: relay + subtask live from {point}, {rows_per_second:,} row changes/s "
        f"for {duration:.0f}s")
    up = connect(endpoints.upstream, names.lag, multi_statements=True)
    relay = RelayThread(endpoints, kafka, names.lag_source_id, point.gtid).start()
    runner = SubtaskThread(text, names.lag_source_id, kafka)
    appeared: dict[int, float] = {}
    result = Lag()
    stop_polling = threading.Event()
    poller = threading.Thread(target=_poll_markers,
                              args=(endpoints, names.lag_ours, appeared, runner, result,
                                    stop_polling), name="bench-lag-poller", daemon=True)
    try:
        # the subtask reads the relay topic's bounds at start: let the relay create it first
        _await(lambda: relay.relay.stage == Stage.RUNNING, 60, "the relay to start", relay,
               None)
        runner.start()
        poller.start()
        committed: dict[int, float] = {}
        # warm-up: one marker through the whole path before the clock runs
        _write_txn(up, 0, 0, 0, 0, committed)
        _await(lambda: 0 in appeared, 120, "the warm-up marker to reach the downstream",
               relay, runner)
        _write_steady(up, duration, rows_per_second, committed, result)
        last = max(committed)
        _await(lambda: last in appeared, 120, "the last marker to reach the downstream",
               relay, runner)
    finally:
        stop_polling.set()
        if poller.ident is not None:
            poller.join(10)
        runner.stop()
        relay.stop()
        up.close()
    result.seconds = [appeared[s] - committed[s] for s in sorted(committed)
                      if s > 0 and s in appeared]
    result.missing = sum(1 for s in committed if s not in appeared)
    upstream = table_checksum(endpoints.upstream, names.lag, TABLE)
    downstream = table_checksum(endpoints.downstream, names.lag_ours, TABLE)
    result.match = upstream == downstream
    result.counts = (upstream[0], downstream[0])
    log(f"LAG: {len(result.seconds)} markers, p50 {percentile(result.seconds, 0.5):.3f}s, "
        f"max {max(result.seconds, default=0.0):.3f}s; downstream "
        f"{'equals' if result.match else 'differs from'} upstream")
    return result


def _write_steady(up: Any, duration: float, rows_per_second: int,
                  committed: dict[int, float], result: Lag) -> None:
    """Transactions of LAG_CHANGES_PER_TXN single-row changes, paced to the rate; what was
    written goes into `result`."""
    interval = LAG_CHANGES_PER_TXN / rows_per_second
    count = max(1, round(duration / interval))
    rng = random.Random(7)
    next_id = 1
    started = time.monotonic()
    for seq in range(1, count + 1):
        due = started + (seq - 1) * interval
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        next_id = _write_txn(up, seq, next_id, LAG_CHANGES_PER_TXN - 1, rng.random(),
                             committed)
    result.write_seconds = time.monotonic() - started
    result.txns = count
    result.rows = count * LAG_CHANGES_PER_TXN


def _write_txn(up: Any, seq: int, next_id: int, changes: int, seed: float,
               committed: dict[int, float]) -> int:
    """One transaction: `changes` inserts/updates of sbtest1, then marker `seq`; the
    monotonic time its COMMIT returned goes into `committed`. Returns the next free id."""
    rng = random.Random(seed)
    statements = []
    for n in range(changes):
        if n % 2 == 0 or next_id == 1:
            statements.append(f"INSERT INTO sbtest1 (id,k,c,pad) VALUES ({next_id},"
                              f"{rng.randrange(1 << 20)},'c{seq}-{n}','p{seq}')")
            next_id += 1
        else:
            statements.append(f"UPDATE sbtest1 SET k=k+1, c='u{seq}-{n}' "
                              f"WHERE id={rng.randrange(1, next_id)}")
    statements.append(f"INSERT INTO lag_marker VALUES ({seq}, {time.time():.6f})")
    with up.cursor() as cur:
        run_script(cur, "BEGIN;" + ";".join(statements) + ";COMMIT")
    committed[seq] = time.monotonic()
    return next_id


def _poll_markers(endpoints: Endpoints, database: str, appeared: dict[int, float],
                  runner: SubtaskThread, result: Lag, stop: threading.Event) -> None:
    """Note when each marker first shows downstream; sample the subtask's own lag figure."""
    conn = connect(endpoints.downstream)
    seen = -1
    sampled = 0.0
    try:
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute(f"SELECT COALESCE(MAX(seq), -1) FROM `{database}`.lag_marker")
                (top,) = cur.fetchone()
                now = time.monotonic()
                for seq in range(seen + 1, int(top) + 1):
                    appeared[seq] = now
                seen = max(seen, int(top))
                if seen >= 1 and now - sampled >= LAG_STATUS_SECONDS:
                    result.status_seconds.append(runner.subtask.stats.lag_seconds())
                    sampled = now
                time.sleep(POLL_SECONDS)
    finally:
        conn.close()


def _await(done: Callable[[], bool], timeout: float, what: str, relay: RelayThread,
           runner: SubtaskThread | None) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        relay.check()
        if runner is not None:
            runner.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout:.0f}s")
        time.sleep(POLL_SECONDS)


# -- report -------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def report(work: Workload, ours: Measured, base: Measured, relayed: Relayed, nbytes: int,
           checks: list[tuple[str, str, tuple[int, int]]], lag: Lag | None, workers: int,
           batch: int, profiled: bool, wall: float) -> tuple[float, bool]:
    """Print the figures; (the INSERT phase's ratio ours/baseline, whether all checks hold)."""
    rows: list[list[object]] = []
    ratios = []
    for phase, mine, theirs in zip(work.phases, ours.phase_seconds, base.phase_seconds,
                                   strict=True):
        ours_rate, base_rate = rate(phase.rows, mine), rate(phase.rows, theirs)
        ratios.append(rate(ours_rate, base_rate))
        rows.append([phase.name, phase.rows, mine, ours_rate, theirs, base_rate,
                     rate(ours_rate, base_rate)])
    ours_rate, base_rate = rate(work.rows, ours.total), rate(work.rows, base.total)
    rows.append(["all", work.rows, ours.total, ours_rate, base.total, base_rate,
                 rate(ours_rate, base_rate)])
    print()
    print(f"sync benchmark: {work.rows:,} row changes, {nbytes / 1e6:.1f} MB of binlog "
          f"({work.start} .. {work.end}), {relayed.records:,} relay records")
    print(f"ours: consumers.subtask.Subtask, syncer worker-count {workers}, batch {batch}, "
          "multiple-rows true, compact false; started after "
          f"{ours.setup_seconds:.2f}s of setup (not counted); phases timed by polling "
          "the checkpoint rows' end offsets")
    print("baseline: mariadb-binlog --read-from-remote-server | mariadb, one pipeline a phase")
    if profiled:
        print("ours ran under cProfile: its rates are not comparable with the baseline's")
    print()
    print_table(["phase", "rows", "ours s", "ours rows/s", "baseline s", "baseline rows/s",
                 "ratio"], rows)
    print()
    good = True
    check_rows: list[list[object]] = []
    upstream = next(values for name, _, values in checks if name == "upstream")
    for name, where, (count, checksum) in checks:
        same = (count, checksum) == upstream
        good = good and same
        check_rows.append([name, where, count, checksum,
                           "-" if name == "upstream" else ("yes" if same else "NO")])
    print_table(["copy", "table", "rows", "CHECKSUM TABLE", "equals upstream"], check_rows)
    if not good:
        print("WARNING: a downstream copy differs from the upstream: the figures above are "
              "of a wrong result")
    if lag is not None:
        print()
        achieved = rate(lag.rows, lag.write_seconds)
        print(f"lag at a steady rate: {lag.txns:,} transactions of {LAG_CHANGES_PER_TXN} "
              f"single-row changes in {lag.write_seconds:.1f}s ({achieved:,.0f} row changes/s "
              f"written), relay and subtask live; downstream "
              f"{'equals' if lag.match else 'DIFFERS FROM'} upstream "
              f"({lag.counts[0]:,} / {lag.counts[1]:,} rows)")
        if lag.missing:
            print(f"WARNING: {lag.missing} markers never reached the downstream")
        good = good and bool(lag.match) and not lag.missing
        print_table(["lag measure", "samples", "p50 s", "p99 s", "max s"], [
            ["marker seen downstream - upstream commit", len(lag.seconds),
             percentile(lag.seconds, 0.5), percentile(lag.seconds, 0.99),
             max(lag.seconds, default=0.0)],
            ["subtask secondsBehindMaster (1 s binlog clock)", len(lag.status_seconds),
             percentile(lag.status_seconds, 0.5), percentile(lag.status_seconds, 0.99),
             max(lag.status_seconds, default=0.0)]])
    print(f"\nwall time {wall:.1f}s")
    return ratios[0], good


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS,
                        help=f"row changes in the workload (default {DEFAULT_ROWS:,})")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                        help=f"syncer worker-count (default {DEFAULT_WORKERS})")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                        help=f"syncer batch (default {DEFAULT_BATCH})")
    parser.add_argument("--profile", action="store_true",
                        help="run OURS under cProfile and print its top functions")
    parser.add_argument("--top", type=int, default=30, help="profile lines to print")
    parser.add_argument("--lag-seconds", type=float, default=LAG_SECONDS,
                        help=f"length of the lag run (default {LAG_SECONDS:.0f}; 0 skips it)")
    parser.add_argument("--lag-rate", type=int, default=LAG_ROWS_PER_SECOND,
                        help=f"row changes/s in the lag run (default {LAG_ROWS_PER_SECOND:,})")
    args = parser.parse_args()
    wall_started = time.monotonic()
    names = Names(f"bench_{unique_suffix()}")
    work = Workload.plan(names.database, args.rows)
    profiler = cProfile.Profile() if args.profile else None
    lag: Lag | None = None
    with local_stack() as endpoints:
        kafka = KafkaConfig(bootstrap_servers=endpoints.kafka_bootstrap,
                            topic_prefix=f"bench{names.suffix}")
        try:
            write_workload(endpoints, work)
            assert work.start is not None
            nbytes = binlog_bytes(endpoints, work.start, work.end)
            copy_tables(endpoints, names.database, [TABLE], [names.native, names.ours])
            timeout = max(600.0, work.rows / 200)
            relayed = relay_range(endpoints, work, names, kafka, timeout)
            base = run_baseline(endpoints, work, names, timeout)
            ours = run_ours(endpoints, work, names, relayed, args.workers, args.batch,
                            profiler, timeout)
            checks = [(name, f"{database}.{TABLE}",
                       table_checksum(server, database, TABLE)) for name, server, database in
                      (("upstream", endpoints.upstream, names.database),
                       ("baseline", endpoints.downstream, names.native),
                       ("ours", endpoints.downstream, names.ours))]
            if args.lag_seconds > 0:
                lag = run_lag(endpoints, kafka, names, args.workers, args.batch,
                              args.lag_seconds, args.lag_rate)
        finally:
            cleanup(endpoints, kafka, names)
    ratio, good = report(work, ours, base, relayed, nbytes, checks, lag, args.workers,
                         args.batch, profiler is not None, time.monotonic() - wall_started)
    if profiler is not None:
        print_profile(profiler, args.top, "OURS (the subtask's thread)")
        print_profile(ProfiledApplier.profiles, args.top,
                      f"OURS ({len(ProfiledApplier.profiles)} DML worker threads, summed)")
    print(f"ratio={ratio:.2f}")
    if not good:
        raise SystemExit(1)


def cleanup(endpoints: Endpoints, kafka: KafkaConfig, names: Names) -> None:
    """Drop the bench databases, topics and consumer groups (best effort)."""
    drop_databases(endpoints.upstream, [names.database, names.lag])
    drop_databases(endpoints.downstream, [names.native, names.ours, names.lag_ours,
                                          names.meta_schema])
    topics = Topics(kafka.topic_prefix)
    try:
        delete_topics(kafka, [topics.relay(names.source_id).name,
                              topics.relay(names.lag_source_id).name,
                              topics.compacted("stages").name, topics.compacted("status").name])
    except Exception as exc:  # cleanup must not hide the run's own outcome
        log(f"could not delete topics under prefix {kafka.topic_prefix}: {exc}")
    groups = [topics.sync_group(names.task_name(lag), source)
              for lag, source in ((False, names.source_id), (True, names.lag_source_id))]
    try:
        admin = admin_client(kafka)
        for future in admin.delete_consumer_groups(groups, request_timeout=10).values():
            try:
                future.result(timeout=20)
            except Exception as exc:
                if "GROUP_ID_NOT_FOUND" not in str(exc):  # never created: nothing to delete
                    log(f"consumer group not deleted: {exc}")
    except Exception as exc:
        log(f"could not delete consumer groups {groups}: {exc}")
    gc.collect()  # close the Kafka clients left in reference cycles, while Kafka is up


if __name__ == "__main__":
    main()
