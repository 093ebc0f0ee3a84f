"""The source and task registry: DM's YAML files as users submitted them, in Kafka.

Sources live on `<prefix>.sources` (key: source-id), tasks on `<prefix>.tasks` (key: task
name), both compacted, as `RegistryEntry` records holding the YAML text verbatim, so
`get-config` and `config export` give back exactly what was submitted. The coordinator
writes them (from the CLI or the HTTP API); workers follow them to learn what to run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from kdm.compacted import CompactedTable, TableWriter
from kdm.config import SourceConfig, TaskConfig, parse_source, parse_task
from kdm.config.service import KafkaConfig
from kdm.errors import ERR_KAFKA_ADMIN
from kdm.topics import Topics

ENTRY = "io.kdm.control.RegistryEntry"


@dataclass(frozen=True)
class Entry:
    """One registry record."""

    kind: str
    id: str
    yaml: str
    revision: int
    deleted: bool = False
    updated_ms: int = 0
    by: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The Avro record form."""
        return {"kind": self.kind, "id": self.id, "yaml": self.yaml, "deleted": self.deleted,
                "revision": self.revision, "updated_ms": self.updated_ms, "by": self.by}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        """Inverse of `to_dict`."""
        return cls(data["kind"], data["id"], data["yaml"], int(data["revision"]),
                   bool(data["deleted"]), int(data["updated_ms"]), data.get("by") or "")

    def source(self) -> SourceConfig:
        """The parsed source.yaml."""
        return parse_source(self.yaml, f"<source {self.id}>")

    def task(self) -> TaskConfig:
        """The parsed task.yaml."""
        return parse_task(self.yaml, f"<task {self.id}>")


def new_entry(kind: str, ident: str, yaml: str, by: str, deleted: bool = False) -> Entry:
    """An entry stamped now (its revision is the time in ns, so later writes win)."""
    now = time.time_ns()
    return Entry(kind, ident, yaml, now, deleted, now // 1_000_000, by)


class Registry:
    """Follows both registry topics; `write` adds or removes an entry."""

    def __init__(self, kafka: KafkaConfig) -> None:
        topics = Topics(kafka.topic_prefix)
        self.kafka = kafka
        self.specs = {"source": topics.compacted("sources"), "task": topics.compacted("tasks")}
        self.tables = {kind: CompactedTable(kafka, spec) for kind, spec in self.specs.items()}
        self._writers: dict[str, TableWriter] = {}

    def start(self, timeout: float = 30.0) -> Registry:
        """Start following; return once both topics' backlogs have been read."""
        for table in self.tables.values():
            table.start()
        for table in self.tables.values():
            table.wait_ready(timeout)
        return self

    def stop(self) -> None:
        """Stop following and flush writes."""
        for table in self.tables.values():
            table.stop()
        for writer in self._writers.values():
            writer.close()

    @property
    def version(self) -> int:
        """Grows whenever either topic gets a record."""
        return sum(table.version for table in self.tables.values())

    def entries(self, kind: str) -> dict[str, Entry]:
        """The live (not deleted) entries of a kind, by id."""
        found = (Entry.from_dict(v) for v in self.tables[kind].snapshot().values())
        return {e.id: e for e in found if not e.deleted}

    def get(self, kind: str, ident: str) -> Entry | None:
        """One live entry, or None."""
        return self.entries(kind).get(ident)

    def write(self, entry: Entry, timeout: float = 10.0) -> None:
        """Write an entry and wait until this process's table shows it."""
        writer = self._writers.get(entry.kind)
        if writer is None:
            writer = self._writers[entry.kind] = TableWriter(self.kafka, self.specs[entry.kind])
        writer.put(entry.id, ENTRY, entry.to_dict())
        if not self.tables[entry.kind].wait_for(
                lambda values: int(values.get(entry.id, {}).get("revision", -1))
                >= entry.revision, timeout):
            raise ERR_KAFKA_ADMIN(op=f"read back {entry.kind} {entry.id} within "
                                  f"{timeout:.0f}s", target=self.specs[entry.kind].name)
