"""Avro codec for `schemas/*.avsc` in the Confluent wire format.

A value on the wire is `0x00`, a 4-byte big-endian schema id, then the Avro binary body.
With a schema registry configured, ids are the registry's: the writer registers its schema
under the subject `<topic>-value` and readers fetch unknown ids from the registry, so Kafka
UI decodes records through the same registry. Without one, ids come from the repository's
schema files (`"kdm.schema-id"` in each file; an id is never reused for another schema).
One deployment uses one of the two, never both.
"""

from __future__ import annotations

import io
import json
import struct
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import fastavro

from kdm.avro_relay import SAMPLE, RelayEventDecoder, RelayEventEncoder, RowFields
from kdm.errors import ERR_KAFKA_DECODE, ERR_KAFKA_ENCODE, ERR_KAFKA_SCHEMA_REGISTRY

MAGIC = 0
_HEADER = struct.Struct(">bI")
ID_ATTRIBUTE = "kdm.schema-id"
RELAY_EVENT = "io.kdm.relay.RelayEvent"


@dataclass(frozen=True)
class Schema:
    """One parsed schema with its id and full name (namespace.name)."""

    schema_id: int
    name: str
    raw: dict[str, Any]
    parsed: Any = field(compare=False, repr=False)

    @classmethod
    def from_raw(cls, schema_id: int, raw: dict[str, Any]) -> Schema:
        """Parse a schema dict; the name is taken from it."""
        parsed = fastavro.parse_schema(raw)
        name = f"{raw['namespace']}.{raw['name']}" if raw.get("namespace") else raw["name"]
        return cls(schema_id, name, raw, parsed)

    def canonical(self) -> str:
        """The schema text sent to a registry (without our id attribute)."""
        return json.dumps({k: v for k, v in self.raw.items() if k != ID_ATTRIBUTE})


def load_repo_schemas() -> dict[int, Schema]:
    """Every `schemas/*.avsc` shipped with kdm, by its repository id."""
    schemas: dict[int, Schema] = {}
    for entry in resources.files("schemas").iterdir():
        if entry.name.endswith(".avsc"):
            raw = json.loads(entry.read_text())
            schema = Schema.from_raw(int(raw[ID_ATTRIBUTE]), raw)
            if schema.schema_id in schemas:
                raise ValueError(f"schema id {schema.schema_id} used twice ({entry.name})")
            schemas[schema.schema_id] = schema
    return schemas


_LONG = range(-(2**63), 2**63)


def row_value(value: Any) -> Any:
    """A column value in the row-image union: integers outside int64 become decimal strings
    (BIGINT UNSIGNED), so no value falls through to `double`; other types are refused."""
    if value is None or isinstance(value, float | str | bytes):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value in _LONG else str(value)
    raise ERR_KAFKA_ENCODE(problem=f"a row value of type {type(value).__name__}")


class RegistryClient:
    """The two calls kdm needs from a Confluent-compatible schema registry."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def register(self, subject: str, schema: Schema) -> int:
        """Register (or find) `schema` under `subject`; the registry's id for it."""
        body = json.dumps({"schema": schema.canonical(), "schemaType": "AVRO"}).encode()
        reply = self._call("POST", f"/subjects/{subject}/versions", body)
        return int(reply["id"])

    def fetch(self, schema_id: int) -> dict[str, Any]:
        """The schema dict the registry holds under `schema_id`."""
        reply = self._call("GET", f"/schemas/ids/{schema_id}", None)
        raw: dict[str, Any] = json.loads(reply["schema"])
        return raw

    def _call(self, method: str, path: str, body: bytes | None) -> dict[str, Any]:
        request = urllib.request.Request(
            self.url + path, data=body, method=method,
            headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                reply: dict[str, Any] = json.loads(response.read())
                return reply
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ERR_KAFKA_SCHEMA_REGISTRY(exc, url=self.url, problem=f"{method} {path}") from exc


class AvroCodec:
    """Encode records to and decode them from the Confluent wire format."""

    def __init__(self, registry: RegistryClient | None = None) -> None:
        self.registry = registry
        self._local = load_repo_schemas()
        self._latest = {s.name: s for s in sorted(self._local.values(), key=lambda s: s.schema_id)}
        self._by_id: dict[int, Schema] = {} if registry else dict(self._local)
        self._writer_ids: dict[tuple[str, str], int] = {}
        fast = self._fast_path_agrees()
        self._relay = RelayEventEncoder() if fast else None
        self._relay_reader = RelayEventDecoder() if fast else None
        relay_schema = self._latest[RELAY_EVENT]
        self._relay_ids = {relay_schema.schema_id} if registry is None else set()
        self._relay_headers = frozenset(_HEADER.pack(MAGIC, i) for i in self._relay_ids)
        self._headers: dict[str, bytes] = {}

    def schema(self, name: str) -> Schema:
        """The newest repository schema with this full name (e.g. `io.kdm.relay.RelayEvent`)."""
        return self._latest[name]

    def encode(self, name: str, record: dict[str, Any], topic: str,
               checked_values: bool = False) -> bytes:
        """Wire-format bytes of `record` written with the newest schema called `name`.

        Row images are passed through `row_value` unless the caller guarantees they already
        hold only union types (`checked_values`, as the relay's decoder does)."""
        schema = self._latest[name]
        if checked_values and name == RELAY_EVENT and self._relay is not None:
            header = self._headers.get(topic)
            if header is None:
                header = self._headers[topic] = _HEADER.pack(MAGIC, self._writer_id(schema, topic))
            return header + self._relay.body(record)
        for image in ("before", "after"):
            if not checked_values and record.get(image) is not None:
                record = {**record, image: [row_value(v) for v in record[image]]}
        out = io.BytesIO()
        out.write(_HEADER.pack(MAGIC, self._writer_id(schema, topic)))
        fastavro.schemaless_writer(out, schema.parsed, record)
        return out.getvalue()

    def _fast_path_agrees(self) -> bool:
        """Whether the hand-written RelayEvent encoder and decoder agree with fastavro."""
        out = io.BytesIO()
        fastavro.schemaless_writer(out, self._latest[RELAY_EVENT].parsed, SAMPLE)
        body = out.getvalue()
        try:
            return (body == RelayEventEncoder().body(SAMPLE)
                    and RelayEventDecoder().decode(body, 0) == SAMPLE)
        except (IndexError, ValueError, KeyError):
            return False

    def decode(self, data: bytes, where: str | tuple[str, int] = "?"
               ) -> tuple[str, dict[str, Any]]:
        """(schema full name, record) of a wire-format value; a coded error if it is not one.
        `where` names the message in errors: text, or (topic, offset), formatted only then."""
        if len(data) < _HEADER.size or data[0] != MAGIC:
            raise ERR_KAFKA_DECODE(where=_place(where),
                                   problem="no Confluent wire-format header")
        _, schema_id = _HEADER.unpack_from(data)
        if schema_id in self._relay_ids and self._relay_reader is not None:
            try:
                return RELAY_EVENT, self._relay_reader.decode(data, _HEADER.size)
            except (IndexError, UnicodeDecodeError, ValueError, struct.error) as exc:
                raise ERR_KAFKA_DECODE(exc, where=_place(where), problem="body does not match "
                                       f"schema {RELAY_EVENT} (id {schema_id})") from exc
        place = _place(where)
        schema = self._reader_schema(schema_id, place)
        try:
            record = fastavro.schemaless_reader(io.BytesIO(data[_HEADER.size:]), schema.parsed,
                                                None)
        except (EOFError, ValueError, IndexError, UnicodeDecodeError, TypeError) as exc:
            raise ERR_KAFKA_DECODE(exc, where=place, problem="body does not match schema "
                                   f"{schema.name} (id {schema_id})") from exc
        if not isinstance(record, dict):
            raise ERR_KAFKA_DECODE(where=place, problem="body is not a record")
        return schema.name, record

    def decode_row(self, data: bytes, where: str | tuple[str, int] = "?") -> RowFields | None:
        """A ROW relay record's fields (`kdm.avro_relay.RowFields`) without building the
        record, the subtask's hot path; None for any other value (read it with `decode`, which
        also raises what is wrong with a value that is not wire format)."""
        reader = self._relay_reader
        if reader is None or data[:_HEADER.size] not in self._relay_headers:
            return None
        try:
            return reader.decode_row(data, _HEADER.size)
        except (IndexError, UnicodeDecodeError, ValueError, struct.error) as exc:
            raise ERR_KAFKA_DECODE(exc, where=_place(where), problem="body does not match "
                                   f"schema {RELAY_EVENT} (id {_HEADER.unpack_from(data)[1]})"
                                   ) from exc

    def _writer_id(self, schema: Schema, topic: str) -> int:
        if self.registry is None:
            return schema.schema_id
        key = (topic, schema.name)
        if key not in self._writer_ids:
            registry_id = self.registry.register(f"{topic}-value", schema)
            self._writer_ids[key] = registry_id
            self._by_id[registry_id] = schema
        return self._writer_ids[key]

    def _reader_schema(self, schema_id: int, where: str) -> Schema:
        schema = self._by_id.get(schema_id)
        if schema is not None:
            return schema
        if self.registry is None:
            raise ERR_KAFKA_DECODE(where=where, problem=f"unknown schema id {schema_id}")
        schema = Schema.from_raw(schema_id, self.registry.fetch(schema_id))
        self._by_id[schema_id] = schema
        return schema


def _place(where: str | tuple[str, int]) -> str:
    return where if isinstance(where, str) else f"{where[0]}@{where[1]}"
