"""Causality: which DML worker applies a row change, so parallel apply keeps per-row order.

Every change carries keys: for each unique index of the downstream table (primary key and
every unique key), `table|index|values` for its before image and its after image (NULLs
skip that index); an image no unique index identifies gets `table|*|all values`. Changes
whose keys meet must run on the same worker, in order. So:

- no key of the change was seen in this round: the worker being filled (each takes `batch`
  consecutive such changes in turn), or without a batch the worker its first key hashes
  to; remember all its keys → that worker;
- its keys were seen on exactly one worker: that worker (and remember any new keys);
- its keys were seen on two or more workers: a *conflict*. Those workers' queues would
  have to be ordered against each other, so the round ends here: the caller flushes every
  worker (waits for them) and starts a new round with an empty map.

Worked example with 2 workers, batch 1, table t with primary key id:
  INSERT id=1 → keys {t|PRIMARY|1}, unseen → worker 0 (now full: fill worker 1)
  INSERT id=2 → {t|PRIMARY|2} → worker 1
  UPDATE id=1→2 → {t|PRIMARY|1, t|PRIMARY|2} seen on workers 0 and 1 → conflict:
  flush, then a new round assigns it alone.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from consumers.change import RowChange

UniqueKeys = Sequence[tuple[str, tuple[str, ...]]]


def change_keys(change: RowChange, unique_keys: UniqueKeys) -> list[str]:
    """The causality keys of a change (see the module docstring)."""
    indexes = _indexes(change, unique_keys)
    keys: list[str] = []
    for image in (change.before, change.after):
        if image is None:
            continue
        found = len(keys)
        for prefix, positions in indexes:
            if len(positions) == 1:
                value = image[positions[0]]
                if value is None:
                    continue
                keys.append(prefix + (value.hex() if isinstance(value, bytes) else str(value)))
            else:
                values = [image[p] for p in positions]
                if None not in values:
                    keys.append(prefix + _text(values))
        if len(keys) == found:
            # no unique key identifies this image: the row is known by all its values, as
            # the WHERE clause finds it, so e.g. INSERT (NULL, 1) and an UPDATE of that row
            # meet on one worker
            keys.append(f"{change.schema}.{change.table}|*|{_text(list(image))}")
    return keys


_Indexes = tuple[tuple[str, ...], UniqueKeys, str, str, list[tuple[str, tuple[int, ...]]]]
_INDEXES: dict[tuple[int, int], _Indexes] = {}
_LAST: list[_Indexes | None] = [None]


def _indexes(change: RowChange, unique_keys: UniqueKeys) -> list[tuple[str, tuple[int, ...]]]:
    """(key text prefix, column positions) of each unique key the change's columns cover;
    computed once per table, column list and keys (the hot path passes the same objects
    again and again, so they are remembered by identity; the last one is tried first, as
    the change before is nearly always of the same table)."""
    found = _LAST[0]
    if not _fits(found, change, unique_keys):
        found = _INDEXES.get((id(change.columns), id(unique_keys)))
        if not _fits(found, change, unique_keys):
            found = _new_indexes(change, unique_keys)
        _LAST[0] = found
    return found[4]


def _fits(found: _Indexes | None, change: RowChange, unique_keys: UniqueKeys
          ) -> TypeGuard[_Indexes]:
    return found is not None and found[0] is change.columns and found[1] is unique_keys and \
        found[2] == change.table and found[3] == change.schema


def _new_indexes(change: RowChange, unique_keys: UniqueKeys) -> _Indexes:
    if len(_INDEXES) > 10_000:
        _INDEXES.clear()
    index = {name: i for i, name in enumerate(change.columns)}
    indexes = [(f"{change.schema}.{change.table}|{name}|", tuple(index[c] for c in columns))
               for name, columns in unique_keys if all(c in index for c in columns)]
    found = _INDEXES[(id(change.columns), id(unique_keys))] = (
        change.columns, unique_keys, change.table, change.schema, indexes)
    return found


def _text(values: list[Any]) -> str:
    return "\x1f".join(v.hex() if isinstance(v, bytes) else str(v) for v in values)


@dataclass
class Causality:
    """One round's key → worker map. With `batch`, a change no other change binds goes to
    the worker being filled, and the next worker is filled once this one holds `batch`
    changes, so each worker's share is a run of consecutive changes (one contiguous key
    range for sequential inserts: fewer index pages, and fewer TiDB regions, a
    transaction); without it, to the worker its first key hashes to."""

    workers: int
    batch: int = 0
    owner: dict[str, int] = field(default_factory=dict)
    filling: int = 0
    load: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.load = [0] * self.workers

    def assign(self, keys: list[str]) -> int | None:
        """The worker for a change with these keys, or None on a conflict (flush first)."""
        owner = self.owner
        worker = None
        for key in keys:
            seen = owner.get(key)
            if seen is not None and seen != worker:
                if worker is not None:
                    return None
                worker = seen
        if worker is None:
            if self.batch:
                worker = self.filling
                if self.load[worker] + 1 >= self.batch:
                    self.filling = (worker + 1) % self.workers
            else:
                worker = zlib.crc32(keys[0].encode()) % self.workers if keys else 0
        self.load[worker] += 1
        for key in keys:
            owner[key] = worker
        return worker

    def reset(self) -> None:
        """Start a new round (after every worker has been flushed)."""
        self.owner.clear()
        self.filling = 0
        self.load = [0] * self.workers
