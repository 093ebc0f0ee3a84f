"""Helpers for full-migration tests: task.yaml text, a FullMigration run in this process or
in a child process (so it can be killed with SIGKILL), and table checksums.

Run as a module, it is that child: `python -m tests.integration.full_support TASK SOURCE`
runs one FullMigration and prints its outcome as one JSON line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pymysql

from consumers.full import FullMigration
from kdm.config.source import load_source
from kdm.config.task import TaskConfig, load_task, parse_task
from kdm.stack.stack import Endpoints

ROOT = Path(__file__).resolve().parents[2]


def full_task_text(name: str, endpoints: Endpoints, source: str, body: str, instance: str,
                   threads: int = 2, pool_size: int = 2, rows: int = 0,
                   consistency: str = "auto", mode: str = "full") -> str:
    """A task.yaml with one source, global mydumper/loader settings, `instance` lines added
    to the source's entry and `body` at the top level."""
    down = endpoints.downstream
    lines = [f"name: {name}", f"task-mode: {mode}",
             f"meta-schema: kdm_meta_{name.replace('-', '_')}",
             "target-database:", f"  host: {down['host']}", f"  port: {down['port']}",
             f"  user: {down['user']}", '  password: ""', "mysql-instances:",
             f"  - source-id: {source}", "    mydumper-config-name: global",
             "    loader-config-name: global"]
    lines.extend("    " + line for line in instance.splitlines() if line.strip())
    lines += ["mydumpers:", "  global:", f"    threads: {threads}",
              f'    extra-args: "--consistency {consistency}"']
    if rows:
        lines.append(f"    rows: {rows}")
    lines += ["loaders:", "  global:", f"    pool-size: {pool_size}"]
    return "\n".join(lines) + "\n" + body


def task_of(text: str) -> TaskConfig:
    """The parsed task."""
    return parse_task(text)


def run_in_child(task_path: Path, source_path: Path, env: dict[str, str] | None = None
                 ) -> subprocess.Popen[str]:
    """A FullMigration in a child process (its PID is `.pid`)."""
    return subprocess.Popen([sys.executable, "-m", "tests.integration.full_support",
                             str(task_path), str(source_path)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def checksum(endpoints: Endpoints, side: str, db: str, table: str) -> tuple[int, int]:
    """(COUNT(*), CHECKSUM TABLE) of a table."""
    server = endpoints.upstream if side == "up" else endpoints.downstream
    conn = pymysql.connect(host=server["host"], port=server["port"], user=server["user"],
                           password="", autocommit=True)
    with conn, conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM `{db}`.`{table}`")
        (count,) = cur.fetchone()
        cur.execute(f"CHECKSUM TABLE `{db}`.`{table}`")
        return int(count), int(cur.fetchone()[1])


def query(endpoints: Endpoints, side: str, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    """Rows of one query on the upstream or downstream."""
    server = endpoints.upstream if side == "up" else endpoints.downstream
    conn = pymysql.connect(host=server["host"], port=server["port"], user=server["user"],
                           password="", autocommit=True, charset="utf8mb4")
    with conn, conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def _main(task_path: str, source_path: str) -> None:
    migration = FullMigration(load_task(task_path), load_source(source_path))
    position = migration.run(threading.Event())
    print(json.dumps({"position": str(position), "loaded": migration.stats.chunks_loaded,
                      "skipped": migration.stats.chunks_skipped}), flush=True)


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2])
