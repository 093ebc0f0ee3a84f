"""A producer worker: runs the relays Kafka's group membership gives it (DM-worker's relay).

It follows the source registry; every registered source has a relay, run by the worker that
owns the source's slot (`kdm.units`). A relay that moves here resumes after the last event
its transactional producer committed, so nothing is lost or written twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from kdm.config.service import KafkaConfig
from kdm.log import Logger
from kdm.registry import Entry, Registry
from kdm.stages import relay_key, set_worker_name
from kdm.units import Unit, Wanted, run_worker
from producers.relay import Relay
from producers.settings import RelaySettings

ROLE = "relay"


class ProducerWorker:
    """One producer worker process."""

    def __init__(self, kafka: KafkaConfig, name: str, settings: RelaySettings) -> None:
        self.kafka = kafka
        self.name = name
        self.settings = settings
        self.log = Logger("worker", worker=name, role=ROLE)
        self.registry = Registry(kafka)

    def run(self, stop: threading.Event) -> None:
        """Run owned relays until `stop` is set."""
        set_worker_name(self.name)
        self.registry.start()
        try:
            run_worker(self.kafka, ROLE, self.name, self.wanted, lambda: self.registry.version,
                       stop, self.log)
        finally:
            self.registry.stop()

    def wanted(self) -> dict[str, Wanted]:
        """A relay for every registered source, by key."""
        return {relay_key(ident): Wanted(entry.revision, self._factory(entry))
                for ident, entry in self.registry.entries("source").items()}

    def _factory(self, source: Entry) -> Callable[[], Unit]:
        def make() -> Unit:
            return Relay(source.source(), self.kafka, self.settings)
        return make
