"""Shard-DDL coordination end to end (issue 5): two sources x two shard tables merged into one
downstream table, DDLs interleaved with DML, both modes, the seed 003 manual scenarios, and
SIGKILL of the consumer and of the coordinator at each protocol step. Every check compares
the downstream table (structure and rows) with the merge of the upstream shards."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from kdm.config.service import KafkaConfig
from kdm.stack.stack import Endpoints
from tests.integration.relay_support import wait_for
from tests.integration.shard_support import SHARDS, ShardSetup, shard_setup

ADD = "ALTER TABLE {t} ADD COLUMN c2 INT"
DROP = "ALTER TABLE {t} DROP COLUMN c1"
ADD3 = "ALTER TABLE {t} ADD COLUMN c3 INT NULL"
BASE = ["id", "c1", "v"]


def _locks(setup: ShardSetup, *args: str) -> dict[str, object]:
    return setup.ctl.ctl("show-ddl-locks", *args)


def _no_lock(setup: ShardSetup) -> bool:
    answer = _locks(setup, setup.task)
    return answer["locks"] == [] and answer["msg"] == "no DDL lock exists"


def _write_all(setup: ShardSetup) -> None:
    for short in setup.names:
        for shard in SHARDS:
            setup.write(short, shard)


def _wait_died(setup: ShardSetup, name: str, what: str) -> None:
    service = setup.ctl.services[name]
    wait_for(lambda: service.proc is not None and service.proc.poll() is not None, 90, what)


def _add_column_interleaved(setup: ShardSetup, pessimistic: bool) -> None:
    """ADD COLUMN c2 on every shard, source a first, rows written between every step."""
    a, b = setup.names["a"], setup.names["b"]
    setup.ddl("a", "t1", ADD)
    for short, shard in (("a", "t1"), ("a", "t2"), ("b", "t1"), ("b", "t2")):
        setup.write(short, shard)
    setup.ddl("a", "t2", ADD)
    setup.write("a", "t1")
    setup.write("b", "t2")
    if pessimistic:
        wait_for(lambda: _locks(setup, setup.task)["locks"] != [], 60, "the lock from a")
        assert _locks(setup, setup.task) == {"result": True, "msg": "", "locks": [{
            "ID": setup.lock, "task": setup.task, "mode": "pessimistic", "owner": a,
            "DDLs": [f"ALTER TABLE `{setup.down}`.`t` ADD COLUMN c2 INT"],
            "synced": [a], "unsynced": [b]}]}
        assert _locks(setup, "--source", b, setup.task)["locks"][0]["ID"] == setup.lock
        wait_for(lambda: setup.status(a).get("unresolvedDDLLockID") == setup.lock, 30,
                 "a's query-status to name the lock it waits on")
        assert setup.status(a)["sync"]["blockingDDLs"] == \
            [f"ALTER TABLE `{setup.down}`.`t` ADD COLUMN c2 INT"]
    setup.ddl("b", "t1", ADD)
    setup.write("b", "t1")
    setup.write("b", "t2")
    if pessimistic:
        def group_shown() -> bool:
            groups = setup.status(b)["sync"]["unresolvedGroups"]
            return bool(groups) and groups[0]["synced"] == [f"`{setup.ups['b']}`.`t1`"] and \
                groups[0]["unsynced"] == [f"`{setup.ups['b']}`.`t2`"]
        wait_for(group_shown, 60, "b's unresolved group in query-status")
    setup.ddl("b", "t2", ADD)
    for short in setup.names:
        for shard in SHARDS:
            setup.write(short, shard)


@pytest.mark.parametrize("mode", ["pessimistic", "optimistic"])
def test_add_then_drop_and_add_merge_into_one_table(mode: str, endpoints: Endpoints,
                                                    kafka: KafkaConfig, unique: str,
                                                    tmp_path: Path) -> None:
    with shard_setup(endpoints, kafka, unique, tmp_path, mode) as setup:
        _write_all(setup)
        setup.wait_merged(BASE, "the first rows merged")

        _add_column_interleaved(setup, mode == "pessimistic")
        setup.wait_merged([*BASE, "c2"], "ADD COLUMN on every shard, rows merged")
        wait_for(lambda: _no_lock(setup), 60, "the lock resolved")

        # a sequence of two DDLs, the first shard running both before anyone else
        setup.ddl("a", "t1", DROP)
        setup.write("a", "t1")
        setup.ddl("a", "t1", ADD3)
        setup.write("a", "t1")
        setup.write("b", "t2")
        for short, shard in (("a", "t2"), ("b", "t1"), ("b", "t2")):
            setup.ddl(short, shard, DROP)
            setup.write(short, shard)
            setup.write("a", "t1")
        for short, shard in (("b", "t2"), ("a", "t2"), ("b", "t1")):
            setup.ddl(short, shard, ADD3)
            setup.write(short, shard)
        setup.wait_merged(["id", "v", "c2", "c3"], "DROP COLUMN then ADD COLUMN merged")
        wait_for(lambda: _no_lock(setup), 60, "no lock left")
        for source in setup.sources:
            wait_for(lambda s=source: setup.status(s)["sync"]["unresolvedGroups"] == [], 30,
                     "query-status without unresolved groups")
            status = setup.status(source)
            assert status["stage"] == "Running" and status["result"] is None
            assert status["sync"]["blockingDDLs"] == []
            assert status["unresolvedDDLLockID"] == ""


@pytest.mark.parametrize("point", ["sync.shard.before_info", "sync.shard.before_ddl",
                                   "sync.shard.before_skip", "sync.shard.after_checkpoint"])
def test_consumer_killed_at_each_protocol_step(point: str, endpoints: Endpoints,
                                               kafka: KafkaConfig, unique: str,
                                               tmp_path: Path) -> None:
    with shard_setup(endpoints, kafka, unique, tmp_path, "pessimistic",
                     consumer_faults=point) as setup:
        _write_all(setup)
        _add_column_interleaved(setup, pessimistic=False)
        _wait_died(setup, "c1", f"the consumer to die at {point}")
        setup.ctl.consumer("c1")  # the same worker again, without the fault
        setup.wait_merged([*BASE, "c2"], f"the lock to complete after a kill at {point}")
        wait_for(lambda: _no_lock(setup), 60, "the lock resolved")


@pytest.mark.parametrize("point", ["coordinator.shardddl.before_commit:2",
                                   "coordinator.shardddl.after_commit:3"])
def test_coordinator_killed_at_each_protocol_step(point: str, endpoints: Endpoints,
                                                  kafka: KafkaConfig, unique: str,
                                                  tmp_path: Path) -> None:
    with shard_setup(endpoints, kafka, unique, tmp_path, "pessimistic") as setup:
        ctl = setup.ctl
        ctl.services["coordinator"].stop()
        ctl.coordinator(env={"KDM_FAULTS": point})
        _write_all(setup)
        _add_column_interleaved(setup, pessimistic=False)
        _wait_died(setup, "coordinator", f"the coordinator to die at {point}")
        ctl.coordinator()
        setup.wait_merged([*BASE, "c2"], f"the lock to complete after a kill at {point}")
        wait_for(lambda: _no_lock(setup), 60, "the lock resolved")


def test_seed_003_a_source_removed_mid_lock(endpoints: Endpoints, kafka: KafkaConfig,
                                            unique: str, tmp_path: Path) -> None:
    """Scenario 1: mysql-replica-02 leaves while the lock waits for it; unlock-ddl-lock."""
    with shard_setup(endpoints, kafka, unique, tmp_path, "pessimistic") as setup:
        a, b = setup.names["a"], setup.names["b"]
        _write_all(setup)
        setup.wait_merged(BASE, "the first rows merged")
        setup.ctl.ctl("stop-task", "-s", b, setup.task)
        wait_for(lambda: setup.status(b).get("stage") == "Stopped", 60, "b Stopped")
        for shard in SHARDS:
            setup.ddl("a", shard, ADD)
            setup.write("a", shard)
        wait_for(lambda: _locks(setup)["locks"] != [], 60, "the lock")
        (lock,) = _locks(setup)["locks"]
        assert (lock["owner"], lock["synced"], lock["unsynced"]) == (a, [a], [b])
        assert setup.ctl.ctl("unlock-ddl-lock", setup.lock) == {"result": True, "msg": ""}
        assert _no_lock(setup)
        setup.write("a", "t1")
        setup.wait_merged([*BASE, "c2"], "a's rows after the unlocked DDL")
        setup.ctl.ctl("unlock-ddl-lock", setup.lock, ok=False)  # gone: 38002


def test_seed_003_unlock_with_a_new_owner(endpoints: Endpoints, kafka: KafkaConfig,
                                          unique: str, tmp_path: Path) -> None:
    """Scenario 1 with `--owner`: the owner left before executing; another source runs it."""
    with shard_setup(endpoints, kafka, unique, tmp_path, "pessimistic") as setup:
        a, b = setup.names["a"], setup.names["b"]
        for shard in SHARDS:  # b reports first: b owns the lock
            setup.ddl("b", shard, ADD)
            setup.write("b", shard)
        wait_for(lambda: _locks(setup)["locks"] != [], 60, "the lock owned by b")
        assert _locks(setup)["locks"][0]["owner"] == b
        setup.ctl.ctl("stop-task", "-s", b, setup.task)
        wait_for(lambda: setup.status(b).get("stage") == "Stopped", 60, "b Stopped")
        for shard in SHARDS:
            setup.ddl("a", shard, ADD)
            setup.write("a", shard)
        wait_for(lambda: _locks(setup)["locks"][0]["synced"] == [a, b], 60, "a synced")
        assert setup.ctl.ctl("unlock-ddl-lock", "--owner", a, setup.lock) == \
            {"result": True, "msg": ""}
        assert _no_lock(setup)
        setup.write("a", "t2")
        wait_for(lambda: setup.down_columns() == [*BASE, "c2"], 60, "c2 downstream")
        wait_for(lambda: all(row in setup.expected([*BASE, "c2"]) for row in
                             _down_rows(setup)) and len(_down_rows(setup)) > 0, 60,
                 "a's rows merged")


def _down_rows(setup: ShardSetup) -> list[tuple[object, ...]]:
    from tests.integration.sync_support import rows
    return rows(setup.endpoints, "down", setup.down, "t")


def test_seed_003_worker_killed_between_owner_exec_and_skip(
        endpoints: Endpoints, kafka: KafkaConfig, unique: str, tmp_path: Path) -> None:
    """Scenario 2: the worker dies after the owner executed, before the non-owner's skip is
    checkpointed. The lock waits for every source's done, so the restarted non-owner gets
    its skip again and nothing manual is needed. The seed's manual state (the lock formed
    again by that source alone) is then reached by replaying that source's relay from the
    start, and resolved as the seed says: unlock-ddl-lock runs the DDL again (idempotent)."""
    with shard_setup(endpoints, kafka, unique, tmp_path, "pessimistic",
                     consumer_faults="sync.shard.before_skip") as setup:
        a, b = setup.names["a"], setup.names["b"]
        _write_all(setup)
        _add_column_interleaved(setup, pessimistic=False)
        _wait_died(setup, "c1", "the consumer to die before the skip")
        setup.ctl.consumer("c1")
        setup.wait_merged([*BASE, "c2"], "the lock to complete after the restart")
        wait_for(lambda: _no_lock(setup), 60, "no lock left")

        result = CliRunner().invoke(main, ["replay", setup.task, "-s", b, "--offset", "0"],
                                    env={"KDM_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
                                         "KDM_TOPIC_PREFIX": kafka.topic_prefix})
        assert result.exit_code == 0, result.output
        wait_for(lambda: _locks(setup)["locks"] != [], 90, "the lock formed again by b")
        (lock,) = _locks(setup)["locks"]
        assert (lock["owner"], lock["synced"], lock["unsynced"]) == (b, [b], [a])
        assert setup.ctl.ctl("unlock-ddl-lock", setup.lock) == {"result": True, "msg": ""}
        assert _no_lock(setup)
        setup.write("b", "t1")
        setup.write("a", "t2")
        setup.wait_merged([*BASE, "c2"], "both sources after the manual unlock")


def _kafka_cli(kafka: KafkaConfig, *args: str) -> None:
    result = CliRunner().invoke(main, list(args), env={
        "KDM_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KDM_TOPIC_PREFIX": kafka.topic_prefix})
    assert result.exit_code == 0, result.output


def test_optimistic_conflict_pauses_with_a_coded_error(endpoints: Endpoints,
                                                       kafka: KafkaConfig, unique: str,
                                                       tmp_path: Path) -> None:
    """Two shards add the same column with different defaults: the second cannot be joined,
    so its subtask pauses with SyncShardDDLRefused (36016) naming the coordinator's conflict
    (38006); show-ddl-locks lists the optimistic lock; handle-error skip resumes it."""
    with shard_setup(endpoints, kafka, unique, tmp_path, "optimistic") as setup:
        b = setup.names["b"]
        setup.ddl("a", "t1", "ALTER TABLE {t} ADD COLUMN c4 INT DEFAULT 0")
        setup.write("a", "t1")
        wait_for(lambda: "c4" in setup.down_columns(), 60, "c4 added downstream")
        setup.ddl("b", "t1", "ALTER TABLE {t} ADD COLUMN c4 INT DEFAULT 5")
        def paused_on_conflict() -> bool:
            status = setup.status(b)
            return status.get("stage") == "Paused" and \
                [e["ErrCode"] for e in status["result"]["errors"]] == [36016]
        wait_for(paused_on_conflict, 60, "b Paused on the conflict")
        (error,) = setup.status(b)["result"]["errors"]
        assert "38006" in error["Message"] and "c4" in error["Message"]
        (lock,) = _locks(setup)["locks"]
        assert (lock["ID"], lock["mode"], lock["owner"], lock["DDLs"]) == \
            (setup.lock, "optimistic", "", [])
        assert f"{b}-`{setup.ups['b']}`.`t1`" in lock["unsynced"]
        _kafka_cli(kafka, "handle-error", setup.task, "skip", "-s", b)
        wait_for(lambda: setup.status(b).get("stage") == "Running", 60, "b Running again")
        setup.write("b", "t1")
        setup.write("b", "t2")
        # shards without c4 get the downstream's default: compare the common columns
        wait_for(lambda: setup.merged_on(BASE), 120, "rows merged after the skip")
        assert setup.down_columns() == [*BASE, "c4"]


def test_pessimistic_restrictions_truncate_ignored_and_a_dropped_shard_leaves(
        endpoints: Endpoints, kafka: KafkaConfig, unique: str, tmp_path: Path) -> None:
    """DM's restrictions: TRUNCATE on a shard is not run downstream, and a dropped shard
    leaves its group, so the lock forms from the three shards left."""
    from tests.integration.sync_support import rows
    with shard_setup(endpoints, kafka, unique, tmp_path, "pessimistic") as setup:
        _write_all(setup)
        setup.wait_merged(BASE, "the first rows merged")
        before = rows(endpoints, "down", setup.down, "t")
        setup.ddl("a", "t1", "TRUNCATE TABLE {t}")
        setup.ddl("b", "t2", "DROP TABLE {t}")
        for short, shard in (("a", "t1"), ("a", "t2"), ("b", "t1")):
            setup.ddl(short, shard, ADD)
            setup.write(short, shard)
        wait_for(lambda: setup.down_columns() == [*BASE, "c2"], 90, "the lock of 3 shards")
        wait_for(lambda: _no_lock(setup), 60, "the lock resolved")
        after = rows(endpoints, "down", setup.down, "t")
        # nothing was truncated or dropped downstream: every row from before is still there
        assert {r[0] for r in before} <= {r[0] for r in after}
        written = {r[0] for short, shard in (("a", "t1"), ("a", "t2"), ("b", "t1"))
                   for r in rows(endpoints, "up", setup.ups[short], shard)}
        wait_for(lambda: written <= {r[0] for r in rows(endpoints, "down", setup.down, "t")},
                 60, "the rows written after the DDL")


@pytest.mark.parametrize("op", ["replace", "skip"])
def test_handle_error_on_the_owners_ddl_goes_on_through_the_lock(
        op: str, endpoints: Endpoints, kafka: KafkaConfig, unique: str,
        tmp_path: Path) -> None:
    """The lock's DDL fails downstream when its owner runs it (a downstream-only row breaks
    a new unique key): the owner pauses with 36002 while the other source waits on the lock.
    `handle-error replace`, written against the upstream shard as in DM, is routed to the
    target and run by the owner instead (`skip`: nothing runs); the lock then completes (the
    other source skips) and the rows written after the DDL on every shard arrive."""
    from tests.integration.sync_support import execute, rows
    with shard_setup(endpoints, kafka, unique, tmp_path, "pessimistic") as setup:
        a, b = setup.names["a"], setup.names["b"]
        _write_all(setup)
        setup.wait_merged(BASE, "the first rows merged")
        taken = int(rows(endpoints, "down", setup.down, "t")[0][2])
        execute(endpoints, setup.down, f"INSERT INTO t VALUES (999999, 'down only', {taken})",
                side="down")
        unique_v = "ALTER TABLE {t} ADD UNIQUE KEY uk (v)"
        for shard in SHARDS:
            setup.ddl("a", shard, unique_v)
        wait_for(lambda: _locks(setup, setup.task)["locks"] != [], 60, "the lock from a")
        for shard in SHARDS:
            setup.ddl("b", shard, unique_v)
        _write_all(setup)

        def owner_paused() -> bool:
            status = setup.status(a)
            return status.get("stage") == "Paused" and \
                [e["ErrCode"] for e in status["result"]["errors"]] == [36002]
        wait_for(owner_paused, 90, "the owner paused on the failing DDL")
        wait_for(lambda: setup.status(b).get("unresolvedDDLLockID") == setup.lock, 30,
                 "b waiting on the lock")
        (lock,) = _locks(setup, setup.task)["locks"]
        assert (lock["owner"], lock["synced"], lock["unsynced"]) == (a, sorted([a, b]), [])

        replacement = [f"ALTER TABLE `{setup.ups['a']}`.`t1` ADD KEY k (v)"] \
            if op == "replace" else []
        _kafka_cli(kafka, "handle-error", setup.task, "-s", a, op, *replacement)
        wait_for(lambda: _no_lock(setup), 90, "the lock resolved after the replacement")
        wait_for(lambda: all(setup.status(s).get("stage") == "Running" for s in setup.sources),
                 60, "both subtasks Running")
        keys = {str(r[5]) for r in rows(endpoints, "down", "information_schema", "STATISTICS")
                if r[1] == setup.down and r[2] == "t"}
        assert ("k" in keys, "uk" in keys) == (op == "replace", False)
        execute(endpoints, setup.down, "DELETE FROM t WHERE id = 999999", side="down")
        _write_all(setup)
        setup.wait_merged(BASE, "every row, before and after the DDL, merged")
