"""show-ddl-locks, unlock-ddl-lock and query-status' shard fields in the seeds' exact shapes."""

from __future__ import annotations

import json

from coordinator.shardddl.optimism import OptimisticInfo, OptimisticKeeper
from coordinator.shardddl.pessimism import PessimisticInfo, PessimisticKeeper
from coordinator.shardddl.show import (
    ShardingGroupStatus,
    blocking_ddls,
    show_ddl_locks,
    sync_shard_fields,
    unlock_ddl_lock_result,
    unresolved_groups,
)
from kdm.errors import ERR_SHARD_LOCK_NOT_FOUND
from kdm.schema_tracker import TableSchema, apply

R1, R2 = "mysql-replica-01", "mysql-replica-02"
ADD_C2 = "USE `shard_db`; ALTER TABLE `shard_db`.`shard_table` ADD COLUMN `c2` int(11);"

# seed 003, scenario 1, step 3 (the manual's comments stripped; the missing comma after
# "pessimistic" restored)
SEED_003_LOCKS = json.loads("""
{
    "result": true,
    "msg": "",
    "locks": [
        {
            "ID": "test-`shard_db`.`shard_table`",
            "task": "test",
            "mode": "pessimistic",
            "owner": "mysql-replica-01",
            "DDLs": [
                "USE `shard_db`; ALTER TABLE `shard_db`.`shard_table` ADD COLUMN `c2` int(11);"
            ],
            "synced": [
                "mysql-replica-01"
            ],
            "unsynced": [
                "mysql-replica-02"
            ]
        }
    ]
}
""")
SEED_003_EMPTY = json.loads('{"result": true, "msg": "no DDL lock exists", "locks": []}')


def pessimistic(task: str = "test", source: str = R1) -> PessimisticKeeper:
    keeper = PessimisticKeeper()
    keeper.try_sync(PessimisticInfo(task, source, "shard_db_1", "shard_table_2", "shard_db",
                                    "shard_table", (ADD_C2,), (R1, R2)))
    return keeper


def test_show_ddl_locks_has_seed_003s_shape() -> None:
    keeper = pessimistic()
    assert show_ddl_locks(keeper.locks(), "test") == SEED_003_LOCKS
    assert list(show_ddl_locks(keeper.locks())["locks"][0]) == [
        "ID", "task", "mode", "owner", "DDLs", "synced", "unsynced"]


def test_no_lock_after_the_unlock_as_in_seed_003() -> None:
    keeper = pessimistic()
    keeper.unlock("test-`shard_db`.`shard_table`")
    keeper.mark_done("test-`shard_db`.`shard_table`", R1)
    assert show_ddl_locks(keeper.locks(), "test") == SEED_003_EMPTY
    assert show_ddl_locks([]) == SEED_003_EMPTY


def test_show_filters_by_task_and_by_source() -> None:
    locks = pessimistic().locks() + pessimistic("other").locks()
    assert [lock["task"] for lock in show_ddl_locks(locks)["locks"]] == ["other", "test"]
    assert show_ddl_locks(locks, "nope") == SEED_003_EMPTY
    assert len(show_ddl_locks(locks, None, [R2, "mysql-replica-09"])["locks"]) == 2
    assert show_ddl_locks(locks, None, ["mysql-replica-09"]) == SEED_003_EMPTY


def test_optimistic_locks_show_no_owner_or_ddls_and_shards_as_dm_names_them() -> None:
    base = TableSchema.from_create("CREATE TABLE t (c1 int NOT NULL, PRIMARY KEY (c1))", "db")
    keeper = OptimisticKeeper()
    for source, schema in ((R1, "shard_db_1"), (R2, "shard_db_2")):
        keeper.add_table("test", source, schema, "shard_table_1", "shard_db", "shard_table",
                         base)
    before = base.renamed("shard_db_1", "shard_table_1")
    ddl = "ALTER TABLE `shard_db`.`shard_table` ADD COLUMN `c2` int(11)"
    keeper.try_sync(OptimisticInfo("test", R1, "shard_db_1", "shard_table_1", "shard_db",
                                   "shard_table", (ddl,), before, (apply(before, ddl),)))
    assert show_ddl_locks(keeper.locks()) == {"result": True, "msg": "", "locks": [{
        "ID": "test-`shard_db`.`shard_table`", "task": "test", "mode": "optimistic",
        "owner": "", "DDLs": [],
        "synced": ["mysql-replica-01-`shard_db_1`.`shard_table_1`"],
        "unsynced": ["mysql-replica-02-`shard_db_2`.`shard_table_1`"]}]}
    both = keeper.locks() + pessimistic("other").locks()
    assert [lock["mode"] for lock in show_ddl_locks(both)["locks"]] == [
        "pessimistic", "optimistic"]


def test_unlock_ddl_lock_answers() -> None:
    assert unlock_ddl_lock_result() == {"result": True, "msg": ""}
    failed = unlock_ddl_lock_result(ERR_SHARD_LOCK_NOT_FOUND(lock="test-`a`.`b`"))
    assert failed["result"] is False and "lock with ID test-`a`.`b` not found" in failed["msg"]


SEED_002_GROUP = ShardingGroupStatus(
    "`test`.`t_target`", ("USE `test`; ALTER TABLE `test`.`t_target` DROP COLUMN `age`;",),
    "(bin|000001.000001, 3130)", ("`test`.`t2`", "`test`.`t3`", "`test`.`t1`"), ())


def test_query_status_shard_fields_have_seed_002s_shape() -> None:
    assert sync_shard_fields([SEED_002_GROUP]) == {
        "blockingDDLs": ["USE `test`; ALTER TABLE `test`.`t_target` DROP COLUMN `age`;"],
        "unresolvedGroups": [{
            "target": "`test`.`t_target`",
            "DDLs": ["USE `test`; ALTER TABLE `test`.`t_target` DROP COLUMN `age`;"],
            "firstPos": "(bin|000001.000001, 3130)",
            "synced": ["`test`.`t2`", "`test`.`t3`", "`test`.`t1`"],
            "unsynced": []}]}


def test_blocking_ddls_stay_empty_while_a_shard_table_is_unsynced() -> None:
    partial = ShardingGroupStatus("`test`.`t_target`", SEED_002_GROUP.ddls, "(bin.000001, 4)",
                                  ("`test`.`t1`",), ("`test`.`t2`",))
    untouched = ShardingGroupStatus("`test`.`t_other`", ("x",), "", (), ("`test`.`t9`",))
    assert blocking_ddls([partial, untouched]) == []
    assert [g["target"] for g in unresolved_groups([partial, untouched])] == [
        "`test`.`t_target`"]
    assert ShardingGroupStatus.from_dict(json.loads(json.dumps(partial.to_dict()))) == partial
