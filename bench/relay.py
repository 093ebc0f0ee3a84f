"""Relay throughput: row events/s from the upstream's binlog into the relay topic.

Usage: `.venv/bin/python bench/relay.py [--rows N] [--profile]`

1. Starts the local stack if it is not up (and stops what it started at the end).
2. Writes a sysbench-like workload into a fresh database `bench_<random>` on the upstream:
   multi-row INSERTs (100 rows a statement, 10 statements a transaction), then single-row
   UPDATEs, then single-row DELETEs (100 a transaction), recording the binlog position and
   GTID set before the workload and at each phase boundary. Writing it is not measured.
3. OURS: `producers.relay.Relay` catches up on that binlog range from the GTID set before
   the workload into a fresh topic prefix; a phase is done when the relay's last committed
   record (`relay.committed`) has passed the phase's end GTID set. The clock starts when
   the relay has chosen its resume point (Kafka topics, transactions and stage watcher
   ready), so it covers reading, decoding, Avro encoding, producing and committing.
4. BASELINE: a bare mysql-replication loop over the same range (rows events only, every
   row decoded by the library), no Kafka.
5. Prints rows/s per phase for both, then `ratio=<ours/baseline overall>` as the last line.

`--profile` runs OURS under cProfile (the relay thread only) and prints its top functions;
cProfile slows Python code several times, so rates in that mode are not comparable.

Everything created is removed at the end: the bench database and the bench topics.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import itertools
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from common import (
    BinlogPoint,
    binlog_point,
    connect,
    local_stack,
    log,
    print_profile,
    print_table,
    rate,
    run_script,
    unique_suffix,
)
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import HeartbeatLogEvent
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from kdm.config.service import KafkaConfig
from kdm.config.source import parse_source
from kdm.kafka_admin import delete_topics
from kdm.position import GTIDSet
from kdm.stack.stack import Endpoints
from kdm.stages import Stage
from kdm.topics import Topics
from producers.reader import Resume
from producers.relay import Relay
from producers.settings import RelaySettings
from producers.upstream import Upstream

DEFAULT_ROWS = 500_000
ROWS_PER_INSERT = 100
INSERTS_PER_TXN = 10
CHANGES_PER_TXN = 100
TXNS_PER_PACKET = 10
POLL_SECONDS = 0.01
TABLE_DDL = """CREATE TABLE sbtest1 (
  id INT NOT NULL AUTO_INCREMENT,
  k INT NOT NULL DEFAULT 0,
  c CHAR(120) NOT NULL DEFAULT '',
  pad CHAR(60) NOT NULL DEFAULT '',
  PRIMARY KEY (id),
  KEY k_1 (k)
) ENGINE=InnoDB"""


# -- the workload -------------------------------------------------------------------------


@dataclass
class Phase:
    """One phase of the workload: its row changes and the binlog point after it."""

    name: str
    rows: int
    end: BinlogPoint | None = None
    write_seconds: float = 0.0


@dataclass
class Workload:
    """The workload's plan and, once written, where its binlog range starts."""

    database: str
    inserts: int
    updates: int
    deletes: int
    start: BinlogPoint | None = None
    phases: list[Phase] = field(default_factory=list)

    @classmethod
    def plan(cls, database: str, rows: int) -> Workload:
        """Half inserts (whole statements), 30% updates, 20% deletes."""
        inserts = max(ROWS_PER_INSERT, rows // 2 // ROWS_PER_INSERT * ROWS_PER_INSERT)
        deletes = min(inserts, max(1, rows // 5))
        updates = max(1, rows - inserts - deletes)
        return cls(database, inserts, updates, deletes,
                   phases=[Phase("insert", inserts), Phase("update", updates),
                           Phase("delete", deletes)])

    @property
    def rows(self) -> int:
        """Row changes in the whole workload."""
        return self.inserts + self.updates + self.deletes

    @property
    def end(self) -> BinlogPoint:
        """The binlog point after the last phase."""
        end = self.phases[-1].end
        assert end is not None
        return end


def _digits(rng: random.Random, groups: int) -> str:
    """sysbench's c/pad text: groups of 11 digits joined by '-'."""
    return "-".join(f"{rng.randrange(10**11):011d}" for _ in range(groups))


def _insert_script(first_id: int, count: int, c_pool: list[str], pad_pool: list[str],
                   rng: random.Random) -> str:
    statements = []
    for start in range(first_id, first_id + count, ROWS_PER_INSERT):
        stop = min(start + ROWS_PER_INSERT, first_id + count)
        values = ",".join(
            f"({i},{rng.randrange(1 << 20)},'{c_pool[i % len(c_pool)]}',"
            f"'{pad_pool[i % len(pad_pool)]}')" for i in range(start, stop))
        statements.append(f"INSERT INTO sbtest1 (id,k,c,pad) VALUES {values}")
    return "BEGIN;" + ";".join(statements) + ";COMMIT"


def _update(n: int, row_id: int, c_pool: list[str]) -> str:
    """Alternately sysbench's index update (k) and non-index update (c, always a new value)."""
    if n % 2 == 0:
        return f"UPDATE sbtest1 SET k=k+1 WHERE id={row_id}"
    c = f"{n:011d}" + c_pool[n % len(c_pool)][11:]
    return f"UPDATE sbtest1 SET c='{c}' WHERE id={row_id}"


def _packets(statements: Iterator[str], per_txn: int, txns: int) -> Iterator[str]:
    """Group single statements into transactions and transactions into one packet."""
    batch: list[str] = []
    txn: list[str] = []
    for statement in statements:
        txn.append(statement)
        if len(txn) == per_txn:
            batch.append("BEGIN;" + ";".join(txn) + ";COMMIT")
            txn = []
            if len(batch) == txns:
                yield ";".join(batch)
                batch = []
    if txn:
        batch.append("BEGIN;" + ";".join(txn) + ";COMMIT")
    if batch:
        yield ";".join(batch)


def write_workload(endpoints: Endpoints, work: Workload) -> None:
    """Create the database and table, then write the three phases, noting binlog points."""
    rng = random.Random(20240607)
    c_pool = [_digits(rng, 10) for _ in range(1024)]
    pad_pool = [_digits(rng, 5) for _ in range(1024)]
    conn = connect(endpoints.upstream, multi_statements=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{work.database}`")
            cur.execute(f"USE `{work.database}`")
            cur.execute(TABLE_DDL)
            work.start = binlog_point(cur)
            log(f"workload in {work.database}: {work.inserts:,} inserts, {work.updates:,} "
                f"updates, {work.deletes:,} deletes; binlog from {work.start}")
            insert, update, delete = work.phases

            started = time.monotonic()
            per_txn = ROWS_PER_INSERT * INSERTS_PER_TXN
            for first in range(1, work.inserts + 1, per_txn):
                run_script(cur, _insert_script(first, min(per_txn, work.inserts - first + 1),
                                               c_pool, pad_pool, rng))
            _phase_done(cur, insert, started)

            started = time.monotonic()
            updates = (_update(n, rng.randint(1, work.inserts), c_pool)
                       for n in range(work.updates))
            for packet in _packets(updates, CHANGES_PER_TXN, TXNS_PER_PACKET):
                run_script(cur, packet)
            _phase_done(cur, update, started)

            started = time.monotonic()
            victims = rng.sample(range(1, work.inserts + 1), work.deletes)
            deletes = (f"DELETE FROM sbtest1 WHERE id={row_id}" for row_id in victims)
            for packet in _packets(deletes, CHANGES_PER_TXN, TXNS_PER_PACKET):
                run_script(cur, packet)
            _phase_done(cur, delete, started)
    finally:
        conn.close()


def _phase_done(cur: Any, phase: Phase, started: float) -> None:
    phase.write_seconds = time.monotonic() - started
    phase.end = binlog_point(cur)
    log(f"wrote {phase.rows:,} {phase.name} rows in {phase.write_seconds:.1f}s; "
        f"binlog at {phase.end}")


def binlog_bytes(endpoints: Endpoints, start: BinlogPoint, end: BinlogPoint) -> int:
    """Bytes of binlog between two points (across files)."""
    conn = connect(endpoints.upstream)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW BINARY LOGS")
            sizes = {str(row[0]): int(row[1]) for row in cur.fetchall()}
    finally:
        conn.close()
    if start.file == end.file:
        return end.pos - start.pos
    names = sorted(sizes)
    total = sizes.get(start.file, start.pos) - start.pos
    total += sum(sizes[n] for n in names if start.file < n < end.file)
    return total + end.pos


def drop_database(endpoints: Endpoints, database: str) -> None:
    """Remove the bench database (best effort)."""
    try:
        conn = connect(endpoints.upstream)
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        conn.close()
    except Exception as exc:  # cleanup must not hide the run's own outcome
        log(f"could not drop database {database}: {exc}")


# -- OURS: the relay ------------------------------------------------------------------------


class TimedRelay(Relay):
    """The relay, noting when it starts reading (after its Kafka setup and resume point)."""

    read_started: float | None = None

    def _resume_point(self, upstream: Upstream) -> Resume:
        resume = super()._resume_point(upstream)
        if self.read_started is None:
            self.read_started = time.monotonic()
        return resume


@dataclass
class Measured:
    """Seconds each phase took, and the run's setup time before reading started."""

    phase_seconds: list[float]
    setup_seconds: float = 0.0
    note: str = ""

    @property
    def total(self) -> float:
        """Seconds for the whole range."""
        return sum(self.phase_seconds)


def run_ours(endpoints: Endpoints, work: Workload, settings: RelaySettings,
             profiler: cProfile.Profile | None, timeout: float) -> Measured:
    """Relay the workload's binlog range into fresh topics; time each phase's passing."""
    suffix = unique_suffix()
    source_id = f"bench-{suffix}"
    up = endpoints.upstream
    assert work.start is not None
    source = parse_source(
        f"source-id: {source_id}\nenable-gtid: true\n"
        f'relay-binlog-gtid: "{work.start.gtid}"\n'
        f"from:\n  host: {up['host']}\n  port: {up['port']}\n  user: {up['user']}\n"
        f"  password: \"{up.get('password') or ''}\"\n")
    kafka = KafkaConfig(bootstrap_servers=endpoints.kafka_bootstrap,
                        topic_prefix=f"bench{suffix}")
    topics = Topics(kafka.topic_prefix)
    relay = TimedRelay(source, kafka, settings)
    stop = threading.Event()
    failure: list[BaseException] = []

    def target() -> None:
        if profiler is not None:
            profiler.enable()
        try:
            relay.run(stop)
        except BaseException as exc:
            failure.append(exc)
        finally:
            if profiler is not None:
                profiler.disable()

    boundaries = [phase.end.gtid_set() for phase in work.phases if phase.end is not None]
    thread = threading.Thread(target=target, name="bench-relay", daemon=True)
    log(f"OURS: relay {source_id} into {topics.relay(source_id).name}")
    launched = time.monotonic()
    thread.start()
    marks: list[float] = []
    try:
        seen: dict[str, Any] | None = None
        deadline = launched + timeout
        while len(marks) < len(boundaries):
            committed = relay.committed
            if committed is not None and committed is not seen:
                now = time.monotonic()
                seen = committed
                done = GTIDSet.parse(committed["position"]["gtid"] or "")
                while len(marks) < len(boundaries) and boundaries[len(marks)].issubset(done):
                    marks.append(now)
                    log(f"OURS: {work.phases[len(marks) - 1].name} phase relayed "
                        f"({relay.events:,} records committed)")
            if failure:
                raise RuntimeError(f"the relay failed: {failure[0]!r}") from failure[0]
            if relay.stage == Stage.PAUSED and relay.errors:
                raise RuntimeError(f"the relay paused: {relay.errors[0].render()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the relay did not catch up within {timeout:.0f}s "
                                   f"(last committed: {seen and seen['position']})")
            time.sleep(POLL_SECONDS)
    finally:
        stop.set()
        thread.join(60)
        if thread.is_alive():
            log("OURS: the relay thread did not stop within 60s")
        try:
            delete_topics(kafka, [topics.relay(source_id).name,
                                  topics.compacted("stages").name,
                                  topics.compacted("status").name])
        except Exception as exc:  # cleanup must not hide the run's own outcome
            log(f"could not delete topics under prefix {kafka.topic_prefix}: {exc}")
        gc.collect()  # close the Kafka clients left in reference cycles, while Kafka is up
    started = relay.read_started or launched
    points = [started, *marks]
    return Measured([b - a for a, b in itertools.pairwise(points)],
                    setup_seconds=started - launched)


# -- BASELINE: a bare mysql-replication loop ----------------------------------------------


def run_baseline(endpoints: Endpoints, work: Workload, timeout: float) -> Measured:
    """Decode every rows event of the range with the library alone; time each phase."""
    up = endpoints.upstream
    assert work.start is not None
    thresholds = []
    total = 0
    for phase in work.phases:
        total += phase.rows
        thresholds.append(total)
    log("BASELINE: mysql-replication parse loop")
    started = time.monotonic()
    # blocking, stopped by the row count: with BINLOG_DUMP_NON_BLOCK, MariaDB 10.11 resets a
    # GTID dump mid-stream and mysql-replication silently re-opens it from `auto_position`,
    # so rows would be read twice.
    stream = BinLogStreamReader(
        {"host": up["host"], "port": int(up["port"]), "user": up["user"],
         "passwd": up.get("password") or ""},
        server_id=500_000_000 + random.randrange(100_000_000),
        auto_position=work.start.gtid, is_mariadb=True, blocking=True, freeze_schema=True,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, HeartbeatLogEvent],
        slave_heartbeat=1.0, ignore_decode_errors=True, enable_logging=False)
    deadline = started + timeout
    marks: list[float] = []
    ours = 0
    others = 0
    values = 0
    try:
        for event in stream:
            if isinstance(event, HeartbeatLogEvent):
                if time.monotonic() > deadline:
                    break
                continue
            rows = event.rows
            for row in rows:  # touch every image, so nothing stays undecoded
                values += len(row)
            if event.schema != work.database:
                others += len(rows)
                continue
            ours += len(rows)
            while len(marks) < len(thresholds) and ours >= thresholds[len(marks)]:
                marks.append(time.monotonic())
            if len(marks) == len(thresholds):
                break
    finally:
        stream.close()
    note = ""
    if ours != work.rows:
        note = f"baseline saw {ours:,} rows of {work.database}, expected {work.rows:,}"
        log(f"BASELINE: {note}")
        while len(marks) < len(thresholds):
            marks.append(time.monotonic())
    if others:
        log(f"BASELINE: {others:,} rows of other databases were in the range too")
    points = [started, *marks]
    return Measured([b - a for a, b in itertools.pairwise(points)], note=note)


# -- report -------------------------------------------------------------------------------


def report(work: Workload, ours: Measured, base: Measured, nbytes: int, wall: float,
           profiled: bool) -> float:
    """Print the figures; the overall ratio (ours/baseline)."""
    rows: list[list[object]] = []
    for phase, mine, theirs in zip(work.phases, ours.phase_seconds, base.phase_seconds,
                                   strict=True):
        ours_rate, base_rate = rate(phase.rows, mine), rate(phase.rows, theirs)
        if ours_rate and base_rate:
            rows.append([phase.name, phase.rows, mine, ours_rate, theirs, base_rate,
                         ours_rate / base_rate])
        else:  # passed within one relay commit: too short to time
            rows.append([phase.name, phase.rows, mine, ours_rate or "n/a", theirs,
                         base_rate or "n/a", "n/a"])
    ours_rate, base_rate = rate(work.rows, ours.total), rate(work.rows, base.total)
    ratio = rate(ours_rate, base_rate)
    rows.append(["all", work.rows, ours.total, ours_rate, base.total, base_rate, ratio])
    print()
    print(f"relay benchmark: {work.rows:,} row changes, {nbytes / 1e6:.1f} MB of binlog "
          f"({work.start} .. {work.end})")
    print(f"ours: relay setup before reading {ours.setup_seconds:.2f}s (not counted); "
          f"binlog MB/s ours {rate(nbytes / 1e6, ours.total):.1f}, "
          f"baseline {rate(nbytes / 1e6, base.total):.1f}")
    if profiled:
        print("ours ran under cProfile: its rates are not comparable with the baseline's")
    if base.note:
        print(f"warning: {base.note}")
    print()
    print_table(["phase", "rows", "ours s", "ours rows/s", "baseline s", "baseline rows/s",
                 "ratio"], rows)
    print(f"\nwall time {wall:.1f}s")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS,
                        help=f"row changes in the workload (default {DEFAULT_ROWS:,})")
    parser.add_argument("--profile", action="store_true",
                        help="run OURS under cProfile and print its top functions")
    parser.add_argument("--top", type=int, default=30, help="profile lines to print")
    parser.add_argument("--batch-records", type=int, default=RelaySettings.batch_records,
                        help="relay: records per Kafka transaction at most")
    parser.add_argument("--commit-seconds", type=float, default=RelaySettings.commit_seconds,
                        help="relay: seconds a Kafka transaction stays open at most")
    args = parser.parse_args()
    settings = RelaySettings(batch_records=args.batch_records,
                             commit_seconds=args.commit_seconds)
    wall_started = time.monotonic()
    work = Workload.plan(f"bench_{unique_suffix()}", args.rows)
    profiler = cProfile.Profile() if args.profile else None
    with local_stack() as endpoints:
        try:
            write_workload(endpoints, work)
            assert work.start is not None
            nbytes = binlog_bytes(endpoints, work.start, work.end)
            timeout = max(300.0, work.rows / 500)
            base = run_baseline(endpoints, work, timeout)
            ours = run_ours(endpoints, work, settings, profiler, timeout)
        finally:
            drop_database(endpoints, work.database)
    ratio = report(work, ours, base, nbytes, time.monotonic() - wall_started,
                   profiler is not None)
    if profiler is not None:
        print_profile(profiler, args.top, "OURS (relay thread)")
    print(f"ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
