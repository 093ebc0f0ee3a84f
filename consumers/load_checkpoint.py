"""Load checkpoints: the chunk plan, the finished chunks and the snapshot positions of a
subtask's full migration, in `<meta-schema>`.kdm_load_checkpoint.

Rows of one subtask (task, source):

- the summary row (schema "", table "", chunk -1): `position`, the binlog point of the
  first snapshot, where the sync unit starts; `safe_until`, the point of the newest
  snapshot (for `--consistency none`, the point after the dump), until which the sync unit
  replays in safe mode; `done` = 1 once every chunk is loaded.
- one row per chunk: its bounds (JSON: key columns, integer or not, lower and upper as SQL
  literals), `done`, and the rows and bytes it held.

The protocol, and what a crash between two steps leaves:

1. Plan the chunks and open the snapshot; nothing is written. A crash: the next run plans
   again.
2. Write the summary row and every chunk row (done = 0) in one transaction. A crash: all
   of it or none of it is there.
3. Load each chunk in one transaction with its row's `done = 1` (`consumers.load`). A
   crash: the chunk in flight rolls back, marker and rows together.
4. A run that finds a plan (a resume) opens a new snapshot, sets `safe_until` to its point
   in a transaction of its own before it loads anything, and loads only the chunks not
   done. The chunks loaded earlier came from older snapshots, so the sync unit starts at
   `position` (the oldest) and replays in safe mode until `safe_until`: every change since
   the oldest snapshot is applied again idempotently (REPLACE, DELETE + REPLACE), as DM
   does after a `--consistency none` dump, and past `safe_until` the downstream is exactly
   the upstream. Nothing finished is loaded twice, nothing is lost.
5. Mark the summary row done. A crash before: the next run finds every chunk done, marks it
   and returns the position. After: the next run returns the position at once.

`start-task --remove-meta` deletes the rows (`kdm.meta`): the next run starts at 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pymysql

from consumers.applier import CONNECTION_ERRNOS
from consumers.dump import Chunk, ChunkSpec
from consumers.load import RETRY_ERRNOS, connect
from kdm.config.common import DBConfig
from kdm.errors import ERR_LOAD_CHECKPOINT, ERR_LOAD_DOWNSTREAM, KdmError
from kdm.meta import LOAD_CHECKPOINT_TABLE
from kdm.position import Position
from kdm.schema_sql import quote_name as quote

SUMMARY = -1
_T = TypeVar("_T")
INSERT_BATCH = 500
TX_ATTEMPTS = 5


def create_sql(meta_schema: str) -> list[str]:
    """Statements creating the load checkpoint table (idempotent)."""
    return [
        f"CREATE DATABASE IF NOT EXISTS {quote(meta_schema)}",
        f"CREATE TABLE IF NOT EXISTS {quote(meta_schema)}.{quote(LOAD_CHECKPOINT_TABLE)} ("
        "task VARCHAR(128) NOT NULL, source VARCHAR(64) NOT NULL, "
        "up_schema VARCHAR(64) NOT NULL, up_table VARCHAR(64) NOT NULL, chunk INT NOT NULL, "
        "bounds LONGTEXT NULL, done TINYINT NOT NULL DEFAULT 0, "
        "row_count BIGINT NOT NULL DEFAULT 0, byte_count BIGINT NOT NULL DEFAULT 0, "
        "position VARCHAR(2048) NOT NULL DEFAULT '', "
        "safe_until VARCHAR(2048) NOT NULL DEFAULT '', "
        "updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) "
        "ON UPDATE CURRENT_TIMESTAMP(3), "
        "PRIMARY KEY (task, source, up_schema, up_table, chunk))"]


@dataclass(frozen=True)
class SavedChunk:
    """A planned chunk and whether it is loaded."""

    spec: ChunkSpec
    done: bool
    rows: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class SavedLoad:
    """A subtask's saved full migration."""

    position: Position
    safe_until: Position
    finished: bool
    chunks: tuple[SavedChunk, ...]

    def pending(self) -> list[ChunkSpec]:
        """The chunks still to load, in plan order."""
        return [chunk.spec for chunk in self.chunks if not chunk.done]

    def done(self) -> list[SavedChunk]:
        """The chunks loaded by earlier runs."""
        return [chunk for chunk in self.chunks if chunk.done]


def parse_saved(rows: Iterable[Sequence[Any]]) -> SavedLoad | None:
    """A SavedLoad from the table's rows (up_schema, up_table, chunk, bounds, done,
    row_count, byte_count, position, safe_until); None without a summary row."""
    summary = None
    chunks = []
    for schema, table, index, bounds, done, row_count, byte_count, position, safe in rows:
        if int(index) == SUMMARY:
            summary = (str(position), str(safe), bool(done))
            continue
        spec = ChunkSpec.from_saved(str(schema), str(table), int(index), str(bounds))
        chunks.append(SavedChunk(spec, bool(done), int(row_count), int(byte_count)))
    if summary is None:
        return None
    position = Position.parse(summary[0])
    safe_until = Position.parse(summary[1]) if summary[1] else position
    chunks.sort(key=lambda c: (c.spec.schema, c.spec.table, c.spec.index))
    return SavedLoad(position, safe_until, summary[2], tuple(chunks))


class LoadCheckpoint:
    """The load checkpoint rows of one subtask."""

    def __init__(self, target: DBConfig, meta_schema: str, task: str, source: str) -> None:
        self.target = target
        self.task = task
        self.source = source
        self.table = f"{quote(meta_schema)}.{quote(LOAD_CHECKPOINT_TABLE)}"
        self.meta_schema = meta_schema
        self._mark = (f"UPDATE {self.table} SET done = 1, row_count = %s, byte_count = %s "
                      "WHERE task = %s AND source = %s AND up_schema = %s AND up_table = %s "
                      "AND chunk = %s AND done = 0")

    def read(self) -> SavedLoad | None:
        """The saved plan (creating the table first), or None when there is none."""
        def work(cur: Any) -> SavedLoad | None:
            for sql in create_sql(self.meta_schema):
                cur.execute(sql)
            cur.execute("SELECT up_schema, up_table, chunk, bounds, done, row_count, byte_count, "
                        f"position, safe_until FROM {self.table} WHERE task = %s AND "
                        "source = %s", (self.task, self.source))
            return parse_saved(cur.fetchall())
        try:
            return self._run(work, "read")
        except KdmError:
            raise
        except (ValueError, KeyError) as exc:  # damaged bounds or position text
            raise ERR_LOAD_CHECKPOINT(exc, task=self.task, source=self.source,
                                      problem="rows are damaged") from exc

    def save_plan(self, specs: Sequence[ChunkSpec], position: Position) -> None:
        """Step 2: the summary row and every chunk row, in one transaction."""
        def work(cur: Any) -> None:
            cur.execute(f"DELETE FROM {self.table} WHERE task = %s AND source = %s",
                        (self.task, self.source))
            cur.execute(f"INSERT INTO {self.table} (task, source, up_schema, up_table, chunk, "
                        "position, safe_until) VALUES (%s, %s, '', '', %s, %s, %s)",
                        (self.task, self.source, SUMMARY, str(position), str(position)))
            rows = [(self.task, self.source, s.schema, s.table, s.index, s.bounds_json())
                    for s in specs]
            for start in range(0, len(rows), INSERT_BATCH):
                cur.executemany(f"INSERT INTO {self.table} (task, source, up_schema, up_table, "
                                "chunk, bounds) VALUES (%s, %s, %s, %s, %s, %s)",
                                rows[start:start + INSERT_BATCH])
        self._run(work, "save the plan")

    def set_safe_until(self, position: Position) -> None:
        """Step 4: the sync unit replays in safe mode until `position`."""
        self._summary("safe_until = %s", (str(position),), "set safe_until")

    def finish(self, safe_until: Position, rows: int, size: int) -> None:
        """Step 5: every chunk is loaded."""
        self._summary("done = 1, safe_until = %s, row_count = %s, byte_count = %s",
                      (str(safe_until), rows, size), "finish")

    def mark(self, chunk: Chunk) -> tuple[str, tuple[Any, ...]]:
        """The UPDATE marking `chunk` done (run first in the chunk's transaction)."""
        spec = chunk.spec
        return self._mark, (chunk.rows, chunk.bytes, self.task, self.source, spec.schema,
                            spec.table, spec.index)

    def _summary(self, assignments: str, args: tuple[Any, ...], op: str) -> None:
        def work(cur: Any) -> None:
            cur.execute(f"UPDATE {self.table} SET {assignments} WHERE task = %s AND "
                        "source = %s AND up_schema = '' AND up_table = '' AND chunk = %s",
                        (*args, self.task, self.source, SUMMARY))
        self._run(work, op)

    def _run(self, work: Callable[[Any], _T], op: str) -> _T:
        """`work(cursor)` in one transaction on a fresh connection; a deadlock or lock wait
        timeout (two subtasks of a task writing their plans at once) rolled the transaction
        back, so it is run again, and a persistent one is a resumable error."""
        attempt = 1
        while True:
            try:
                return self._once(work, op)
            except pymysql.MySQLError as exc:
                if attempt == TX_ATTEMPTS:
                    raise ERR_LOAD_DOWNSTREAM(exc, address=f"{self.target.host}:"
                                              f"{self.target.port}", op=f"{op} load "
                                              "checkpoint") from exc
                time.sleep(0.1 * attempt)
                attempt += 1

    def _once(self, work: Callable[[Any], _T], op: str) -> _T:
        conn = connect(self.target)
        try:
            with conn.cursor() as cur:
                result = work(cur)
            conn.commit()
            return result
        except pymysql.MySQLError as exc:
            if exc.args and exc.args[0] in RETRY_ERRNOS:
                raise
            if not exc.args or exc.args[0] in CONNECTION_ERRNOS:
                raise ERR_LOAD_DOWNSTREAM(exc, address=f"{self.target.host}:"
                                          f"{self.target.port}", op=f"{op} load checkpoint") \
                    from exc
            raise ERR_LOAD_CHECKPOINT(exc, task=self.task, source=self.source,
                                      problem=f"cannot {op}") from exc
        finally:
            conn.close()
