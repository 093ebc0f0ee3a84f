"""Pessimistic shard-DDL locks: DM's pessimism Lock and LockKeeper as pure, in-memory values.

A lock exists per target table, ID ``<task>-`<schema>`.`<table>``` (DM's `GenDDLLockID`).
The sync consumer of each source coordinates its own shard tables first (reference
dm-manual-A §7.1, intra-worker algorithm): when every shard of that source has run the DDL
it sends one `PessimisticInfo`. The coordinator drives the lock with it:

1. A consumer sends an info (ddl topic). `try_sync` creates the lock on the first info (that
   source becomes the owner, its DDLs the lock's DDLs) and marks the source ready. A crash
   before the coordinator commits the info's offset replays it; `try_sync` is idempotent.
2. When every expected source is ready the lock is synced: `operations` yields `exec` for the
   owner. The coordinator persists the lock (`to_dict`) before sending; after a restart it
   re-sends `operations()` of every synced lock, so a crash between persist and send loses
   nothing (consumers act once per lock and source).
3. The owner runs the DDL downstream and reports done. A crash in the owner before the done
   notice makes it re-send its info, which resets its done flag: it gets `exec` again, so the
   owner must take "already applied" errors as success (DM documents the same).
4. `mark_done(owner)` marks the lock executed and yields `skip` for every other source.
5. Non-owners skip the DDL, seek back to the offset they remembered and replay (safe mode),
   then report done. A source that re-sends its info after done gets `skip` again.
6. When every source is done the lock is resolved and removed (tombstone on the locks topic).

`unlock-ddl-lock` (seed 003) is `unlock` then, once the coordinator stops waiting for the
owner, `finish_unlock`; `remove_source` handles a source removed from the task mid-lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from coordinator.shardddl.keeper import LockTable
from kdm.errors import (
    ERR_SHARD_DDL_DIFFERENT,
    ERR_SHARD_LOCK_LOAD,
    ERR_SHARD_LOCK_NOT_FOUND,
    ERR_SHARD_LOCK_RESOLVED,
    ERR_SHARD_OWNER_NOT_DONE,
    ERR_SHARD_OWNER_NOT_WAITING,
)
from kdm.shard_ddl import (
    PESSIMISTIC,
    PessimisticInfo,
    PessimisticOperation,
    ShardDDLAction,
    classify_shard_ddl,
    lock_id,
    same_ddls,
)

MODE = PESSIMISTIC
__all__ = ["MODE", "PessimisticInfo", "PessimisticKeeper", "PessimisticLock",
           "PessimisticOperation", "ShardDDLAction", "classify_shard_ddl", "lock_id",
           "same_ddls"]


class PessimisticLock:
    """One target table's lock: who must report the DDLs (`ready`) and who has acted (`done`).

    `executed` turns true when the owner reports its `exec` done: the DDLs are downstream.
    `exec_sent` records that the owner was told to execute: its done counts even if the lock
    is no longer synced by then (an unlock that gave up waiting reverted it).
    `forced` lists the sources `unlock-ddl-lock` marked ready without their info; they get
    no operation and are not waited for. `force_remove` is the pending unlock's flag."""

    mode = MODE

    def __init__(self, lock_id: str, task: str, owner: str, ddls: Sequence[str],
                 sources: Iterable[str], target: tuple[str, str] = ("", "")) -> None:
        self.id = lock_id
        self.task = task
        self.owner = owner
        self.ddls = tuple(ddls)
        self.target = target
        self.ready: dict[str, bool] = {}
        self.done: dict[str, bool] = {}
        self.executed = False
        self.exec_sent = False
        self.forced: tuple[str, ...] = ()
        self.force_remove = False
        self._join(sources)

    def _join(self, sources: Iterable[str]) -> None:
        for source in sources:
            self.ready.setdefault(source, False)
            self.done.setdefault(source, False)

    def try_sync(self, source: str, ddls: Sequence[str], sources: Iterable[str]) -> bool:
        """Mark `source` ready (once) and add newly expected sources; whether this synced it.

        DDLs other than the lock's raise ShardDDLDifferent (38001) and change nothing. A
        source that reports again after its operation was done lost it in a crash: its
        done flag is cleared so it is sent an operation again. A source `unlock` forced
        ready that reports after all is waited for like any other."""
        if not same_ddls(ddls, self.ddls):
            raise ERR_SHARD_DDL_DIFFERENT(lock_ddls=list(self.ddls), lock=self.id,
                                          ddls=list(ddls), source=source)
        was_synced = self.is_synced()
        self._join([*sources, source])
        if self.ready[source]:
            self.done[source] = False
        self.ready[source] = True
        self.forced = tuple(s for s in self.forced if s != source)
        return not was_synced and self.is_synced()

    def is_synced(self) -> bool:
        """Whether every expected source is ready."""
        return all(self.ready.values())

    def remain(self) -> int:
        """How many sources have not reported the DDLs yet."""
        return sum(not ready for ready in self.ready.values())

    def synced(self) -> list[str]:
        """The ready sources, sorted (show-ddl-locks' `synced`)."""
        return sorted(s for s, ready in self.ready.items() if ready)

    def unsynced(self) -> list[str]:
        """The sources still missing, sorted (show-ddl-locks' `unsynced`)."""
        return sorted(s for s, ready in self.ready.items() if not ready)

    def sources(self) -> list[str]:
        """Every source the lock involves, sorted."""
        return sorted(self.ready)

    def mark_done(self, source: str) -> None:
        """Record that `source` acted on its operation; the owner's done means executed.

        As in DM a done for a lock that is not synced is ignored: no operation was sent, so
        it is a stale notice for an earlier lock of the same target. The owner's done after
        its `exec` went out counts all the same: an `unlock-ddl-lock` that stopped waiting
        for a slow DDL reverted the lock, but the DDL ran, and the others must skip it once
        they arrive (or a second unlock sends the skips)."""
        if source not in self.done:
            return
        if not self.is_synced() and not (source == self.owner and self.exec_sent):
            return
        self.done[source] = True
        if source == self.owner:
            self.executed = True

    def is_done(self, source: str) -> bool:
        """Whether `source` has acted on its operation."""
        return self.done.get(source, False)

    def is_resolved(self) -> bool:
        """Whether every source the lock waits for has acted: the lock can go."""
        return all(done for s, done in self.done.items() if s not in self.forced)

    def remove_source(self, source: str) -> bool:
        """Forget a source that left the task; a gone owner passes to the first ready source."""
        if source not in self.ready:
            return False
        del self.ready[source], self.done[source]
        self.forced = tuple(s for s in self.forced if s != source)
        if source == self.owner and not self.executed and self.ready:
            self.owner = (self.synced() or self.sources())[0]
        return True

    def force_synced(self, owner: str, force_remove: bool) -> None:
        """unlock-ddl-lock: mark the missing sources ready, with `owner` executing.

        Sources an earlier, unfinished unlock forced stay forced (a second unlock-ddl-lock
        after a coordinator restart must not start waiting for them)."""
        self.forced = tuple(sorted({*self.forced, *self.unsynced()}))
        for source in self.forced:
            self.ready[source] = True
        if not self.executed:
            self.owner = owner
        self.force_remove = force_remove

    def revert_forced(self) -> None:
        """Undo `force_synced` after a failed unlock; a replaced owner stays."""
        for source in self.forced:
            self.ready[source] = False
        self.forced, self.force_remove = (), False

    def operations(self) -> list[PessimisticOperation]:
        """What must be outstanding now: nothing until synced, then `exec` for the owner
        until it is done, then `skip` for every waiting source not done."""
        if not self.is_synced():
            return []
        if not self.executed:
            self.exec_sent = True
            return [self._op(self.owner, True)]
        return self.skip_operations()

    def skip_operations(self) -> list[PessimisticOperation]:
        """`skip` for every waiting source not done (the owner too once it executed)."""
        return [self._op(s, False) for s in self.sources()
                if s not in self.forced and not self.done[s] and
                (self.executed or s != self.owner)]

    def _op(self, source: str, execute: bool) -> PessimisticOperation:
        return PessimisticOperation(self.id, self.task, source, self.ddls, execute)

    def to_dict(self) -> dict[str, Any]:
        """The persisted form (the locks topic's value, keyed by `id`)."""
        return {"id": self.id, "task": self.task, "mode": MODE, "target": list(self.target),
                "owner": self.owner, "ddls": list(self.ddls), "ready": dict(self.ready),
                "done": dict(self.done), "executed": self.executed,
                "exec_sent": self.exec_sent, "forced": list(self.forced),
                "force_remove": self.force_remove}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PessimisticLock:
        """Inverse of `to_dict`; damaged data raises ShardDDLLockLoad (38009)."""
        try:
            if data["mode"] != MODE:
                raise ValueError(f"mode {data['mode']!r} is not {MODE}")
            schema, table = data["target"]
            lock = cls(str(data["id"]), str(data["task"]), str(data["owner"]),
                       [str(d) for d in data["ddls"]], (), (str(schema), str(table)))
            lock.ready = {str(s): bool(r) for s, r in data["ready"].items()}
            lock.done = {str(s): bool(data["done"].get(s, False)) for s in lock.ready}
            lock.executed = bool(data["executed"])
            lock.exec_sent = bool(data.get("exec_sent", lock.executed))
            lock.forced = tuple(str(s) for s in data["forced"])
            lock.force_remove = bool(data["force_remove"])
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ERR_SHARD_LOCK_LOAD(err, problem=f"pessimistic lock: {err!r}") from err
        return lock


class PessimisticKeeper(LockTable[PessimisticLock]):
    """The pessimistic locks of every task, by ID; each method returns what to send.

    Algorithm (DM's pessimist, dm-manual-A §7.1). A lock waits until every source with shards
    of the target has reported the same DDLs; then the owner (the first source to report)
    executes them once, and only after the owner's done do the others skip them, because
    their DML after the DDL needs the downstream's new structure. Worked example: task
    `test`, mysql-replica-01 holds shard_db_1.shard_table_{1,2}, mysql-replica-02 holds
    shard_db_2.shard_table_{1,2}, all routed to shard_db.shard_table:

    | event                                        | lock (ready)      | operations sent      |
    |----------------------------------------------|-------------------|----------------------|
    | replica-02 t1 ALTER (consumer waits for t2)  | no lock yet       |                      |
    | replica-01 t1, t2 ALTER -> info from 01      | created, owner 01 | none (02 missing)    |
    | replica-02 t2 ALTER -> info from 02          | 01, 02: synced    | exec -> 01           |
    | done from 01                                 | executed          | skip -> 02           |
    | done from 02                                 | resolved, removed |                      |

    The order of the sources does not matter; the owner is whoever reported first. If
    replica-02 had reported `DROP COLUMN` instead, `try_sync` raises ShardDDLDifferent and
    replica-02 stays unsynced (shown by show-ddl-locks) until its DDL is replaced."""

    def try_sync(self, info: PessimisticInfo) -> tuple[PessimisticLock, bool]:
        """Add an info to its lock (created on the first); whether the lock became synced.

        When the lock is synced, send `operations(lock.id)` (again for a re-sent info)."""
        lock = self._locks.get(info.lock_id)
        if lock is None:
            lock = PessimisticLock(info.lock_id, info.task, info.source, info.ddls,
                                   info.sources, (info.down_schema, info.down_table))
            self._locks[lock.id] = lock
        return lock, lock.try_sync(info.source, info.ddls, info.sources)

    def operations(self, lock_id: str) -> list[PessimisticOperation]:
        """The operations the lock needs outstanding now (re-entrant; see the lock's)."""
        lock = self._locks.get(lock_id)
        return [] if lock is None else lock.operations()

    def mark_done(self, lock_id: str, source: str) -> list[PessimisticOperation]:
        """A source reported its operation done: the skips when that was the owner's exec.

        A resolved lock is removed (the caller writes its tombstone)."""
        lock = self._locks.get(lock_id)
        if lock is None:
            return []
        was_executed = lock.executed
        lock.mark_done(source)
        if lock.is_resolved():
            del self._locks[lock_id]
            return []
        return lock.operations() if lock.executed and not was_executed else []

    def remove_source(self, task: str, source: str) -> list[PessimisticOperation]:
        """A source left the task mid-lock (seed 003 scenario 1): stop waiting for it.

        Call it only when the source is removed from the task, not when its worker dies.
        Locks it was the last missing source of become synced; their operations come back.
        A removed owner that had not executed is replaced by the first ready source."""
        operations: list[PessimisticOperation] = []
        for lock in [lock for lock in self.locks() if lock.task == task]:
            if not lock.remove_source(source):
                continue
            if not lock.ready or lock.is_resolved():
                del self._locks[lock.id]
            else:
                operations += lock.operations()
        return operations

    def unlock(self, lock_id: str, owner: str | None = None,
               force_remove: bool = False) -> list[PessimisticOperation]:
        """unlock-ddl-lock (seed 003): force the lock synced; the `exec` for the owner.

        `owner` replaces the lock's owner (only for an owner removed from the task) and must
        be a synced source (ShardDDLOwnerNotWaiting, 38004). A lock whose sources all acted
        is removed with ShardDDLLockResolved (38003). When the owner executed already, the
        skips for the waiting sources come back instead. The caller then waits for the
        owner's done (fed through `mark_done`, which returns the skips) and calls
        `finish_unlock`."""
        lock = self._require(lock_id)
        if lock.is_resolved():
            del self._locks[lock_id]
            raise ERR_SHARD_LOCK_RESOLVED(lock=lock_id)
        chosen = owner or lock.owner
        if not lock.ready.get(chosen, False):
            raise ERR_SHARD_OWNER_NOT_WAITING(owner=chosen, synced=lock.synced(), lock=lock_id)
        lock.force_synced(chosen, force_remove)
        return lock.operations()

    def finish_unlock(self, lock_id: str) -> list[PessimisticOperation]:
        """End an unlock once the wait for the owner is over; the skips to send.

        If the owner executed, or `--force-remove` was given, the waiting non-owners get
        `skip` and the lock is removed, done or not (DM's steps 7-8). Otherwise the forced
        sources turn unsynced again and ShardDDLOwnerNotDone (38005) is raised. A lock that
        `mark_done` resolved meanwhile is gone already: nothing is left to send."""
        lock = self._locks.get(lock_id)
        if lock is None:
            return []
        if not lock.executed and not lock.force_remove:
            lock.revert_forced()
            raise ERR_SHARD_OWNER_NOT_DONE(owner=lock.owner, lock=lock_id)
        skips = lock.skip_operations()
        del self._locks[lock_id]
        return skips

    def _require(self, lock_id: str) -> PessimisticLock:
        lock = self._locks.get(lock_id)
        if lock is None:
            raise ERR_SHARD_LOCK_NOT_FOUND(lock=lock_id)
        return lock


