"""The leading coordinator's shard-DDL loop against the real Kafka, the subtasks played by hand
with `ShardChannel`: pessimistic exec/skip, a restart and a takeover mid-lock (locks rebuilt,
operations re-sent), SIGKILL at both commit fault points (no lock lost or doubled), seed
003's unlock-ddl-lock scenarios, 38001's error operation, and remove_task.

Every test has its own topic prefix (the `kafka` fixture); every process started here is
stopped (or killed) by its PID."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import KafkaError, TopicPartition

from cli.main import main
from coordinator.service import Coordinator
from coordinator.shardddl.link import send_remove_task
from kdm.config.service import KafkaConfig
from kdm.relay_log import TopicReader, open_consumer
from kdm.shard_ddl import (
    PessimisticInfo,
    PessimisticOperation,
    ShardChannel,
    ShardMessage,
    info_message,
    operation_message,
)
from kdm.stack.process import free_ports
from kdm.topics import Topics
from tests.integration.control_support import Service
from tests.integration.relay_support import wait_for

pytestmark = pytest.mark.integration

TASK = "test"
R1, R2, R3 = "mysql-replica-01", "mysql-replica-02", "mysql-replica-03"
ADD_C2 = ("USE `shard_db`; ALTER TABLE `shard_db`.`shard_table` ADD COLUMN `c2` int(11);",)
DROP_C2 = ("USE `shard_db`; ALTER TABLE `shard_db`.`shard_table` DROP COLUMN `c2`;",)
LOCK = "test-`shard_db`.`shard_table`"
NO_LOCK = {"result": True, "msg": "no DDL lock exists", "locks": []}
WAIT = 60.0


def info(source: str, sources: tuple[str, ...] = (R1, R2),
         ddls: tuple[str, ...] = ADD_C2) -> ShardMessage:
    """A subtask's pessimistic info for the seed's target table."""
    return info_message(PessimisticInfo(TASK, source, f"shard_db_{source[-1]}", "shard_table_1",
                                        "shard_db", "shard_table", ddls, sources))


class Subtasks:
    """The sync consumers' side, by hand: one channel shared by every source."""

    def __init__(self, kafka: KafkaConfig) -> None:
        self.channel = ShardChannel(kafka)

    def mark(self) -> int:
        return self.channel.mark()

    def send(self, message: ShardMessage) -> None:
        self.channel.send(message)

    def operation(self, mark: int, source: str) -> PessimisticOperation:
        """The first operation for `source` at or after `mark` (failing after WAIT)."""
        deadline = time.monotonic() + WAIT
        found = self.channel.wait(mark, lambda m: m.source == source and m.lock_id == LOCK,
                                  lambda: time.monotonic() > deadline)
        assert found is not None, f"no operation for {source} within {WAIT}s"
        op = found.operation()
        assert isinstance(op, PessimisticOperation)
        return op

    def done(self, op: PessimisticOperation) -> None:
        self.channel.send(operation_message(op, done=True))


@pytest.fixture
def subtasks(kafka: KafkaConfig) -> Iterator[Subtasks]:
    made = Subtasks(kafka)
    try:
        yield made
    finally:
        made.channel.close()


@contextmanager
def coordinator(kafka: KafkaConfig, unlock_timeout: float = 60.0) -> Iterator[Coordinator]:
    """An in-process coordinator that leads, with its shard-DDL loop running."""
    running = Coordinator(kafka, "127.0.0.1", 0, unlock_timeout=unlock_timeout).start()
    try:
        wait_for(lambda: running.is_leader() and running.shardddl.ready.is_set(), WAIT,
                 "the coordinator to lead with its locks loaded")
        yield running
    finally:
        running.close()


def ctl(addr: str, *args: str) -> tuple[int, dict[str, Any]]:
    """A dmctl verb through the CLI: (exit code, JSON answer)."""
    result = CliRunner().invoke(main, [*args, "--master-addr", addr], catch_exceptions=False)
    try:
        return result.exit_code, json.loads(result.stdout)
    except ValueError as exc:
        raise AssertionError(f"{args}: not JSON: {result.output!r}") from exc


def locks_shown(addr: str) -> list[dict[str, Any]]:
    code, answer = ctl(addr, "show-ddl-locks", TASK)
    assert code == 0 and answer["result"] is True, answer
    locks: list[dict[str, Any]] = answer["locks"]
    return locks


def lock_entry(synced: list[str], unsynced: list[str], owner: str = R1) -> dict[str, Any]:
    """show-ddl-locks' element for the lock, as seed 003 prints it."""
    return {"ID": LOCK, "task": TASK, "mode": "pessimistic", "owner": owner,
            "DDLs": list(ADD_C2), "synced": synced, "unsynced": unsynced}


def shows_synced(addr: str) -> None:
    """Wait until show-ddl-locks lists the lock with both sources synced: the leader shows
    what it committed once the commit returns, which may be just after a subtask read the
    operation committed with it."""
    wait_for(lambda: locks_shown(addr) == [lock_entry([R1, R2], [])], WAIT,
             "the lock shown synced")


def operations_sent(kafka: KafkaConfig) -> list[tuple[str, bool]]:
    """(source, exec) of every committed operation on the ddl-ops topic, in order."""
    with TopicReader(kafka, Topics(kafka.topic_prefix).ddl_ops().name) as reader:
        low, high = reader.bounds()
        messages = [ShardMessage.from_record(m.value) for m in reader.read(low)] \
            if high > low else []
    return [(m.source, bool((m.body or {})["exec"])) for m in messages if m.lock_id == LOCK]


def stored_locks(kafka: KafkaConfig) -> dict[str, bool]:
    """The locks topic as a read_committed reader sees it: lock ID -> present (False: its
    last record is a tombstone)."""
    topic = Topics(kafka.topic_prefix).compacted("locks").name
    consumer = open_consumer(kafka)
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30,
                                                 cached=False)
        consumer.assign([TopicPartition(topic, 0, 0)])
        found: dict[str, bool] = {}
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            error = msg.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                if consumer.position([TopicPartition(topic, 0)])[0].offset >= high:
                    return found
                continue
            found[(msg.key() or b"").decode()] = msg.value() is not None
            if (msg.offset() or 0) + 1 >= high:
                return found
        raise AssertionError("the locks topic was not read to its end")
    finally:
        consumer.close()


def finish_lock(addr: str, subtasks: Subtasks, exec_op: PessimisticOperation,
                others: tuple[str, ...] = (R2,)) -> None:
    """The owner reports done, the others get skip and report done: the lock goes."""
    mark = subtasks.mark()
    subtasks.done(exec_op)
    for source in others:
        skip = subtasks.operation(mark, source)
        assert skip.exec is False and skip.error == ""
        subtasks.done(skip)
    wait_for(lambda: ctl(addr, "show-ddl-locks", TASK)[1] == NO_LOCK, WAIT, "the lock to go")


# -- in-process coordinators ------------------------------------------------------------------

def test_owner_executes_the_other_skips_and_the_lock_goes(kafka: KafkaConfig,
                                                          subtasks: Subtasks) -> None:
    with coordinator(kafka) as leader:
        assert ctl(leader.name, "show-ddl-locks") == (0, NO_LOCK)
        mark = subtasks.mark()
        subtasks.send(info(R1))
        wait_for(lambda: bool(locks_shown(leader.name)), WAIT, "the lock to form")
        assert locks_shown(leader.name) == [lock_entry([R1], [R2])]
        assert ctl(leader.name, "show-ddl-locks", "-s", R3)[1] == NO_LOCK
        subtasks.send(info(R2))
        exec_op = subtasks.operation(mark, R1)
        assert exec_op.exec is True and exec_op.ddls == ADD_C2
        shows_synced(leader.name)
        finish_lock(leader.name, subtasks, exec_op)
    assert operations_sent(kafka) == [(R1, True), (R2, False)]
    assert stored_locks(kafka) == {LOCK: False}


def test_a_restarted_coordinator_rebuilds_the_lock_and_sends_its_operation_again(
        kafka: KafkaConfig, subtasks: Subtasks) -> None:
    with coordinator(kafka) as leader:
        mark = subtasks.mark()
        subtasks.send(info(R1))
        subtasks.send(info(R2))
        first = subtasks.operation(mark, R1)
    again = subtasks.mark()
    with coordinator(kafka) as leader:
        resent = subtasks.operation(again, R1)
        assert resent == first and resent.exec is True
        assert locks_shown(leader.name) == [lock_entry([R1, R2], [])]
        finish_lock(leader.name, subtasks, resent)
    assert operations_sent(kafka) == [(R1, True), (R1, True), (R2, False)]


def test_unlock_ddl_lock_scenario_1_a_source_that_never_reports(kafka: KafkaConfig,
                                                                subtasks: Subtasks) -> None:
    with coordinator(kafka) as leader:
        mark = subtasks.mark()
        subtasks.send(info(R1))
        wait_for(lambda: bool(locks_shown(leader.name)), WAIT, "the lock to form")
        assert ctl(leader.name, "show-ddl-locks", TASK)[1] == {
            "result": True, "msg": "", "locks": [lock_entry([R1], [R2])]}
        answer: dict[str, Any] = {}
        unlock = threading.Thread(target=lambda: answer.update(
            zip(("code", "json"), ctl(leader.name, "unlock-ddl-lock", LOCK), strict=True)))
        unlock.start()
        exec_op = subtasks.operation(mark, R1)
        assert exec_op.exec is True and not answer  # unlock waits for the owner's done
        subtasks.done(exec_op)
        unlock.join(WAIT)
        assert answer == {"code": 0, "json": {"result": True, "msg": ""}}
        assert ctl(leader.name, "show-ddl-locks", TASK) == (0, NO_LOCK)
    assert operations_sent(kafka) == [(R1, True)]
    assert stored_locks(kafka) == {LOCK: False}


def test_unlock_ddl_lock_with_owner_and_when_the_owner_is_not_done(
        kafka: KafkaConfig, subtasks: Subtasks) -> None:
    three = (R1, R2, R3)
    with coordinator(kafka, unlock_timeout=3.0) as leader:
        mark = subtasks.mark()
        subtasks.send(info(R1, three))
        subtasks.send(info(R2, three))
        wait_for(lambda: locks_shown(leader.name) == [lock_entry([R1, R2], [R3])], WAIT,
                 "both infos in the lock")
        code, refused = ctl(leader.name, "unlock-ddl-lock", "--owner", R3, LOCK)
        assert code == 1 and "code=38004" in refused["msg"]
        code, timed_out = ctl(leader.name, "unlock-ddl-lock", LOCK)  # R1 never answers
        assert code == 1 and timed_out["result"] is False and "code=38005" in timed_out["msg"]
        assert locks_shown(leader.name) == [lock_entry([R1, R2], [R3])]
        stale = subtasks.operation(mark, R1)
        assert stale.exec is True  # that unlock's exec, which R1 ignores here
        answer: dict[str, Any] = {}
        unlock = threading.Thread(target=lambda: answer.update(
            zip(("code", "json"), ctl(leader.name, "unlock-ddl-lock", "--owner", R2, LOCK),
                strict=True)))
        unlock.start()
        exec_op = subtasks.operation(mark, R2)
        assert exec_op.exec is True
        skips = subtasks.mark()
        subtasks.done(exec_op)
        unlock.join(WAIT)
        assert answer == {"code": 0, "json": {"result": True, "msg": ""}}
        skip = subtasks.operation(skips, R1)
        assert skip.exec is False
        assert ctl(leader.name, "show-ddl-locks") == (0, NO_LOCK)
    assert operations_sent(kafka) == [(R1, True), (R2, True), (R1, False)]


def test_different_ddls_pause_the_source_and_remove_task_forgets_the_lock(
        kafka: KafkaConfig, subtasks: Subtasks) -> None:
    with coordinator(kafka) as leader:
        mark = subtasks.mark()
        subtasks.send(info(R1))
        subtasks.send(info(R2, ddls=DROP_C2))
        refused = subtasks.operation(mark, R2)
        assert refused.exec is False and refused.ddls == DROP_C2
        assert "code=38001" in refused.error
        assert locks_shown(leader.name) == [lock_entry([R1], [R2])]
        send_remove_task(kafka, TASK)
        wait_for(lambda: ctl(leader.name, "show-ddl-locks")[1] == NO_LOCK, WAIT,
                 "remove_task to drop the lock")
    assert stored_locks(kafka) == {LOCK: False}


# -- coordinator processes: SIGKILL at the commit points, a standby taking over ------------------

class Coordinators:
    """`kdm coordinator run` processes on their own ports, stopped by PID at the end."""

    def __init__(self, kafka: KafkaConfig, logs: Path) -> None:
        self.kafka = kafka
        self.logs = logs
        self.started: list[Service] = []

    def start(self, port: int, faults: str = "") -> Service:
        service = Service(["coordinator", "run", "--addr", f"127.0.0.1:{port}"], self.kafka,
                          self.logs / f"coordinator-{port}.log",
                          env={"KDM_FAULTS": faults} if faults else {}).start()
        self.started.append(service)
        return service

    def stop_all(self) -> None:
        for service in self.started:
            service.stop()


@pytest.fixture
def processes(kafka: KafkaConfig, tmp_path: Path) -> Iterator[Coordinators]:
    made = Coordinators(kafka, tmp_path)
    try:
        yield made
    finally:
        made.stop_all()


def leads(addr: str) -> bool:
    """Whether the coordinator at `addr` leads and its locks are loaded."""
    try:
        code, answer = ctl(addr, "show-ddl-locks", "no-such-task")
    except AssertionError:
        return False
    return code == 0 and answer == NO_LOCK


@pytest.mark.parametrize("point", ["before_commit", "after_commit"])
def test_sigkill_at_a_commit_point_neither_loses_nor_doubles_the_lock(
        kafka: KafkaConfig, subtasks: Subtasks, processes: Coordinators, point: str) -> None:
    port = free_ports(1)[0]
    addr = f"127.0.0.1:{port}"
    # commit 1: R1's info; commit 2, where it dies: R2's info with the lock synced and exec
    doomed = processes.start(port, faults=f"coordinator.shardddl.{point}:2")
    wait_for(lambda: leads(addr), WAIT, "the coordinator to lead")
    mark = subtasks.mark()
    subtasks.send(info(R1))
    subtasks.send(info(R2))
    assert doomed.proc is not None
    wait_for(lambda: doomed.proc is not None and doomed.proc.poll() is not None, WAIT,
             f"the coordinator to die at {point}")
    assert doomed.proc.returncode == -9
    processes.start(port)
    wait_for(lambda: leads(addr), WAIT, "the restarted coordinator to lead")
    exec_op = subtasks.operation(mark, R1)
    assert exec_op.exec is True
    shows_synced(addr)
    # before the commit the exec was never visible: only the restarted leader's one; after
    # it, the restarted leader sends it once more (operations are idempotent)
    execs = [(R1, True)] * (1 if point == "before_commit" else 2)
    wait_for(lambda: operations_sent(kafka) == execs, WAIT, f"exactly {len(execs)} exec")
    finish_lock(addr, subtasks, exec_op)
    assert operations_sent(kafka) == [*execs, (R2, False)]
    assert stored_locks(kafka) == {LOCK: False}


def test_a_standby_takes_over_when_the_leader_is_killed(
        kafka: KafkaConfig, subtasks: Subtasks, processes: Coordinators) -> None:
    first_port, second_port = free_ports(2)
    first, second = f"127.0.0.1:{first_port}", f"127.0.0.1:{second_port}"
    leader = processes.start(first_port)
    wait_for(lambda: leads(first), WAIT, "the first coordinator to lead")
    processes.start(second_port)

    def refused_by_standby() -> bool:
        out = CliRunner().invoke(main, ["show-ddl-locks", "--master-addr", second])
        return out.exit_code == 1 and "is a standby" in out.output and first in out.output
    wait_for(refused_by_standby, WAIT, "the standby to send show-ddl-locks to the leader")
    mark = subtasks.mark()
    subtasks.send(info(R1))
    wait_for(lambda: locks_shown(first) == [lock_entry([R1], [R2])], WAIT, "the lock")
    leader.kill()
    subtasks.send(info(R2))  # read by whoever leads next
    both = f"{first},{second}"
    wait_for(lambda: leads(second), WAIT, "the standby to take over")
    exec_op = subtasks.operation(mark, R1)
    assert exec_op.exec is True
    shows_synced(both)
    finish_lock(both, subtasks, exec_op)
    assert operations_sent(kafka) == [(R1, True), (R2, False)]
