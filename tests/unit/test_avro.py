"""The Avro codec: exact round trips of every value kind, wire format, registry ids."""

from __future__ import annotations

import json
import struct
from decimal import Decimal
from typing import Any

import pytest

from kdm.avro import AvroCodec, Schema, load_repo_schemas
from kdm.errors import KdmError

RELAY = "io.kdm.relay.RelayEvent"
EXTREMES: list[Any] = [
    None, -(2**63), 2**63 - 1, "18446744073709551615", 0.1, 3.4028234663852886e38, -0.0,
    str(Decimal("-" + "9" * 35 + "." + "9" * 30)), "0000-00-00 00:00:00",
    "2038-01-19 03:14:07.999999",
    "-838:59:59.000000", "日本語 ✓ emoji 🎉", b"\x00\xff\x80binary", '{"a": [1, 2.5, null]}',
    "a,c", 0b1011,
]


def row_event(after: list[Any]) -> dict[str, Any]:
    """A ROW relay event whose after-image is `after`."""
    return {
        "source_id": "s1", "server_id": 7, "kind": "ROW",
        "position": {"file": "mysql-bin.000001", "pos": 120, "gtid": "0-7-3",
                     "event_index": 1, "row_index": 2},
        "timestamp_ms": 1_700_000_000_000, "schema": "db", "table": "t", "op": "INSERT",
        "columns": [{"name": f"c{i}", "type": "varchar(10)", "unsigned": False,
                     "nullable": True, "key": "", "charset": "utf8mb4"}
                    for i in range(len(after))],
        "before": None, "after": after, "query": "", "xid": None, "txn_gtid": "",
    }


class FakeRegistry:
    """An in-memory registry shaped like RegistryClient."""

    def __init__(self) -> None:
        self.schemas: dict[int, dict[str, Any]] = {}
        self.subjects: dict[str, int] = {}

    def register(self, subject: str, schema: Schema) -> int:
        if subject not in self.subjects:
            self.subjects[subject] = 100 + len(self.schemas)
            self.schemas[self.subjects[subject]] = json.loads(schema.canonical())
        return self.subjects[subject]

    def fetch(self, schema_id: int) -> dict[str, Any]:
        return self.schemas[schema_id]


def test_every_value_kind_round_trips_exactly() -> None:
    codec = AvroCodec()
    record = row_event(EXTREMES)
    name, back = codec.decode(codec.encode(RELAY, record, "dm.relay.s1"))
    assert name == RELAY and back == record
    assert [type(v) for v in back["after"]] == [type(v) for v in EXTREMES]


def test_wire_format_header_carries_the_repo_schema_id() -> None:
    codec = AvroCodec()
    data = codec.encode(RELAY, row_event([1]), "t")
    assert data[0] == 0
    assert struct.unpack(">I", data[1:5])[0] == codec.schema(RELAY).schema_id == 1


def test_repo_schema_ids_are_unique_and_declared() -> None:
    schemas = load_repo_schemas()
    assert schemas and all(s.schema_id == sid for sid, s in schemas.items())
    assert "kdm.schema-id" not in schemas[1].canonical()


@pytest.mark.parametrize("data", [b"", b"\x01\x00\x00\x00\x01abc", b"\x00\x00\x00\x03\xe7abc",
                                  b"\x00\x00\x00\x00\x01\x02"])
def test_corrupt_messages_are_coded(data: bytes) -> None:
    with pytest.raises(KdmError) as caught:
        AvroCodec().decode(data, where="topic@5")
    assert caught.value.code == 52003 and "topic@5" in caught.value.message


def test_registry_ids_are_used_when_a_registry_is_configured() -> None:
    registry = FakeRegistry()
    writer = AvroCodec(registry)  # type: ignore[arg-type]
    data = writer.encode(RELAY, row_event([5]), "dm.relay.s1")
    assert struct.unpack(">I", data[1:5])[0] == registry.subjects["dm.relay.s1-value"]
    reader = AvroCodec(registry)  # type: ignore[arg-type]
    assert reader.decode(data)[1]["after"] == [5]
    with pytest.raises(KdmError):
        AvroCodec().decode(data)


def test_integers_beyond_int64_travel_as_exact_strings() -> None:
    codec = AvroCodec()
    data = codec.encode(RELAY, row_event([2**64 - 1, 2**63, -(2**63) - 1, 2**63 - 1]), "t")
    assert codec.decode(data)[1]["after"] == ["18446744073709551615", "9223372036854775808",
                                              "-9223372036854775809", 2**63 - 1]


@pytest.mark.parametrize("value", [True, Decimal("1.5"), object()])
def test_unsupported_row_values_are_coded(value: object) -> None:
    with pytest.raises(KdmError) as caught:
        AvroCodec().encode(RELAY, row_event([value]), "t")
    assert caught.value.code == 52005
