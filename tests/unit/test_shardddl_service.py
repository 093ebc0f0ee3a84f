"""The leader's shard-DDL loop without Kafka: the pure core message by message, the loop over
an in-memory Kafka (transactions, rebuilds, unlock's wait), and the verbs' API/CLI shapes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import main
from coordinator.api import ApiServer
from coordinator.control import Control
from coordinator.service import Handlers
from coordinator.shardddl.core import Operation, ShardDDLCore, Step
from coordinator.shardddl.link import Delivery, lock_value
from coordinator.shardddl.service import ShardDDLService
from coordinator.workers import Placement
from kdm.config.service import KafkaConfig
from kdm.errors import ERR_SHARD_TRANSACTION
from kdm.schema_tracker import TableSchema, apply
from kdm.shard_ddl import (
    OptimisticInfo,
    OptimisticOperation,
    PessimisticInfo,
    PessimisticOperation,
    ShardMessage,
    info_message,
    operation_message,
    table_message,
)
from tests.unit.test_control_plane import SOURCE, TASK, FakeRegistry, FakeTable

TASK_NAME = "test"
R1, R2, R3 = "mysql-replica-01", "mysql-replica-02", "mysql-replica-03"
ADD_C2 = ("USE `shard_db`; ALTER TABLE `shard_db`.`shard_table` ADD COLUMN `c2` int(11);",)
DROP_C2 = ("USE `shard_db`; ALTER TABLE `shard_db`.`shard_table` DROP COLUMN `c2`;",)
LOCK = "test-`shard_db`.`shard_table`"
OLOCK = "opt-`db`.`tbl`"
BASE = TableSchema.from_create("CREATE TABLE tbl (id int(11) NOT NULL, PRIMARY KEY (id))", "db")


def pinfo(source: str, ddls: tuple[str, ...] = ADD_C2,
          sources: tuple[str, ...] = (R1, R2)) -> ShardMessage:
    return info_message(PessimisticInfo(TASK_NAME, source, f"shard_db_{source[-1]}",
                                        "shard_table_1", "shard_db", "shard_table", ddls,
                                        sources))


def op(source: str, execute: bool, ddls: tuple[str, ...] = ADD_C2) -> PessimisticOperation:
    return PessimisticOperation(LOCK, TASK_NAME, source, ddls, execute)


def done(source: str, execute: bool, ddls: tuple[str, ...] = ADD_C2) -> ShardMessage:
    return operation_message(op(source, execute, ddls), done=True)


def table(name: str, structure: TableSchema = BASE) -> ShardMessage:
    return table_message("table", "opt", R1, ("db", name), ("db", "tbl"),
                         structure.renamed("db", name))


def oinfo(name: str, *ddls: str, base: TableSchema = BASE) -> OptimisticInfo:
    before, afters = base.renamed("db", name), []
    current = before
    for ddl in ddls:
        current = apply(current, ddl)
        afters.append(current)
    return OptimisticInfo("opt", R1, "db", name, "db", "tbl", ddls, before, tuple(afters))


def feed(core: ShardDDLCore, *messages: ShardMessage) -> Step:
    step = Step()
    for message in messages:
        step = step.merge(core.handle(message))
    return step


# -- the pure core: pessimistic ---------------------------------------------------------------

def test_pessimistic_owner_executes_then_the_others_skip_then_the_lock_goes() -> None:
    core = ShardDDLCore()
    first = core.handle(pinfo(R1))
    assert first.touched == {LOCK} and first.operations == []
    lock = core.record(LOCK)
    assert lock is not None and lock["owner"] == R1 and lock["ready"] == {R1: True, R2: False}
    assert core.handle(pinfo(R2)).operations == [op(R1, True)]
    assert core.handle(done(R1, True)).operations == [op(R2, False)]
    last = core.handle(done(R2, False))
    assert last.touched == {LOCK} and last.operations == [] and core.record(LOCK) is None
    assert core.counts() == {"pessimistic": 0, "optimistic": 0}


def test_a_resent_info_gets_its_operation_again() -> None:
    core = ShardDDLCore()
    feed(core, pinfo(R1), pinfo(R2))
    assert core.handle(pinfo(R1)).operations == [op(R1, True)]  # the owner lost its exec
    feed(core, done(R1, True))
    assert core.handle(pinfo(R2)).operations == [op(R2, False)]  # a non-owner lost its skip


def test_the_next_ddl_of_a_source_done_with_the_lock_waits_for_the_lock_to_go() -> None:
    """The owner is done, seeks back and meets its next DDL of the target before the other
    source's done: that info is held back (no answer, no 38001); sent again after the lock
    went, it forms the next lock."""
    core = ShardDDLCore()
    feed(core, pinfo(R1), pinfo(R2), done(R1, True))
    early = core.handle(pinfo(R1, DROP_C2))
    assert early.operations == [] and early.problems == []
    assert core.record(LOCK) is not None and core.record(LOCK)["ddls"] == list(ADD_C2)
    feed(core, done(R2, False))
    assert core.record(LOCK) is None
    again = core.handle(pinfo(R1, DROP_C2))
    assert again.problems == [] and core.record(LOCK)["ddls"] == list(DROP_C2)


def test_different_ddls_answer_that_source_with_the_38001_error() -> None:
    core = ShardDDLCore()
    core.handle(pinfo(R1))
    before = core.record(LOCK)
    step = core.handle(pinfo(R2, DROP_C2))
    assert step.touched == set() and core.record(LOCK) == before
    [refused] = step.operations
    assert isinstance(refused, PessimisticOperation)
    assert (refused.source, refused.exec, refused.ddls) == (R2, False, DROP_C2)
    assert "code=38001" in refused.error and [p.code for p in step.problems] == [38001]
    message = operation_message(refused)
    assert PessimisticOperation.from_dict(dict(message.body or {})) == refused


def test_stale_done_notices_are_ignored() -> None:
    core = ShardDDLCore()
    feed(core, pinfo(R1), pinfo(R2))
    assert core.handle(done(R1, True, DROP_C2)).empty()  # another lock of the same target
    errored = PessimisticOperation(LOCK, TASK_NAME, R1, ADD_C2, False, done=True, error="x")
    assert core.handle(operation_message(errored, done=True)).empty()
    assert core.handle(operation_message(PessimisticOperation(
        "test-`x`.`y`", TASK_NAME, R1, ADD_C2, True), done=True)).empty()
    lock = core.record(LOCK)
    assert lock is not None and lock["executed"] is False


# -- the pure core: optimistic, remove_task, bad messages -----------------------------------

def test_optimistic_tables_infos_conflicts_done_and_drops() -> None:
    core = ShardDDLCore()
    step = feed(core, table("t0"), table("t1"))
    assert step.touched == {OLOCK} and step.operations == []
    lock = core.optimistic.get(OLOCK)
    assert lock is not None and len(lock.tables) == 2
    added = core.handle(info_message(oinfo("t0", "ALTER TABLE t0 ADD COLUMN c int")))
    [answer] = added.operations
    assert isinstance(answer, OptimisticOperation) and answer.ddls == (
        "ALTER TABLE t0 ADD COLUMN c int",) and not answer.conflict
    assert core.handle(operation_message(answer, done=True)).touched == {OLOCK}
    conflict = core.handle(info_message(oinfo("t1", "ALTER TABLE t1 ADD COLUMN c bigint")))
    [paused] = conflict.operations
    assert isinstance(paused, OptimisticOperation) and "code=38006" in paused.conflict
    assert conflict.touched == {OLOCK} and [p.code for p in conflict.problems] == [38006]
    assert core.handle(operation_message(paused, done=True)).empty()  # nothing to mark
    dropped = feed(core, table_message("drop_table", "opt", R1, ("db", "t1"), ("db", "tbl")),
                   table_message("drop_table", "opt", R1, ("db", "t0"), ("db", "tbl")))
    assert dropped.touched == {OLOCK} and core.record(OLOCK) is None


def test_remove_task_drops_the_locks_of_both_modes() -> None:
    core = ShardDDLCore()
    feed(core, pinfo(R1), table("t0"))
    other = info_message(PessimisticInfo("other", R1, "a", "b", "c", "d", ADD_C2, (R1, R2)))
    core.handle(other)
    step = core.handle(ShardMessage("remove_task", "pessimistic", TASK_NAME, ""))
    assert step.touched == {LOCK} and core.record(LOCK) is None
    assert core.handle(ShardMessage("remove_task", "optimistic", "opt", "")).touched == {OLOCK}
    assert core.record(other.lock_id) is not None


@pytest.mark.parametrize("message", [
    ShardMessage("info", "pessimistic", TASK_NAME, R1, LOCK, (), {"task": TASK_NAME}),
    ShardMessage("table", "optimistic", "opt", R1, OLOCK, (), {"up_schema": "db"}),
    ShardMessage("operation", "pessimistic", TASK_NAME, R1, LOCK, (), op(R1, True).to_dict()),
    ShardMessage("done", "pessimistic", TASK_NAME, R1, LOCK, (), None),
])
def test_a_message_that_does_not_parse_is_a_38011_problem(message: ShardMessage) -> None:
    step = ShardDDLCore().handle(message, "dm.ddl[0]@7")
    assert step.empty() and [p.code for p in step.problems] == [38011]
    assert "dm.ddl[0]@7" in step.problems[0].message


# -- the pure core: unlock-ddl-lock -----------------------------------------------------------

def test_unlock_scenario_1_a_source_that_never_reports() -> None:
    core = ShardDDLCore()
    core.handle(pinfo(R1))
    step = core.unlock(LOCK)
    assert step.error is None and step.operations == [op(R1, True)]
    assert not core.unlock_due(LOCK)
    assert core.handle(done(R1, True)).operations == []  # R2 was forced: no skip for it
    assert core.unlock_due(LOCK)  # ... the lock resolved with the owner's done
    finish = core.finish_unlock(LOCK)
    assert finish.error is None and finish.operations == [] and core.record(LOCK) is None


def test_unlock_with_owner_makes_that_source_execute_and_the_old_owner_skip() -> None:
    core = ShardDDLCore()
    feed(core, pinfo(R1, sources=(R1, R2, R3)), pinfo(R2, sources=(R1, R2, R3)))
    assert core.unlock(LOCK, owner=R3).error.code == 38004  # type: ignore[union-attr]
    step = core.unlock(LOCK, owner=R2)
    assert step.operations == [op(R2, True)]
    skips = core.handle(done(R2, True)).operations
    assert skips == [op(R1, False)] and core.unlock_due(LOCK)
    finish = core.finish_unlock(LOCK)
    assert finish.error is None and finish.operations == [op(R1, False)]
    assert core.record(LOCK) is None


def test_unlock_without_the_owners_done_fails_and_force_remove_removes() -> None:
    core = ShardDDLCore()
    core.handle(pinfo(R1))
    core.unlock(LOCK)
    failed = core.finish_unlock(LOCK)
    assert failed.error is not None and failed.error.code == 38005
    lock = core.record(LOCK)
    assert lock is not None and lock["ready"] == {R1: True, R2: False} and not lock["forced"]
    core.unlock(LOCK, force_remove=True)
    forced = core.finish_unlock(LOCK)
    assert forced.error is None and core.record(LOCK) is None


def test_unlock_refusals_carry_their_codes() -> None:
    core = ShardDDLCore()
    feed(core, table("t0"))
    assert core.unlock("nope").error.code == 38002  # type: ignore[union-attr]
    assert core.unlock(OLOCK).error.code == 38010  # type: ignore[union-attr]
    feed(core, pinfo(R1), pinfo(R2), done(R1, True))
    core.pessimistic.get(LOCK).done[R2] = True  # type: ignore[union-attr]
    resolved = core.unlock(LOCK)
    assert resolved.error.code == 38003 and resolved.touched == {LOCK}  # type: ignore[union-attr]
    assert core.record(LOCK) is None


def test_a_second_unlock_after_a_restart_keeps_the_forced_sources() -> None:
    core = ShardDDLCore()
    core.handle(pinfo(R1))
    core.unlock(LOCK)
    rebuilt, _ = ShardDDLCore.rebuild(core.records())
    assert rebuilt.unlock(LOCK).operations == [op(R1, True)]
    rebuilt.handle(done(R1, True))
    assert rebuilt.record(LOCK) is None  # R2 stayed forced: the owner's done resolved it


# -- the pure core: rebuild -------------------------------------------------------------------

def test_rebuild_from_persisted_dicts_gives_the_same_locks_and_outstanding_operations() -> None:
    core = ShardDDLCore()
    feed(core, pinfo(R1), pinfo(R2), table("t0"), table("t1"))
    rebuilt, problems = ShardDDLCore.rebuild(json.loads(json.dumps(core.records())))
    assert problems == [] and rebuilt.records() == core.records()
    assert rebuilt.outstanding() == [op(R1, True)]
    rebuilt.handle(done(R1, True))
    assert rebuilt.outstanding() == [op(R2, False)]
    damaged, problems = ShardDDLCore.rebuild({"x": {"mode": "pessimistic"}, "y": {"mode": "?"},
                                              **core.records()})
    assert [p.code for p in problems] == [38009, 38009] and damaged.records() == core.records()


def test_step_merge_sends_each_operation_once() -> None:
    merged = Step({"a"}, [op(R1, True)]).merge(Step({"b"}, [op(R1, True), op(R2, False)]))
    assert merged.touched == {"a", "b"} and merged.operations == [op(R1, True), op(R2, False)]


# -- the loop over an in-memory Kafka ---------------------------------------------------------

class FakeKafka:
    """The ddl topic, the committed offset, the locks topic and the ops topic, in memory."""

    def __init__(self) -> None:
        self.ddl: list[ShardMessage | None] = []  # None: a record that does not decode
        self.committed = 0
        self.locks: dict[str, dict[str, Any]] = {}
        self.ops: list[Operation] = []
        self.transactions = 0
        self.fail_commits = 0
        self.links = 0
        self.guard = threading.Lock()

    def open(self) -> FakeLink:
        self.links += 1
        return FakeLink(self)

    def send(self, *messages: ShardMessage | None) -> None:
        with self.guard:
            self.ddl.extend(messages)

    def ops_to(self, source: str) -> list[Operation]:
        with self.guard:
            return [o for o in self.ops if o.source == source]


class FakeLink:
    """A session's view: reads from the committed offset; commits all or nothing."""

    def __init__(self, kafka: FakeKafka) -> None:
        self.kafka = kafka
        self.position = kafka.committed

    def read_locks(self) -> dict[str, dict[str, Any]]:
        return json.loads(json.dumps(self.kafka.locks))

    def poll(self, timeout: float) -> Delivery | None:
        with self.kafka.guard:
            if self.position >= len(self.kafka.ddl):
                message = problem = None
                found = False
            else:
                message, found = self.kafka.ddl[self.position], True
                problem = None if message is not None else ERR_SHARD_TRANSACTION(
                    op="x", topic="y")  # any coded error stands for a decode failure
                self.position += 1
        if not found:
            time.sleep(0.005)
            return None
        return Delivery("dm.ddl", 0, self.position - 1, message, problem)

    def commit(self, writes: Sequence[tuple[str, dict[str, Any] | None]],
               operations: Sequence[Operation], consumed: Delivery | None) -> None:
        with self.kafka.guard:
            if self.kafka.fail_commits:
                self.kafka.fail_commits -= 1
                raise ERR_SHARD_TRANSACTION(op="commit", topic="dm.locks")
            for key, lock in writes:
                if lock is None:
                    self.kafka.locks.pop(key, None)
                else:
                    self.kafka.locks[key] = json.loads(json.dumps(lock))
            self.kafka.ops.extend(operations)
            if consumed is not None:
                self.kafka.committed = consumed.offset + 1
            self.kafka.transactions += 1

    def close(self) -> None:
        pass


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def kafka() -> FakeKafka:
    return FakeKafka()


def running(kafka: FakeKafka, unlock_timeout: float = 5.0) -> ShardDDLService:
    service = ShardDDLService(kafka.open, unlock_timeout=unlock_timeout).start()
    wait_until(service.ready.is_set)
    return service


def test_the_loop_commits_each_message_with_its_locks_and_operations(kafka: FakeKafka) -> None:
    service = running(kafka)
    try:
        kafka.send(pinfo(R1), pinfo(R2))
        wait_until(lambda: kafka.committed == 2)
        assert kafka.ops == [op(R1, True)] and kafka.locks[LOCK]["ready"] == {R1: True, R2: True}
        shown = service.show(TASK_NAME, [])
        assert shown["result"] is True and shown["locks"][0]["synced"] == [R1, R2]
        kafka.send(None, done(R1, True), done(R2, False))  # an undecodable record is skipped
        wait_until(lambda: kafka.committed == 5)
        assert kafka.ops == [op(R1, True), op(R2, False)] and kafka.locks == {}
        assert service.show(None, []) == {"result": True, "msg": "no DDL lock exists",
                                          "locks": []}
    finally:
        service.stop()


def test_a_new_session_rebuilds_and_sends_the_outstanding_operations_again(
        kafka: FakeKafka) -> None:
    service = running(kafka)
    kafka.send(pinfo(R1), pinfo(R2))
    wait_until(lambda: kafka.committed == 2)
    service.stop()
    assert service.show(None, [])["result"] is False  # not leading: nothing is served
    service.start()
    wait_until(lambda: len(kafka.ops) == 2)
    try:
        assert kafka.ops == [op(R1, True), op(R1, True)] and kafka.links == 2
        assert service.show(TASK_NAME, [R2])["locks"][0]["owner"] == R1
        assert service.show(TASK_NAME, [R3])["locks"] == []
    finally:
        service.stop()


def test_a_failed_transaction_drops_the_state_and_reads_the_message_again(
        kafka: FakeKafka) -> None:
    service = running(kafka)
    try:
        kafka.send(pinfo(R1))
        wait_until(lambda: kafka.committed == 1)
        kafka.fail_commits = 1
        kafka.send(pinfo(R2))
        wait_until(lambda: kafka.committed == 2, timeout=15)
        assert kafka.links == 2 and kafka.ops == [op(R1, True)]  # nothing from the aborted one
        assert kafka.locks[LOCK]["ready"] == {R1: True, R2: True}
    finally:
        service.stop()


def _unlock_in_thread(service: ShardDDLService, *args: Any) -> tuple[threading.Thread,
                                                                       dict[str, Any]]:
    answer: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: answer.update(service.unlock(*args)))
    thread.start()
    return thread, answer


def test_unlock_waits_for_the_owners_done_through_the_ddl_topic(kafka: FakeKafka) -> None:
    service = running(kafka)
    try:
        kafka.send(pinfo(R1))
        wait_until(lambda: kafka.committed == 1)
        thread, answer = _unlock_in_thread(service, LOCK)
        wait_until(lambda: kafka.ops_to(R1) == [op(R1, True)])
        assert kafka.locks[LOCK]["forced"] == [R2] and not answer
        kafka.send(done(R1, True))
        thread.join(10)
        assert answer == {"result": True, "msg": ""} and kafka.locks == {}
        assert service.show(TASK_NAME, [])["msg"] == "no DDL lock exists"
    finally:
        service.stop()


def test_unlock_with_owner_sends_the_skips_once(kafka: FakeKafka) -> None:
    service = running(kafka)
    try:
        kafka.send(pinfo(R1, sources=(R1, R2, R3)), pinfo(R2, sources=(R1, R2, R3)))
        wait_until(lambda: kafka.committed == 2)
        thread, answer = _unlock_in_thread(service, LOCK, R2)
        wait_until(lambda: kafka.ops_to(R2) == [op(R2, True)])
        kafka.send(done(R2, True))
        thread.join(10)
        assert answer == {"result": True, "msg": ""} and kafka.locks == {}
        assert kafka.ops_to(R1) == [op(R1, False)] and kafka.ops_to(R3) == []
    finally:
        service.stop()


def test_unlock_times_out_with_38005_or_removes_with_force_remove(kafka: FakeKafka) -> None:
    service = running(kafka, unlock_timeout=0.3)
    try:
        kafka.send(pinfo(R1))
        wait_until(lambda: kafka.committed == 1)
        refused = service.unlock(LOCK)
        assert refused["result"] is False and "code=38005" in refused["msg"]
        assert kafka.locks[LOCK]["ready"] == {R1: True, R2: False}
        assert service.unlock(LOCK, "", True) == {"result": True, "msg": ""}
        assert kafka.locks == {}
        missing = service.unlock(LOCK)
        assert missing["result"] is False and "code=38002" in missing["msg"]
    finally:
        service.stop()


def test_unlock_refuses_optimistic_locks(kafka: FakeKafka) -> None:
    service = running(kafka)
    try:
        kafka.send(table("t0"))
        wait_until(lambda: OLOCK in kafka.locks)
        answer = service.unlock(OLOCK)
        assert answer["result"] is False and "code=38010" in answer["msg"]
    finally:
        service.stop()


def test_an_unlock_in_progress_is_answered_when_the_service_stops(kafka: FakeKafka) -> None:
    service = running(kafka)
    kafka.send(pinfo(R1))
    wait_until(lambda: kafka.committed == 1)
    thread, answer = _unlock_in_thread(service, LOCK)
    wait_until(lambda: bool(kafka.ops_to(R1)))
    service.stop()
    thread.join(10)
    assert answer["result"] is False and "code=38012" in answer["msg"]
    assert kafka.locks[LOCK]["forced"] == [R2]  # the next leader finishes it with the done


def test_lock_value_is_the_avro_record() -> None:
    core = ShardDDLCore()
    core.handle(pinfo(R1))
    lock = core.record(LOCK)
    assert lock is not None
    value = lock_value(lock)
    assert (value["id"], value["mode"], value["task"]) == (LOCK, "pessimistic", TASK_NAME)
    assert json.loads(value["lock"]) == lock
    from kdm.avro import AvroCodec
    codec = AvroCodec()
    assert codec.decode(codec.encode("io.kdm.control.ShardLock", value, "dm.locks")) == (
        "io.kdm.control.ShardLock", value)


# -- the verbs: Control, the HTTP API and the CLI ---------------------------------------------

class ControlHarness:
    """A Control over fakes with a real shard-DDL service over the in-memory Kafka."""

    def __init__(self, kafka: FakeKafka) -> None:
        self.registry = FakeRegistry()
        self.forgotten: list[str] = []
        self.service = running(kafka, unlock_timeout=0.5)
        self.control = Control(KafkaConfig(), self.registry,  # type: ignore[arg-type]
                               FakeTable(), FakeTable(),  # type: ignore[arg-type]
                               precheck=lambda *a: {"result": True, "msg": "check pass!!!"},
                               placement_of=lambda kafka, role: Placement(24, {}),
                               ask=lambda *a: None, locks=self.service,
                               forget_locks=self.forgotten.append)
        self.control.operate_source("create", [SOURCE], [])

    def serve(self) -> ApiServer:
        return ApiServer("127.0.0.1", 0, Handlers(self.control, None),  # type: ignore[arg-type]
                         lambda: True, lambda: "").start()


def _ctl(server: ApiServer, *args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(main, [*args, "--master-addr", f"127.0.0.1:{server.port}"])
    return result.exit_code, json.loads(result.stdout)


def test_show_and_unlock_through_the_api_and_the_cli(kafka: FakeKafka, tmp_path: Any) -> None:
    h = ControlHarness(kafka)
    server = h.serve()
    try:
        assert _ctl(server, "show-ddl-locks") == (0, {"result": True,
                                                      "msg": "no DDL lock exists",
                                                      "locks": []})
        kafka.send(pinfo(R1))
        wait_until(lambda: kafka.committed == 1)
        task_file = tmp_path / "task.yaml"
        task_file.write_text(TASK.replace("name: \"demo\"", f"name: {TASK_NAME}"))
        code, shown = _ctl(server, "show-ddl-locks", "-s", R2, str(task_file))
        assert code == 0 and shown == {"result": True, "msg": "", "locks": [{
            "ID": LOCK, "task": TASK_NAME, "mode": "pessimistic", "owner": R1,
            "DDLs": list(ADD_C2), "synced": [R1], "unsynced": [R2]}]}
        assert _ctl(server, "show-ddl-locks", "other")[1]["msg"] == "no DDL lock exists"
        code, refused = _ctl(server, "unlock-ddl-lock", "--owner", R2, LOCK)
        assert code == 1 and refused["result"] is False and "code=38004" in refused["msg"]
        code, timed_out = _ctl(server, "unlock-ddl-lock", LOCK)
        assert code == 1 and "code=38005" in timed_out["msg"]
        assert _ctl(server, "unlock-ddl-lock", "--force-remove", LOCK) == (
            0, {"result": True, "msg": ""})
        assert _ctl(server, "show-ddl-locks", TASK_NAME)[1]["locks"] == []
    finally:
        server.stop()
        h.service.stop()


def test_the_api_checks_the_unlock_body(kafka: FakeKafka) -> None:
    h = ControlHarness(kafka)
    server = h.serve()
    try:
        assert server.answer("POST", "/api/v1/ddl-locks/unlock", b'{"force_remove": "y"}'
                             )[0] == 400
        code, body = server.answer("POST", "/api/v1/ddl-locks/unlock", b"{}")
        assert code == 200 and body == {"result": False, "msg": "unlock-ddl-lock needs a lock "
                                        "ID (see show-ddl-locks)"}
        code, body = server.answer("GET", "/api/v1/ddl-locks?task=x&source=a", b"")
        assert code == 200 and body == {"result": True, "msg": "no DDL lock exists",
                                        "locks": []}
    finally:
        server.stop()
        h.service.stop()


def test_a_standby_sends_lock_verbs_to_the_leader() -> None:
    control = Control(KafkaConfig(), FakeRegistry(), FakeTable(),  # type: ignore[arg-type]
                      FakeTable())  # type: ignore[arg-type]
    standby = ApiServer("127.0.0.1", 0, Handlers(control, None),  # type: ignore[arg-type]
                        lambda: False, lambda: "10.0.0.1:8261")
    for method, path in (("GET", "/api/v1/ddl-locks"), ("POST", "/api/v1/ddl-locks/unlock")):
        code, body = standby.answer(method, path, b"{}")
        assert code == 503 and isinstance(body, dict) and body["leader"] == "10.0.0.1:8261"
    no_service = control.show_ddl_locks(None, [])
    assert no_service["result"] is False and "code=38012" in no_service["msg"]


def test_start_task_remove_meta_forgets_the_locks_only_for_every_source(
        kafka: FakeKafka, monkeypatch: pytest.MonkeyPatch) -> None:
    h = ControlHarness(kafka)
    try:
        monkeypatch.setattr(h.control, "_remove_meta", lambda task, sources: "")
        assert h.control.start_task(TASK, True, ["mysql-replica-01"])["result"] is True
        assert h.forgotten == ["demo"]

        def refuse(task: str) -> None:
            raise ERR_SHARD_TRANSACTION(op="send remove_task", topic="dm.ddl")
        h.control.forget_locks = refuse
        h.control.registry.items["task"].clear()  # type: ignore[attr-defined]
        failed = h.control.start_task(TASK, True, [])
        assert failed["result"] is False and "code=38013" in failed["msg"]
    finally:
        h.service.stop()


def test_remove_meta_on_some_sources_keeps_the_locks() -> None:
    calls: list[str] = []

    class Task:
        name = "t"

        def sources(self) -> list[str]:
            return [R1, R2]
    control = Control(KafkaConfig(), FakeRegistry(), FakeTable(),  # type: ignore[arg-type]
                      FakeTable(), forget_locks=calls.append)  # type: ignore[arg-type]
    assert control._remove_locks(Task(), [R1]) == "" and calls == []  # type: ignore[arg-type]
    assert control._remove_locks(Task(), [R2, R1]) == "" and calls == ["t"]  # type: ignore[arg-type]


def test_an_error_operation_round_trips_and_old_messages_still_decode() -> None:
    refused = PessimisticOperation(LOCK, TASK_NAME, R2, DROP_C2, False, error="[code=38001]")
    assert PessimisticOperation.from_dict(refused.to_dict()) == refused
    old = {k: v for k, v in op(R1, True).to_dict().items() if k != "error"}
    assert PessimisticOperation.from_dict(old) == op(R1, True)

