"""consumers.sharding: a subtask's shard groups and table checkpoints, driven by a model of
the subtask's loop (rounds, DDL checkpoints, seek-back, crashes at every step)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from consumers.sharding import ShardGroups
from kdm.errors import KdmError

A, B, C = ("db1", "t1"), ("db1", "t2"), ("db2", "other")
TARGET = ("db", "t")
DDL = ("ALTER TABLE `db`.`t` ADD COLUMN `c2` INT",)
DDL2 = ("ALTER TABLE `db`.`t` DROP COLUMN `c1`",)


@dataclass
class Model:
    """The subtask loop reduced to what sharding decides: which events get applied when.

    `events` is the relay: (table, "row" | ddl tuple). Rows are applied in rounds of
    `round_size`; a DDL ends the round and is checkpointed with the groups' state. A synced
    group is resolved at once (the coordinator's answer) and the reading seeks back."""

    events: list[tuple[tuple[str, str], object]]
    round_size: int = 3
    applied: list[int] = field(default_factory=list)
    locks: list[int] = field(default_factory=list)
    checkpoint: int = 0          # the round checkpoint (downstream rows)
    saved: dict[str, object] = field(default_factory=dict)  # the state row
    crashes: int = 0

    def groups(self) -> ShardGroups:
        groups = ShardGroups("task")
        for table in (A, B):
            groups.add(table, TARGET)
        groups.add(C, ("db2", "other"))
        groups.restore(self.saved)
        return groups

    def run(self, crash_at: set[int] | None = None) -> None:
        """Run to the end, SIGKILL-ing at the `crash_at` steps (restarting from state)."""
        crash_at = crash_at or set()
        step = 0
        while True:
            groups = self.groups()
            offset = groups.start(self.checkpoint)
            pending: list[int] = []
            try:
                while offset < len(self.events):
                    step += 1
                    if step in crash_at:
                        self.crashes += 1
                        raise _Crash()
                    table, what = self.events[offset]
                    if groups.horizon and offset >= groups.horizon:
                        self._flush(pending, offset)
                        groups.passed(offset)
                        self.saved = groups.to_dict()
                    if what == "row":
                        if not (groups.filtering and groups.skips(table, offset)):
                            pending.append(offset)
                        if len(pending) >= self.round_size:
                            self._flush(pending, offset + 1)
                        offset += 1
                        continue
                    self._flush(pending, offset)
                    if groups.skips(table, offset):
                        offset += 1
                        continue
                    assert isinstance(what, tuple)
                    group = groups.meet(table, what, offset, f"pos{offset}")
                    self.saved, self.checkpoint = groups.to_dict(), offset + 1
                    if group.is_synced():
                        seek = groups.resolve(group, offset)
                        self.locks.append(offset)
                        self.saved, self.checkpoint = groups.to_dict(), seek
                        break  # Reseek: start over from the state
                    offset += 1
                else:
                    self._flush(pending, len(self.events))
                    return
            except _Crash:
                continue

    def _flush(self, pending: list[int], end: int) -> None:
        """A round commits its rows and the round checkpoint together."""
        self.applied += pending
        pending.clear()
        self.checkpoint = end


class _Crash(Exception):
    pass


def rows(table: tuple[str, str], n: int) -> list[tuple[tuple[str, str], object]]:
    return [(table, "row")] * n


def scenario() -> list[tuple[tuple[str, str], object]]:
    """Two shards and an unrelated table; the shards meet two DDLs, interleaved with rows."""
    return [*rows(A, 2), *rows(B, 2), *rows(C, 1), (A, DDL), *rows(A, 3), *rows(B, 2),
            *rows(C, 2), (A, DDL2), *rows(A, 1), (B, DDL), *rows(B, 2), *rows(A, 2),
            *rows(C, 1), (B, DDL2), *rows(B, 2), *rows(A, 1), *rows(C, 2)]


def row_offsets(events: list[tuple[tuple[str, str], object]]) -> list[int]:
    return [i for i, (_, what) in enumerate(events) if what == "row"]


def test_every_row_is_applied_once_and_each_table_in_order() -> None:
    events = scenario()
    model = Model(events)
    model.run()
    assert sorted(model.applied) == row_offsets(events)
    for table in (A, B, C):
        mine = [o for o in model.applied if events[o][0] == table]
        assert mine == sorted(mine), table
    # both DDLs were coordinated once each, when the second shard (B) reached them
    assert model.locks == [events.index((B, DDL)), events.index((B, DDL2))]


def test_rows_of_a_blocked_shard_wait_for_the_lock() -> None:
    events = scenario()
    model = Model(events)
    model.run()
    first_lock = model.locks[0]
    a_after_ddl = [o for o in row_offsets(events)
                   if events[o][0] == A and events.index((A, DDL)) < o < first_lock]
    # A's rows after its DDL are applied only after B's rows that precede B's DDL
    b_before = [o for o in row_offsets(events) if events[o][0] == B and o < first_lock]
    assert max(model.applied.index(o) for o in b_before) < \
        min(model.applied.index(o) for o in a_after_ddl)


@pytest.mark.parametrize("seed", range(40))
def test_crashes_anywhere_lose_and_double_nothing(seed: int) -> None:
    events = scenario()
    rng = random.Random(seed)
    model = Model(events, round_size=rng.randint(1, 4))
    model.run(crash_at=set(rng.sample(range(1, 80), 6)))
    assert model.crashes > 0
    assert sorted(model.applied) == row_offsets(events)
    assert len(model.locks) >= 2


def test_a_different_ddl_on_another_shard_is_an_inconsistent_sequence() -> None:
    groups = ShardGroups("task")
    groups.add(A, TARGET)
    groups.add(B, TARGET)
    groups.start(0)
    groups.meet(A, DDL, 5, "(mysql-bin.000001, 100)")
    with pytest.raises(KdmError) as err:
        groups.meet(B, DDL2, 9, "(mysql-bin.000001, 200)")
    assert err.value.code == 36013
    assert "(mysql-bin.000001, 100)" in str(err.value)


def test_status_lists_synced_and_unsynced_shards() -> None:
    groups = ShardGroups("task")
    groups.add(A, TARGET)
    groups.add(B, TARGET)
    groups.start(0)
    assert groups.unresolved() == []
    group = groups.meet(A, DDL, 5, "(mysql-bin.000001, 100)")
    (status,) = groups.unresolved()
    assert status.to_dict() == {"target": "`db`.`t`", "DDLs": list(DDL),
                                "firstPos": "(mysql-bin.000001, 100)",
                                "synced": ["`db1`.`t1`"], "unsynced": ["`db1`.`t2`"]}
    assert not group.is_synced()
    assert groups.lock_id(group) == "task-`db`.`t`"


def test_a_dropped_shard_leaves_the_group_which_may_then_be_synced() -> None:
    groups = ShardGroups("task")
    groups.add(A, TARGET)
    groups.add(B, TARGET)
    groups.start(0)
    groups.meet(A, DDL, 5, "p")
    group = groups.drop(B)
    assert group is not None and group.is_synced()


def test_state_round_trips() -> None:
    groups = ShardGroups("task")
    groups.add(A, TARGET)
    groups.add(B, TARGET)
    groups.start(0)
    groups.meet(A, DDL, 5, "p")
    copy = ShardGroups("task")
    copy.restore(groups.to_dict())
    assert copy.to_dict() == groups.to_dict() == {
        "blocked": [["db1", "t1", 5]], "replay": [], "until": 0,
        "members": [["db1", "t1", "db", "t"], ["db1", "t2", "db", "t"]]}


def test_an_offset_reset_replays_from_there_and_still_owes_what_shards_skipped() -> None:
    groups = ShardGroups("task")
    groups.add(A, TARGET)
    groups.add(B, TARGET)
    groups.start(0)
    groups.meet(A, DDL, 5, "p")
    # a reset to 8: A's DDL at 5 is re-read (A's events from 5 were never applied), the
    # other tables replay from 8
    assert groups.reset(8) == 5
    assert not groups.skips(A, 5) and groups.skips(B, 7) and not groups.skips(B, 8)
    # a reset to 3, before the DDL: everything from 3
    groups2 = ShardGroups("task")
    groups2.add(A, TARGET)
    groups2.start(0)
    groups2.meet(A, DDL, 5, "p")
    assert groups2.reset(3) == 3
    assert not groups2.skips(A, 3) and not groups2.skips(B, 3)


def test_a_dropped_blocked_shard_keeps_its_skipped_events_owed() -> None:
    groups = ShardGroups("task")
    groups.add(A, TARGET)
    groups.add(B, TARGET)
    groups.start(0)
    groups.meet(A, DDL, 5, "p")
    group = groups.drop(A)
    assert group is not None and not group.is_synced()
    group = groups.meet(B, DDL, 9, "p")
    assert group.is_synced()
    assert groups.resolve(group, 9) == 6  # A's events after its DDL are replayed too
