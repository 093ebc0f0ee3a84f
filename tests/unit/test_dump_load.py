"""Dump and load units without processes: chunk plans, the SQL they build, statement cutting,
consistency decisions, checkpoint skip logic and progress math, against in-memory fakes
shaped like pymysql connections."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pymysql
import pytest

from consumers import load as load_module
from consumers.dump import (
    CHUNK_BYTES_CAP,
    DEFAULT_STATEMENT_SIZE,
    Chunk,
    ChunkReader,
    ChunkSpec,
    Column,
    Sizing,
    TableInfo,
    TableJob,
    build_tables,
    chunk_specs,
    insert_prefix,
    integer_bounds,
    next_step,
    plan_table,
    range_sql,
    row_sql,
    value_sql,
)
from consumers.full import round_robin
from consumers.full_status import FullStats, percent
from consumers.load import ChunkLoader
from consumers.load_checkpoint import SUMMARY, LoadCheckpoint, parse_saved
from consumers.snapshot import Upstream, open_snapshot
from kdm.config.common import DBConfig
from kdm.config.task import MydumperConfig
from kdm.errors import KdmError
from kdm.log import Logger
from kdm.position import Position

Answer = Callable[[str, Any], Any]


class FakeCursor:
    """Answers each statement with its connection's `answer(sql, args)`: rows, or an int
    (affected rows); an exception is raised."""

    def __init__(self, conn: FakeConn) -> None:
        self.conn = conn
        self.rows: list[Any] = []

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, sql: str | bytes, args: Any = None) -> int:
        text = sql.decode() if isinstance(sql, bytes) else sql
        self.conn.log.append(text)
        result = self.conn.answer(text, args)
        if isinstance(result, BaseException):
            raise result
        if isinstance(result, int):
            self.rows = []
            return result
        self.rows = list(result)
        return len(self.rows)

    def fetchone(self) -> Any:
        return self.rows.pop(0) if self.rows else None

    def fetchall(self) -> list[Any]:
        rows, self.rows = self.rows, []
        return rows

    def fetchmany(self, size: int) -> list[Any]:
        rows, self.rows = self.rows[:size], self.rows[size:]
        return rows


class FakeConn:
    """A pymysql-shaped connection whose statements `answer` decides."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.log: list[str] = []
        self.commits = 0
        self.rollbacks = 0
        self.closed = False

    def cursor(self, cls: Any = None) -> FakeCursor:
        return FakeCursor(self)

    def commit(self) -> None:
        self.commits += 1

    def rollback(self) -> None:
        self.rollbacks += 1

    def close(self) -> None:
        self.closed = True


def info(key: tuple[str, ...] = ("id",), integer: bool = True, rows: int = 1000,
         avg: int = 100) -> TableInfo:
    return TableInfo("db", "t", (Column("id", "int"), Column("v", "varchar", "utf8mb4")),
                     key, integer, rows, avg)


# -- SQL ----------------------------------------------------------------------------------


def test_values_render_by_type_as_exact_literals() -> None:
    assert value_sql(Column("n", "bigint")) == "IFNULL(`n`,'NULL')"
    assert value_sql(Column("d", "decimal")) == "IFNULL(`d`,'NULL')"
    assert value_sql(Column("f", "float")) == \
        "IFNULL(CAST(`f`+0e0 AS CHAR(32)),'NULL')"  # every float32 digit
    assert value_sql(Column("d", "double")) == "IFNULL(CAST(`d` AS CHAR(32)),'NULL')"
    assert value_sql(Column("b", "bit")) == "IFNULL(`b`+0,'NULL')"
    assert value_sql(Column("g", "geometry")) == \
        "IF(`g` IS NULL,'NULL',CONCAT('X''',HEX(`g`),''''))"
    assert value_sql(Column("vb", "varchar", "binary")).startswith("IF(`vb` IS NULL")
    assert value_sql(Column("s", "varchar", "utf8mb4")) == "QUOTE(`s`) COLLATE utf8mb4_bin"
    assert value_sql(Column("l", "text", "latin1")) == \
        "QUOTE(CONVERT(`l` USING utf8mb4)) COLLATE utf8mb4_bin"
    assert value_sql(Column("ts", "timestamp")) == \
        "QUOTE(CONVERT(`ts` USING utf8mb4)) COLLATE utf8mb4_bin"
    assert row_sql([Column("a", "int"), Column("b", "int")]) == \
        "CONCAT('(',IFNULL(`a`,'NULL'),',',IFNULL(`b`,'NULL'),')')"
    job = TableJob.of(info(), ("down", "t"))
    assert job.concat == ("GROUP_CONCAT('(',IFNULL(`id`,'NULL'),',',QUOTE(`v`) COLLATE "
                          "utf8mb4_bin,')' SEPARATOR ',')")


def test_ranges_spell_out_row_comparisons() -> None:
    assert range_sql(("id",), ("5",), ("10",)) == "`id` >= 5 AND `id` < 10"
    assert range_sql(("id",), None, None) == "TRUE"
    assert range_sql(("a", "b"), ("'x'", "2"), None) == \
        "((`a` > 'x' OR (`a` = 'x' AND `b` >= 2)))"
    assert range_sql(("a", "b", "c"), None, ("1", "2", "3")) == \
        "((`a` < 1 OR (`a` = 1 AND (`b` < 2 OR (`b` = 2 AND `c` < 3)))))"


def test_insert_names_its_columns_and_replaces() -> None:
    assert insert_prefix(("down", "t`x"), [Column("id", "int"), Column("v", "text")]) == \
        b"REPLACE INTO `down`.`t``x` (`id`,`v`) VALUES "


# -- tables and plans ---------------------------------------------------------------------


def test_tables_keep_stored_columns_and_pick_a_not_null_key() -> None:
    stats = {("db", "a"): (10, 50), ("db", "b"): (5, 20), ("db", "c"): (1, 9)}
    columns = [
        ("db", "a", "id", "bigint", None, "", "NO"),
        ("db", "a", "v", "varchar", "utf8mb4", "", "YES"),
        ("db", "a", "g", "int", None, "VIRTUAL GENERATED", "YES"),
        ("db", "a", "t", "timestamp", None, "DEFAULT_GENERATED", "NO"),
        ("db", "b", "x", "varchar", "utf8mb4", "", "YES"),
        ("db", "b", "y", "int", None, "", "NO"),
        ("db", "c", "z", "int", None, "", "YES"),
    ]
    indexes = [("db", "a", "PRIMARY", "id"),
               ("db", "b", "u_null", "x"), ("db", "b", "u_ok", "y"), ("db", "b", "u_ok", "x2"),
               ("db", "c", "u", "z")]
    columns.append(("db", "b", "x2", "char", "utf8mb4", "", "NO"))
    a, b, c = build_tables(stats, columns, indexes)
    assert [col.name for col in a.columns] == ["id", "v", "t"]  # generated left out
    assert (a.key, a.integer_key, a.rows, a.avg_row_length) == (("id",), True, 10, 50)
    assert (b.key, b.integer_key) == (("y", "x2"), False)  # the nullable unique is skipped
    assert (c.key, c.integer_key) == ((), False)


def test_integer_bounds_split_evenly_and_never_repeat() -> None:
    assert integer_bounds(1, 100, 4) == [26, 51, 76]
    assert integer_bounds(1, 3, 10) == [2, 3]
    assert integer_bounds(5, 5, 3) == []
    assert integer_bounds(-10, 9, 2) == [0]


def test_chunks_are_open_at_both_ends_with_stable_ids() -> None:
    specs = chunk_specs(info(), [("10",), ("20",)])
    assert [(s.lower, s.upper) for s in specs] == [(None, ("10",)), (("10",), ("20",)),
                                                   (("20",), None)]
    assert [s.id for s in specs] == ["db.t#0", "db.t#1", "db.t#2"]
    assert specs[1].condition == "`id` >= 10 AND `id` < 20"
    assert ChunkSpec.from_saved("db", "t", 1, specs[1].bounds_json()) == specs[1]
    whole = chunk_specs(info(key=()), [])
    assert len(whole) == 1 and whole[0].condition == "TRUE"


def test_sizing_reads_mydumper_settings() -> None:
    assert Sizing.of(MydumperConfig()) == Sizing(DEFAULT_STATEMENT_SIZE, 0, CHUNK_BYTES_CAP)
    sized = Sizing.of(MydumperConfig(rows=5000, statement_size=200_000, chunk_filesize="2"))
    assert sized == Sizing(200_000, 5000, 2 << 20)
    assert sized.rows_per_chunk(100) == 5000
    assert Sizing(chunk_bytes=1000).rows_per_chunk(100) == 10
    assert Sizing(chunk_bytes=1000).rows_per_chunk(0) == 1000


def test_integer_plan_uses_min_max_and_estimated_rows() -> None:
    conn = FakeConn(lambda sql, args: [(1, 1000)] if "MIN(" in sql else [])
    specs = plan_table(conn, info(rows=1000), Sizing(chunk_rows=250))
    assert [s.lower for s in specs] == [None, ("251",), ("501",), ("751",)]
    assert plan_table(conn, info(rows=100), Sizing(chunk_rows=250)) == chunk_specs(info(), [])
    empty = FakeConn(lambda sql, args: [(None, None)])
    assert len(plan_table(empty, info(rows=1000), Sizing(chunk_rows=10))) == 1


def test_keyset_plan_walks_from_boundary_to_boundary() -> None:
    found = iter([[(b"'k1'", "3")], [(b"'k5'", "1")], []])
    conn = FakeConn(lambda sql, args: next(found))
    table = TableInfo("db", "t", (Column("a", "varchar", "utf8mb4"), Column("b", "int")),
                      ("a", "b"), False, 1000, 10)
    specs = plan_table(conn, table, Sizing(chunk_rows=300))
    assert [(s.lower, s.upper) for s in specs] == [
        (None, ("'k1'", "3")), (("'k1'", "3"), ("'k5'", "1")), (("'k5'", "1"), None)]
    assert "OFFSET 300" in conn.log[0] and "WHERE TRUE ORDER BY `a`, `b`" in conn.log[0]
    assert "(`a` > 'k1' OR (`a` = 'k1' AND `b` >= 3))" in conn.log[1]


# -- reading chunks -----------------------------------------------------------------------


class FakeTable:
    """Rows of an integer-keyed table, answering the reader's queries."""

    def __init__(self, ids: list[int], concat_limit: int = 1 << 20) -> None:
        self.ids = ids
        self.limit = concat_limit

    def literal(self, n: int) -> bytes:
        return f"({n},'v{n}')".encode()

    def answer(self, sql: str, args: Any) -> Any:
        if "group_concat_max_len" in sql:
            return [(self.limit,)]
        low, high = self._range(sql)
        inside = [n for n in self.ids if low <= n < high]
        if "MIN(" in sql:
            return [(min(inside), max(inside))] if inside else [(None, None)]
        if "GROUP_CONCAT" in sql:
            text = b",".join(self.literal(n) for n in inside)
            return [(text[:self.limit] if inside else None, len(inside))]
        return [(self.literal(n),) for n in inside]

    @staticmethod
    def _range(sql: str) -> tuple[float, float]:
        low = re.search(r"`id` >= (\d+)", sql)
        high = re.search(r"`id` < (\d+)", sql)
        return (int(low[1]) if low else float("-inf"), int(high[1]) if high else float("inf"))


def _reader(table: FakeTable, statement_size: int) -> tuple[ChunkReader, TableJob]:
    job = TableJob.of(info(avg=1000), ("down", "t"))
    reader = ChunkReader(FakeConn(table.answer), {("db", "t"): job},
                         Sizing(statement_size=statement_size))
    return reader, job


def _values(chunk: Chunk, prefix: bytes) -> list[bytes]:
    assert all(s.startswith(prefix) for s in chunk.statements)
    return [v for s in chunk.statements for v in s[len(prefix):].split(b"),(")]


def test_integer_chunks_read_in_steps_of_one_statement() -> None:
    table = FakeTable(list(range(1, 301)))
    reader, job = _reader(table, 200)
    chunk = reader.read(chunk_specs(job.info, [])[0])
    assert chunk.rows == 300 and len(_values(chunk, job.prefix)) == 300
    assert chunk.bytes == sum(len(s) - len(job.prefix) for s in chunk.statements)
    assert len(chunk.statements) > 5  # steps adapted to about 200 bytes
    assert all(len(s) - len(job.prefix) < 4 * 200 for s in chunk.statements[2:])


def test_a_cut_group_concat_is_read_again_row_by_row() -> None:
    table = FakeTable(list(range(1, 101)), concat_limit=64)
    reader, job = _reader(table, 10_000)
    chunk = reader.read(ChunkSpec("db", "t", 0, ("id",), True, ("1",), ("101",)))
    assert chunk.rows == 100
    assert b",".join(s[len(job.prefix):] for s in chunk.statements) == \
        b",".join(table.literal(n) for n in table.ids)


def test_other_chunks_stream_rows_into_statements() -> None:
    table = FakeTable([1, 2, 3, 4, 5])
    reader, job = _reader(table, 20)
    chunk = reader.read(ChunkSpec("db", "t", 0, ("id",), False, ("2",), None))
    assert chunk.rows == 4
    assert chunk.statements[0] == job.prefix + b"(2,'v2'),(3,'v3'),(4,'v4')"  # >= 20 B
    assert chunk.statements[1:] == [job.prefix + b"(5,'v5')"]


def test_a_table_gone_reads_empty_and_other_errors_are_coded() -> None:
    gone = pymysql.err.ProgrammingError(1146, "Table doesn't exist")
    reader, job = _reader(FakeTable([1]), 100)
    reader.conn = FakeConn(lambda sql, args: gone)
    assert reader.read(chunk_specs(job.info, [])[0]).rows == 0
    reader.conn = FakeConn(lambda sql, args: pymysql.err.OperationalError(2013, "lost"))
    with pytest.raises(KdmError) as lost:
        reader.read(chunk_specs(job.info, [])[0])
    assert lost.value.code == 32001 and lost.value.spec.resumable
    reader.conn = FakeConn(lambda sql, args: pymysql.err.InternalError(6, "tmp file gone"))
    with pytest.raises(KdmError) as gone_file:
        reader.read(chunk_specs(job.info, [])[0])
    assert gone_file.value.code == 32001
    reader.conn = FakeConn(lambda sql, args: pymysql.err.OperationalError(1054, "column"))
    with pytest.raises(KdmError) as bad:
        reader.read(chunk_specs(job.info, [])[0])
    assert bad.value.code == 32003


def test_next_step_follows_the_density_within_a_factor_of_four() -> None:
    assert next_step(100, got=1000, width=100, statement_size=1000) == 100
    assert next_step(100, got=100, width=100, statement_size=1000) == 400  # capped
    assert next_step(100, got=10_000, width=100, statement_size=1000) == 25
    assert next_step(1, got=10**9, width=1, statement_size=1) == 1


def test_round_robin_interleaves_tables_in_order() -> None:
    a = chunk_specs(TableInfo("db", "a", ()), [("1",), ("2",)])
    b = chunk_specs(TableInfo("db", "b", ()), [])
    assert [s.id for s in round_robin([*a, *b])] == ["db.a#0", "db.b#0", "db.a#1", "db.a#2"]


# -- consistency --------------------------------------------------------------------------


def _upstream(monkeypatch: pytest.MonkeyPatch, readers: list[FakeConn],
              mariadb: bool = True) -> Upstream:
    pool: Iterator[FakeConn] = iter(readers)
    monkeypatch.setattr(Upstream, "connect", lambda self, raw=False: next(pool))
    return Upstream(DBConfig(host="h"), mariadb, True)


def _control(lock: Any = 0) -> FakeConn:
    def answer(sql: str, args: Any) -> Any:
        if sql.startswith(("FLUSH TABLES", "LOCK TABLES")):
            return lock
        if sql == "SHOW MASTER STATUS":
            return [("bin.000003", 1234)]
        if "gtid_binlog_pos" in sql:
            return [("0-1-100",)]
        if "gtid_executed" in sql:
            return [("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5",)]
        if "BINLOG_GTID_POS" in sql:
            return [(f"0-1-{args[1]}",)]
        return 0
    return FakeConn(answer)


def _snapshotter(points: list[int]) -> FakeConn:
    seen = iter(points)

    def answer(sql: str, args: Any) -> Any:
        if "binlog_snapshot" in sql:
            return [(b"binlog_snapshot_file", b"bin.000003"),
                    (b"binlog_snapshot_position", str(next(seen)).encode())]
        return 0
    return FakeConn(answer)


def test_flush_opens_every_snapshot_under_the_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    readers = [FakeConn(lambda sql, args: 0) for _ in range(3)]
    control = _control()
    snap = open_snapshot(_upstream(monkeypatch, readers), control, "auto", 3, [], Logger("t"))
    assert (snap.mode, snap.consistent, len(snap.readers)) == ("flush", True, 3)
    assert snap.position == Position("bin.000003", 1234, "0-1-100")
    assert control.log.index("FLUSH TABLES WITH READ LOCK") < control.log.index("UNLOCK TABLES")
    assert all(r.log == ["START TRANSACTION WITH CONSISTENT SNAPSHOT"] for r in readers)


def test_lock_mode_locks_the_dumped_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    control = _control()
    open_snapshot(_upstream(monkeypatch, [FakeConn(lambda s, a: 0)]), control, "lock", 1,
                  [("db", "a"), ("db", "b")], Logger("t"))
    assert "LOCK TABLES `db`.`a` READ, `db`.`b` READ" in control.log


def test_refused_lock_falls_back_to_matched_snapshots_on_mariadb(
        monkeypatch: pytest.MonkeyPatch) -> None:
    refused = pymysql.err.OperationalError(1227, "Access denied; you need RELOAD")
    readers = [_snapshotter([10, 10]), _snapshotter([11, 10])]
    snap = open_snapshot(_upstream(monkeypatch, readers), _control(refused), "auto", 2, [],
                         Logger("t"))
    assert (snap.mode, len(snap.readers)) == ("snapshot", 2)  # agreed at the second try
    assert snap.position == Position("bin.000003", 10, "0-1-10")


def test_snapshots_that_never_agree_leave_fewer_readers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    readers = [_snapshotter([7] * 5), _snapshotter([8] * 5)]
    snap = open_snapshot(_upstream(monkeypatch, readers), _control(), "snapshot", 2, [],
                         Logger("t"))
    assert snap.readers == [readers[0]] and readers[1].closed
    assert snap.position.pos == 7


def test_refused_lock_on_mysql_means_none_and_explicit_flush_fails(
        monkeypatch: pytest.MonkeyPatch) -> None:
    refused = pymysql.err.OperationalError(1227, "Access denied")
    snap = open_snapshot(_upstream(monkeypatch, [FakeConn(lambda s, a: 0)], mariadb=False),
                         _control(refused), "auto", 1, [], Logger("t"))
    assert (snap.mode, snap.consistent) == ("none", False)
    with pytest.raises(KdmError) as failed:
        open_snapshot(_upstream(monkeypatch, [FakeConn(lambda s, a: 0)]), _control(refused),
                      "flush", 1, [], Logger("t"))
    assert failed.value.code == 32002


# -- checkpoints and loading --------------------------------------------------------------


def _saved_rows() -> list[tuple[Any, ...]]:
    specs = chunk_specs(info(), [("10",)])
    return [("", "", SUMMARY, None, 0, 0, 0, "bin.000001:4@0-1-5", "bin.000001:99@0-1-7"),
            ("db", "t", 1, specs[1].bounds_json(), 0, 0, 0, "", ""),
            ("db", "t", 0, specs[0].bounds_json(), 1, 9, 90, "", "")]


def test_saved_plan_gives_the_chunks_still_to_load() -> None:
    saved = parse_saved(_saved_rows())
    assert saved is not None and not saved.finished
    assert saved.position == Position("bin.000001", 4, "0-1-5")
    assert saved.safe_until == Position("bin.000001", 99, "0-1-7")
    assert [s.id for s in saved.pending()] == ["db.t#1"]
    assert [(c.spec.id, c.rows, c.bytes) for c in saved.done()] == [("db.t#0", 9, 90)]
    assert parse_saved(_saved_rows()[1:]) is None  # no summary: no plan


def _loader(monkeypatch: pytest.MonkeyPatch, marked: int) -> tuple[ChunkLoader, FakeConn]:
    conn = FakeConn(lambda sql, args: marked if sql.startswith("UPDATE") else 1)
    monkeypatch.setattr(load_module, "connect", lambda target, autocommit=False: conn)
    checkpoint = LoadCheckpoint(DBConfig(host="h"), "meta", "task", "src")
    return ChunkLoader(DBConfig(host="h"), checkpoint), conn


def test_a_chunk_is_marked_first_and_committed_with_its_rows(
        monkeypatch: pytest.MonkeyPatch) -> None:
    loader, conn = _loader(monkeypatch, marked=1)
    chunk = Chunk(chunk_specs(info(), [])[0], [b"REPLACE 1", b"REPLACE 2"], 5, 50)
    assert loader.apply(chunk)
    assert conn.log[0].startswith("UPDATE `meta`.`kdm_load_checkpoint` SET done = 1")
    assert conn.log[1:] == ["REPLACE 1", "REPLACE 2"] and conn.commits == 1


def test_a_chunk_done_elsewhere_is_skipped_without_writing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    loader, conn = _loader(monkeypatch, marked=0)
    assert not loader.apply(Chunk(chunk_specs(info(), [])[0], [b"REPLACE 1"], 1, 1))
    assert len(conn.log) == 1 and conn.commits == 0 and conn.rollbacks == 1


def test_deadlocks_retry_and_refusals_are_coded(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = []

    def answer(sql: str, args: Any) -> Any:
        if sql.startswith("UPDATE"):
            attempts.append(sql)
            return 1
        if len(attempts) < 2:
            return pymysql.err.OperationalError(1213, "Deadlock found")
        return pymysql.err.OperationalError(1136, "Column count doesn't match")
    monkeypatch.setattr(load_module, "connect", lambda target, autocommit=False:
                        FakeConn(answer))
    loader = ChunkLoader(DBConfig(host="h"), LoadCheckpoint(DBConfig(host="h"), "m", "t", "s"))
    with pytest.raises(KdmError) as refused:
        loader.apply(Chunk(chunk_specs(info(), [])[0], [b"REPLACE 1"], 1, 1))
    assert len(attempts) == 2 and refused.value.code == 34002
    assert not refused.value.spec.resumable


# -- progress -----------------------------------------------------------------------------


def test_progress_blocks_read_like_dms() -> None:
    now = [100.0]
    stats = FullStats(clock=lambda: now[0])
    stats.plan({("db", "a"): (2, 1), ("db", "b"): (1, 0)}, estimate_rows=1000,
               bytes_per_row=10.0)
    stats.resumed(rows=100, size=1000)
    assert stats.completed_tables == 0
    first = stats.dump_block()
    assert first == {"totalTables": "2", "completedTables": "0", "finishedBytes": "1000",
                     "finishedRows": "100", "estimateTotalRows": "1000",
                     "progress": "10.00 %", "bps": "0"}
    now[0] = 102.0
    stats.dumped(("db", "a"), rows=400, size=4000)
    stats.loaded(rows=400, size=4000)
    block = stats.dump_block()
    assert (block["completedTables"], block["progress"], block["bps"]) == ("1", "50.00 %",
                                                                           "2000")
    load = stats.load_block()
    assert load["totalBytes"] == str(5000 + 500 * 10)  # rows still to read at 10 B/row
    assert load["progress"] == "50.00 %"
    stats.dumped(("db", "b"), rows=700, size=7000)  # more rows than estimated
    assert stats.dump_block()["progress"] == "99.99 %"
    stats.dump_done = True
    assert stats.dump_block()["progress"] == "100.00 %"
    assert stats.load_block()["totalBytes"] == "12000"
    assert percent(1, 3) == "33.33 %" and percent(0, 0) == "0.00 %"
