"""Helpers for sync tests: a relay and subtasks running for a test, task.yaml text, and
upstream/downstream table comparison."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql

from consumers.runner import SubtaskRunner
from kdm.config.service import KafkaConfig
from kdm.config.task import TaskConfig, parse_task
from kdm.stack.stack import Endpoints
from producers.relay import Relay
from producers.settings import RelaySettings
from tests.integration.relay_support import source_config

FAST_RELAY = RelaySettings(commit_seconds=0.05, status_seconds=0.5, backoff_min=0.2)


def task_text(name: str, endpoints: Endpoints, sources: list[str], body: str = "",
              instance: str = "", worker_count: int = 4, meta_schema: str = "",
              syncer: str = "") -> str:
    """A task.yaml for the test stack's downstream; `instance` is added to every
    mysql-instances entry, `body` at the top level."""
    down = endpoints.downstream
    lines = [f"name: {name}", "task-mode: incremental",
             f"meta-schema: {meta_schema or 'kdm_meta_' + name.replace('-', '_')}",
             "target-database:", f"  host: {down['host']}", f"  port: {down['port']}",
             f"  user: {down['user']}", '  password: ""', "mysql-instances:"]
    for source in sources:
        lines.append(f"  - source-id: {source}")
        lines.append("    syncer-config-name: global")
        lines.extend("    " + line for line in instance.splitlines() if line.strip())
    lines += ["syncers:", "  global:", f"    worker-count: {worker_count}", "    batch: 100"]
    lines.extend("    " + line for line in syncer.splitlines() if line.strip())
    return "\n".join(lines) + "\n" + body


def task_config(text: str) -> TaskConfig:
    """The parsed task."""
    return parse_task(text)


@contextmanager
def running(endpoints: Endpoints, kafka: KafkaConfig, source_ids: list[str], gtid: str,
            task: TaskConfig | None = None) -> Iterator[dict[str, Any]]:
    """Relays for the sources (starting at `gtid`) and the task's subtasks, in threads."""
    stop = threading.Event()
    threads = []
    relays = [Relay(source_config(endpoints, s, gtid=gtid), kafka, FAST_RELAY)
              for s in source_ids]
    runners = [SubtaskRunner(task, s, kafka) for s in source_ids] if task else []
    units: list[Relay | SubtaskRunner] = [*relays, *runners]
    for unit in units:
        thread = threading.Thread(target=unit.run, args=(stop,), daemon=True)
        thread.start()
        threads.append(thread)
    try:
        yield {"relays": relays, "runners": runners, "stop": stop}
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)


def rows(endpoints: Endpoints, side: str, db: str, table: str,
         order: str = "1") -> list[tuple[Any, ...]]:
    """Every row of a table as the server prints it (text, no conversion)."""
    server = endpoints.upstream if side == "up" else endpoints.downstream
    conn = pymysql.connect(host=server["host"], port=server["port"], user=server["user"],
                           password="", database=db, conv={}, autocommit=None,
                           charset="utf8mb4")
    with conn, conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        cur.execute(f"SELECT * FROM `{table}` ORDER BY {order}")
        return list(cur.fetchall())


def execute(endpoints: Endpoints, db: str, *statements: str, side: str = "up") -> None:
    """Run statements on the upstream (or downstream), autocommit."""
    server = endpoints.upstream if side == "up" else endpoints.downstream
    conn = pymysql.connect(host=server["host"], port=server["port"], user=server["user"],
                           password="", database=db, autocommit=True, charset="utf8mb4")
    with conn, conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)


def same_tables(endpoints: Endpoints, up: tuple[str, str], down: tuple[str, str]) -> bool:
    """Whether two tables hold the same rows (False while the downstream one is missing)."""
    try:
        return rows(endpoints, "up", *up) == rows(endpoints, "down", *down)
    except pymysql.MySQLError:
        return False
