"""Causality: which DML worker applies a row change, so parallel apply keeps per-row order.

Every change carries keys: for each unique index of the downstream table (primary key and
every unique key), `table|index|values` for its before image and its after image (NULLs
skip that index); an image no unique index identifies gets `table|*|all values`. Changes
whose keys meet must run on the same worker, in order. So:

- no key of the change was seen in this round: pick a worker by hashing its first key and
  remember all its keys → that worker;
- its keys were seen on exactly one worker: that worker (and remember any new keys);
- its keys were seen on two or more workers: a *conflict*. Those workers' queues would
  have to be ordered against each other, so the round ends here: the caller flushes every
  worker (waits for them) and starts a new round with an empty map.

Worked example with 2 workers, table t with primary key id:
  INSERT id=1 → keys {t|PRIMARY|1}, unseen → worker hash(..)%2 = 0
  INSERT id=2 → {t|PRIMARY|2} → worker 1
  UPDATE id=1→2 → {t|PRIMARY|1, t|PRIMARY|2} seen on workers 0 and 1 → conflict:
  flush, then a new round assigns it alone.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from consumers.change import RowChange

UniqueKeys = Sequence[tuple[str, tuple[str, ...]]]


def change_keys(change: RowChange, unique_keys: UniqueKeys) -> list[str]:
    """The causality keys of a change (see the module docstring)."""
    index = {name: i for i, name in enumerate(change.columns)}
    keys = []
    for image in (change.before, change.after):
        if image is None:
            continue
        found = False
        for name, columns in unique_keys:
            if any(c not in index for c in columns):
                continue
            values = [image[index[c]] for c in columns]
            if any(v is None for v in values):
                continue
            keys.append(f"{change.schema}.{change.table}|{name}|{_text(values)}")
            found = True
        if not found:
            # no unique key identifies this image: the row is known by all its values, as
            # the WHERE clause finds it, so e.g. INSERT (NULL, 1) and an UPDATE of that row
            # meet on one worker
            keys.append(f"{change.schema}.{change.table}|*|{_text(list(image))}")
    return keys


def _text(values: list[Any]) -> str:
    return "\x1f".join(v.hex() if isinstance(v, bytes) else str(v) for v in values)


@dataclass
class Causality:
    """One round's key → worker map."""

    workers: int
    owner: dict[str, int] = field(default_factory=dict)

    def assign(self, keys: list[str]) -> int | None:
        """The worker for a change with these keys, or None on a conflict (flush first)."""
        seen = {self.owner[k] for k in keys if k in self.owner}
        if len(seen) > 1:
            return None
        if seen:
            worker = seen.pop()
        elif keys:
            worker = zlib.crc32(keys[0].encode()) % self.workers
        else:
            worker = 0
        for key in keys:
            self.owner[key] = worker
        return worker

    def reset(self) -> None:
        """Start a new round (after every worker has been flushed)."""
        self.owner.clear()
