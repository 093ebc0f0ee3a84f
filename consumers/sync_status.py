"""The sync unit's counters and positions, for DM's `sync` status block."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from kdm.position import Position
from kdm.shard_ddl import ShardingGroupStatus

RECENT_SECONDS = 10.0


@dataclass
class SyncStats:
    """What the subtask has seen and applied."""

    started: float = field(default_factory=time.monotonic)
    total_events: int = 0
    applied_position: Position | None = None
    applied_ts_ms: int = 0
    newest_position: Position | None = None
    newest_ts_ms: int = 0
    shard_groups: list[ShardingGroupStatus] = field(default_factory=list)
    lock_id: str = ""  # the shard-DDL lock the subtask waits on
    _recent: deque[tuple[float, int]] = field(default_factory=deque)

    def seen(self, record: dict[str, Any]) -> None:
        """A relay record read (not yet applied)."""
        if record["kind"] != "ROW":
            self.newest_position = Position.from_dict(record["position"])
        self.row_seen(record["timestamp_ms"])

    def row_seen(self, ts_ms: int) -> None:
        """A ROW record read, by its upstream time (the hot path has no record dict)."""
        if ts_ms > self.newest_ts_ms:
            self.newest_ts_ms = ts_ms

    def applied(self, rows: int, position: str, ts_ms: int) -> None:
        """A round applied downstream."""
        now = time.monotonic()
        self.total_events += rows
        self._recent.append((now, rows))
        while self._recent and now - self._recent[0][0] > RECENT_SECONDS:
            self._recent.popleft()
        if position:
            self.applied_position = Position.parse(position)
        self.applied_ts_ms = max(self.applied_ts_ms, ts_ms)

    def ddl(self, query: str) -> None:
        """A DDL applied downstream."""
        self.total_events += 1

    def total_tps(self) -> int:
        """Row changes per second since the start."""
        return int(self.total_events / max(time.monotonic() - self.started, 1e-3))

    def recent_tps(self) -> int:
        """Row changes per second over the last ten seconds."""
        return int(sum(rows for _, rows in self._recent) / RECENT_SECONDS)

    def lag_seconds(self) -> float:
        """Upstream time of the newest record read minus that of the last applied one."""
        if not self.applied_ts_ms:
            return 0.0
        return max(0.0, (self.newest_ts_ms - self.applied_ts_ms) / 1000)
