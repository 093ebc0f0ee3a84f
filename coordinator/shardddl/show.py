"""The shard-DDL views users see, shaped field for field as dmctl prints them.

- `show_ddl_locks`: seed 003's `show-ddl-locks` answer. Pessimistic locks show the owner
  (the first source that reported), the DDLs and sources as synced/unsynced; optimistic
  locks show owner "" and DDLs [] and, as DM does, shards as ``<source>-`<db>`.`<table>```.
- `unlock_ddl_lock_result`: seed 003's `unlock-ddl-lock` answer.
- `unresolved_groups` / `blocking_ddls`: the `sync` block fields of query-status (seed 002),
  from the source-local sharding groups a sync consumer reports (DM's syncer
  ShardingGroup): a group is listed once one of its shard tables has reached the DDL, and
  its DDLs are blocking once all of them have.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from kdm.errors import KdmError
from kdm.shard_ddl import ShardingGroupStatus, blocking_ddls, unresolved_groups

__all__ = ["NO_LOCK_MSG", "ShardingGroupStatus", "blocking_ddls", "lock_entry",
           "show_ddl_locks", "sync_shard_fields", "unlock_ddl_lock_result",
           "unresolved_groups"]

NO_LOCK_MSG = "no DDL lock exists"


class ShowableLock(Protocol):
    """What show-ddl-locks reads from a pessimistic or an optimistic lock."""

    @property
    def id(self) -> str:
        """The lock ID."""

    @property
    def task(self) -> str:
        """The task the lock belongs to."""

    @property
    def mode(self) -> str:
        """"pessimistic" or "optimistic"."""

    @property
    def owner(self) -> str:
        """The executing source; "" in optimistic mode."""

    @property
    def ddls(self) -> tuple[str, ...]:
        """The lock's DDLs; () in optimistic mode."""

    def synced(self) -> list[str]:
        """The sources (pessimistic) or shards (optimistic) that have the DDLs."""

    def unsynced(self) -> list[str]:
        """The ones still missing."""

    def sources(self) -> list[str]:
        """The sources involved."""

    def is_resolved(self) -> bool:
        """Whether nothing is left to do."""


def lock_entry(lock: ShowableLock) -> dict[str, Any]:
    """One element of show-ddl-locks' `locks`."""
    return {"ID": lock.id, "task": lock.task, "mode": lock.mode, "owner": lock.owner,
            "DDLs": list(lock.ddls), "synced": lock.synced(), "unsynced": lock.unsynced()}


def show_ddl_locks(locks: Iterable[ShowableLock], task: str | None = None,
                   sources: Sequence[str] = ()) -> dict[str, Any]:
    """show-ddl-locks [--source ...] [task]: the unresolved locks of the task (all tasks when
    None) that involve any of `sources` (all when empty), by ID."""
    wanted = set(sources)
    shown = [lock_entry(lock) for lock in sorted(locks, key=lambda lock: lock.id)
             if (not task or lock.task == task) and not lock.is_resolved()
             and (not wanted or wanted & set(lock.sources()))]
    return {"result": True, "msg": "" if shown else NO_LOCK_MSG, "locks": shown}


def unlock_ddl_lock_result(error: KdmError | None = None) -> dict[str, Any]:
    """unlock-ddl-lock's answer: `result` false with the error's text when it failed."""
    return {"result": error is None, "msg": "" if error is None else str(error)}


def sync_shard_fields(groups: Sequence[ShardingGroupStatus]) -> dict[str, Any]:
    """The two shard-DDL fields of query-status' `sync` block."""
    return {"blockingDDLs": blocking_ddls(groups), "unresolvedGroups": unresolved_groups(groups)}
