"""Helpers for relay tests: a source.yaml for the test upstream, the producer as a real
process (so it can be killed with SIGKILL), and the relay topic's rows read back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql

from kdm.config.service import KafkaConfig
from kdm.config.source import SourceConfig, parse_source
from kdm.errors import KdmError
from kdm.relay_log import TopicReader
from kdm.stack.stack import Endpoints
from kdm.topics import Topics

KDM = str(Path(sys.executable).parent / "kdm")


def source_text(endpoints: Endpoints, source_id: str, gtid: str = "", use_gtid: bool = True,
                binlog_name: str = "") -> str:
    """A source.yaml for the test upstream."""
    up = endpoints.upstream
    lines = [f"source-id: {source_id}", f"enable-gtid: {str(use_gtid).lower()}",
             "from:", f"  host: {up['host']}", f"  port: {up['port']}", f"  user: {up['user']}"]
    if gtid:
        lines.append(f'relay-binlog-gtid: "{gtid}"')
    if binlog_name:
        lines.append(f'relay-binlog-name: "{binlog_name}"')
    return "\n".join(lines) + "\n"


def source_config(endpoints: Endpoints, source_id: str, **kwargs: Any) -> SourceConfig:
    """The parsed form of `source_text`."""
    return parse_source(source_text(endpoints, source_id, **kwargs))


def connect(endpoints: Endpoints, database: str | None = None) -> Any:
    """An autocommit connection to the test upstream."""
    up = endpoints.upstream
    return pymysql.connect(host=up["host"], port=up["port"], user=up["user"], password="",
                           database=database, autocommit=True, charset="utf8mb4")


def gtid_now(endpoints: Endpoints) -> str:
    """The upstream's executed GTID set."""
    with connect(endpoints) as conn, conn.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.gtid_binlog_pos")
        return str(cur.fetchone()[0])


def relay_topic(kafka: KafkaConfig, source_id: str) -> str:
    """The relay topic's name."""
    return Topics(kafka.topic_prefix).relay(source_id).name


def relay_records(kafka: KafkaConfig, source_id: str) -> list[dict[str, Any]]:
    """Every committed record of the relay topic, in order ([] before the topic exists)."""
    with TopicReader(kafka, relay_topic(kafka, source_id)) as reader:
        try:
            low = reader.bounds()[0]
        except KdmError:
            return []
        return [message.value for message in reader.read(low)]


def rows_of(records: list[dict[str, Any]], schema: str) -> list[tuple[str, Any, Any]]:
    """(op, before, after) of the ROW records of one schema."""
    return [(r["op"], r["before"], r["after"]) for r in records
            if r["kind"] == "ROW" and r["schema"] == schema]


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check` until true; fail the test naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def kill_process(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL a child by its PID (no cleanup at all) and reap it."""
    if proc is not None and proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float) -> int | None:
    """SIGTERM a child by its PID and wait (SIGKILL after `timeout`); its exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_process(proc)
    return proc.returncode


@dataclass
class ProducerProcess:
    """`kdm producer run` as a child process, stopped or killed by its PID."""

    source_path: Path
    kafka: KafkaConfig
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ("--batch-records", "100", "--commit-interval", "0.05")
    proc: subprocess.Popen[bytes] | None = None

    def start(self, **env: str) -> None:
        """Start the producer (extra environment, e.g. KDM_FAULTS, for this run only)."""
        environment = {**os.environ, "KDM_KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
                       "KDM_TOPIC_PREFIX": self.kafka.topic_prefix, **self.extra_env, **env}
        if "KDM_FAULTS" not in env:
            environment.pop("KDM_FAULTS", None)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [KDM, "producer", "run", "-s", str(self.source_path), *self.args],
                stdout=log, stderr=subprocess.STDOUT, env=environment)

    def kill(self) -> None:
        """SIGKILL: no cleanup at all."""
        kill_process(self.proc)

    def stop(self) -> int | None:
        """SIGTERM and wait: a clean shutdown."""
        return stop_process(self.proc, 30)

    def exited(self) -> int | None:
        """The exit code once the process has ended, else None."""
        return None if self.proc is None else self.proc.poll()


class Workload:
    """Writes numbered rows in transactions of mixed sizes from a thread, remembering the
    row changes in commit order, so the relay can be checked against it."""

    def __init__(self, endpoints: Endpoints, database: str, big_every: int = 4) -> None:
        self.endpoints = endpoints
        self.database = database
        self.big_every = big_every
        self.expected: list[tuple[str, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None
        with connect(endpoints, database) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL, "
                        "pad VARCHAR(40) NOT NULL)")

    def start(self) -> Workload:
        """Start writing."""
        self.thread.start()
        return self

    def finish(self) -> list[tuple[str, int]]:
        """Stop writing; the expected (op, id) changes in binlog order."""
        self.stop.set()
        self.thread.join(60)
        if self.error is not None:
            raise self.error
        return self.expected

    def _run(self) -> None:
        try:
            with connect(self.endpoints, self.database) as conn:
                conn.autocommit(False)
                for changes in self._transactions():
                    if self.stop.is_set():
                        return
                    with conn.cursor() as cur:
                        for sql, args in changes:
                            cur.execute(sql, args)
                    conn.commit()
                    self.expected.extend(self._pending)
                    time.sleep(0.01)
        except BaseException as exc:
            self.error = exc

    def _transactions(self) -> Iterator[list[tuple[str, Any]]]:
        next_id, txn = 1, 0
        while True:
            txn += 1
            size = 250 if txn % self.big_every == 0 else 1 + txn % 7
            ids = list(range(next_id, next_id + size))
            next_id += size
            values = ", ".join(["(%s, %s, %s)"] * size)
            args = [x for i in ids for x in (i, 0, f"row-{i}")]
            changes = [(f"INSERT INTO t (id, v, pad) VALUES {values}", args)]
            self._pending = [("INSERT", i) for i in ids]
            if txn % 3 == 0:
                changes.append(("UPDATE t SET v = v + 1 WHERE id = %s", [ids[0]]))
                self._pending.append(("UPDATE", ids[0]))
            if txn % 5 == 0:
                changes.append(("DELETE FROM t WHERE id = %s", [ids[-1]]))
                self._pending.append(("DELETE", ids[-1]))
            yield changes


def changes_of(records: list[dict[str, Any]], schema: str) -> list[tuple[str, int]]:
    """(op, id) of the relay's ROW records of one schema, in topic order."""
    return [(op, (after or before)[0]) for op, before, after in rows_of(records, schema)]
