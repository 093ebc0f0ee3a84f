"""The hand-written RelayEvent encoder writes exactly fastavro's bytes."""

from __future__ import annotations

import io
import random
from typing import Any

import fastavro
import pytest

from kdm.avro import _HEADER, RELAY_EVENT, AvroCodec
from kdm.avro_relay import KINDS, zigzag
from kdm.errors import KdmError

CODEC = AvroCodec()
SCHEMA = CODEC.schema(RELAY_EVENT)


def _value(rng: random.Random) -> Any:
    return rng.choice([
        None, 0, 1, -1, 63, 64, -64, -65, 2**63 - 1, -(2**63), rng.randrange(-2**40, 2**40),
        0.0, -1.5, 1e300, float("inf"), rng.random(), "",
        "".join(rng.choice("aé€😀 x") for _ in range(rng.randrange(0, 200))),
        bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))])


def _record(rng: random.Random, columns: list[list[dict[str, Any]]]) -> dict[str, Any]:
    width = rng.randrange(0, 40)
    return {
        "source_id": rng.choice(["s", "src-é", "x" * 40]), "server_id": rng.randrange(0, 2**32),
        "kind": rng.choice(KINDS),
        "position": {"file": f"mysql-bin.{rng.randrange(10**6):06d}",
                     "pos": rng.randrange(0, 2**40),
                     "gtid": rng.choice(["", "0-1-5", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5"]),
                     "event_index": rng.randrange(0, 2**31), "row_index": rng.randrange(0, 2**31)},
        "timestamp_ms": rng.randrange(0, 2**45), "schema": rng.choice(["", "db", "ü" * 70]),
        "table": rng.choice(["", "t"]), "op": rng.choice([None, "INSERT", "UPDATE", "DELETE"]),
        "columns": rng.choice(columns),
        "before": rng.choice([None, [_value(rng) for _ in range(width)]]),
        "after": rng.choice([None, [_value(rng) for _ in range(width)]]),
        "query": rng.choice(["", "CREATE TABLE x (a int)" * rng.randrange(1, 20)]),
        "xid": rng.choice([None, 0, 5, 2**62]), "txn_gtid": rng.choice(["", "0-1-5"])}


def test_fast_path_is_on() -> None:
    assert CODEC._relay is not None


def test_identical_to_fastavro_on_random_records() -> None:
    rng = random.Random(1)
    columns = [[{"name": f"c{i}", "type": "int", "unsigned": rng.random() < .5,
                 "nullable": rng.random() < .5, "key": rng.choice(["", "PRI"]),
                 "charset": rng.choice(["", "utf8mb4"])} for i in range(n)]
               for n in range(0, 80, 7)]
    for _ in range(3000):
        record = _record(rng, columns)
        fast = CODEC.encode(RELAY_EVENT, record, "t", checked_values=True)
        out = io.BytesIO()
        out.write(_HEADER.pack(0, SCHEMA.schema_id))
        fastavro.schemaless_writer(out, SCHEMA.parsed, record)
        assert fast == out.getvalue()
        assert CODEC.decode(fast)[1] == record


@pytest.mark.parametrize("value", [2**63, True, object()])
def test_values_outside_the_union_are_refused(value: Any) -> None:
    record = _record(random.Random(2), [[]])
    record["after"] = [value]
    with pytest.raises(KdmError) as err:
        CODEC.encode(RELAY_EVENT, record, "t", checked_values=True)
    assert err.value.code == 52005


def test_zigzag_matches_the_avro_spec() -> None:
    assert [zigzag(v) for v in (0, -1, 1, -2, 2, 64)] == [
        b"\x00", b"\x01", b"\x02", b"\x03", b"\x04", b"\x80\x01"]


def test_identical_when_rows_share_their_event_fields() -> None:
    rng = random.Random(3)
    columns = [[{"name": "id", "type": "int", "unsigned": False, "nullable": False,
                 "key": "PRI", "charset": ""}]]
    for _ in range(200):
        base = _record(rng, columns)
        for row in range(1, rng.randrange(2, 6)):
            record = dict(base)
            record["position"] = {**base["position"], "row_index": row}
            record["after"] = [_value(rng)]
            fast = CODEC.encode(RELAY_EVENT, record, "t", checked_values=True)
            out = io.BytesIO()
            out.write(_HEADER.pack(0, SCHEMA.schema_id))
            fastavro.schemaless_writer(out, SCHEMA.parsed, record)
            assert fast == out.getvalue()


def test_fast_decoder_reads_what_fastavro_writes() -> None:
    assert CODEC._relay_reader is not None
    rng = random.Random(5)
    columns = [[{"name": f"c{i}", "type": "int", "unsigned": False, "nullable": True,
                 "key": "", "charset": ""} for i in range(n)] for n in (0, 3, 9)]
    for _ in range(2000):
        record = _record(rng, columns)
        out = io.BytesIO()
        out.write(_HEADER.pack(0, SCHEMA.schema_id))
        fastavro.schemaless_writer(out, SCHEMA.parsed, record)
        name, back = CODEC.decode(out.getvalue())
        assert name == RELAY_EVENT and back == record


def test_fast_decoder_refuses_a_truncated_body() -> None:
    record = _record(random.Random(6), [[]])
    data = CODEC.encode(RELAY_EVENT, record, "t", checked_values=True)
    with pytest.raises(KdmError) as err:
        CODEC.decode(data[:-3], "t@1")
    assert err.value.code == 52003


def test_decode_row_reads_what_decode_reads() -> None:
    assert CODEC._relay_reader is not None
    rng = random.Random(7)
    columns = [[{"name": f"c{i}", "type": "int", "unsigned": False, "nullable": True,
                 "key": "", "charset": ""} for i in range(n)] for n in (0, 4)]
    for _ in range(2000):
        record = _record(rng, columns)
        data = CODEC.encode(RELAY_EVENT, record, "t", checked_values=True)
        for repeat in range(2):  # the second time through the remembered stretches
            fields = CODEC.decode_row(data, "t@1")
            assert CODEC.decode(data)[1] == record, repeat
            if record["kind"] == "ROW":
                assert fields == (record["timestamp_ms"], record["schema"], record["table"],
                                  record["op"], record["columns"], record["before"],
                                  record["after"])
            else:
                assert fields is None


def test_decode_row_refuses_what_decode_refuses() -> None:
    record = {**_record(random.Random(8), [[]]), "kind": "ROW", "query": ""}
    data = CODEC.encode(RELAY_EVENT, record, "t", checked_values=True)
    assert CODEC.decode_row(data) is not None
    for broken in (data[:-3], data + b"\x00"):
        with pytest.raises(KdmError) as err:
            CODEC.decode_row(broken, "t@1")
        assert err.value.code == 52003
    assert CODEC.decode_row(b"{}") is None  # not wire format: `decode` says what is wrong


def test_every_varint_length_of_a_row_value_reads_back() -> None:
    edges = [v for bits in range(0, 64, 7) for v in (2**bits - 1, 2**bits, -(2**bits),
                                                      -(2**bits) - 1)]
    values = [v for v in edges if -(2**63) <= v < 2**63] * 3  # a two-byte item count too
    assert len(values) > 64
    record = {**_record(random.Random(9), [[]]), "kind": "ROW", "before": None,
              "after": values}
    data = CODEC.encode(RELAY_EVENT, record, "t", checked_values=True)
    assert CODEC.decode(data)[1]["after"] == values
    fields = CODEC.decode_row(data)
    assert fields is not None and fields[6] == values
