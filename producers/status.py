"""The relay's status (DM's `relayStatus`), published on the status topic for query-status."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from kdm.errors import KdmError
from kdm.position import Position, binlog_text, file_index
from kdm.relay_log import TopicReader
from kdm.stages import host_id, relay_key
from kdm.status import RELAY_STATUS, StatusPublisher
from producers import metrics

if TYPE_CHECKING:
    from producers.relay import Relay


class RelayStatusReporter:
    """Builds and publishes a relay's status at most every `status_seconds` (or when forced)."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.publisher = StatusPublisher(relay.kafka, relay.codec)
        self.reader = TopicReader(relay.kafka, relay.topic.name, 0, relay.codec)
        self.master: Position | None = None
        self.last_published = 0.0

    def publish(self, force: bool = False) -> None:
        """Publish the current status if it is due (or `force`)."""
        now = time.monotonic()
        if not force and now - self.last_published < self.relay.settings.status_seconds:
            return
        self.last_published = now
        self.publisher.publish(relay_key(self.relay.source.source_id), RELAY_STATUS,
                               self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        """The status record now."""
        relay = self.relay
        self._refresh_master()
        committed = (Position.from_dict(relay.committed["position"])
                     if relay.committed is not None else None)
        master = self.master
        caught_up = bool(master and committed and (master.file, master.pos) ==
                         (committed.file, committed.pos) and relay.committed is not None
                         and relay.committed["kind"] not in ("BEGIN", "ROW"))
        labels = {"source": relay.source.source_id}
        for node, position in (("master", master), ("relay", committed)):
            if position is not None and position.file:
                metrics.BINLOG_FILE.labels(node=node, **labels).set(file_index(position.file))
                metrics.BINLOG_POS.labels(node=node, **labels).set(position.pos)
        return {
            "source": relay.source.source_id, "worker": host_id(),
            "masterBinlog": binlog_text(master), "masterBinlogGtid": master.gtid if master else "",
            "relaySubDir": f"{relay.topic.name}/0", "relayBinlog": binlog_text(committed),
            "relayBinlogGtid": committed.gtid if committed else "",
            "relayCatchUpMaster": caught_up, "stage": relay.stage.value,
            "errors": [error.to_dict() for error in relay.errors],
            "topic": relay.topic.name, "partition": 0, "offset": self._end_offset(),
            "events": relay.events, "updated_ms": int(time.time() * 1000)}

    def _refresh_master(self) -> None:
        if self.relay.upstream is None:
            return
        # on failure keep the last known master position; the relay reports the error itself
        with contextlib.suppress(KdmError):
            self.master = self.relay.upstream.master_status()

    def _end_offset(self) -> int:
        try:
            return self.reader.bounds()[1]
        except KdmError:
            return -1

    def close(self) -> None:
        """Deliver queued status records and leave the cluster."""
        self.publisher.close()
        self.reader.close()
