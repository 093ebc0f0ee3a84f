"""consumers.feed's Decoder: Kafka messages to the items a subtask reads (no Kafka)."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError

from consumers.feed import Decoder
from kdm.avro import RELAY_EVENT, AvroCodec

CODEC = AvroCodec()
COLUMNS = [{"name": "id", "type": "int", "unsigned": False, "nullable": False, "key": "PRI",
            "charset": ""},
           {"name": "v", "type": "varchar(10)", "unsigned": False, "nullable": True,
            "key": "", "charset": "utf8mb4"}]


class Message:
    """The part of confluent_kafka.Message the decoder reads."""

    def __init__(self, offset: int, value: bytes | None, error: KafkaError | None = None
                 ) -> None:
        self._offset, self._value, self._error = offset, value, error

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def error(self) -> KafkaError | None:
        return self._error


def record(kind: str = "ROW", table: str = "t", op: str | None = "INSERT",
           after: list[Any] | None = None, row: int = 0,
           columns: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"source_id": "s", "server_id": 1, "kind": kind,
            "position": {"file": "mysql-bin.000001", "pos": 4, "gtid": "0-1-7",
                         "event_index": 1 if kind == "ROW" else 0, "row_index": row},
            "timestamp_ms": 1_700_000_000_000, "schema": "db" if kind == "ROW" else "",
            "table": table if kind == "ROW" else "", "op": op if kind == "ROW" else None,
            "columns": (COLUMNS if columns is None else columns) if kind == "ROW" else [],
            "before": None, "after": after if kind == "ROW" else None, "query": "",
            "xid": 9 if kind == "COMMIT" else None, "txn_gtid": "0-1-8"}


def message(offset: int, value: dict[str, Any]) -> Message:
    return Message(offset, CODEC.encode(RELAY_EVENT, value, "dm.relay.s"))


def test_rows_name_their_layout_announced_once_before_its_first_row() -> None:
    decoder = Decoder("dm.relay.s")
    items = decoder.items([message(0, record("BEGIN")),
                           message(1, record(after=[1, "a"])),
                           message(2, record(after=[2, None], row=1)),
                           message(3, record(table="u", after=[3, "c"])),
                           message(4, record(op="DELETE", after=None)),
                           message(5, record("COMMIT"))])
    (_, first, layout), (_, second, other), (_, third, deleted) = items[:3]
    assert (first, second, third) == (1, 2, 3)
    assert (layout.schema, layout.table, layout.op, layout.columns) == ("db", "t", "INSERT",
                                                                        COLUMNS)
    assert (other.table, deleted.op) == ("u", "DELETE")
    rest = items[3:]
    assert rest[0][0] == 0 and rest[0][1]["kind"] == "BEGIN"
    assert rest[1:4] == [(1, 1_700_000_000_000, 1, None, [1, "a"]),
                         (2, 1_700_000_000_000, 1, None, [2, None]),
                         (3, 1_700_000_000_000, 2, None, [3, "c"])]
    assert rest[4][2] == 3 and rest[5][1]["kind"] == "COMMIT"
    again = decoder.items([message(6, record(after=[7, "x"]))])
    assert again == [(6, 1_700_000_000_000, 1, None, [7, "x"])]  # known: not announced again


def test_a_changed_column_list_is_a_new_layout() -> None:
    decoder = Decoder("dm.relay.s")
    wider = [*COLUMNS, {**COLUMNS[1], "name": "w"}]
    items = decoder.items([message(0, record(after=[1, "a"])),
                           message(1, record(after=[2, "b", "c"], columns=wider))])
    assert [item[0] for item in items] == ["layout", "layout", 0, 1]
    assert items[1][2].columns == wider and items[3][2] == 2


def test_undecodable_values_and_kafka_errors_pass_through() -> None:
    decoder = Decoder("dm.relay.s")
    eof = KafkaError(KafkaError._PARTITION_EOF)
    failed = KafkaError(KafkaError._TRANSPORT, "broker down")
    good = CODEC.encode(RELAY_EVENT, record(after=[1, "a"]), "dm.relay.s")
    items = decoder.items([Message(0, b"\x00garbage"), Message(1, good[:-2]),
                           Message(2, None, eof), Message(3, None, failed)])
    assert items == [("raw", 0, b"\x00garbage"), ("raw", 1, good[:-2]),
                     ("error", 3, KafkaError._TRANSPORT, "broker down")]
