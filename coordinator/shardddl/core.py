"""The leader's shard-DDL state machine without I/O: messages in, lock changes and operations out.

`ShardDDLCore` holds both keepers. `handle` takes one message of the ddl topic and returns a
`Step`: the IDs of the locks it touched (the service writes each one's new state, or a
tombstone when the lock is gone, to the locks topic), the operations to send, and the coded
problems to log. The service commits a step, with the message's offset, in one Kafka
transaction, so what the keepers decided and what was sent never part (kdm/shard_ddl.py,
step 3). The same holds for `unlock` and `finish_unlock`, the two halves of
`unlock-ddl-lock` that the service runs around its wait for the owner's done.

Messages, by (kind, mode):

| message                  | keeper call                          | operations sent          |
|--------------------------|--------------------------------------|--------------------------|
| info, pessimistic        | `try_sync`, then `operations(lock)`  | exec / skips when due    |
| ... its DDLs differ      | nothing changes (38001)              | the error, to its source |
| done, pessimistic        | `mark_done`                          | skips after the owner's  |
| info, optimistic         | `try_sync`                           | its DDLs, or the conflict|
| done, optimistic         | `mark_done`                          |                          |
| table / drop_table       | `add_table` / `remove_table`         |                          |
| remove_task (either mode)| `remove_task` in both keepers        |                          |

A message whose body does not parse is a problem (38011), never an exception: the service
logs it and commits past it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from coordinator.shardddl.optimism import OptimisticKeeper, OptimisticLock
from coordinator.shardddl.pessimism import PessimisticKeeper, PessimisticLock
from kdm.errors import (
    ERR_SHARD_DDL_DIFFERENT,
    ERR_SHARD_DDL_INFO,
    ERR_SHARD_DDL_UNSUPPORTED,
    ERR_SHARD_LOCK_LOAD,
    ERR_SHARD_MESSAGE_INVALID,
    ERR_SHARD_OPTIMISTIC_CONFLICT,
    ERR_SHARD_UNLOCK_OPTIMISTIC,
    KdmError,
)
from kdm.schema_table import TableSchema
from kdm.shard_ddl import (
    OPTIMISTIC,
    PESSIMISTIC,
    OptimisticInfo,
    OptimisticOperation,
    PessimisticInfo,
    PessimisticOperation,
    ShardMessage,
    same_ddls,
)
from kdm.shard_ddl import (
    lock_id as lock_id_of,
)

Operation = PessimisticOperation | OptimisticOperation
Lock = PessimisticLock | OptimisticLock
# an optimistic info that cannot join pauses its table rather than leaving it waiting
CONFLICTS = (ERR_SHARD_OPTIMISTIC_CONFLICT, ERR_SHARD_DDL_UNSUPPORTED, ERR_SHARD_DDL_INFO)


@dataclass
class Step:
    """What one message or one unlock half changed: locks to persist, operations to send.

    `error` is the answer of an unlock half (None: it succeeded); `problems` are logged."""

    touched: set[str] = field(default_factory=set)
    operations: list[Operation] = field(default_factory=list)
    problems: list[KdmError] = field(default_factory=list)
    error: KdmError | None = None

    def merge(self, other: Step) -> Step:
        """Both steps as one, each operation once (in order)."""
        operations = list(self.operations)
        operations += [op for op in other.operations if op not in operations]
        return Step(self.touched | other.touched, operations,
                    self.problems + other.problems, self.error or other.error)

    def empty(self) -> bool:
        """Whether nothing is to be written."""
        return not self.touched and not self.operations


def lock_from_dict(data: Mapping[str, Any]) -> Lock:
    """A persisted lock of either mode; damaged data raises ShardDDLLockLoad (38009)."""
    mode = data.get("mode") if isinstance(data, Mapping) else None
    if mode == PESSIMISTIC:
        return PessimisticLock.from_dict(data)
    if mode == OPTIMISTIC:
        return OptimisticLock.from_dict(data)
    raise ERR_SHARD_LOCK_LOAD(problem=f"unknown lock mode {mode!r}")


class ShardDDLCore:
    """Both keepers, fed one message (or one unlock half) at a time."""

    def __init__(self, pessimistic: PessimisticKeeper | None = None,
                 optimistic: OptimisticKeeper | None = None) -> None:
        self.pessimistic = pessimistic or PessimisticKeeper()
        self.optimistic = optimistic or OptimisticKeeper()

    @classmethod
    def rebuild(cls, stored: Mapping[str, Mapping[str, Any]]
                ) -> tuple[ShardDDLCore, list[KdmError]]:
        """The keepers of the locks topic's latest values (by lock ID); the damaged ones
        are left out and returned as problems (38009) to log."""
        pessimistic: list[PessimisticLock] = []
        optimistic: list[OptimisticLock] = []
        problems: list[KdmError] = []
        for key in sorted(stored):
            try:
                lock = lock_from_dict(stored[key])
            except KdmError as err:
                problems.append(err)
                continue
            if isinstance(lock, PessimisticLock):
                pessimistic.append(lock)
            else:
                optimistic.append(lock)
        return cls(PessimisticKeeper(pessimistic), OptimisticKeeper(optimistic)), problems

    # -- state ----------------------------------------------------------------------------

    def record(self, lock_id: str) -> dict[str, Any] | None:
        """The lock's persisted form, or None when it is gone (a tombstone)."""
        lock: Lock | None = self.pessimistic.get(lock_id) or self.optimistic.get(lock_id)
        return None if lock is None else lock.to_dict()

    def records(self) -> dict[str, dict[str, Any]]:
        """Every lock's persisted form, by ID."""
        locks: list[Lock] = [*self.pessimistic.locks(), *self.optimistic.locks()]
        return {lock.id: lock.to_dict() for lock in locks}

    def counts(self) -> dict[str, int]:
        """How many locks each mode holds."""
        return {PESSIMISTIC: len(self.pessimistic.locks()),
                OPTIMISTIC: len(self.optimistic.locks())}

    def outstanding(self) -> list[PessimisticOperation]:
        """The operations every synced pessimistic lock needs now (re-sent by a new leader)."""
        return [op for lock in self.pessimistic.locks()
                for op in self.pessimistic.operations(lock.id)]

    # -- messages ---------------------------------------------------------------------------

    def handle(self, message: ShardMessage, where: str = "?") -> Step:
        """Feed one message of the ddl topic (see the module docstring's table)."""
        handler = HANDLERS.get((message.kind, message.mode))
        if message.kind == "remove_task":
            handler = ShardDDLCore._remove_task
        if handler is None:
            return Step(problems=[_invalid(message, where, "not a message for the coordinator")])
        try:
            return handler(self, message)
        except (KeyError, TypeError, ValueError, AttributeError, KdmError) as exc:
            problem = exc.message if isinstance(exc, KdmError) else repr(exc)
            return Step(problems=[_invalid(message, where, problem)])

    def _pessimistic_info(self, message: ShardMessage) -> Step:
        info = PessimisticInfo.from_dict(_body(message))
        held = self.pessimistic.get(info.lock_id)
        if held is not None and held.is_done(info.source) and \
                not same_ddls(info.ddls, held.ddls):
            # the source's next DDL of this target while the lock of its previous one still
            # waits for others' done: not a conflict. Nothing is answered; the subtask sends
            # its info again until the old lock is gone and a new one forms.
            return Step()
        try:
            lock, _ = self.pessimistic.try_sync(info)
        except KdmError as err:
            if err.spec is not ERR_SHARD_DDL_DIFFERENT:
                raise
            refused = PessimisticOperation(info.lock_id, info.task, info.source, info.ddls,
                                           False, error=err.render())
            return Step(operations=[refused], problems=[err])
        return Step({lock.id}, list[Operation](self.pessimistic.operations(lock.id)))

    def _pessimistic_done(self, message: ShardMessage) -> Step:
        op = PessimisticOperation.from_dict(_body(message))
        lock = self.pessimistic.get(op.lock_id)
        # a done for an error, or for another lock of the same target (other DDLs), is stale
        if lock is None or op.error or not same_ddls(op.ddls, lock.ddls):
            return Step()
        skips = self.pessimistic.mark_done(op.lock_id, op.source)
        return Step({op.lock_id}, list[Operation](skips))

    def _optimistic_info(self, message: ShardMessage) -> Step:
        info = OptimisticInfo.from_dict(_body(message))
        try:
            op = self.optimistic.try_sync(info)
        except KdmError as err:
            if err.spec not in CONFLICTS:
                raise
            return Step({info.lock_id}, [OptimisticOperation.conflicted(info, err)], [err])
        return Step({op.lock_id}, [op])

    def _optimistic_done(self, message: ShardMessage) -> Step:
        op = OptimisticOperation.from_dict(_body(message))
        if op.conflict or not self.optimistic.mark_done(op.lock_id, op.source, op.up_schema,
                                                        op.up_table):
            return Step()
        return Step({op.lock_id})

    def _table(self, message: ShardMessage) -> Step:
        body = _body(message)
        structure = TableSchema.from_dict(body["structure"])
        lock = self.optimistic.add_table(message.task, message.source, *_names(body),
                                         structure)
        return Step({lock.id})

    def _drop_table(self, message: ShardMessage) -> Step:
        body = _body(message)
        names = _names(body)
        self.optimistic.remove_table(message.task, message.source, *names)
        return Step({lock_id_of(message.task, names[2], names[3])})

    def _remove_task(self, message: ShardMessage) -> Step:
        gone = self.pessimistic.remove_task(message.task)
        gone += self.optimistic.remove_task(message.task)
        return Step(set(gone))

    # -- unlock-ddl-lock ----------------------------------------------------------------------

    def unlock(self, lock_id: str, owner: str = "", force_remove: bool = False) -> Step:
        """The first half: force the lock synced; the `exec` for the owner (or the skips
        when it executed already). A refusal is the step's `error`: 38002 unknown lock,
        38003 every source acted (the lock is removed, so it is touched), 38004 an owner
        that is not a synced source, 38010 an optimistic lock."""
        if lock_id in self.optimistic:
            return Step(error=ERR_SHARD_UNLOCK_OPTIMISTIC(lock=lock_id))
        try:
            operations = self.pessimistic.unlock(lock_id, owner or None, force_remove)
        except KdmError as err:
            return Step({lock_id}, error=err)
        return Step({lock_id}, list(operations))

    def unlock_due(self, lock_id: str) -> bool:
        """Whether the wait for the owner is over: it executed, or the lock went meanwhile."""
        lock = self.pessimistic.get(lock_id)
        return lock is None or lock.executed

    def finish_unlock(self, lock_id: str) -> Step:
        """The second half, once the owner is done or the wait timed out: the skips for the
        waiting sources and the lock's tombstone; without the owner's done and without
        --force-remove the lock goes back to waiting and the error is 38005."""
        try:
            skips = self.pessimistic.finish_unlock(lock_id)
        except KdmError as err:
            return Step({lock_id}, error=err)
        return Step({lock_id}, list(skips))


HANDLERS: dict[tuple[str, str], Callable[[ShardDDLCore, ShardMessage], Step]] = {
    ("info", PESSIMISTIC): ShardDDLCore._pessimistic_info,
    ("done", PESSIMISTIC): ShardDDLCore._pessimistic_done,
    ("info", OPTIMISTIC): ShardDDLCore._optimistic_info,
    ("done", OPTIMISTIC): ShardDDLCore._optimistic_done,
    ("table", OPTIMISTIC): ShardDDLCore._table,
    ("drop_table", OPTIMISTIC): ShardDDLCore._drop_table,
}


def _body(message: ShardMessage) -> Mapping[str, Any]:
    if not isinstance(message.body, Mapping):
        raise ValueError("the message has no body")
    return message.body


def _names(body: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return (str(body["up_schema"]), str(body["up_table"]), str(body["down_schema"]),
            str(body["down_table"]))


def _invalid(message: ShardMessage, where: str, problem: str) -> KdmError:
    return ERR_SHARD_MESSAGE_INVALID(kind=f"{message.kind}/{message.mode}", task=message.task,
                                     source=message.source, where=where, problem=problem)


def operation_kind(op: Operation) -> str:
    """A metrics label for an operation: exec, skip, error (pessimistic); ddls, none,
    conflict (optimistic)."""
    if isinstance(op, PessimisticOperation):
        return "error" if op.error else "exec" if op.exec else "skip"
    return "conflict" if op.conflict else "ddls" if op.ddls else "none"
