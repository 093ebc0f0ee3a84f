"""Runs a subtask under its stage: follows `pause-task`/`resume-task` requests, pauses on
every error and auto-resumes the resumable ones, and publishes DM's subtask status.

Errors, as DM's worker and its task checker handle them: any error moves the subtask to
Paused with the error in `errors` (`result.errors` in query-status). When the source's
`checker.check-enable` is on and the error's registry entry is resumable, the runner resumes
it by itself (Paused → Running, no request written) after the wait `kdm.backoff.Backoff`
gives; a non-resumable error, or any error with the checker off, stays Paused until
`resume-task`. A `pause-task` while it waits cancels the auto-resume (DM also marks the
result canceled; kdm's `result.isCanceled` stays false), and a `resume-task` resumes at
once.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from typing import Any

from consumers import metrics
from consumers.full import FullMigration
from consumers.subtask import Subtask
from kdm.avro import AvroCodec
from kdm.backoff import Backoff
from kdm.config.service import KafkaConfig
from kdm.config.source import Checker, SourceConfig
from kdm.config.task import TaskConfig
from kdm.errors import ERR_SYNC_FULL_SOURCE, ERR_SYNC_INTERNAL, ERR_SYNC_STAGE, KdmError
from kdm.log import Logger
from kdm.position import Position, binlog_text, file_index
from kdm.relay_log import TopicReader
from kdm.shard_ddl import blocking_ddls, unresolved_groups
from kdm.stages import (
    TRANSITIONS,
    Stage,
    StageWatcher,
    full_key,
    host_id,
    subtask_key,
    transition,
)
from kdm.status import StatusPublisher

SUBTASK_STATUS = "io.kdm.status.SubtaskStatus"
FULL_STATUS = "io.kdm.status.FullStatus"
STATUS_SECONDS = 2.0
BACKOFF_MAX = 30.0


class SubtaskRunner:
    """One subtask under its stage, in a thread of the consumer service."""

    def __init__(self, task: TaskConfig, source_id: str, kafka: KafkaConfig,
                 checker: Checker | None = None, source: SourceConfig | None = None) -> None:
        self.task = task
        self.source_id = source_id
        self.kafka = kafka
        self.codec = AvroCodec()
        self.key = subtask_key(task.name, source_id)
        self.stage = Stage.NEW
        self.errors: list[KdmError] = []
        self.subtask = Subtask(task, source_id, kafka, self.codec, source)
        self.log = Logger("sync", task=task.name, source=source_id)
        self._handled = 0
        self.checker = checker or Checker()
        self.backoff = Backoff(self.checker)
        self._resume_at: float | None = None  # monotonic time of the pending auto-resume
        # task-mode full/all: DM's Dump and Load units first (they need the source's `from`)
        self.full = FullMigration(task, source, kafka) \
            if task.task_mode != "incremental" and source is not None else None
        self.unit = "Sync" if task.task_mode == "incremental" else "Dump"

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set."""
        watcher = self._start(stop)
        if watcher is None:
            return
        reporter = threading.Thread(target=self._report, args=(stop,), daemon=True)
        reporter.start()
        try:
            while not stop.is_set():
                if not self._wants_running(watcher):
                    stop.wait(0.2)
                    continue
                self._set_stage(Stage.RUNNING)
                self._run_once(stop, watcher, threading.Event())
        finally:
            watcher.stop()
            reporter.join(5)
            self.publish()
            self.publisher.close()
            self._reader.close()

    def _start(self, stop: threading.Event) -> StageWatcher | None:
        """Stage watcher and status publisher, retried while Kafka is unreachable."""
        error_key = f"handle-error/{self.task.name}/{self.source_id}"
        backoff = 1.0
        while not stop.is_set():
            try:
                watcher = StageWatcher(self.kafka, self.key, (error_key,)).start()
                watcher.ready.wait(30)
                self.publisher = StatusPublisher(self.kafka, self.codec)
                self._reader = TopicReader(self.kafka, self.subtask.topic, 0, self.codec)
                self.subtask.operation = functools.partial(watcher.values.get, error_key)
                return watcher
            except KdmError as exc:
                if not exc.spec.resumable:
                    raise
                self.log.warning("subtask cannot start yet, retrying", error=exc.render())
                stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
        return None

    def _run_once(self, stop: threading.Event, watcher: StageWatcher,
                  inner: threading.Event) -> None:
        def relay_stop() -> None:
            while not inner.is_set():
                latest = watcher.latest
                if latest is not None and latest.revision != self._handled and \
                        latest.stage == Stage.RUNNING:  # resume while running: DM's no-op
                    if inner.is_set():  # the run just ended (an error): the request is
                        return          # a resume for the main loop, not a no-op
                    self._handled = latest.revision
                elif stop.is_set() or (latest is not None and latest.revision != self._handled):
                    inner.set()
                    return
                inner.wait(0.1)
        threading.Thread(target=relay_stop, daemon=True).start()
        try:
            try:
                if self.unit != "Sync" and not self._full(inner):
                    return
                self.subtask.run(inner)
            except KdmError:
                raise
            except Exception as exc:  # never let a thread die silently: pause with a code
                raise ERR_SYNC_INTERNAL(exc, task=self.task.name, source=self.source_id) \
                    from exc
        except KdmError as exc:
            inner.set()  # before pausing: a resume arriving now must not be taken as a no-op
            self._pause_on(exc)
        finally:
            inner.set()

    def _full(self, stop: threading.Event) -> bool:
        """Dump and load (resuming from finished chunks); True when the sync unit follows.
        task-mode full ends Finished; `all` syncs from exactly the snapshot's position, in
        safe mode up to `safe_until` when the load had to mix snapshots."""
        if self.full is None:
            raise ERR_SYNC_FULL_SOURCE(task=self.task.name, source=self.source_id,
                                       mode=self.task.task_mode)
        position = self.full.run(stop)
        if position is None:  # stopped (pause, stop, shutdown) between chunks
            return False
        if self.task.task_mode == "full":
            self.unit = "Load"
            self._set_stage(Stage.FINISHED)
            return False
        self.subtask.start_at, self.subtask.safe_position = position, self.full.safe_until
        self.unit = "Sync"
        return True

    def _pause_on(self, exc: KdmError) -> None:
        """Every error pauses; a resumable one is resumed after the checker's backoff."""
        if Stage.PAUSED not in TRANSITIONS[self.stage]:  # Finished, Stopped: nothing to pause
            self.log.error("error after the subtask ended", error=exc.render(),
                           stage=self.stage.value)
            return
        self.errors = [exc]
        metrics.EXIT_WITH_ERROR.labels(task=self.task.name, source=self.source_id,
                                       resumable_err=str(exc.spec.resumable).lower()).inc()
        wait = None
        if self.checker.check_enable and exc.spec.resumable:
            now = time.monotonic()
            wait = self.backoff.next(now)
            self._resume_at = now + wait
        self.log.error("subtask paused on error", error=exc.render(),
                       resumable=exc.spec.resumable, auto_resume_in=wait)
        self._set_stage(Stage.PAUSED)

    def _wants_running(self, watcher: StageWatcher) -> bool:
        """Whether to run now: a new request decides, else a pending auto-resume that is due."""
        if self.stage == Stage.FINISHED:  # nothing leaves Finished
            return False
        request = watcher.latest
        fresh = request is not None and request.revision != self._handled
        if request is not None:
            self._handled = request.revision
        if request is not None and request.stage in (Stage.PAUSED, Stage.STOPPED):
            self._resume_at = None
            self._hold(request.stage)
            return False
        if fresh or self.stage != Stage.PAUSED or not self.errors:
            return True
        if self._resume_at is None or time.monotonic() < self._resume_at:
            return False
        self.log.info("subtask resuming automatically", after=self.errors[0].code)
        return True

    def _hold(self, stage: Stage) -> None:
        """Take a requested Paused/Stopped stage when the table has the edge. The table has
        no New → Stopped: a subtask stopped before it ever ran (e.g. this process started
        while the task was stopped) stays New rather than being reported as a Stopped run
        that never happened. A request without an edge (a pause that raced a stop) is
        logged and ignored, never a crash of the runner."""
        if stage == self.stage or stage in TRANSITIONS[self.stage]:
            self._set_stage(stage)
        elif self.stage != Stage.NEW:
            self.log.warning("stage request ignored", current=self.stage.value,
                             wanted=stage.value)

    def _set_stage(self, stage: Stage) -> None:
        if stage == self.stage:
            return
        self.stage = transition(self.stage, stage, ERR_SYNC_STAGE, task=self.task.name,
                                source=self.source_id)
        if stage == Stage.RUNNING:
            self.errors = []
            self._resume_at = None
            self.backoff.succeeded(time.monotonic())
        self.log.info("subtask stage changed", stage=stage.value)
        try:
            self.publish()
        except KdmError as exc:  # the stage holds; the reporter publishes it again soon
            self.log.warning("status not published", error=exc.render())

    def _report(self, stop: threading.Event) -> None:
        while not stop.wait(STATUS_SECONDS):
            try:
                self.publish()
            except KdmError as exc:
                self.log.warning("status not published", error=exc.render())

    def publish(self) -> None:
        """Publish the subtask's status now (and its full migration's progress)."""
        self.publisher.publish(self.key, SUBTASK_STATUS, self.snapshot())
        if self.full is not None:
            self.publisher.publish(full_key(self.task.name, self.source_id), FULL_STATUS,
                                   self.full_snapshot())

    def snapshot(self) -> dict[str, Any]:
        """DM's subtask status (with its sync block flattened) and Kafka facts."""
        sub, stats = self.subtask, self.subtask.stats
        last = self._last()
        master = Position.from_dict(last.value["position"]) if last is not None else None
        # offsets count transaction markers too: compare with the last record's offset
        lag = max(0, last.offset + 1 - sub.next_offset) if last is not None else 0
        applied = stats.applied_position
        self._export(lag, stats.lag_seconds() if lag else 0.0, master, applied)
        return {
            "name": self.task.name, "source": self.source_id, "worker": host_id(),
            "stage": self.stage.value, "unit": self._unit(),
            "errors": [e.to_dict() for e in self.errors],
            "unresolvedDDLLockID": stats.lock_id,
            "totalEvents": stats.total_events, "totalTps": stats.total_tps(),
            "recentTps": stats.recent_tps(), "masterBinlog": binlog_text(master),
            "masterBinlogGtid": master.gtid if master else "",
            "syncerBinlog": binlog_text(applied),
            "syncerBinlogGtid": applied.gtid if applied else "",
            "blockingDDLs": blocking_ddls(stats.shard_groups),
            "unresolvedGroups": json.dumps(unresolved_groups(stats.shard_groups)),
            "synced": lag == 0 and self.stage == Stage.RUNNING,
            "topic": sub.topic, "partition": 0, "offset": sub.next_offset,
            "consumerLag": lag, "secondsBehindMaster": 0.0 if lag == 0 else
            stats.lag_seconds(), "safeMode": self.task.instance(self.source_id) is not None
            and (sub.sync.safe_mode or sub.next_offset < sub.safe_until),
            "updated_ms": int(time.time() * 1000)}

    def _unit(self) -> str:
        """DM's unit: Dump or Load while the full migration runs, then Sync."""
        if self.unit == "Sync" or self.full is None:
            return self.unit
        return str(self.full.status()["unit"])

    def full_snapshot(self) -> dict[str, Any]:
        """The full migration's `dump` and `load` blocks (key full/<task>/<source>)."""
        assert self.full is not None
        status = self.full.status()
        return {"name": self.task.name, "source": self.source_id, "unit": status["unit"],
                "dump": status["dump"], "load": status["load"],
                "updated_ms": int(time.time() * 1000)}

    def _export(self, lag: int, seconds: float, master: Position | None,
                applied: Position | None) -> None:
        labels = {"task": self.task.name, "source": self.source_id}
        metrics.CONSUMER_LAG.labels(**labels).set(lag)
        metrics.LAG_SECONDS.labels(**labels).set(seconds)
        sub = self.subtask
        metrics.SAFE_MODE.labels(**labels).set(
            int(sub.sync.safe_mode or sub.next_offset < sub.safe_until))
        for node, position in (("master", master), ("syncer", applied)):
            if position is not None and position.file:
                metrics.BINLOG_FILE.labels(node=node, **labels).set(file_index(position.file))

    def _last(self) -> Any:
        try:
            return self._reader.last()
        except KdmError:
            return None
