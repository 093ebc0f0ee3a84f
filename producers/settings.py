"""Tuning of a relay (no I/O here, so the CLI can read the defaults cheaply)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RelaySettings:
    """Tuning of one relay."""

    batch_records: int = 20_000
    commit_seconds: float = 0.2
    heartbeat_seconds: float = 1.0
    status_seconds: float = 2.0
    backoff_min: float = 1.0
    backoff_max: float = 30.0
