"""A subtask's shard tables: sharding groups and table checkpoints (DM's syncer ShardingGroup).

In a shard-merge task every upstream table is a *shard* of the target table routing sends
it to; the shards of one target on this source form its *group*. Pessimistic mode (DESIGN.md
§6, dm-manual-A §7.1), as this module keeps it:

- A shard's DDL *blocks* the shard: its later events are skipped, and its *table
  checkpoint* stays at the DDL's relay offset, so nothing skipped is lost. The group
  remembers its first DDL (offset, position, statements); every other shard must reach
  the same statements (else SyncShardDDLSequence, DM's "inconsistent DDL sequence").
- When every shard of the group is blocked at the DDL, the group is *synced*: the subtask
  sends the coordinator its info and waits for `exec` or `skip`.
- `resolve` then moves each shard's checkpoint just past its DDL, unblocks it and names
  the offset to seek back to, the smallest of them. Tables without a checkpoint of their
  own were handled up to `until` (the offset after the last DDL). Reading from the seek
  offset, an event is applied iff its table is not blocked and its offset is at or past
  the table's checkpoint: exactly the events that were skipped, once.

Checkpoints are the whole durable state (`to_dict`, saved with each DDL's downstream
checkpoint). After a crash the subtask starts at `start(offset)`, the smallest of them:
re-reading the shard DDLs rebuilds the groups, and the tables' checkpoints keep events
applied before the crash from being applied again.

Optimistic mode uses the groups only for membership: shards are never blocked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kdm.errors import ERR_SYNC_SHARD_SEQUENCE
from kdm.schema_sql import quote_name
from kdm.shard_ddl import ShardingGroupStatus, lock_id, same_ddls

Table = tuple[str, str]
"""An upstream (schema, table)."""


def name(table: Table) -> str:
    """```<schema>`.`<table>```, as query-status shows shard tables."""
    return f"{quote_name(table[0])}.{quote_name(table[1])}"


@dataclass
class Group:
    """The shards of one target table on this source, and the DDL they are meeting."""

    target: Table
    members: set[Table]
    ddls: tuple[str, ...] = ()
    first_pos: str = ""
    synced: dict[Table, int] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Whether a shard has met a DDL the group has not resolved."""
        return bool(self.synced)

    def clear(self) -> None:
        """Forget the DDL met (the lock resolved, or it is to be read again)."""
        self.synced.clear()
        self.ddls, self.first_pos = (), ""

    def is_synced(self) -> bool:
        """Whether every shard met the DDL."""
        return self.active and self.members <= set(self.synced)

    def status(self) -> ShardingGroupStatus:
        """query-status' view of the group."""
        return ShardingGroupStatus(name(self.target), self.ddls, self.first_pos,
                                   tuple(sorted(name(t) for t in self.synced)),
                                   tuple(sorted(name(t) for t in self.members
                                                if t not in self.synced)))


class ShardGroups:
    """The groups and table checkpoints of one subtask (see the module docstring).

    `blocked`: shards stopped at their DDL (table -> the DDL's offset). `replay`: shards
    whose skipped events are being re-applied (table -> first offset not yet applied).
    `until`: every other table was handled up to here by the last lock's resolution;
    `floor`: the round checkpoint the subtask started from. While `horizon` is set, an
    event of a table below its checkpoint (`replay`'s, else the horizon) is skipped."""

    def __init__(self, task: str) -> None:
        self.task = task
        self.groups: dict[Table, Group] = {}
        self.target_of: dict[Table, Table] = {}
        self.blocked: dict[Table, int] = {}
        self.replay: dict[Table, int] = {}
        self.until = 0
        self.floor = 0
        self.horizon = 0

    # -- membership ---------------------------------------------------------------------

    def add(self, table: Table, target: Table) -> Group:
        """Make `table` a shard of `target` (tables listed at start, or created since)."""
        group = self.groups.get(target)
        if group is None:
            group = self.groups[target] = Group(target, set())
        group.members.add(table)
        self.target_of[table] = target
        return group

    def drop(self, table: Table) -> Group | None:
        """A shard dropped upstream leaves its group; the group, which may now be synced."""
        target = self.target_of.pop(table, None)
        group = self.groups.get(target) if target is not None else None
        if group is None:
            return None
        group.members.discard(table)
        # a shard dropped after meeting the DDL keeps its place until the lock resolves:
        # its skipped events (before the DROP) are replayed with the others'
        return group

    def group_of(self, table: Table) -> Group | None:
        """The group `table` is a shard of."""
        target = self.target_of.get(table)
        return self.groups.get(target) if target is not None else None

    # -- reading ------------------------------------------------------------------------

    def start(self, offset: int) -> int:
        """Where to read from when the round checkpoint says `offset`.

        Every event below a round checkpoint that was to be applied was applied (a lock's
        resolution checkpoints at its seek offset for that reason): replayed shards resume
        at `offset` at the earliest. Shards blocked before go back to their DDL (re-reading
        it rebuilds the group). Reading below `offset`, other tables' events there are
        skipped as handled: `until` keeps that through the checkpoints the re-read DDLs
        write."""
        self.floor = offset
        self.replay = {t: max(c, offset) for t, c in self.replay.items()}
        self.replay.update(self.blocked)
        self.blocked = {}
        for group in self.groups.values():
            group.clear()
        start = min([offset, *self.replay.values()])
        if start < offset:
            self.until = max(self.until, offset)
        self.horizon = max(self.until, self.floor) if self.replay else 0
        return start

    def skips(self, table: Table, offset: int) -> bool:
        """Whether to skip an event of `table` at `offset`: the shard is blocked at its DDL,
        or the event was applied before."""
        if table in self.blocked:
            return True
        if offset >= self.horizon:
            return False
        return offset < self.replay.get(table, self.horizon)

    @property
    def filtering(self) -> bool:
        """Whether any event may be skipped at all (the hot path asks this first)."""
        return bool(self.blocked) or self.horizon > 0

    def passed(self, offset: int) -> None:
        """Reading reached `offset`: past the horizon the replay is over (save the state)."""
        if self.horizon and offset >= self.horizon:
            self.replay, self.horizon = {}, 0

    # -- pessimistic DDL ----------------------------------------------------------------

    def meet(self, table: Table, ddls: tuple[str, ...], offset: int, position: str) -> Group:
        """A shard's coordinated DDL at `offset`: block the shard; its group (synced or not).

        The first DDL of a group sets its statements; another shard's different ones raise
        SyncShardDDLSequence."""
        group = self.group_of(table)
        if group is None:
            raise KeyError(table)
        if not group.active:
            group.ddls, group.first_pos = ddls, position
        elif not same_ddls(ddls, group.ddls):
            raise ERR_SYNC_SHARD_SEQUENCE(table=name(table), ddls=list(ddls),
                                          first=list(group.ddls), target=name(group.target),
                                          position=group.first_pos)
        group.synced[table] = offset
        self.blocked[table] = offset
        self.replay.pop(table, None)
        return group

    def resolve(self, group: Group, offset: int) -> int:
        """The lock of `group` was executed or skipped at relay offset `offset` (the last
        shard's DDL): unblock its shards past their DDLs; the offset to seek back to, which
        is also the round checkpoint to write (their events from there are not applied)."""
        for table, at in group.synced.items():
            self.blocked.pop(table, None)
            self.replay[table] = at + 1
        seek = min(at + 1 for at in group.synced.values())
        group.clear()
        self.until = max(self.until, offset + 1)
        self.horizon = max(self.until, self.floor)
        return seek

    def lock_id(self, group: Group) -> str:
        """The coordinator's lock for `group`."""
        return lock_id(self.task, *group.target)

    def unresolved(self) -> list[ShardingGroupStatus]:
        """query-status' groups: those a shard has met a DDL of."""
        return [group.status() for group in self.groups.values() if group.active]

    # -- persistence --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The durable part, saved with each DDL checkpoint: the table checkpoints and the
        shards as of that point (listed from the upstream only on a subtask's first start)."""
        return {"blocked": _pairs(self.blocked), "replay": _pairs(self.replay),
                "until": self.until, "members": [[*table, *target] for table, target in
                                                 sorted(self.target_of.items())]}

    def restore(self, data: Mapping[str, Any] | None) -> None:
        """Inverse of `to_dict`."""
        data = data or {}
        self.blocked = _unpairs(data.get("blocked"))
        self.replay = _unpairs(data.get("replay"))
        self.until = int(data.get("until", 0))
        for schema, table, target_schema, target_table in data.get("members") or ():
            self.add((str(schema), str(table)), (str(target_schema), str(target_table)))

    def reset(self, offset: int) -> int:
        """Someone moved the subtask's offset to `offset` (a replay request): replay from
        there, and still re-apply what shards skipped before it; where to read from."""
        self.until = min(self.until, offset)
        owed = {t: min(c, offset) for t, c in self.replay.items()}
        owed.update({t: at for t, at in self.blocked.items() if at < offset})
        self.replay, self.blocked = {}, {}
        start = self.start(offset)
        self.replay = owed
        self.horizon = max(self.until, self.floor) if owed else 0
        return min([start, *owed.values()])


def _pairs(tables: Mapping[Table, int]) -> list[list[Any]]:
    return [[schema, table, offset] for (schema, table), offset in sorted(tables.items())]


def _unpairs(data: Iterable[Iterable[Any]] | None) -> dict[Table, int]:
    return {(str(s), str(t)): int(c) for s, t, c in (data or ())}

