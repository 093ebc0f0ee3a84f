"""A consumer worker: runs the subtasks Kafka's group membership gives it (DM-worker's sync).

It follows the registry (tasks, sources) and the stage requests; a subtask exists once
`start-task` has asked for it (a stage request for its key) and both its task and source are
registered. `kdm.units` starts the subtasks whose key hashes to a slot this worker owns and
stops the others; a subtask that moves here resumes from its checkpoint.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from consumers.runner import SubtaskRunner
from kdm.compacted import CompactedTable
from kdm.config.service import KafkaConfig
from kdm.log import Logger
from kdm.registry import Entry, Registry
from kdm.stages import set_worker_name, subtask_key
from kdm.topics import Topics
from kdm.units import Unit, Wanted, run_worker

ROLE = "sync"


class ConsumerWorker:
    """One consumer worker process."""

    def __init__(self, kafka: KafkaConfig, name: str) -> None:
        self.kafka = kafka
        self.name = name
        self.log = Logger("worker", worker=name, role=ROLE)
        self.registry = Registry(kafka)
        self.stages = CompactedTable(kafka, Topics(kafka.topic_prefix).compacted("stages"))

    def run(self, stop: threading.Event) -> None:
        """Run owned subtasks until `stop` is set."""
        set_worker_name(self.name)
        self.registry.start()
        self.stages.start()
        self.stages.wait_ready()
        try:
            run_worker(self.kafka, ROLE, self.name, self.wanted,
                       lambda: self.registry.version + self.stages.version, stop, self.log)
        finally:
            self.registry.stop()
            self.stages.stop()

    def wanted(self) -> dict[str, Wanted]:
        """Every subtask that start-task asked for, by key."""
        sources = self.registry.entries("source")
        requested = self.stages.snapshot()
        found = {}
        for entry in self.registry.entries("task").values():
            for source in entry.task().sources():
                key = subtask_key(entry.id, source)
                if key in requested and source in sources:
                    found[key] = Wanted(max(entry.revision, sources[source].revision),
                                        self._factory(entry, sources[source]))
        return found

    def _factory(self, task: Entry, source: Entry) -> Callable[[], Unit]:
        def make() -> Unit:
            config = source.source()
            return SubtaskRunner(task.task(), source.id, self.kafka, checker=config.checker,
                                 source=config)
        return make
