"""consumers.shard_sync without Kafka or an upstream: what each shard DDL record becomes in
both modes (DM's restrictions) and the routing-change refusal."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.downstream import KeyCache
from consumers.pipeline import Pipeline, Rules
from consumers.shard_sync import Action, ShardSync
from kdm.config.service import KafkaConfig
from kdm.config.task import TaskConfig, parse_task
from kdm.errors import KdmError
from kdm.schema_tracker import Tracker


def _task(mode: str, target_table: str = "t") -> TaskConfig:
    return parse_task(
        f"name: tk\ntask-mode: incremental\nshard-mode: {mode}\n"
        "target-database: {host: 127.0.0.1, port: 4000, user: root}\n"
        "routes:\n  r: {schema-pattern: 'up*', table-pattern: 't*', target-schema: down, "
        f"target-table: {target_table}}}\n"
        "mysql-instances:\n  - source-id: s1\n    route-rules: [r]\n"
        "  - source-id: s2\n    route-rules: [r]\n")


def _sync(mode: str, target_table: str = "t") -> tuple[ShardSync, Pipeline]:
    task = _task(mode, target_table)
    shard = ShardSync(task, "s1", KafkaConfig(bootstrap_servers="127.0.0.1:1"), None)
    pipeline = Pipeline(Rules.build(task, "s1"), KeyCache(task.target_database))
    for table in (("up1", "t1"), ("up1", "t2")):
        shard.groups.add(table, ("down", "t"))
    shard.groups.start(0)
    return shard, pipeline


def _ddl(sql: str, schema: str = "up1") -> dict[str, Any]:
    return {"query": sql, "schema": schema}


def test_pessimistic_blocks_each_shard_then_locks_when_all_met() -> None:
    shard, pipeline = _sync("pessimistic")
    first = shard.plan(_ddl("ALTER TABLE t1 ADD COLUMN c INT"), 10, "p10", pipeline)
    assert first.action is Action.TRACK
    assert first.statements == ("ALTER TABLE `down`.`t` ADD COLUMN c INT",)
    assert shard.groups.skips(("up1", "t1"), 11) and not shard.groups.skips(("up1", "t2"), 11)
    last = shard.plan(_ddl("ALTER TABLE t2 ADD COLUMN c INT"), 20, "p20", pipeline)
    assert last.action is Action.LOCK and last.group is not None and last.group.is_synced()
    assert shard.groups.lock_id(last.group) == "tk-`down`.`t`"


@pytest.mark.parametrize("sql", ["DROP TABLE t1", "TRUNCATE TABLE t1"])
def test_drop_and_truncate_of_a_shard_are_not_run_downstream(sql: str) -> None:
    shard, pipeline = _sync("pessimistic")
    assert shard.plan(_ddl(sql), 5, "p5", pipeline).action is Action.TRACK
    dropped = sql.startswith("DROP")
    assert (("up1", "t1") in shard.groups.target_of) is not dropped


def test_create_table_of_a_new_shard_joins_its_group() -> None:
    shard, pipeline = _sync("pessimistic")
    plan = shard.plan(_ddl("CREATE TABLE t3 (id INT PRIMARY KEY)"), 5, "p5", pipeline)
    assert plan.action is Action.NORMAL
    assert shard.groups.target_of[("up1", "t3")] == ("down", "t")


def test_renaming_two_tables_in_one_statement_is_refused() -> None:
    shard, pipeline = _sync("pessimistic")
    with pytest.raises(KdmError) as err:
        shard.plan(_ddl("RENAME TABLE t1 TO t8, t2 TO t9"), 5, "p5", pipeline)
    assert err.value.code == 38007


def test_an_event_of_a_table_outside_the_shards_is_the_usual_ddl() -> None:
    shard, pipeline = _sync("pessimistic")
    assert shard.plan(_ddl("CREATE DATABASE other", "other"), 5, "p5",
                      pipeline).action is Action.NORMAL


def test_optimistic_asks_the_coordinator_for_each_shard_ddl() -> None:
    shard, pipeline = _sync("optimistic")
    plan = shard.plan(_ddl("ALTER TABLE t1 ADD COLUMN c INT"), 10, "p10", pipeline)
    assert plan.action is Action.OPTIMISTIC and plan.table == ("up1", "t1")
    assert not shard.groups.filtering  # optimistic shards never block


def test_routing_changed_while_a_shard_is_blocked_is_refused() -> None:
    shard, pipeline = _sync("pessimistic")
    shard.plan(_ddl("ALTER TABLE t1 ADD COLUMN c INT"), 10, "p10", pipeline)
    saved = shard.to_dict()
    changed, pipeline2 = _sync("pessimistic", target_table="other")
    changed.restore(saved)
    for sync in (changed, shard):
        sync.source = object()  # type: ignore[assignment]  # listed by the stub below
        sync._upstream_tables = lambda pipeline: []  # type: ignore[method-assign]
    with pytest.raises(KdmError) as err:
        changed.begin(pipeline2, Tracker(), 11, reset=False)
    assert err.value.code == 36015 and "up1.t1" in str(err.value)
    same, pipeline3 = _sync("pessimistic")
    same.restore(saved)
    same.source = object()  # type: ignore[assignment]
    same._upstream_tables = lambda pipeline: []  # type: ignore[method-assign]
    assert same.begin(pipeline3, Tracker(), 11, reset=False) == 10  # back to the DDL


def test_a_shard_merge_subtask_needs_its_source_configuration() -> None:
    shard, pipeline = _sync("pessimistic")
    with pytest.raises(KdmError) as err:
        shard.begin(pipeline, Tracker(), 0, reset=False)
    assert err.value.code == 36014


def test_a_new_shard_cannot_be_created_while_its_target_meets_a_ddl() -> None:
    shard, pipeline = _sync("pessimistic")
    shard.plan(_ddl("ALTER TABLE t1 ADD COLUMN c INT"), 10, "p10", pipeline)
    with pytest.raises(KdmError) as err:
        shard.plan(_ddl("CREATE TABLE t3 (id INT PRIMARY KEY)"), 11, "p11", pipeline)
    assert err.value.code == 36017


def test_a_replaced_shard_ddl_is_that_shards_ddl_in_the_lock() -> None:
    """DM's "replace, shard merge, pessimistic": the first shard's DDL is replaced by two
    statements written against the upstream shard; they are routed and become its DDLs, so
    the second shard's original DDL is an inconsistent sequence (36013) until it is replaced
    the same way, and then the group locks on the replacement."""
    shard, pipeline = _sync("pessimistic")
    unique = "ALTER TABLE t{n} ADD COLUMN c INT UNIQUE"
    split = ("ALTER TABLE `up1`.`t{n}` ADD COLUMN c INT", "ALTER TABLE `up1`.`t{n}` ADD UNIQUE (c)")
    first = shard.plan(_ddl(unique.format(n=1)), 10, "p10", pipeline,
                       tuple(s.format(n=1) for s in split))
    assert first.action is Action.TRACK and first.statements == (
        "ALTER TABLE `down`.`t` ADD COLUMN c INT", "ALTER TABLE `down`.`t` ADD UNIQUE (c)")
    with pytest.raises(KdmError) as err:
        shard.plan(_ddl(unique.format(n=2)), 20, "p20", pipeline)
    assert err.value.code == 36013
    last = shard.plan(_ddl(unique.format(n=2)), 20, "p20", pipeline,
                      tuple(s.format(n=2) for s in split))
    assert last.action is Action.LOCK and last.statements == first.statements


def test_a_replacement_is_routed_unless_it_names_no_migrated_table() -> None:
    _, pipeline = _sync("pessimistic")
    record = _ddl("ALTER TABLE t1 ADD COLUMN c INT UNIQUE")
    assert pipeline.replacement(record, ("ALTER TABLE t1 ADD COLUMN c INT",
                                         "ALTER TABLE `down`.`t` ADD KEY k (c)")) == (
        "ALTER TABLE `down`.`t` ADD COLUMN c INT", "ALTER TABLE `down`.`t` ADD KEY k (c)")
    assert pipeline.replacement(record, ()) == ()


class _Channel:
    """The coordinator link: what was sent, and the operations on the ops topic."""

    def __init__(self, waiting: list[Any]) -> None:
        self.sent: list[Any] = []
        self.waiting = waiting

    def mark(self) -> int:
        return 0

    def send(self, message: Any) -> None:
        self.sent.append(message)

    def wait(self, mark: int, match: Any, stopped: Any, again: Any = None) -> Any:
        return next((m for m in self.waiting if match(m)), None)


def test_an_optimistic_shard_takes_only_the_answer_to_its_own_ddl() -> None:
    """A late answer to an earlier DDL of the same shard (its info was sent twice) is
    passed over: the answer must name the info it answers."""
    from kdm.schema_table import TableSchema
    from kdm.shard_ddl import OptimisticOperation, operation_message
    shard, pipeline = _sync("optimistic")
    tracker = Tracker()
    tracker.set(TableSchema.from_create("CREATE TABLE t1 (id INT PRIMARY KEY)", "up1"))
    def answer(info_id: str, ddl: str) -> Any:
        return operation_message(OptimisticOperation("tk-`down`.`t`", "tk", "s1", "up1", "t1",
                                                     (ddl,), info_id=info_id))
    late = answer("bin.000001:100", "ALTER TABLE `down`.`t` ADD COLUMN a INT")
    ours = answer("bin.000001:200", "ALTER TABLE `down`.`t` ADD COLUMN b INT")
    channel = _Channel([late, ours])
    shard._channel = channel  # type: ignore[assignment]
    got = shard.optimistic(("up1", "t1"), _ddl("ALTER TABLE t1 ADD COLUMN b INT"),
                           ("ALTER TABLE `down`.`t` ADD COLUMN b INT",), tracker, pipeline,
                           lambda: False, "bin.000001:200")
    assert got is ours and len(channel.sent) == 1
