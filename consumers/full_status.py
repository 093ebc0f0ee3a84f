"""The full migration's counters, for DM's `dump` and `load` status blocks.

Numbers are strings and progress reads like "25.44 %", as in query-status. Dump progress is
rows read over the estimated rows (information_schema's TABLE_ROWS, an estimate, so it stays
below 100 % until the dump has really ended); load progress is bytes applied over the bytes
to load, which are only known once the dump has ended and are estimated until then from
the rows still to read at the bytes per row seen so far. `bps` is the rate over the last
RECENT_SECONDS, between status calls. Chunks finished by an earlier run count as
finished.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

RECENT_SECONDS = 10.0


def percent(done: float, total: float) -> str:
    """DM's progress text: `12.34 %`."""
    return f"{100.0 * done / total if total > 0 else 0.0:.2f} %"


class _Rate:
    """Bytes per second over about the last RECENT_SECONDS, from the totals seen at each
    status call (0 at the first)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.samples: deque[tuple[float, int]] = deque()

    def bps(self, total: int) -> int:
        now = self.clock()
        self.samples.append((now, total))
        while len(self.samples) > 2 and now - self.samples[1][0] >= RECENT_SECONDS:
            self.samples.popleft()
        then, before = self.samples[0]
        return int((total - before) / (now - then)) if now > then else 0


class FullStats:
    """Counters the dump readers and the loaders update (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._dump_rate = _Rate(clock)
        self._load_rate = _Rate(clock)
        self.total_tables = 0
        self.completed_tables = 0
        self.estimate_total_rows = 0
        self.dumped_rows = 0
        self.dumped_bytes = 0
        self.loaded_rows = 0
        self.loaded_bytes = 0
        self.bytes_per_row = 0.0  # from information_schema until a chunk is read
        self.dump_done = False
        self.load_done = False
        self.chunks_loaded = 0  # by this run
        self.chunks_skipped = 0  # found done, from an earlier run
        self._remaining: dict[tuple[str, str], int] = {}

    def plan(self, chunks: dict[tuple[str, str], tuple[int, int]], estimate_rows: int,
             bytes_per_row: float) -> None:
        """The tables' (chunks in total, chunks done earlier) and the estimates."""
        with self._lock:
            self.total_tables = len(chunks)
            self._remaining = {name: total - done for name, (total, done) in chunks.items()}
            self.completed_tables = sum(1 for left in self._remaining.values() if left <= 0)
            self.estimate_total_rows = estimate_rows
            self.bytes_per_row = bytes_per_row

    def resumed(self, rows: int, size: int) -> None:
        """One chunk loaded by an earlier run."""
        with self._lock:
            self.dumped_rows += rows
            self.dumped_bytes += size
            self.loaded_rows += rows
            self.loaded_bytes += size
            self.chunks_skipped += 1

    def dumped(self, table: tuple[str, str], rows: int, size: int) -> None:
        """One chunk read."""
        with self._lock:
            self.dumped_rows += rows
            self.dumped_bytes += size
            left = self._remaining.get(table, 1) - 1
            self._remaining[table] = left
            if left == 0:
                self.completed_tables += 1

    def loaded(self, rows: int, size: int) -> None:
        """One chunk applied downstream."""
        with self._lock:
            self.loaded_rows += rows
            self.loaded_bytes += size
            self.chunks_loaded += 1

    def total_bytes(self) -> int:
        """The bytes to load: exact once the dump ended, an estimate before."""
        if self.dump_done:
            return self.dumped_bytes
        per_row = self.dumped_bytes / self.dumped_rows if self.dumped_rows else \
            self.bytes_per_row
        left = max(0, self.estimate_total_rows - self.dumped_rows)
        return self.dumped_bytes + int(left * per_row)

    def dump_block(self) -> dict[str, str]:
        """DM's `dump` status block."""
        with self._lock:
            if self.dump_done:
                progress = percent(1, 1)
            elif self.estimate_total_rows > 0:
                progress = percent(min(self.dumped_rows, self.estimate_total_rows * 0.9999),
                                   self.estimate_total_rows)
            else:
                progress = percent(self.completed_tables, self.total_tables)
            return {"totalTables": str(self.total_tables),
                    "completedTables": str(self.completed_tables),
                    "finishedBytes": str(self.dumped_bytes),
                    "finishedRows": str(self.dumped_rows),
                    "estimateTotalRows": str(self.estimate_total_rows),
                    "progress": progress, "bps": str(self._dump_rate.bps(self.dumped_bytes))}

    def load_block(self) -> dict[str, str]:
        """DM's `load` status block."""
        with self._lock:
            total = self.total_bytes()
            done = total if self.load_done else min(self.loaded_bytes, total)
            return {"finishedBytes": str(self.loaded_bytes), "totalBytes": str(total),
                    "progress": percent(done, total) if total else
                    percent(1 if self.load_done else 0, 1),
                    "bps": str(self._load_rate.bps(self.loaded_bytes))}
