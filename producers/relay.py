"""The relay: one source's binlog into its relay topic, exactly once (DM's relay unit).

Loop: pick the resume point (the last committed relay record, else source.yaml's
`relay-binlog-gtid`/`relay-binlog-name`, else the upstream's current position), read the
binlog from there, produce records inside a Kafka transaction and commit every
`batch_records` records or `commit_seconds`, and at once when the upstream goes idle.

Faults:

- upstream gone, Kafka unreachable (resumable errors): the reader and writer are dropped,
  the relay waits with exponential backoff, then resumes from the last *committed* record;
  the stage stays Running and the status shows the error meanwhile.
- an aborted Kafka transaction: re-read from the last committed record at once.
- binlog purged, unsupported or malformed event, wrong upstream settings: stage Paused with
  the coded error, nothing skipped; `resume-relay` tries again from the same point.
- SIGKILL anywhere: the open Kafka transaction is aborted by the next producer's
  `init_transactions`, and the relay resumes after the last committed record.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from kdm.avro import AvroCodec
from kdm.config.service import KafkaConfig
from kdm.config.source import SourceConfig
from kdm.errors import ERR_RELAY_STAGE, ERR_RELAY_UPSTREAM, KdmError, Scope
from kdm.kafka_admin import ensure_topics
from kdm.log import Logger
from kdm.position import Position
from kdm.relay_log import last_relay_record
from kdm.stages import Stage, StageWatcher, relay_key, transition
from kdm.topics import Topics
from producers import metrics
from producers.reader import BinlogReader, Resume
from producers.settings import RelaySettings
from producers.status import RelayStatusReporter
from producers.upstream import Upstream
from producers.writer import RelayWriter, TransactionAborted


class Relay:
    """Runs one source's relay until `stop` is set."""

    def __init__(self, source: SourceConfig, kafka: KafkaConfig,
                 settings: RelaySettings | None = None, codec: AvroCodec | None = None) -> None:
        self.source = source
        self.kafka = kafka
        self.settings = settings or RelaySettings()
        self.codec = codec or AvroCodec()
        self.topic = Topics(kafka.topic_prefix).relay(source.source_id,
                                                      source.relay_retention_ms())
        self.log = Logger("relay", source=source.source_id)
        self.stage = Stage.NEW
        self.errors: list[KdmError] = []
        self.committed: dict[str, Any] | None = None
        self.events = 0
        self.upstream: Upstream | None = None
        self._writer: RelayWriter | None = None
        self._handled_revision = 0
        self._labels = {"source": source.source_id}

    # -- stage loop ---------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Relay until `stop` is set, following the stage requests for this source."""
        watcher = self._start(stop)
        if watcher is None:
            return
        try:
            self._loop(stop, watcher)
        finally:
            watcher.stop()
            self._drop_writer(commit=True)
            self.status.publish(force=True)
            self.status.close()

    def _start(self, stop: threading.Event) -> StageWatcher | None:
        """Topics, stage watcher and status publisher, retried while Kafka is unreachable."""
        backoff = self.settings.backoff_min
        while not stop.is_set():
            try:
                ensure_topics(self.kafka, [self.topic])
                watcher = StageWatcher(self.kafka, relay_key(self.source.source_id)).start()
                watcher.ready.wait(30)
                self.status = RelayStatusReporter(self)
                return watcher
            except KdmError as exc:
                if not exc.spec.resumable:
                    self.log.error("relay cannot start", error=exc.render())
                    raise
                self.log.warning("relay cannot start yet, retrying", error=exc.render())
                stop.wait(backoff)
                backoff = min(backoff * 2, self.settings.backoff_max)
        return None

    def _loop(self, stop: threading.Event, watcher: StageWatcher) -> None:
        backoff = self.settings.backoff_min
        while not stop.is_set():
            if not self._wants_running(watcher):
                self.status.publish()
                stop.wait(0.2)
                continue
            self._set_stage(Stage.RUNNING)
            try:
                self._pump(stop, watcher)
                backoff = self.settings.backoff_min
            except TransactionAborted as exc:
                self.log.warning("kafka transaction aborted", reason=str(exc))
            except KdmError as exc:
                backoff = self._on_error(exc, stop, backoff)

    def _wants_running(self, watcher: StageWatcher) -> bool:
        request = watcher.latest
        if request is not None and request.stage in (Stage.PAUSED, Stage.STOPPED):
            # the table has no New -> Stopped: a relay stopped before it ever ran stays New
            if not (self.stage == Stage.NEW and request.stage == Stage.STOPPED):
                self._set_stage(request.stage)
            return False
        if self.stage == Stage.PAUSED and self.errors and (
                request is None or request.revision == self._handled_revision):
            return False  # paused by an error: wait for resume-relay
        if request is not None:
            self._handled_revision = request.revision
        return True

    def _on_error(self, exc: KdmError, stop: threading.Event, backoff: float) -> float:
        self._drop_writer(commit=False)
        self.errors = [exc]
        counter = metrics.READ_ERRORS if exc.spec is ERR_RELAY_UPSTREAM else metrics.WRITE_ERRORS
        counter.labels(**self._labels).inc()
        if exc.spec.resumable:
            self.log.warning("relay interrupted, retrying", error=exc.render(), wait=backoff)
            self.status.publish(force=True)
            stop.wait(backoff)
            return min(backoff * 2, self.settings.backoff_max)
        self.log.error("relay paused on error", error=exc.render())
        metrics.EXIT_WITH_ERROR.labels(resumable_err="false", **self._labels).inc()
        self._set_stage(Stage.PAUSED)
        return self.settings.backoff_min

    def _set_stage(self, stage: Stage) -> None:
        if stage == self.stage:
            return
        self.stage = transition(self.stage, stage, ERR_RELAY_STAGE, source=self.source.source_id)
        if stage == Stage.RUNNING:
            self.errors = []
        metrics.STAGE.labels(**self._labels).set(list(Stage).index(stage))
        self.log.info("relay stage changed", stage=stage.value)
        self.status.publish(force=True)

    # -- the pump -----------------------------------------------------------------------

    def _pump(self, stop: threading.Event, watcher: StageWatcher) -> None:
        if self.upstream is None:
            self.upstream = Upstream.probe(self.source)
        writer = self._ensure_writer()
        resume = self._resume_point(self.upstream)
        self.log.info("relay reading", resume=str(resume.position), in_txn=resume.in_txn)
        reader = BinlogReader(self.source, self.upstream, resume, self.source.enable_gtid)
        settings = self.settings
        last_output = time.monotonic()
        records = reader.records()
        try:
            for record in records:
                now = time.monotonic()
                if record is not None:
                    writer.add(record)
                    last_output = now
                elif not reader.in_transaction() and now - last_output >= \
                        settings.heartbeat_seconds:
                    writer.add(self._heartbeat(reader))
                    last_output = now
                if writer.pending and (record is None or writer.pending >= settings.batch_records
                                       or now - writer.first_pending_at >= settings.commit_seconds):
                    self._commit(writer)
                if record is None or writer.pending == 0:
                    self.status.publish()
                    if stop.is_set() or (watcher.latest is not None and (
                            watcher.latest.revision != self._handled_revision)):
                        self._commit(writer)
                        return
        except KdmError as exc:
            if exc.spec.scope is Scope.UPSTREAM:
                self._commit(writer)  # what was read before the upstream failed is good
            raise
        finally:
            records.close()

    def _commit(self, writer: RelayWriter) -> None:
        pending = writer.pending
        started = time.monotonic()
        writer.commit()
        metrics.COMMIT_SECONDS.labels(**self._labels).observe(time.monotonic() - started)
        if pending:
            self.events += pending
            self.committed = writer.committed
            metrics.EVENTS.labels(kind="all", **self._labels).inc(pending)
            if self.errors:
                self.errors = []
                self.status.publish(force=True)

    def _heartbeat(self, reader: BinlogReader) -> dict[str, Any]:
        assert self.upstream is not None
        return {"source_id": self.source.source_id, "server_id": self.upstream.server_id,
                "kind": "HEARTBEAT", "position": reader.current().to_dict(),
                "timestamp_ms": int(time.time() * 1000), "schema": "", "table": "", "op": None,
                "columns": [], "before": None, "after": None, "query": "", "xid": None,
                "txn_gtid": ""}

    def _ensure_writer(self) -> RelayWriter:
        if self._writer is None:
            prefix = self.kafka.topic_prefix
            self._writer = RelayWriter(self.kafka, self.topic.name,
                                       f"kdm-relay-{prefix}-{self.source.source_id}", self.codec)
        return self._writer

    def _drop_writer(self, commit: bool) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            if commit:
                self._commit(writer)
            else:
                writer.abort()
            writer.producer.flush(5)
        except (KdmError, TransactionAborted) as exc:
            self.log.warning("relay writer closed with an error", error=str(exc))

    def _resume_point(self, upstream: Upstream) -> Resume:
        """After the last committed record; else where source.yaml or the upstream says."""
        if self.committed is None:
            message = last_relay_record(self.kafka, self.topic.name, self.codec)
            self.committed = message.value if message is not None else None
        if self.committed is not None:
            return Resume.after(self.committed)
        source = self.source
        if source.enable_gtid and source.relay_binlog_gtid:
            return Resume(Position("", 4, source.relay_binlog_gtid))
        if not source.enable_gtid and source.relay_binlog_name:
            return Resume(Position(source.relay_binlog_name, 4))
        return Resume(upstream.master_status())

