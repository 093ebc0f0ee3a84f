"""Full migration throughput: MB/s and rows/s of dump + load, against `mariadb-dump |
mariadb` of the same tables.

Usage: `.venv/bin/python bench/full.py [--rows N] [--tables N] [--threads N] [--pool-size N]`

1. Starts the local stack if it is not up (and stops what it started at the end).
2. Writes sysbench-like tables into a fresh upstream database `bench_<random>`: `--tables`
   tables `sbtestN (id INT PK, k INT, c CHAR(120), pad CHAR(60), KEY k_1 (k))` holding
   `--rows` rows in all (default 5.6M: over 1 GB as SQL text), c and pad filled from MD5s
   of RAND(). `INSERT ... SELECT` from MariaDB's sequence engine, one connection a table,
   binlog off for these sessions (`sql_log_bin = 0`: nothing here needs the binlog, and the
   stack's relays of other users need not read a gigabyte). Not measured.
3. BASELINE: `mariadb-dump --single-transaction --master-data=2 <db> <tables> | mariadb
   --database=<db>_native`: one consistent snapshot with its binlog position (as ours),
   single-threaded, extended INSERTs of about 1 MB (`net_buffer_length`), CREATE TABLE
   included. Timed from launch to the client's exit. Its copy is then checksummed and
   dropped. Before each timed run both servers are left to flush their dirty pages (the
   data just written, the copy just dropped), so both runs start from quiet servers.
4. OURS: `consumers.full.FullMigration` in this process: a task routing `<db>` to
   `<db>_kdm`, mydumpers `threads` --threads (consistency auto: a brief FLUSH TABLES WITH
   READ LOCK), loaders `pool-size` --pool-size, chunks and statements at their defaults.
   Timed from `run()` to its return: planning, snapshot, CREATE TABLE, dump and load. Its
   `dump`/`load` status blocks are logged every few seconds while it runs.
5. Checks both copies against the upstream (row count and CHECKSUM TABLE per table); a
   mismatch is printed, and the script exits with status 1 after its last line.
6. Prints MB/s and rows/s of both (MB = the rows' SQL text as our dump counts it, the same
   figure for both), then `ratio=<ours/baseline>` as the last line.

Everything created is removed at the end: the databases on both servers and the meta-schema.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from common import (
    connect,
    drop_databases,
    local_stack,
    log,
    print_table,
    rate,
    table_checksum,
    unique_suffix,
)

from consumers.full import FullMigration
from kdm.config.source import parse_source
from kdm.config.task import parse_task
from kdm.stack.stack import Endpoints

DEFAULT_ROWS = 5_600_000
DEFAULT_TABLES = 4
DEFAULT_THREADS = 4
DEFAULT_POOL_SIZE = 4
GENERATE_BATCH = 200_000
STATUS_SECONDS = 5.0
SETTLE_SECONDS = 30.0
SETTLED_DIRTY = 0.05  # of the buffer pool's pages (other users may keep writing)
TABLE_DDL = """CREATE TABLE {name} (
  id INT NOT NULL,
  k INT NOT NULL DEFAULT 0,
  c CHAR(120) NOT NULL DEFAULT '',
  pad CHAR(60) NOT NULL DEFAULT '',
  PRIMARY KEY (id),
  KEY k_1 (k)
) ENGINE=InnoDB"""
C_EXPR = "LEFT(CONCAT_WS('-', MD5(RAND()), MD5(RAND()), MD5(RAND()), MD5(RAND())), 119)"
PAD_EXPR = "LEFT(CONCAT_WS('-', MD5(RAND()), MD5(RAND())), 59)"


@dataclass(frozen=True)
class Names:
    """Everything one run creates."""

    database: str
    tables: tuple[str, ...]

    @property
    def native(self) -> str:
        """The baseline's downstream schema."""
        return f"{self.database}_native"

    @property
    def ours(self) -> str:
        """Our downstream schema."""
        return f"{self.database}_kdm"

    @property
    def meta_schema(self) -> str:
        """Our load checkpoints."""
        return f"kdm_meta_{self.database}"

    @property
    def task(self) -> str:
        """Our task (and source) name."""
        return f"bench-{self.database.removeprefix('bench_')}"


# -- data ---------------------------------------------------------------------------------


def generate(endpoints: Endpoints, names: Names, rows: int) -> None:
    """The sbtest tables, `rows` in all, written in parallel (one connection a table)."""
    setup = connect(endpoints.upstream)
    with setup.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{names.database}`")
    setup.close()
    per_table = [rows // len(names.tables) + (1 if i < rows % len(names.tables) else 0)
                 for i in range(len(names.tables))]
    log(f"writing {rows:,} rows into {len(names.tables)} tables of {names.database} "
        "(not timed)")
    started = time.monotonic()
    with ThreadPoolExecutor(len(names.tables)) as pool:
        for future in [pool.submit(_fill, endpoints, names.database, table, count)
                       for table, count in zip(names.tables, per_table, strict=True)]:
            future.result()
    log(f"written in {time.monotonic() - started:.1f}s")


def _fill(endpoints: Endpoints, database: str, table: str, count: int) -> None:
    conn = connect(endpoints.upstream, database)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute(TABLE_DDL.format(name=table))
            for first in range(1, count + 1, GENERATE_BATCH):
                last = min(count, first + GENERATE_BATCH - 1)
                cur.execute(f"INSERT INTO {table} (id, k, c, pad) SELECT seq, "
                            f"FLOOR(1 + RAND() * {count}), {C_EXPR}, {PAD_EXPR} "
                            f"FROM seq_{first}_to_{last}")
            cur.execute(f"ANALYZE TABLE {table}")
            cur.fetchall()
    finally:
        conn.close()


def settle(endpoints: Endpoints, timeout: float = SETTLE_SECONDS) -> None:
    """Wait until both servers have flushed their dirty pages (the data just written, the
    copy just dropped), so each timed run starts from quiet servers."""
    started = time.monotonic()
    for name, server in (("upstream", endpoints.upstream), ("downstream", endpoints.downstream)):
        conn = connect(server)
        try:
            with conn.cursor() as cur:
                while time.monotonic() - started < timeout:
                    cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN "
                                "('Innodb_buffer_pool_pages_dirty', "
                                "'Innodb_buffer_pool_pages_total')")
                    status = {str(k): int(v) for k, v in cur.fetchall()}
                    if status["Innodb_buffer_pool_pages_dirty"] <= \
                            status["Innodb_buffer_pool_pages_total"] * SETTLED_DIRTY:
                        break
                    time.sleep(1.0)
                else:
                    log(f"the {name} still flushes after {timeout:.0f}s: timing anyway")
        finally:
            conn.close()
    log(f"servers settled in {time.monotonic() - started:.1f}s")


# -- BASELINE -----------------------------------------------------------------------------


def run_baseline(endpoints: Endpoints, names: Names, timeout: float) -> float:
    """`mariadb-dump | mariadb` into the native schema; its seconds."""
    up, down = endpoints.upstream, endpoints.downstream
    setup = connect(down)
    with setup.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{names.native}`")
    setup.close()
    dump = ["mariadb-dump", f"--host={up['host']}", f"--port={up['port']}",
            f"--user={up['user']}", "--single-transaction", "--master-data=2",
            "--max-allowed-packet=64M", names.database, *names.tables]
    apply = ["mariadb", f"--host={down['host']}", f"--port={down['port']}",
             f"--user={down['user']}", f"--database={names.native}",
             "--max-allowed-packet=64M"]
    log(f"BASELINE: {' '.join(dump)} | mariadb --database={names.native}")
    with tempfile.TemporaryFile() as dump_err, tempfile.TemporaryFile() as apply_err:
        started = time.monotonic()
        producer = subprocess.Popen(dump, stdout=subprocess.PIPE, stderr=dump_err,
                                    env={**os.environ, "MYSQL_PWD": up.get("password") or ""})
        consumer = subprocess.Popen(apply, stdin=producer.stdout, stdout=subprocess.DEVNULL,
                                    stderr=apply_err,
                                    env={**os.environ, "MYSQL_PWD": down.get("password") or ""})
        assert producer.stdout is not None
        producer.stdout.close()  # the client owns the pipe now
        try:
            consumer.wait(timeout)
            producer.wait(60)
        except subprocess.TimeoutExpired:
            producer.kill()
            consumer.kill()
            producer.wait()
            consumer.wait()
            raise RuntimeError(f"the baseline took over {timeout:.0f}s") from None
        took = time.monotonic() - started
        dump_err.seek(0)
        apply_err.seek(0)
        errors = (dump_err.read() + apply_err.read()).decode(errors="replace").strip()
    if producer.returncode or consumer.returncode:
        raise RuntimeError(f"the baseline failed (exit {producer.returncode}/"
                           f"{consumer.returncode}): {errors[-2000:]}")
    log(f"BASELINE: {took:.1f}s")
    return took


# -- OURS ---------------------------------------------------------------------------------


def task_yaml(names: Names, endpoints: Endpoints, threads: int, pool_size: int) -> str:
    """A full-mode task routing the bench database to its `_kdm` schema."""
    down = endpoints.downstream
    return f"""name: {names.task}
task-mode: full
meta-schema: {names.meta_schema}
target-database:
  host: {down['host']}
  port: {down['port']}
  user: {down['user']}
  password: "{down.get('password') or ''}"
mysql-instances:
  - source-id: {names.task}
    block-allow-list: ba
    route-rules: [r]
    mydumper-config-name: dump
    loader-config-name: load
block-allow-list:
  ba:
    do-dbs: [{names.database}]
routes:
  r:
    schema-pattern: {names.database}
    target-schema: {names.ours}
mydumpers:
  dump:
    threads: {threads}
loaders:
  load:
    pool-size: {pool_size}
"""


def source_yaml(names: Names, endpoints: Endpoints) -> str:
    """The bench source."""
    up = endpoints.upstream
    return (f"source-id: {names.task}\nenable-gtid: true\nfrom:\n  host: {up['host']}\n"
            f"  port: {up['port']}\n  user: {up['user']}\n"
            f"  password: \"{up.get('password') or ''}\"\n")


@dataclass
class Ours:
    """Our run's outcome."""

    seconds: float
    rows: int
    size: int
    chunks: int
    status: dict[str, Any]
    position: str


def run_ours(endpoints: Endpoints, names: Names, threads: int, pool_size: int) -> Ours:
    """FullMigration into the `_kdm` schema, its status logged as it goes."""
    migration = FullMigration(parse_task(task_yaml(names, endpoints, threads, pool_size)),
                              parse_source(source_yaml(names, endpoints)))
    done = threading.Event()

    def report() -> None:
        while not done.wait(STATUS_SECONDS):
            status = migration.status()
            dump, load = status["dump"], status["load"]
            log(f"OURS: unit {status['unit']}: dump {dump['progress']} "
                f"({int(dump['finishedRows']):,} of ~{int(dump['estimateTotalRows']):,} rows,"
                f" {int(dump['bps']) / 1e6:.1f} MB/s), load {load['progress']} "
                f"({int(load['bps']) / 1e6:.1f} MB/s)")
    log(f"OURS: FullMigration, threads {threads}, pool-size {pool_size}, into {names.ours}")
    reporter = threading.Thread(target=report, daemon=True)
    started = time.monotonic()
    reporter.start()
    try:
        position = migration.run(threading.Event())
    finally:
        done.set()
    took = time.monotonic() - started
    reporter.join()
    stats = migration.stats
    log(f"OURS: {took:.1f}s, {stats.chunks_loaded} chunks, snapshot at {position} "
        f"({migration.consistency})")
    return Ours(took, stats.loaded_rows, stats.loaded_bytes, stats.chunks_loaded,
                migration.status(), str(position))


# -- checks and report --------------------------------------------------------------------


def checksums(endpoints: Endpoints, names: Names, side: str) -> dict[str, tuple[int, int]]:
    """(rows, CHECKSUM TABLE) of each table of one copy."""
    server, database = {"upstream": (endpoints.upstream, names.database),
                        "baseline": (endpoints.downstream, names.native),
                        "ours": (endpoints.downstream, names.ours)}[side]
    return {table: table_checksum(server, database, table) for table in names.tables}


def report(names: Names, base_seconds: float, ours: Ours, checks: dict[str, dict[str, Any]],
           threads: int, pool_size: int, wall: float) -> tuple[float, bool]:
    """Print the figures; (ratio ours/baseline in MB/s, whether every copy matches)."""
    megabytes = ours.size / 1e6
    base_mbps, ours_mbps = rate(megabytes, base_seconds), rate(megabytes, ours.seconds)
    print()
    print(f"full migration benchmark: {len(names.tables)} sysbench-like tables, "
          f"{ours.rows:,} rows, {megabytes:,.1f} MB of rows as SQL text")
    print("baseline: mariadb-dump --single-transaction --master-data=2 | mariadb "
          "(one thread, ~1 MB extended INSERTs)")
    print(f"ours: FullMigration, mydumpers threads {threads}, loaders pool-size {pool_size}, "
          f"{ours.chunks} chunks, REPLACE statements of ~1 MB, snapshot at {ours.position}")
    print()
    print_table(["run", "seconds", "MB/s", "rows/s"], [
        ["baseline", base_seconds, base_mbps, rate(ours.rows, base_seconds)],
        ["ours", ours.seconds, ours_mbps, rate(ours.rows, ours.seconds)]])
    print()
    upstream = checks["upstream"]
    good = True
    rows: list[list[object]] = []
    for side in ("baseline", "ours"):
        for table in names.tables:
            count, checksum = checks[side][table]
            same = (count, checksum) == upstream[table]
            good = good and same
            rows.append([side, table, count, checksum, upstream[table][1],
                         "yes" if same else "NO"])
    print_table(["copy", "table", "rows", "CHECKSUM TABLE", "upstream's", "equal"], rows)
    if not good:
        print("WARNING: a downstream copy differs from the upstream: the figures above are "
              "of a wrong result")
    print(f"\nours, final status: dump {ours.status['dump']}")
    print(f"ours, final status: load {ours.status['load']}")
    print(f"\nwall time {wall:.1f}s")
    return rate(ours_mbps, base_mbps), good


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS,
                        help=f"rows in all tables (default {DEFAULT_ROWS:,}: over 1 GB)")
    parser.add_argument("--tables", type=int, default=DEFAULT_TABLES,
                        help=f"sbtest tables (default {DEFAULT_TABLES})")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help=f"our mydumpers threads (default {DEFAULT_THREADS})")
    parser.add_argument("--pool-size", type=int, default=DEFAULT_POOL_SIZE,
                        help=f"our loaders pool-size (default {DEFAULT_POOL_SIZE})")
    args = parser.parse_args()
    wall_started = time.monotonic()
    names = Names(f"bench_{unique_suffix()}",
                  tuple(f"sbtest{n}" for n in range(1, args.tables + 1)))
    timeout = max(900.0, args.rows / 2_000)
    with local_stack() as endpoints:
        try:
            generate(endpoints, names, args.rows)
            checks = {"upstream": checksums(endpoints, names, "upstream")}
            settle(endpoints)
            base_seconds = run_baseline(endpoints, names, timeout)
            checks["baseline"] = checksums(endpoints, names, "baseline")
            drop_databases(endpoints.downstream, [names.native])
            settle(endpoints)
            ours = run_ours(endpoints, names, args.threads, args.pool_size)
            checks["ours"] = checksums(endpoints, names, "ours")
        finally:
            drop_databases(endpoints.upstream, [names.database])
            drop_databases(endpoints.downstream, [names.native, names.ours,
                                                  names.meta_schema])
    ratio, good = report(names, base_seconds, ours, checks, args.threads, args.pool_size,
                         time.monotonic() - wall_started)
    print(f"ratio={ratio:.2f}")
    if not good:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
