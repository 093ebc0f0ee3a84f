"""A subtask's full migration: DM's Dump and Load units, streamed in one process (no dump
files)::

    upstream ──(`threads` readers in one snapshot)──▶ chunks ──(`pool-size` loaders)──▶ TiDB

`FullMigration.run(stop)`:

1. Read the load checkpoint (`consumers.load_checkpoint`); a finished migration returns
   its position at once.
2. Find the tables the block & allow list selects (`consumers.dump.discover`) and route
   them (`consumers.routing`); plan their chunks (first run) or take the saved plan (a
   resume: the same tables and ranges).
3. Open the snapshot (`consumers.snapshot`, by mydumpers `--consistency`).
4. First run: save the plan with the snapshot's position. Resume: `safe_until` becomes the
   new snapshot's position.
5. Create the missing downstream schemas and tables (`consumers.load.create_targets`).
6. Readers take the chunks round-robin over the tables and read each into statements;
   loaders apply each in one transaction with its checkpoint row. At most `threads +
   pool-size` chunks are held in memory.
7. With every chunk loaded: under `--consistency none` the position after the dump becomes
   `safe_until`; mark the migration finished; return the position.

For the sync unit (task-mode `all`): start at the returned `position`; when `safe_until` is
not None, replay in safe mode until past it (a resumed load mixes snapshots; a
`--consistency none` dump overlaps the binlog), as the load checkpoint's docstring argues.

Stop: readers take no new chunk, loaders finish the transaction in hand and drop what is
queued, and `run` returns None; the next run resumes. An error in any thread stops the
others the same way, and `run` raises it (a coded error; resumable ones are connection
failures).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

import pymysql

from consumers.applier import CONNECTION_ERRNOS
from consumers.dump import (
    ChunkReader,
    ChunkSpec,
    Sizing,
    TableInfo,
    TableJob,
    discover,
    plan_table,
)
from consumers.full_status import FullStats
from consumers.load import ChunkLoader, connect, create_targets
from consumers.load_checkpoint import LoadCheckpoint, SavedLoad
from consumers.pipeline import Rules
from consumers.snapshot import Snapshot, Upstream, is_mariadb, open_snapshot, read_position
from kdm import faults
from kdm.config.service import KafkaConfig
from kdm.config.source import SourceConfig
from kdm.config.task import TaskConfig, resolve_units
from kdm.errors import ERR_DUMP_PLAN, ERR_DUMP_UPSTREAM, ERR_LOAD_INTERNAL, KdmError
from kdm.log import Logger
from kdm.position import Position

POLL_SECONDS = 0.1


class FullMigration:
    """Dump and load of one task x source; see the module docstring."""

    def __init__(self, task: TaskConfig, source: SourceConfig,
                 kafka: KafkaConfig | None = None) -> None:
        self.task = task
        self.source = source
        self.kafka = kafka
        units = resolve_units(task, task.instance(source.source_id))
        self.dumper, self.loader = units.mydumper, units.loader
        self.sizing = Sizing.of(self.dumper)
        self.rules = Rules.build(task, source.source_id, source)
        self.checkpoint = LoadCheckpoint(task.target_database, task.meta_schema, task.name,
                                         source.source_id)
        self.stats = FullStats()
        self.position: Position | None = None
        self.safe_until: Position | None = None
        self.consistency = ""
        self.log = Logger("full", task=task.name, source=source.source_id)

    def status(self) -> dict[str, Any]:
        """The unit DM would name, and DM's `dump` and `load` blocks."""
        return {"unit": "Load" if self.stats.dump_done else "Dump",
                "dump": self.stats.dump_block(), "load": self.stats.load_block()}

    def run(self, stop: threading.Event) -> Position | None:
        """Migrate every selected table; the position the sync unit starts from, or None
        when `stop` came first."""
        saved = self.checkpoint.read()
        if saved is not None and saved.finished:
            self._account(saved, {})
            self.stats.dump_done = self.stats.load_done = True
            return self._done(saved.position, saved.safe_until)
        upstream = Upstream(self.source.from_, self.source.flavor == "mariadb",
                            self.source.enable_gtid)
        control = upstream.connect()
        try:
            if not self.source.flavor:
                upstream = replace(upstream, mariadb=is_mariadb(control))
            return self._run(stop, upstream, control, saved)
        except pymysql.MySQLError as exc:  # the control connection's: listing, planning
            if not exc.args or exc.args[0] in CONNECTION_ERRNOS:
                raise ERR_DUMP_UPSTREAM(exc, address=upstream.address, op="plan the dump") \
                    from exc
            raise ERR_DUMP_PLAN(exc, op="plan the dump", address=upstream.address,
                                problem=str(exc.args[-1])[:300]) from exc
        finally:
            control.close()

    def _run(self, stop: threading.Event, upstream: Upstream, control: Any,
             saved: SavedLoad | None) -> Position | None:
        schemas, infos = discover(control, self.rules.balist)
        if saved is not None:
            planned = {(c.spec.schema, c.spec.table) for c in saved.chunks}
            infos = [info for info in infos if info.name in planned]
            specs = saved.pending()
        else:
            specs = [spec for info in infos for spec in plan_table(control, info, self.sizing)]
        jobs = {info.name: TableJob.of(info, self.rules.router.target(*info.name))
                for info in infos}
        self._account(saved, {info.name: info for info in infos}, specs)
        if saved is not None and not specs:  # died between the last chunk and step 7
            self.stats.dump_done = self.stats.load_done = True
            return self._finish(saved.position, saved.safe_until)
        snapshot = open_snapshot(upstream, control, self.dumper.consistency(),
                                 self.dumper.threads, sorted(jobs), self.log)
        self.consistency = snapshot.mode
        try:
            position = saved.position if saved is not None else snapshot.position
            if saved is None:
                self.checkpoint.save_plan(specs, position)
            else:
                self.checkpoint.set_safe_until(snapshot.position)
            self.log.info("full migration starting", position=str(position),
                          consistency=snapshot.mode, readers=len(snapshot.readers),
                          chunks=len(specs), resumed=saved is not None)
            self._create(control, schemas, infos, list(jobs.values()))
            if not self._stream(snapshot, jobs, specs, stop):
                return None
        finally:
            snapshot.close()
        safe_until = snapshot.position if snapshot.consistent else \
            read_position(control, upstream.mariadb)
        return self._finish(position, safe_until)

    def _finish(self, position: Position, safe_until: Position) -> Position:
        """Step 7: the migration is finished."""
        self.checkpoint.finish(safe_until, self.stats.loaded_rows, self.stats.loaded_bytes)
        self.log.info("full migration finished", position=str(position),
                      safe_until=str(safe_until), rows=self.stats.loaded_rows)
        return self._done(position, safe_until)

    def _done(self, position: Position, safe_until: Position) -> Position:
        self.position = position
        self.safe_until = None if safe_until == position else safe_until
        return position

    def _account(self, saved: SavedLoad | None, infos: dict[tuple[str, str], TableInfo],
                 specs: Sequence[ChunkSpec] = ()) -> None:
        """Set the counters from the plan and the chunks done earlier."""
        chunks: dict[tuple[str, str], tuple[int, int]] = {}
        for spec in specs:
            total, done = chunks.get((spec.schema, spec.table), (0, 0))
            chunks[(spec.schema, spec.table)] = (total + 1, done)
        for old in saved.done() if saved is not None else ():
            name = (old.spec.schema, old.spec.table)
            total, done = chunks.get(name, (0, 0))
            chunks[name] = (total + 1, done + 1)
            self.stats.resumed(old.rows, old.bytes)
        rows = sum(info.rows for info in infos.values())
        weighted = sum(info.rows * info.avg_row_length for info in infos.values())
        self.stats.plan(chunks, max(rows, self.stats.dumped_rows), weighted / rows if rows else 0)

    def _create(self, control: Any, schemas: list[str], infos: list[TableInfo],
                jobs: list[TableJob]) -> None:
        with_tables = {info.schema for info in infos}
        down = connect(self.task.target_database, autocommit=True)
        try:
            created = create_targets(down, control, self.rules.router,
                                     [s for s in schemas if s not in with_tables], jobs)
        finally:
            down.close()
        if created:
            self.log.info("downstream tables created", count=len(created))

    # -- the streaming part -------------------------------------------------------------

    def _stream(self, snapshot: Snapshot, jobs: dict[tuple[str, str], TableJob],
                specs: Sequence[ChunkSpec], stop: threading.Event) -> bool:
        """Read and load every chunk; False when stopped (errors are raised)."""
        work = deque(round_robin(specs))
        pool = max(1, min(self.loader.pool_size, len(specs)))
        run = _Run(threading.Semaphore(len(snapshot.readers) + pool), queue.Queue())
        address = f"{self.source.from_.host}:{self.source.from_.port}"
        readers = [self._thread(run, f"dump-{i}", self._read_loop, conn, jobs, work, run,
                                address) for i, conn in enumerate(snapshot.readers)]
        loaders = [self._thread(run, f"load-{i}", self._load_loop, run) for i in range(pool)]
        _wait(readers, stop, run.halt)
        self.stats.dump_done = not run.halt.is_set()
        for _ in loaders:
            run.ready.put(None)
        _wait(loaders, stop, run.halt)
        if run.errors:
            raise run.errors[0]
        self.stats.load_done = not run.halt.is_set()
        return self.stats.load_done

    def _thread(self, run: _Run, name: str, target: Callable[..., None],
                *args: Any) -> threading.Thread:
        def guarded() -> None:
            try:
                target(*args)
            except BaseException as exc:  # any failure stops the whole run, coded
                run.fail(exc if isinstance(exc, KdmError) else ERR_LOAD_INTERNAL(
                    exc, task=self.task.name, source=self.source.source_id))
        thread = threading.Thread(target=guarded, name=f"{name}-{self.task.name}", daemon=True)
        thread.start()
        return thread

    def _read_loop(self, conn: Any, jobs: dict[tuple[str, str], TableJob],
                   work: deque[ChunkSpec], run: _Run, address: str) -> None:
        reader = ChunkReader(conn, jobs, self.sizing, self.dumper.where, address)
        while not run.halt.is_set():
            try:
                spec = work.popleft()
            except IndexError:
                return
            while not run.slots.acquire(timeout=POLL_SECONDS):
                if run.halt.is_set():
                    return
            chunk = reader.read(spec)
            faults.point("dump.after_read")
            self.stats.dumped((spec.schema, spec.table), chunk.rows, chunk.bytes)
            run.ready.put(chunk)

    def _load_loop(self, run: _Run) -> None:
        loader = ChunkLoader(self.task.target_database, self.checkpoint)
        try:
            while not run.halt.is_set():
                try:
                    chunk = run.ready.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    continue
                if chunk is None:
                    return
                if loader.apply(chunk):
                    self.stats.loaded(chunk.rows, chunk.bytes)
                else:
                    self.log.warning("chunk already loaded by another process, skipped",
                                     chunk=chunk.spec.id)
                run.slots.release()
        finally:
            loader.close()


class _Run:
    """What the threads of one streaming run share."""

    def __init__(self, slots: threading.Semaphore, ready: queue.Queue[Any]) -> None:
        self.slots = slots
        self.ready = ready
        self.halt = threading.Event()
        self.errors: list[KdmError] = []
        self._lock = threading.Lock()

    def fail(self, error: KdmError) -> None:
        """Record an error and stop every thread."""
        with self._lock:
            self.errors.append(error)
        self.halt.set()


def _wait(threads: Iterable[threading.Thread], stop: threading.Event,
          halt: threading.Event) -> None:
    """Join the threads; a `stop` meanwhile halts them."""
    for thread in threads:
        while thread.is_alive():
            if stop.is_set():
                halt.set()
            thread.join(POLL_SECONDS)


def round_robin(specs: Iterable[ChunkSpec]) -> list[ChunkSpec]:
    """Chunks interleaved over their tables (each table's in order), so the readers and
    loaders work on different tables at once."""
    tables: dict[tuple[str, str], deque[ChunkSpec]] = {}
    for spec in specs:
        tables.setdefault((spec.schema, spec.table), deque()).append(spec)
    out = []
    while tables:
        for name in list(tables):
            out.append(tables[name].popleft())
            if not tables[name]:
                del tables[name]
    return out
