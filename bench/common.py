"""Helpers the benchmarks share: the local stack, upstream connections, binlog points,
throughput tables and profiles.

Benchmarks run as scripts (`python bench/<name>.py`), so this module is imported as
`common` from the script's own directory.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import pstats
import secrets
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pymysql
from pymysql.constants import CLIENT

from kdm.position import GTIDSet
from kdm.stack.kafka import KafkaBroker
from kdm.stack.mariadb import MariaDB
from kdm.stack.stack import Endpoints, LocalStack, default_home


def log(message: str) -> None:
    """Progress on stderr, so stdout holds only the results."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def unique_suffix(length: int = 8) -> str:
    """Random lower-case hex, for names no other run uses."""
    return secrets.token_hex(length // 2 + 1)[:length]


@contextlib.contextmanager
def local_stack() -> Iterator[Endpoints]:
    """The endpoints of the local stack, starting the servers that are down; on exit, stop
    exactly the servers started here (a stack that was already up is left alone)."""
    stack = LocalStack(default_home())
    status = stack.status()
    down = [name for name, pid in status.items() if pid is None]
    if down:
        log(f"starting local stack servers: {', '.join(down)} (home {stack.home})")
        endpoints = stack.up()
    else:
        endpoints = stack.endpoints()
    try:
        yield endpoints
    finally:
        if down and len(down) == len(status):
            log("stopping the local stack, started by this benchmark")
            stack.down()
        elif down:
            servers: dict[str, KafkaBroker | MariaDB] = {
                "kafka": stack.kafka, "upstream": stack.upstream, "downstream": stack.downstream}
            for name in down:
                log(f"stopping {name}, started by this benchmark")
                servers[name].stop()


def connect(endpoint: dict[str, Any], database: str | None = None,
            multi_statements: bool = False) -> Any:
    """An autocommit pymysql connection; with `multi_statements`, one `execute` may carry
    many `;`-separated statements (see `run_script`)."""
    return pymysql.connect(host=endpoint["host"], port=int(endpoint["port"]),
                           user=endpoint["user"], password=endpoint.get("password") or "",
                           database=database, autocommit=True, charset="utf8mb4",
                           client_flag=CLIENT.MULTI_STATEMENTS if multi_statements else 0,
                           max_allowed_packet=64 * 1024 * 1024)


def run_script(cursor: Any, sql: str) -> None:
    """Execute a multi-statement text and drain every result it returns."""
    cursor.execute(sql)
    while cursor.nextset():
        pass


@dataclass(frozen=True)
class BinlogPoint:
    """Where the upstream's binlog stands: file, position and executed GTID set."""

    file: str
    pos: int
    gtid: str

    def gtid_set(self) -> GTIDSet:
        """The parsed GTID set."""
        return GTIDSet.parse(self.gtid)

    def __str__(self) -> str:
        return f"{self.file}:{self.pos}@{self.gtid}"


def binlog_point(cursor: Any, mariadb: bool = True) -> BinlogPoint:
    """`SHOW MASTER STATUS` and the executed GTID set, now."""
    cursor.execute("SHOW MASTER STATUS")
    row = cursor.fetchone()
    if not row:
        raise RuntimeError("SHOW MASTER STATUS is empty: the upstream has no binlog")
    cursor.execute("SELECT @@GLOBAL.gtid_binlog_pos" if mariadb
                   else "SELECT @@GLOBAL.gtid_executed")
    (gtid,) = cursor.fetchone()
    return BinlogPoint(str(row[0]), int(row[1]), "".join(str(gtid or "").split()))


def rate(count: float, seconds: float) -> float:
    """count/seconds, 0 when no time passed."""
    return count / seconds if seconds > 0 else 0.0


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain text table on stdout: columns holding numbers right-aligned, others left."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    numeric = [any(isinstance(row[i], int | float) for row in rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    print(line(list(headers)))
    print(line(["-" * w for w in widths]))
    for row in cells:
        print(line(row))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_profile(profile: cProfile.Profile | Sequence[cProfile.Profile], top: int = 25,
                  title: str = "") -> None:
    """The profile's `top` functions by total (own) time, then by cumulative time; several
    profiles (one a thread) are summed."""
    profiles = [profile] if isinstance(profile, cProfile.Profile) else list(profile)
    if not profiles:
        print(f"\n== profile{' of ' + title if title else ''}: nothing was recorded ==")
        return
    for key, label in (("tottime", "total (own) time"), ("cumulative", "cumulative time")):
        out = io.StringIO()
        stats = pstats.Stats(*profiles, stream=out)
        stats.sort_stats(key).print_stats(top)
        text = out.getvalue()
        start = text.find("   ncalls")
        print(f"\n== profile{' of ' + title if title else ''}: top {top} by {label} ==")
        print(_shorten_paths(text[start:] if start >= 0 else text).rstrip())


def _shorten_paths(text: str) -> str:
    """Paths relative to site-packages or the repository, so lines stay readable."""
    for marker in ("/site-packages/", "/work/main/", "/lib/python3"):
        parts = []
        for line in text.splitlines():
            at = line.find(marker)
            if at >= 0:
                start = line.rfind(" ", 0, at) + 1
                cut = at + len(marker)
                if marker == "/lib/python3":
                    cut = line.find("/", cut) + 1
                line = line[:start] + line[cut:]
            parts.append(line)
        text = "\n".join(parts)
    return text


def drop_databases(endpoint: dict[str, Any], names: Sequence[str]) -> None:
    """Drop databases on one server (best effort: cleanup must not hide a run's outcome)."""
    try:
        conn = connect(endpoint)
    except pymysql.MySQLError as exc:
        log(f"could not connect to {endpoint['host']}:{endpoint['port']} to drop "
            f"{', '.join(names)}: {exc}")
        return
    try:
        with conn.cursor() as cur:
            for name in names:
                try:
                    cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
                except pymysql.MySQLError as exc:
                    log(f"could not drop database {name}: {exc}")
    finally:
        conn.close()


def table_checksum(endpoint: dict[str, Any], database: str, table: str) -> tuple[int, int]:
    """(row count, `CHECKSUM TABLE`) of a table; equal on two MariaDB servers of one version
    when the tables have the same definition and rows."""
    conn = connect(endpoint)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM `{database}`.`{table}`")
            (count,) = cur.fetchone()
            cur.execute(f"CHECKSUM TABLE `{database}`.`{table}`")
            row = cur.fetchone()
            return int(count), int(row[1] if row and row[1] is not None else -1)
    finally:
        conn.close()
