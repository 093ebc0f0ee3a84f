"""Full migration (dump + load) against the real upstream and downstream: every column type
arrives exactly (CHECKSUM TABLE), in each consistency mode; a load killed with SIGKILL
resumes without loading a finished chunk again and without duplicating a row; shards merge
into one routed table; a pre-created downstream table with an extra column is used as is;
`--remove-meta`'s removal starts over."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from consumers.full import FullMigration
from kdm.meta import remove_checkpoints
from kdm.stack.stack import Endpoints
from tests.integration.full_support import (
    checksum,
    full_task_text,
    query,
    run_in_child,
    task_of,
)
from tests.integration.relay_support import source_config, source_text
from tests.integration.sync_support import execute, rows
from tests.integration.test_relay_types import COLUMNS, NAMES, ROWS
from tests.integration.test_sync_types import TRICKY

pytestmark = pytest.mark.integration

KILL_DEADLINE_SECONDS = 120.0
EMOJI_STAND_IN = "€"
DEC65 = "9" * 35 + "." + "9" * 30


@pytest.fixture
def meta_schema(endpoints: Endpoints, unique: str) -> Iterator[str]:
    """The test task's meta-schema, dropped at the end."""
    name = f"kdm_meta_full_{unique}"
    yield name
    execute(endpoints, "mysql", f"DROP DATABASE IF EXISTS `{name}`", side="down")


def _routed(upstream_db: str, downstream_db: str) -> tuple[str, str]:
    body = (f"routes:\n  r:\n    schema-pattern: {upstream_db}\n"
            f"    target-schema: {downstream_db}\n"
            f"block-allow-list:\n  ba:\n    do-dbs: [{upstream_db}]\n")
    return body, "route-rules: [r]\nblock-allow-list: ba"


def _fill_types(endpoints: Endpoints, db: str) -> None:
    """The relay-types table (every column type), tricky text, a table without any key, a
    composite string key and a chunked integer key.

    MariaDB keeps table definitions in utf8mb3: SHOW CREATE TABLE prints a 4-byte character
    in an ENUM or SET member as '?', so no dump can recreate such a definition (nor can
    mariadb-dump); the ENUM here has a 3-byte member where the relay test has an emoji."""
    columns = [replace(c, ddl=c.ddl.replace("😀", EMOJI_STAND_IN)) for c in COLUMNS]
    values = ", ".join("(" + ", ".join(
        (row.get(name, "NULL" if name != "nn" else "DEFAULT") if name != "en"
         else row.get(name, "NULL").replace("😀", EMOJI_STAND_IN)) for name in NAMES) + ")"
        for row in ROWS)
    execute(
        endpoints, db, "SET SESSION sql_mode = ''", "SET SESSION time_zone = '+00:00'",
        f"CREATE TABLE t ({', '.join(f'`{c.name}` {c.ddl}' for c in columns)}) "
        "DEFAULT CHARSET=utf8mb4",
        f"INSERT INTO t VALUES {values}",
        "CREATE TABLE s (id INT PRIMARY KEY, v VARCHAR(50) CHARACTER SET utf8mb4, "
        "b VARBINARY(50))",
        "INSERT INTO s VALUES " + ", ".join(f"({i}, {text}, CAST({text} AS BINARY))"
                                            for i, text in enumerate(TRICKY)),
        "CREATE TABLE nokey (a INT, b VARCHAR(10) CHARACTER SET latin1, c DOUBLE)",
        "INSERT INTO nokey SELECT seq % 7, 'dup', seq / 3 FROM seq_1_to_700",
        "CREATE TABLE comp (a VARCHAR(20), b INT, v TEXT, PRIMARY KEY (a, b))",
        "INSERT INTO comp SELECT CONCAT('k', seq % 37), seq, REPEAT('é', seq % 50) "
        "FROM seq_1_to_3000",
        "CREATE TABLE big (id BIGINT UNSIGNED PRIMARY KEY, k INT, c CHAR(60), "
        "g INT AS (k + 1) VIRTUAL)",
        "INSERT INTO big (id, k, c) SELECT seq * 3, seq % 1000, MD5(seq) FROM seq_1_to_5000",
        # a narrow row: each value's text at the edge of what its type can print
        "CREATE TABLE n (id INT PRIMARY KEY, d DOUBLE, f FLOAT, m DECIMAL(65,30), "
        "b BIT(64), u BIGINT UNSIGNED)",
        "INSERT INTO n VALUES (-2147483648, -1.7976931348623157e308, -3.40282e38, "
        f"-{DEC65}, 18446744073709551615, 18446744073709551615), "
        "(2, -2.2250738585072014e-308, 1.17549e-38, 0, 0, 0), (3, NULL, 1e-45, NULL, NULL, 1)",
        "ANALYZE TABLE t, s, nokey, comp, big, n")


@pytest.mark.parametrize("consistency", ["auto", "lock", "snapshot", "none"])
def test_every_type_arrives_exactly(endpoints: Endpoints, upstream_db: str,
                                    downstream_db: str, unique: str, meta_schema: str,
                                    consistency: str) -> None:
    _fill_types(endpoints, upstream_db)
    body, instance = _routed(upstream_db, downstream_db)
    task = task_of(full_task_text(f"full-{unique}", endpoints, f"full-{unique}", body,
                                  instance, rows=400, consistency=consistency))
    migration = FullMigration(task, source_config(endpoints, f"full-{unique}"))
    position = migration.run(threading.Event())
    assert position is not None and position.file and position.gtid
    assert migration.consistency == ("flush" if consistency == "auto" else consistency)
    if consistency != "none":
        assert migration.safe_until is None
    # CHECKSUM TABLE reads a VIRTUAL column's stale buffer, so `big` compares as text only
    for table in ("t", "s", "nokey", "comp", "n"):
        assert checksum(endpoints, "up", upstream_db, table) == \
            checksum(endpoints, "down", downstream_db, table), table
    for table in ("t", "s", "nokey", "comp", "big", "n"):
        assert rows(endpoints, "up", upstream_db, table, "1, 2, 3") == \
            rows(endpoints, "down", downstream_db, table, "1, 2, 3"), table
    status = migration.status()
    assert status["unit"] == "Load"
    assert status["dump"]["totalTables"] == status["dump"]["completedTables"] == "6"
    assert status["dump"]["finishedRows"] == str(len(ROWS) + len(TRICKY) + 700 + 3000 + 5000
                                                 + 3)
    assert status["dump"]["progress"] == status["load"]["progress"] == "100.00 %"
    assert status["load"]["finishedBytes"] == status["load"]["totalBytes"] != "0"
    assert migration.stats.chunks_loaded > 5  # comp and big were cut into chunks


def _fill_big(endpoints: Endpoints, db: str, count: int) -> None:
    execute(endpoints, db,
            "CREATE TABLE big (id INT PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL, "
            "pad CHAR(60) NOT NULL)",
            f"INSERT INTO big SELECT seq, seq % 1000, REPEAT(MD5(seq), 3), MD5(-seq) "
            f"FROM seq_1_to_{count}",
            "CREATE TABLE nokey (a INT, b VARCHAR(10))",
            "INSERT INTO nokey SELECT seq % 3, 'same' FROM seq_1_to_2000",
            "ANALYZE TABLE big, nokey")


def _done_chunks(endpoints: Endpoints, meta: str, task: str) -> dict[str, str]:
    try:
        found = query(endpoints, "down", f"SELECT up_table, chunk, updated_at FROM `{meta}`."
                      "kdm_load_checkpoint WHERE task = %s AND chunk >= 0 AND done = 1", (task,))
    except Exception:  # the table does not exist yet
        return {}
    return {f"{table}#{chunk}": str(at) for table, chunk, at in found}


def _files(tmp_path: Path, endpoints: Endpoints, task_text: str, source: str
           ) -> tuple[Path, Path]:
    task_path, source_path = tmp_path / "task.yaml", tmp_path / "source.yaml"
    task_path.write_text(task_text)
    source_path.write_text(source_text(endpoints, source))
    return task_path, source_path


def _same_after_rerun(endpoints: Endpoints, task_text: str, source: str, upstream_db: str,
                      downstream_db: str, done_before: dict[str, str], meta: str,
                      total: int) -> None:
    """A rerun loads exactly the chunks not done, leaves the others alone, and the
    downstream then equals the upstream (the task is named like its source)."""
    migration = FullMigration(task_of(task_text), source_config(endpoints, source))
    assert migration.run(threading.Event()) is not None
    assert migration.stats.chunks_skipped == len(done_before)
    assert migration.stats.chunks_loaded == total - len(done_before)
    after = _done_chunks(endpoints, meta, source)
    assert len(after) == total
    assert {k: after[k] for k in done_before} == done_before  # not written again
    for table in ("big", "nokey"):
        assert checksum(endpoints, "up", upstream_db, table) == \
            checksum(endpoints, "down", downstream_db, table), table


def _total_chunks(endpoints: Endpoints, meta: str, task: str) -> int:
    return int(query(endpoints, "down", f"SELECT COUNT(*) FROM `{meta}`.kdm_load_checkpoint "
                     "WHERE task = %s AND chunk >= 0", (task,))[0][0])


def test_killed_load_resumes_without_redoing_chunks(
        endpoints: Endpoints, upstream_db: str, downstream_db: str, unique: str,
        meta_schema: str, tmp_path: Path) -> None:
    _fill_big(endpoints, upstream_db, 300_000)
    body, instance = _routed(upstream_db, downstream_db)
    source, name = f"full-{unique}", f"full-{unique}"
    text = full_task_text(name, endpoints, source, body, instance, threads=1, pool_size=1,
                          rows=2000)
    child = run_in_child(*_files(tmp_path, endpoints, text, source))
    deadline = time.monotonic() + KILL_DEADLINE_SECONDS
    try:
        while len(_done_chunks(endpoints, meta_schema, name)) < 3:
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the child loaded nothing in time"
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.communicate()
    assert child.returncode == -signal.SIGKILL
    done_before = _done_chunks(endpoints, meta_schema, name)
    total = _total_chunks(endpoints, meta_schema, name)
    assert 3 <= len(done_before) < total
    _same_after_rerun(endpoints, text, source, upstream_db, downstream_db, done_before,
                      meta_schema, total)


def test_chunk_in_flight_rolls_back_with_its_marker(
        endpoints: Endpoints, upstream_db: str, downstream_db: str, unique: str,
        meta_schema: str, tmp_path: Path) -> None:
    _fill_big(endpoints, upstream_db, 20_000)
    body, instance = _routed(upstream_db, downstream_db)
    source, name = f"full-{unique}", f"full-{unique}"
    text = full_task_text(name, endpoints, source, body, instance, threads=2, pool_size=1,
                          rows=1000)
    # dies holding the 4th chunk's rows and marker, uncommitted
    child = run_in_child(*_files(tmp_path, endpoints, text, source),
                         env={**os.environ, "KDM_FAULTS": "load.before_commit:4"})
    child.communicate(timeout=KILL_DEADLINE_SECONDS)
    assert child.returncode == -signal.SIGKILL
    done_before = _done_chunks(endpoints, meta_schema, name)
    assert len(done_before) == 3
    loaded = query(endpoints, "down", f"SELECT SUM(row_count) FROM `{meta_schema}`."
                   "kdm_load_checkpoint WHERE task = %s AND chunk >= 0 AND done = 1", (name,))
    downstream_rows = sum(checksum(endpoints, "down", downstream_db, t)[0]
                          for t in ("big", "nokey"))
    assert downstream_rows == int(loaded[0][0])  # nothing of the 4th chunk stayed
    _same_after_rerun(endpoints, text, source, upstream_db, downstream_db, done_before,
                      meta_schema, _total_chunks(endpoints, meta_schema, name))


def test_shards_merge_into_one_routed_table(endpoints: Endpoints, upstream_db: str,
                                            downstream_db: str, unique: str,
                                            meta_schema: str) -> None:
    execute(endpoints, upstream_db,
            *(f"CREATE TABLE sh_{n} (id INT PRIMARY KEY, v VARCHAR(20))" for n in (1, 2)),
            "INSERT INTO sh_1 SELECT seq * 2, CONCAT('one-', seq) FROM seq_1_to_1500",
            "INSERT INTO sh_2 SELECT seq * 2 + 1, CONCAT('two-', seq) FROM seq_1_to_1500",
            "ANALYZE TABLE sh_1, sh_2")
    body = (f"routes:\n  r:\n    schema-pattern: {upstream_db}\n    table-pattern: sh_*\n"
            f"    target-schema: {downstream_db}\n    target-table: merged\n"
            f"block-allow-list:\n  ba:\n    do-dbs: [{upstream_db}]\n")
    source = f"full-{unique}"
    text = full_task_text(f"full-{unique}", endpoints, source, body,
                          "route-rules: [r]\nblock-allow-list: ba", rows=200)
    migration = FullMigration(task_of(text), source_config(endpoints, source))
    position = migration.run(threading.Event())
    assert position is not None
    merged = rows(endpoints, "down", downstream_db, "merged", order="id")
    union = sorted(rows(endpoints, "up", upstream_db, "sh_1") +
                   rows(endpoints, "up", upstream_db, "sh_2"), key=lambda r: int(r[0]))
    assert merged == union and len(merged) == 3000
    # finished: a rerun returns the same position and loads nothing
    again = FullMigration(task_of(text), source_config(endpoints, source))
    assert again.run(threading.Event()) == position and again.stats.chunks_loaded == 0
    assert again.status()["load"]["progress"] == "100.00 %"
    # start-task --remove-meta: the rows go, the next run loads everything again (REPLACE)
    target = task_of(text).target_database
    assert remove_checkpoints(target, meta_schema, f"full-{unique}", (source,)) > 0
    fresh = FullMigration(task_of(text), source_config(endpoints, source))
    assert fresh.run(threading.Event()) is not None
    assert fresh.stats.chunks_loaded == migration.stats.chunks_loaded
    assert rows(endpoints, "down", downstream_db, "merged", order="id") == union


def test_precreated_table_with_an_extra_column(endpoints: Endpoints, upstream_db: str,
                                               downstream_db: str, unique: str,
                                               meta_schema: str) -> None:
    execute(endpoints, upstream_db, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))",
            "INSERT INTO t VALUES (1, 'a'), (2, NULL), (3, 'c')")
    execute(endpoints, downstream_db, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), "
            "extra INT NOT NULL DEFAULT 7, at TIMESTAMP NULL)", side="down")
    body, instance = _routed(upstream_db, downstream_db)
    source = f"full-{unique}"
    text = full_task_text(f"full-{unique}", endpoints, source, body, instance)
    migration = FullMigration(task_of(text), source_config(endpoints, source))
    assert migration.run(threading.Event()) is not None
    assert rows(endpoints, "down", downstream_db, "t") == [
        ("1", "a", "7", None), ("2", None, "7", None), ("3", "c", "7", None)]


def test_stop_returns_none_and_the_next_run_finishes(endpoints: Endpoints, upstream_db: str,
                                                     downstream_db: str, unique: str,
                                                     meta_schema: str) -> None:
    _fill_big(endpoints, upstream_db, 20_000)
    body, instance = _routed(upstream_db, downstream_db)
    source = f"full-{unique}"
    text = full_task_text(f"full-{unique}", endpoints, source, body, instance, rows=500)
    stop = threading.Event()
    stop.set()
    stopped = FullMigration(task_of(text), source_config(endpoints, source))
    assert stopped.run(stop) is None
    assert stopped.position is None
    migration = FullMigration(task_of(text), source_config(endpoints, source))
    assert migration.run(threading.Event()) is not None
    assert json.dumps(migration.status())  # plain data
    for table in ("big", "nokey"):
        assert checksum(endpoints, "up", upstream_db, table) == \
            checksum(endpoints, "down", downstream_db, table)
