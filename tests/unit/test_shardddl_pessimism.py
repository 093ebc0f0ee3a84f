"""Pessimistic shard-DDL locks: sync, owner exec / others skip, unlock-ddl-lock (seed 003)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from coordinator.shardddl.pessimism import (
    PessimisticInfo,
    PessimisticKeeper,
    PessimisticLock,
    PessimisticOperation,
    ShardDDLAction,
    classify_shard_ddl,
    lock_id,
)
from kdm.errors import KdmError

TASK = "test"
R1, R2, R3 = "mysql-replica-01", "mysql-replica-02", "mysql-replica-03"
ADD_C2 = ("USE `shard_db`; ALTER TABLE `shard_db`.`shard_table` ADD COLUMN `c2` int(11);",)
DROP_C2 = ("USE `shard_db`; ALTER TABLE `shard_db`.`shard_table` DROP COLUMN `c2`;",)
LOCK = "test-`shard_db`.`shard_table`"


def info(source: str, ddls: tuple[str, ...] = ADD_C2, sources: tuple[str, ...] = (R1, R2),
         table: str = "shard_table_1") -> PessimisticInfo:
    return PessimisticInfo(TASK, source, f"shard_db_{source[-1]}", table, "shard_db",
                           "shard_table", ddls, sources)


def op(source: str, execute: bool, ddls: tuple[str, ...] = ADD_C2) -> PessimisticOperation:
    return PessimisticOperation(LOCK, TASK, source, ddls, execute)


def raises_code(code: int, action: Callable[[], object]) -> KdmError:
    with pytest.raises(KdmError) as caught:
        action()
    assert caught.value.code == code, str(caught.value)
    return caught.value


def synced_keeper(*sources: str) -> PessimisticKeeper:
    keeper = PessimisticKeeper()
    for source in sources:
        keeper.try_sync(info(source, sources=sources))
    return keeper


def test_lock_id_is_task_and_quoted_target() -> None:
    assert lock_id("test", "shard_db", "shard_table") == LOCK
    assert info(R1).lock_id == LOCK
    assert lock_id("t", "a`b", "c") == "t-`a``b`.`c`"


@pytest.mark.parametrize("order", [(R1, R2), (R2, R1)])
@pytest.mark.parametrize("tables", [("shard_table_1", "shard_table_2"),
                                    ("shard_table_2", "shard_table_1")])
def test_two_sources_two_shards_in_either_order(order: tuple[str, str],
                                                 tables: tuple[str, str]) -> None:
    # each source sends its info once both of its shards ran the DDL; whichever of its
    # shard tables came last names the info
    keeper = PessimisticKeeper()
    first, second = order
    lock, synced = keeper.try_sync(info(first, table=tables[0]))
    assert (lock.id, lock.owner, synced) == (LOCK, first, False)
    assert (lock.synced(), lock.unsynced(), lock.remain()) == ([first], [second], 1)
    assert keeper.operations(LOCK) == []
    assert keeper.try_sync(info(first, table=tables[1]))[1] is False  # reported once
    lock, synced = keeper.try_sync(info(second, table=tables[1]))
    assert synced and lock.is_synced() and lock.owner == first
    assert keeper.operations(LOCK) == [op(first, True)]
    assert keeper.mark_done(LOCK, first) == [op(second, False)]
    assert LOCK in keeper and not lock.is_resolved()
    assert keeper.mark_done(LOCK, second) == []
    assert LOCK not in keeper


def test_owner_executes_and_every_other_source_skips_after_it() -> None:
    keeper = synced_keeper(R1, R2, R3)
    assert keeper.operations(LOCK) == [op(R1, True)]
    assert keeper.mark_done(LOCK, R2) == []  # a stray done before the owner's changes nothing
    assert keeper.mark_done(LOCK, R1) == [op(R3, False)]
    assert keeper.mark_done(LOCK, R3) == []
    assert LOCK not in keeper


def test_a_done_for_a_lock_that_is_not_synced_is_stale_and_ignored() -> None:
    keeper = PessimisticKeeper()
    keeper.try_sync(info(R1))
    assert keeper.mark_done(LOCK, R1) == []
    lock = keeper.get(LOCK)
    assert lock is not None and not lock.executed and not lock.is_done(R1)
    keeper.try_sync(info(R2))
    assert keeper.operations(LOCK) == [op(R1, True)]


def test_inconsistent_ddls_are_refused_and_leave_the_source_unsynced() -> None:
    keeper = PessimisticKeeper()
    keeper.try_sync(info(R1))
    error = raises_code(38001, lambda: keeper.try_sync(info(R2, DROP_C2)))
    assert "sharding ddls" in error.message and "is different with" in error.message
    assert "DROP COLUMN" in error.message and "ADD COLUMN" in error.message
    lock = keeper.get(LOCK)
    assert lock is not None and lock.unsynced() == [R2] and keeper.operations(LOCK) == []
    assert keeper.try_sync(info(R2))[1] is True


def test_ddls_compare_as_dm_does_count_and_content_not_order() -> None:
    two = ("ALTER TABLE t ADD COLUMN a INT", "ALTER TABLE t ADD COLUMN b INT")
    keeper = PessimisticKeeper()
    keeper.try_sync(info(R1, two))
    raises_code(38001, lambda: keeper.try_sync(info(R2, two[:1])))
    assert keeper.try_sync(info(R2, two[::-1]))[1] is True


def test_a_source_joining_mid_lock_is_waited_for() -> None:
    keeper = PessimisticKeeper()
    keeper.try_sync(info(R1))
    lock, synced = keeper.try_sync(info(R2, sources=(R1, R2, R3)))
    assert not synced and lock.unsynced() == [R3]
    assert keeper.try_sync(info(R3, sources=(R1, R2, R3)))[1] is True


def test_a_source_that_reports_again_after_a_crash_gets_its_operation_again() -> None:
    keeper = synced_keeper(R1, R2, R3)
    keeper.mark_done(LOCK, R1)
    keeper.mark_done(LOCK, R2)
    keeper.try_sync(info(R2, sources=(R1, R2, R3)))  # R2 lost its done before committing
    assert keeper.operations(LOCK) == [op(R2, False), op(R3, False)]
    keeper.try_sync(info(R1, sources=(R1, R2, R3)))  # the DDL is downstream: skip, not exec
    assert keeper.operations(LOCK) == [op(R1, False), op(R2, False), op(R3, False)]


def test_unlock_when_a_source_was_removed_scenario_1() -> None:
    keeper = PessimisticKeeper()
    keeper.try_sync(info(R1))  # mysql-replica-02 was removed and never reports
    assert keeper.unlock(LOCK) == [op(R1, True)]
    lock = keeper.get(LOCK)
    assert lock is not None and lock.is_synced() and lock.forced == (R2,)
    assert keeper.mark_done(LOCK, R1) == []  # nobody else waits: resolved
    assert LOCK not in keeper
    assert keeper.finish_unlock(LOCK) == []


def test_unlock_with_owner_when_the_owner_is_gone() -> None:
    keeper = PessimisticKeeper()
    keeper.try_sync(info(R1, sources=(R1, R2, R3)))
    keeper.try_sync(info(R2, sources=(R1, R2, R3)))
    assert keeper.unlock(LOCK, owner=R2) == [op(R2, True)]
    lock = keeper.get(LOCK)
    assert lock is not None and lock.owner == R2
    assert keeper.mark_done(LOCK, R2) == [op(R1, False)]  # the old owner is told to skip
    assert keeper.finish_unlock(LOCK) == [op(R1, False)]  # removed, done or not (DM step 8)
    assert LOCK not in keeper


def test_unlock_refuses_an_owner_that_is_not_waiting_and_unknown_locks() -> None:
    keeper = PessimisticKeeper()
    keeper.try_sync(info(R1))
    error = raises_code(38004, lambda: keeper.unlock(LOCK, owner=R2))
    assert R2 in error.message and R1 in error.message
    raises_code(38002, lambda: keeper.unlock("test-`x`.`y`"))
    lock = keeper.get(LOCK)
    assert lock is not None and lock.forced == () and lock.unsynced() == [R2]


def test_unlock_without_force_remove_reverts_when_the_owner_fails() -> None:
    keeper = PessimisticKeeper()
    keeper.try_sync(info(R1))
    keeper.unlock(LOCK)
    raises_code(38005, lambda: keeper.finish_unlock(LOCK))
    lock = keeper.get(LOCK)
    assert lock is not None and lock.unsynced() == [R2] and lock.forced == ()
    assert keeper.operations(LOCK) == []


def test_the_owners_late_done_after_a_reverted_unlock_still_counts() -> None:
    keeper = PessimisticKeeper()
    keeper.try_sync(info(R1))  # mysql-replica-02 is gone
    assert keeper.unlock(LOCK) == [op(R1, True)]
    raises_code(38005, lambda: keeper.finish_unlock(LOCK))  # the DDL is slow: reverted
    assert keeper.mark_done(LOCK, R1) == []  # ... but it ran
    lock = keeper.get(LOCK)
    assert lock is not None and lock.executed and lock.unsynced() == [R2]
    assert keeper.unlock(LOCK) == []  # a second unlock: nothing to execute again
    assert keeper.finish_unlock(LOCK) == []
    assert LOCK not in keeper


def test_after_a_reverted_unlock_the_missing_source_is_told_to_skip() -> None:
    keeper = PessimisticKeeper()
    keeper.try_sync(info(R1))
    keeper.unlock(LOCK)
    raises_code(38005, lambda: keeper.finish_unlock(LOCK))
    keeper.mark_done(LOCK, R1)
    assert keeper.try_sync(info(R2)) == (keeper.get(LOCK), True)
    assert keeper.operations(LOCK) == [op(R2, False)]  # the DDL is downstream already
    assert keeper.mark_done(LOCK, R2) == []
    assert LOCK not in keeper


def test_a_done_from_a_source_that_was_never_sent_an_operation_is_ignored() -> None:
    keeper = PessimisticKeeper()
    keeper.try_sync(info(R1))
    keeper.mark_done(LOCK, R1)  # stale: the lock was never synced
    lock = keeper.get(LOCK)
    assert lock is not None and not lock.executed and not lock.exec_sent


def test_unlock_with_force_remove_removes_the_lock_even_if_the_owner_fails() -> None:
    keeper = PessimisticKeeper()
    keeper.try_sync(info(R1, sources=(R1, R2, R3)))
    keeper.try_sync(info(R2, sources=(R1, R2, R3)))
    assert keeper.unlock(LOCK, force_remove=True) == [op(R1, True)]
    assert keeper.finish_unlock(LOCK) == [op(R2, False)]  # R3 was never waiting
    assert LOCK not in keeper


def test_unlock_of_a_lock_every_source_acted_on_removes_it() -> None:
    keeper = synced_keeper(R1, R2)
    lock = keeper.get(LOCK)
    assert lock is not None
    lock.done = {R1: True, R2: True}
    raises_code(38003, lambda: keeper.unlock(LOCK))
    assert LOCK not in keeper


def test_scenario_2_a_restarted_non_owner_makes_a_new_lock_that_unlock_resolves() -> None:
    keeper = synced_keeper(R1, R2)
    keeper.mark_done(LOCK, R1)
    keeper.mark_done(LOCK, R2)
    lock, synced = keeper.try_sync(info(R2))  # restarted before saving its checkpoint
    assert not synced and (lock.owner, lock.synced(), lock.unsynced()) == (R2, [R2], [R1])
    assert keeper.unlock(LOCK) == [op(R2, True)]  # the DDL must be safe to run twice
    assert keeper.mark_done(LOCK, R2) == []
    assert LOCK not in keeper


def test_a_source_removed_mid_lock_stops_being_waited_for() -> None:
    keeper = PessimisticKeeper()
    keeper.try_sync(info(R1))
    assert keeper.remove_source(TASK, R2) == [op(R1, True)]
    assert keeper.remove_source("other", R1) == []


def test_a_removed_owner_passes_the_lock_to_a_ready_source() -> None:
    keeper = PessimisticKeeper()
    keeper.try_sync(info(R1, sources=(R1, R2, R3)))
    keeper.try_sync(info(R2, sources=(R1, R2, R3)))
    assert keeper.remove_source(TASK, R1) == []
    lock = keeper.get(LOCK)
    assert lock is not None and lock.owner == R2 and lock.unsynced() == [R3]
    assert keeper.remove_source(TASK, R3) == [op(R2, True)]
    assert keeper.remove_source(TASK, R2) == []
    assert LOCK not in keeper


def test_persistence_round_trip_rebuilds_a_lock_mid_unlock() -> None:
    keeper = PessimisticKeeper()
    keeper.try_sync(info(R1, sources=(R1, R2, R3)))
    keeper.try_sync(info(R2, sources=(R1, R2, R3)))
    keeper.unlock(LOCK, owner=R2, force_remove=True)
    stored = [json.loads(json.dumps(lock.to_dict())) for lock in keeper.locks()]
    rebuilt = PessimisticKeeper(PessimisticLock.from_dict(d) for d in stored)
    assert [lock.to_dict() for lock in rebuilt.locks()] == stored
    assert rebuilt.operations(LOCK) == keeper.operations(LOCK) == [op(R2, True)]
    assert rebuilt.mark_done(LOCK, R2) == [op(R1, False)]


def test_a_damaged_stored_lock_is_a_coded_error() -> None:
    data = PessimisticLock(LOCK, TASK, R1, ADD_C2, (R1, R2)).to_dict()
    raises_code(38009, lambda: PessimisticLock.from_dict({**data, "ready": None}))
    raises_code(38009, lambda: PessimisticLock.from_dict({**data, "mode": "optimistic"}))


def test_info_and_operation_round_trip() -> None:
    sent = info(R2, sources=(R1, R2, R3))
    assert PessimisticInfo.from_dict(json.loads(json.dumps(sent.to_dict()))) == sent
    answer = PessimisticOperation(LOCK, TASK, R1, ADD_C2, True, done=True)
    assert PessimisticOperation.from_dict(json.loads(json.dumps(answer.to_dict()))) == answer


def test_remove_task_drops_its_locks() -> None:
    keeper = synced_keeper(R1, R2)
    assert keeper.remove_task(TASK) == [LOCK] and keeper.locks() == []


@pytest.mark.parametrize(("sql", "action"), [
    ("DROP TABLE shard_db_1.shard_table_1", ShardDDLAction.IGNORE),
    ("DROP DATABASE shard_db_1", ShardDDLAction.IGNORE),
    ("TRUNCATE TABLE shard_db_1.shard_table_1", ShardDDLAction.IGNORE),
    ("ALTER TABLE shard_table_1 ADD COLUMN c2 INT", ShardDDLAction.COORDINATE),
    ("CREATE INDEX i ON shard_table_1 (c1)", ShardDDLAction.COORDINATE),
    ("RENAME TABLE shard_table_1 TO shard_table_9", ShardDDLAction.COORDINATE),
    ("ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4", ShardDDLAction.COORDINATE),
    ("CREATE TABLE shard_table_3 (c1 INT PRIMARY KEY)", ShardDDLAction.DIRECT),
    ("CREATE DATABASE shard_db_3", ShardDDLAction.DIRECT),
])
def test_shard_ddl_restrictions(sql: str, action: ShardDDLAction) -> None:
    assert classify_shard_ddl(sql) is action


def test_one_rename_per_statement() -> None:
    error = raises_code(38007, lambda: classify_shard_ddl("RENAME TABLE a TO b, c TO d"))
    assert "only one table" in error.message
    raises_code(38007, lambda: classify_shard_ddl("GRANT ALL ON *.* TO u"))
