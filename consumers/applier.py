"""DML workers: each applies its share of a round in one downstream transaction that also
writes its checkpoint row (see `consumers.checkpoint`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pymysql

from consumers import checkpoint
from consumers.change import RowChange, render
from consumers.compactor import compact
from consumers.downstream import connect
from kdm.config.common import DBConfig
from kdm.errors import ERR_SYNC_DOWNSTREAM, ERR_SYNC_EXEC, KdmError

# Connection-level MySQL errors: the statement never ran or its transaction rolled back.
CONNECTION_ERRNOS = frozenset({2002, 2003, 2006, 2013, 2055})


@dataclass(frozen=True)
class Round:
    """One round: per-worker changes and the checkpoint it reaches."""

    number: int
    start: int
    end: int
    position: str
    changes: tuple[tuple[RowChange, ...], ...]
    safe: bool
    ts_ms: int = 0
    safe_until: int = 0


class Applier:
    """`workers` connections, each used by one thread at a time."""

    def __init__(self, target: DBConfig, workers: int, meta_schema: str, task: str,
                 source: str, multiple_rows: bool, compact: bool = False) -> None:
        self.target = target
        self.workers = workers
        self.task = task
        self.source = source
        self.multiple_rows = multiple_rows
        self.compact = compact
        self.upsert = checkpoint.upsert_sql(meta_schema)
        self.address = f"{target.host}:{target.port}"
        self._conns: list[Any] = [None] * workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=f"dml-{task}-{source}")
        self.rows_applied = 0

    def submit(self, batch: Round) -> list[Future[int]]:
        """Start applying a round; `wait` for it before submitting the next. Returns once
        every worker has its share's SQL and is sending it: the workers need the interpreter
        lock for that, and the caller, which goes on to build the next round, would
        otherwise keep it from them a switch interval (5 ms) at a time, for each of them."""
        ready = threading.Semaphore(0)
        futures = [self._pool.submit(self._apply, worker, batch, ready)
                   for worker in range(self.workers)]
        for _ in futures:
            ready.acquire()
        return futures

    def wait(self, futures: Sequence[Future[int]]) -> None:
        """Wait for a round; raise the first worker's error after all have finished."""
        errors = []
        for future in futures:
            try:
                self.rows_applied += future.result()
            except KdmError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def close(self) -> None:
        """Stop the threads and close the connections."""
        self._pool.shutdown(wait=True)
        for conn in self._conns:
            if conn is not None:
                conn.close()
        self._conns = [None] * self.workers

    def _conn(self, worker: int) -> Any:
        if self._conns[worker] is None:
            self._conns[worker] = connect(self.target, multi_statements=True)
        return self._conns[worker]

    def _apply(self, worker: int, batch: Round, ready: threading.Semaphore) -> int:
        """The worker's share of the round, its checkpoint row and COMMIT, sent as one
        multi-statement query (one round trip); the server stops at the first statement
        that fails, so nothing after it (the COMMIT least of all) runs. `ready` is released
        once the query is about to be sent (or could not be made)."""
        try:
            changes: Sequence[RowChange] = batch.changes[worker] \
                if worker < len(batch.changes) else ()
            safe = batch.safe
            if self.compact and len(changes) > 1:
                changes, needs_replace = compact(changes)
                safe = safe or needs_replace
            statements = render(changes, safe, self.multiple_rows)
            statements.append((self.upsert, [self.task, self.source, worker, batch.number,
                                             batch.start, batch.end, batch.safe_until,
                                             batch.position]))
            cur = self._conn(worker).cursor()
            texts = [sql if args is None else cur.mogrify(sql, args) for sql, args in statements]
        finally:
            ready.release()
        done = 0
        try:
            with cur:
                cur.execute(";\n".join(texts) + ";\nCOMMIT")
                done = 1
                while cur.nextset():
                    done += 1
        except pymysql.MySQLError as exc:
            self._drop(worker)
            if exc.args and exc.args[0] in CONNECTION_ERRNOS:
                raise ERR_SYNC_DOWNSTREAM(exc, address=self.address, op="apply") from exc
            sql = statements[done][0] if done < len(statements) else "COMMIT"
            raise ERR_SYNC_EXEC(exc, what="a row change", position=batch.position,
                                sql=sql[:300]) from exc
        return len(changes)

    def _drop(self, worker: int) -> None:
        conn, self._conns[worker] = self._conns[worker], None
        if conn is not None:
            try:
                conn.rollback()
                conn.close()
            except pymysql.MySQLError:
                pass


def now_ms() -> int:
    """Wall clock in milliseconds."""
    return int(time.time() * 1000)
