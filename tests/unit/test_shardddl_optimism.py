"""Optimistic shard-DDL locks: the joined structure decides which DDLs reach the downstream."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import pytest

from coordinator.shardddl.optimism import (
    OptimisticInfo,
    OptimisticKeeper,
    OptimisticLock,
    OptimisticOperation,
)
from kdm.errors import KdmError
from kdm.schema_tracker import TableSchema, apply

TASK = "test"
SOURCE = "mysql-replica-01"
LOCK = "test-`db`.`tbl`"
BASE = TableSchema.from_create(
    "CREATE TABLE tbl (ID int(11) NOT NULL, Name varchar(20) DEFAULT NULL, PRIMARY KEY (ID))",
    "db")
SHARDS = ("tbl00", "tbl01", "tbl02")


class Shards:
    """Three shards of one source, each with its own current structure, and the keeper."""

    def __init__(self, *tables: str, base: TableSchema = BASE) -> None:
        self.keeper = OptimisticKeeper()
        self.now = {t: base.renamed("db", t) for t in tables or SHARDS}
        for name, structure in self.now.items():
            self.keeper.add_table(TASK, SOURCE, "db", name, "db", "tbl", structure)

    def info(self, table: str, *ddls: str) -> OptimisticInfo:
        afters, current = [], self.now[table]
        for ddl in ddls:
            current = apply(current, ddl)
            afters.append(current)
        return OptimisticInfo(TASK, SOURCE, "db", table, "db", "tbl", ddls, self.now[table],
                              tuple(afters))

    def run(self, table: str, *ddls: str) -> tuple[str, ...]:
        sent = self.info(table, *ddls)
        operation = self.keeper.try_sync(sent)
        self.now[table] = sent.tables_after[-1]
        assert self.keeper.mark_done(LOCK, SOURCE, "db", table)
        return operation.ddls

    @property
    def lock(self) -> OptimisticLock:
        lock = self.keeper.get(LOCK)
        assert lock is not None
        return lock

    def unsynced(self) -> list[str]:
        return [name.rsplit(".", 1)[1].strip("`") for name in self.lock.unsynced()]


def raises_code(code: int, action: Callable[[], object]) -> KdmError:
    with pytest.raises(KdmError) as caught:
        action()
    assert caught.value.code == code, str(caught.value)
    return caught.value


def test_the_manuals_worked_example() -> None:
    shards = Shards()
    steps = [
        ("tbl00", "ALTER TABLE tbl00 ADD COLUMN Level INT", True, ["tbl01", "tbl02"]),
        ("tbl01", "ALTER TABLE tbl01 ADD COLUMN Level INT", False, ["tbl02"]),
        ("tbl01", "ALTER TABLE tbl01 DROP COLUMN Name", False, ["tbl01", "tbl02"]),
        ("tbl02", "ALTER TABLE tbl02 ADD COLUMN Level INT", False, ["tbl01"]),
        ("tbl00", "ALTER TABLE tbl00 DROP COLUMN Name", False, ["tbl00", "tbl01"]),
        ("tbl02", "ALTER TABLE tbl02 DROP COLUMN Name", True, []),
    ]
    for table, ddl, emitted, unsynced in steps:
        assert shards.run(table, ddl) == ((ddl,) if emitted else ()), ddl
        assert shards.unsynced() == unsynced, ddl
    assert [c.name for c in shards.lock.joined().columns] == ["ID", "Level"]
    assert shards.lock.is_resolved()


def test_add_column_on_all_shards_is_emitted_once() -> None:
    shards = Shards()
    add = "ALTER TABLE t ADD COLUMN c2 INT"
    assert [shards.run(t, add) for t in SHARDS] == [(add,), (), ()]
    assert shards.lock.is_synced() and shards.lock.synced() == [
        f"{SOURCE}-`db`.`{t}`" for t in SHARDS]


def test_drop_column_waits_until_every_shard_dropped_it() -> None:
    shards = Shards()
    drop = "ALTER TABLE t DROP COLUMN Name"
    assert shards.run("tbl01", drop) == ()
    assert shards.unsynced() == ["tbl01"]
    assert shards.run("tbl00", drop) == ()
    assert shards.run("tbl02", drop) == (drop,)
    assert shards.lock.joined().column("Name") is None


def test_a_two_ddl_info_emits_only_the_statements_that_move_the_joined_structure() -> None:
    shards = Shards()
    both = ("ALTER TABLE t ADD COLUMN c1 INT", "ALTER TABLE t ADD COLUMN c2 INT")
    assert shards.run("tbl00", *both) == both
    assert shards.run("tbl01", *both) == ()
    mixed = ("ALTER TABLE t ADD COLUMN c3 INT", "ALTER TABLE t DROP COLUMN Name")
    assert shards.run("tbl02", *both, *mixed) == mixed[:1]


def test_the_same_column_added_with_another_type_is_a_conflict_that_pauses_the_table() -> None:
    shards = Shards()
    assert shards.run("tbl00", "ALTER TABLE t ADD COLUMN c INT") == ("ALTER TABLE t ADD "
                                                                     "COLUMN c INT",)
    for other in ("BIGINT", "SMALLINT", "VARCHAR(10)", "INT DEFAULT 1"):
        sent = shards.info("tbl01", f"ALTER TABLE t ADD COLUMN c {other}")
        error = raises_code(38006, lambda: shards.keeper.try_sync(sent))  # noqa: B023
        assert "fail to try sync the optimistic shard ddl lock" in error.message
        assert shards.lock.tables[(SOURCE, "db", "tbl01")] == shards.now["tbl01"]
        assert (SOURCE, "db", "tbl01") in shards.lock.conflicts
        assert not shards.lock.is_resolved()
    assert shards.run("tbl01", "ALTER TABLE t ADD COLUMN c INT(11)") == ()
    assert shards.lock.conflicts == {}


def test_a_conflict_answer_carries_the_error() -> None:
    shards = Shards()
    shards.run("tbl00", "ALTER TABLE t ADD COLUMN Age INT DEFAULT 0")
    sent = shards.info("tbl01", "ALTER TABLE t ADD COLUMN Age INT DEFAULT -1")
    with pytest.raises(KdmError) as caught:
        shards.keeper.try_sync(sent)
    answer = OptimisticOperation.conflicted(sent, caught.value)
    assert answer.ddls == () and "code=38006" in answer.conflict


@pytest.mark.parametrize(("ddl", "problem"), [
    ("ALTER TABLE t ADD COLUMN c INT NOT NULL", "NOT NULL without a DEFAULT"),
    ("ALTER TABLE t ADD COLUMN c DATETIME DEFAULT NOW()", "non-constant DEFAULT"),
    ("ALTER TABLE t ADD COLUMN c INT, DROP COLUMN Name", "ADD COLUMN and DROP COLUMN"),
    ("ALTER TABLE t RENAME COLUMN Name TO Title", "renaming column `Name` to `Title`"),
    ("ALTER TABLE t CHANGE Name Title varchar(20)", "renaming column"),
    ("ALTER TABLE t RENAME INDEX i_name TO i_title", "renaming index"),
])
def test_statements_the_manual_does_not_support_in_optimistic_mode(ddl: str,
                                                                   problem: str) -> None:
    base = TableSchema.from_create("CREATE TABLE t (ID int NOT NULL, Name varchar(20), "
                                   "PRIMARY KEY (ID), KEY i_name (Name))", "db")
    shards = Shards(base=base)
    error = raises_code(38007, lambda: shards.keeper.try_sync(shards.info("tbl00", ddl)))
    assert problem in error.message


def test_a_partially_dropped_column_may_not_be_added_back() -> None:
    shards = Shards()
    assert shards.run("tbl00", "ALTER TABLE t DROP COLUMN Name") == ()
    error = raises_code(38006, lambda: shards.keeper.try_sync(
        shards.info("tbl00", "ALTER TABLE t ADD COLUMN Name varchar(20)")))
    assert "wasn't fully dropped" in error.message
    assert shards.run("tbl01", "ALTER TABLE t DROP COLUMN Name") == ()
    assert shards.run("tbl02", "ALTER TABLE t DROP COLUMN Name") == (
        "ALTER TABLE t DROP COLUMN Name",)
    assert shards.lock.dropped == {}
    assert shards.run("tbl00", "ALTER TABLE t ADD COLUMN Name varchar(20)") == (
        "ALTER TABLE t ADD COLUMN Name varchar(20)",)


def test_an_add_that_also_re_adds_an_existing_column_is_refused() -> None:
    shards = Shards()
    shards.run("tbl00", "ALTER TABLE t ADD COLUMN a INT")
    raises_code(38006, lambda: shards.keeper.try_sync(
        shards.info("tbl01", "ALTER TABLE t ADD COLUMN a INT, ADD COLUMN b INT")))


def test_a_replayed_info_gets_the_same_answer() -> None:
    shards = Shards()
    sent = shards.info("tbl00", "ALTER TABLE t ADD COLUMN Level INT")
    first = shards.keeper.try_sync(sent)
    assert shards.keeper.try_sync(sent) == first
    assert first.ddls == ("ALTER TABLE t ADD COLUMN Level INT",)


def test_a_pending_operation_keeps_the_lock_unresolved() -> None:
    shards = Shards("tbl00")
    shards.keeper.try_sync(shards.info("tbl00", "ALTER TABLE t ADD COLUMN x INT"))
    assert shards.lock.is_synced() and not shards.lock.is_resolved()
    shards.keeper.mark_done(LOCK, SOURCE, "db", "tbl00")
    assert shards.lock.is_resolved()


def test_an_info_with_a_structure_missing_is_refused() -> None:
    shards = Shards()
    sent = shards.info("tbl00", "ALTER TABLE t ADD COLUMN x INT")
    broken = OptimisticInfo(TASK, SOURCE, "db", "tbl00", "db", "tbl", sent.ddls * 2,
                            sent.table_before, sent.tables_after)
    raises_code(38008, lambda: shards.keeper.try_sync(broken))


def test_persistence_round_trip_continues_where_it_stopped() -> None:
    shards = Shards()
    shards.run("tbl00", "ALTER TABLE t ADD COLUMN Level INT")
    shards.run("tbl01", "ALTER TABLE t DROP COLUMN Name")
    with pytest.raises(KdmError):
        shards.keeper.try_sync(shards.info("tbl02", "ALTER TABLE t ADD COLUMN Level BIGINT"))
    stored = json.loads(json.dumps(shards.lock.to_dict()))
    rebuilt = OptimisticLock.from_dict(stored)
    assert rebuilt.to_dict() == stored
    assert rebuilt.unsynced() == shards.lock.unsynced()
    assert rebuilt.conflicts == shards.lock.conflicts and rebuilt.dropped == shards.lock.dropped
    shards.keeper = OptimisticKeeper([rebuilt])
    assert shards.run("tbl02", "ALTER TABLE t ADD COLUMN Level INT") == ()
    assert shards.run("tbl00", "ALTER TABLE t DROP COLUMN Name") == ()
    assert shards.run("tbl02", "ALTER TABLE t DROP COLUMN Name") == (
        "ALTER TABLE t DROP COLUMN Name",)


def test_a_damaged_stored_lock_is_a_coded_error() -> None:
    data = Shards().lock.to_dict()
    raises_code(38009, lambda: OptimisticLock.from_dict({**data, "tables": [{"source": "x"}]}))
    raises_code(38009, lambda: OptimisticLock.from_dict({**data, "mode": "pessimistic"}))


def test_info_and_operation_round_trip() -> None:
    sent = Shards().info("tbl00", "ALTER TABLE t ADD COLUMN c INT", "ALTER TABLE t DROP COLUMN c")
    assert OptimisticInfo.from_dict(json.loads(json.dumps(sent.to_dict()))) == sent
    answer = OptimisticOperation(LOCK, TASK, SOURCE, "db", "tbl00", ("x",), "", True)
    assert OptimisticOperation.from_dict(json.loads(json.dumps(answer.to_dict()))) == answer


def test_every_answer_names_the_info_it_answers() -> None:
    shards = Shards()
    sent = replace(shards.info("tbl00", "ALTER TABLE t ADD COLUMN Age INT DEFAULT 0"),
                   info_id="mysql-bin.000001:4711")
    answer = shards.keeper.try_sync(sent)
    assert answer.info_id == sent.info_id
    assert OptimisticOperation.from_dict(json.loads(json.dumps(answer.to_dict()))) == answer
    clash = replace(shards.info("tbl01", "ALTER TABLE t ADD COLUMN Age INT DEFAULT -1"),
                    info_id="mysql-bin.000001:5000")
    with pytest.raises(KdmError) as caught:
        shards.keeper.try_sync(clash)
    assert OptimisticOperation.conflicted(clash, caught.value).info_id == clash.info_id


def test_an_answered_info_replayed_before_its_done_gets_the_same_answer() -> None:
    """tbl00's ADD COLUMN is answered with the ADD, but its consumer dies before running
    it; tbl01's ADD COLUMN is answered with nothing (the joined structure has the column
    already). tbl00's info, sent again, must get the ADD again, or the downstream never
    gets the column."""
    shards = Shards()
    add = "ALTER TABLE t ADD COLUMN Level INT"
    first = replace(shards.info("tbl00", add), info_id="bin.1:100")
    assert shards.keeper.try_sync(first).ddls == (add,)
    assert shards.run("tbl01", add) == ()
    stored = [json.loads(json.dumps(lock.to_dict())) for lock in shards.keeper.locks()]
    rebuilt = OptimisticKeeper(OptimisticLock.from_dict(d) for d in stored)
    for keeper in (shards.keeper, rebuilt):  # also after a coordinator restart
        assert keeper.try_sync(first).ddls == (add,)
    assert shards.keeper.mark_done(LOCK, SOURCE, "db", "tbl00")
    assert shards.keeper.try_sync(first).ddls == ()  # done: a later replay joins anew


def test_removing_shards_and_sources() -> None:
    shards = Shards()
    shards.run("tbl00", "ALTER TABLE t ADD COLUMN Level INT")
    assert shards.keeper.remove_table(TASK, SOURCE, "db", "tbl01", "db", "tbl")
    assert not shards.keeper.remove_table(TASK, SOURCE, "db", "tbl01", "db", "tbl")
    assert shards.unsynced() == ["tbl02"]
    assert shards.keeper.remove_source(TASK, SOURCE) == [LOCK]
    assert LOCK not in shards.keeper


def test_narrowing_below_another_shard_is_a_conflict_not_a_wrong_ddl() -> None:
    # the joined type goes from varchar(30) to varchar(10) (tbl01's), so tbl00's own
    # `MODIFY c varchar(5)` would cut tbl01's values downstream
    base = TableSchema.from_create("CREATE TABLE t (ID int NOT NULL, c varchar(30), "
                                   "PRIMARY KEY (ID))", "db")
    shards = Shards("tbl00", "tbl01", base=base)
    assert shards.run("tbl01", "ALTER TABLE t MODIFY c varchar(10)") == ()
    error = raises_code(38006, lambda: shards.keeper.try_sync(
        shards.info("tbl00", "ALTER TABLE t MODIFY c varchar(5)")))
    assert "would not give the joined structure" in error.message
    assert shards.run("tbl00", "ALTER TABLE t MODIFY c varchar(10)") == (
        "ALTER TABLE t MODIFY c varchar(10)",)
