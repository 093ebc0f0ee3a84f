"""DM's compaction (`syncers.compact: true`): changes to the same row within one worker's
share of a round collapse into one, so a hot row costs one statement per round.

Rules, for two changes A then B to the same key (DM's compactor):

=================  ==============================================================
A then B           result
=================  ==============================================================
INSERT, UPDATE     INSERT of B's new image
INSERT, DELETE     DELETE (the row may exist downstream when replaying)
UPDATE, UPDATE     UPDATE from A's old image to B's new image
UPDATE, DELETE     DELETE of A's old image
DELETE, INSERT     INSERT of B, rendered as REPLACE (safe) so it overwrites
=================  ==============================================================

An UPDATE that changes the key is first split into DELETE (old key) + INSERT (new key), as
DM does, so every change has one key. Changes keep the position of the first change of
their key, so the order between different keys is unchanged.

Worked example (key id): INSERT 1(a); UPDATE 1(a→b); INSERT 2(x); DELETE 2(x)
→ INSERT 1(b); DELETE 2(x).
"""

from __future__ import annotations

from collections.abc import Sequence

from consumers.change import DELETE, INSERT, UPDATE, RowChange


def compact(changes: Sequence[RowChange]) -> tuple[list[RowChange], bool]:
    """The compacted changes, and whether they must be rendered in safe mode (REPLACE):
    whenever anything was merged, since a merge reorders changes across rows."""
    slots: list[RowChange | None] = []
    where: dict[tuple[str, tuple[object, ...]], int] = {}
    needs_replace = False
    for change in _split_key_updates(changes):
        image = change.after if change.op == INSERT else change.before
        key = (change.target, change.key_values(image))
        at = where.get(key)
        if at is None or not change.key:
            where[key] = len(slots)
            slots.append(change)
            continue
        merged, _ = _merge(slots[at], change)
        # a merge moves a change ahead of others; with a second unique key that order can
        # matter, and REPLACE rendering makes any order converge
        needs_replace = True
        slots[at] = merged
    return [c for c in slots if c is not None], needs_replace


def _split_key_updates(changes: Sequence[RowChange]) -> list[RowChange]:
    out = []
    for change in changes:
        if change.op == UPDATE and change.key and \
                change.key_values(change.before) != change.key_values(change.after):
            out.append(change._replace(op=DELETE, after=None))
            out.append(change._replace(op=INSERT, before=None))
        else:
            out.append(change)
    return out


def _merge(a: RowChange | None, b: RowChange) -> tuple[RowChange | None, bool]:
    assert a is not None
    pair = (a.op, b.op)
    if pair == (INSERT, UPDATE):
        return a._replace(after=b.after), False
    if pair == (INSERT, DELETE):
        return b, False
    if pair == (UPDATE, UPDATE):
        return b._replace(before=a.before), False
    if pair == (UPDATE, DELETE):
        return b._replace(before=a.before), False
    if pair == (DELETE, INSERT):
        return b, True
    return b, False
