"""Sync checkpoints: Kafka offsets, mirrored by downstream rows written with the data.

The subtask applies the relay in *rounds*: a run of records [start, end) split over the
DML workers by causality. Each worker applies its share in one downstream transaction that
also writes the worker's checkpoint row ``(task, source, worker) → (round, start, end,
position)`` in `<meta-schema>.kdm_checkpoint`. When every worker has committed, the round
is done and the subtask commits the Kafka offset `end` with metadata ``kdm:<round>``. A DDL
is a round of its own (applied alone, then all rows move to it).

On start the subtask compares the two:

1. Rows all at round r: the downstream holds exactly [.., end_r). Resume at end_r.
2. Some rows at r, some below: the process died while workers were committing round r.
   Replay round r from its start in safe mode (REPLACE, DELETE+REPLACE), which is
   idempotent, then continue normally.
3. The committed offset carries no `kdm:` metadata (a reset by kafka-consumer-groups,
   Kafka UI or `kdm replay`): replay from that offset, in safe mode until past end_r.
4. No rows, no offset: start at the task's `meta` (mapped to a relay offset), else at the
   relay topic's first record.

A crash between a round's DB commits and its offset commit is case 1 or 2: nothing is
applied twice in effect and nothing is lost. Every row also keeps `safe_until`, the
furthest offset the downstream may hold, which only grows: a replay interrupted by another
restart stays in safe mode until it is really past what was applied. On start the subtask
rewrites exactly `worker-count` rows to the decided point (a changed worker count cannot
make an unfinished round look finished), and before a DDL it raises `safe_until` past the
DDL, so a crash between the DDL and its checkpoint re-runs it in safe mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kdm.errors import ERR_SYNC_CHECKPOINT
from kdm.meta import CHECKPOINT_TABLE
from kdm.schema_sql import quote_name as quote

TABLE = CHECKPOINT_TABLE
GLOBAL_WORKER = -1  # the row of the subtask's own state (tracked schemas, online DDL)
OUR_METADATA = "kdm:"


def create_sql(meta_schema: str) -> list[str]:
    """Statements creating the checkpoint table (idempotent)."""
    return [
        f"CREATE DATABASE IF NOT EXISTS {quote(meta_schema)}",
        f"CREATE TABLE IF NOT EXISTS {quote(meta_schema)}.{quote(TABLE)} ("
        "task VARCHAR(128) NOT NULL, source VARCHAR(64) NOT NULL, worker INT NOT NULL, "
        "round BIGINT NOT NULL, start_offset BIGINT NOT NULL, end_offset BIGINT NOT NULL, "
        "safe_until BIGINT NOT NULL DEFAULT 0, "
        "position VARCHAR(2048) NOT NULL DEFAULT '', state LONGTEXT NULL, "
        "updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) "
        "ON UPDATE CURRENT_TIMESTAMP(3), PRIMARY KEY (task, source, worker))"]


def upsert_sql(meta_schema: str) -> str:
    """One worker's row for a round (arguments: task, source, worker, round, start, end,
    safe_until, position). `safe_until` only ever grows: it is the furthest offset the
    downstream may already hold, so safe mode survives any number of restarts."""
    return (f"INSERT INTO {quote(meta_schema)}.{quote(TABLE)} (task, source, worker, round, "
            "start_offset, end_offset, safe_until, position) VALUES (%s, %s, %s, %s, %s, %s, "
            "%s, %s) ON DUPLICATE KEY UPDATE round = VALUES(round), start_offset = "
            "VALUES(start_offset), end_offset = VALUES(end_offset), safe_until = "
            "GREATEST(safe_until, VALUES(safe_until)), position = VALUES(position)")


def reset_sql(meta_schema: str) -> str:
    """Set a worker's row to a start point (arguments: round, start, end, safe_until, task,
    source, worker), used on start so every worker row agrees on the decision."""
    return (f"UPDATE {quote(meta_schema)}.{quote(TABLE)} SET round = %s, start_offset = %s, "
            "end_offset = %s, safe_until = GREATEST(safe_until, %s) WHERE task = %s AND "
            "source = %s AND worker = %s")


def state_sql(meta_schema: str) -> str:
    """The subtask state row (arguments: task, source, round, start, end, safe_until,
    position, state)."""
    return (f"INSERT INTO {quote(meta_schema)}.{quote(TABLE)} (task, source, worker, round, "
            "start_offset, end_offset, safe_until, position, state) VALUES (%s, %s, -1, %s, "
            "%s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE round = VALUES(round), start_offset "
            "= VALUES(start_offset), end_offset = VALUES(end_offset), safe_until = "
            "GREATEST(safe_until, VALUES(safe_until)), position = VALUES(position), state = "
            "COALESCE(VALUES(state), state)")


@dataclass(frozen=True)
class Row:
    """One checkpoint row."""

    worker: int
    round: int
    start: int
    end: int
    position: str
    state: str | None
    safe_until: int = 0


@dataclass(frozen=True)
class Saved:
    """What the downstream says about a subtask."""

    rows: tuple[Row, ...]

    @property
    def workers(self) -> tuple[Row, ...]:
        """The DML workers' rows (not the state row)."""
        return tuple(row for row in self.rows if row.worker != GLOBAL_WORKER)

    @property
    def last_round(self) -> int:
        """The newest round any row reached (0 when there are none)."""
        return max((row.round for row in self.rows), default=0)

    def newest(self) -> Row | None:
        """A worker row of the newest round."""
        return max(self.workers, key=lambda row: row.round, default=None)

    def partial(self) -> bool:
        """Whether the newest round reached only some workers."""
        return len({row.round for row in self.workers}) > 1

    @property
    def high(self) -> int:
        """The furthest offset the downstream may hold (safe mode runs until here)."""
        return max((max(row.end, row.safe_until) for row in self.rows), default=0)

    def state(self) -> str | None:
        """The subtask state saved with the newest DDL."""
        return next((row.state for row in self.rows if row.worker == GLOBAL_WORKER), None)


def load(conn: Any, meta_schema: str, task: str, source: str) -> Saved:
    """The checkpoint rows of a subtask."""
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT worker, round, start_offset, end_offset, position, state, "
                        f"safe_until FROM "
                        f"{quote(meta_schema)}.{quote(TABLE)} WHERE task = %s AND source = %s",
                        (task, source))
            return Saved(tuple(Row(*row) for row in cur.fetchall()))
    except Exception as exc:
        raise ERR_SYNC_CHECKPOINT(exc, task=task, source=source, problem="cannot be read") \
            from exc


@dataclass(frozen=True)
class Start:
    """Where a subtask starts and until where it writes in safe mode."""

    offset: int
    safe_until: int
    round: int
    reason: str


def decide(saved: Saved, committed: int | None, metadata: str, fallback: int) -> Start:
    """Apply the rules of the module docstring."""
    newest = saved.newest()
    next_round = saved.last_round + 1
    if newest is None:
        if committed is not None:
            return Start(committed, committed, next_round, "committed offset, no checkpoint")
        return Start(fallback, fallback, next_round, "meta")
    done_end, high = newest.end, saved.high
    if committed is not None and not metadata.startswith(OUR_METADATA):
        return Start(committed, max(high, committed), next_round, "offset reset: replay")
    if saved.partial():
        return Start(newest.start, high, next_round, "unfinished round: safe replay")
    return Start(done_end, max(high, done_end), next_round, "checkpoint")
