"""A hand-written Avro body encoder for `io.kdm.relay.RelayEvent`, the relay's hot path.

fastavro's generic writer spends ~40 µs per relay record, most of it resolving the row-image
unions value by value and re-encoding the column list of every row. This encoder writes the
same bytes (Avro binary: zig-zag varints, length-prefixed strings, union branch indexes,
arrays as one block then 0) several times faster: a table's column list is encoded once
per table map, and short strings that repeat (names, files, GTID sets) once.
`AvroCodec` checks at start-up that both encoders agree on a sample record and falls back
to fastavro if they ever do not (a schema change without a matching change here).
"""

from __future__ import annotations

import struct
from typing import Any

from kdm.errors import ERR_KAFKA_ENCODE

KINDS = ("ROW", "DDL", "BEGIN", "COMMIT", "HEARTBEAT", "ROTATE")
_KIND = {kind: bytes((2 * i,)) for i, kind in enumerate(KINDS)}
_OP = {None: b"\x00", "INSERT": b"\x02\x00", "UPDATE": b"\x02\x02", "DELETE": b"\x02\x04"}
_DOUBLE = struct.Struct("<d").pack
_INT64 = range(-(2**63), 2**63)


def _zigzag_slow(value: int) -> bytes:
    n = ((value << 1) ^ (value >> 63)) & 0xFFFFFFFFFFFFFFFF
    if n < 0x80:
        return bytes((n,))
    if n < 0x4000:
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    if n < 0x200000:  # three varint bytes (positions, most ids) without a loop
        return bytes(((n & 0x7F) | 0x80, (n >> 7 & 0x7F) | 0x80, n >> 14))
    if n < 0x10000000:
        return bytes(((n & 0x7F) | 0x80, (n >> 7 & 0x7F) | 0x80, (n >> 14 & 0x7F) | 0x80,
                      n >> 21))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL_LIMIT = 1 << 13  # every long of at most two varint bytes is precomputed
_SMALL = [_zigzag_slow(v) for v in range(-_SMALL_LIMIT, _SMALL_LIMIT)]
_TEXTS: dict[str, bytes] = {}


def zigzag(value: int) -> bytes:
    """An Avro `long`."""
    if -_SMALL_LIMIT <= value < _SMALL_LIMIT:
        return _SMALL[value + _SMALL_LIMIT]
    return _zigzag_slow(value)


def _text(text: str) -> bytes:
    """An Avro `string`; the names, files and GTID sets that repeat are encoded once."""
    cached = _TEXTS.get(text)
    if cached is None:
        raw = text.encode()
        cached = zigzag(len(raw)) + raw
        if len(raw) <= 256:
            if len(_TEXTS) > 50_000:
                _TEXTS.clear()
            _TEXTS[text] = cached
    return cached


def _image(values: list[Any] | None) -> bytes:
    """`["null", {"type": "array", "items": ["null", "long", "double", "string", "bytes"]}]`."""
    if values is None:
        return b"\x00"
    if not values:
        return b"\x02\x00"
    parts = [b"\x02", zigzag(len(values))]
    append = parts.append
    for value in values:
        kind = type(value)
        if kind is str:
            raw = value.encode()
            append(b"\x06" + zigzag(len(raw)))
            append(raw)
        elif kind is int and value in _INT64:
            append(b"\x02" + zigzag(value))
        elif value is None:
            append(b"\x00")
        elif kind is bytes:
            append(b"\x08" + zigzag(len(value)))
            append(value)
        elif kind is float:
            append(b"\x04" + _DOUBLE(value))
        else:
            raise ERR_KAFKA_ENCODE(problem=f"a row value of type {kind.__name__}: {value!r:.40}")
    append(b"\x00")
    return b"".join(parts)


def _columns(columns: list[dict[str, Any]]) -> bytes:
    if not columns:
        return b"\x00"
    parts = [zigzag(len(columns))]
    for c in columns:
        parts += [_text(c["name"]), _text(c["type"]), b"\x01" if c["unsigned"] else b"\x00",
                  b"\x01" if c["nullable"] else b"\x00", _text(c["key"]), _text(c["charset"])]
    parts.append(b"\x00")
    return b"".join(parts)


class RelayEventEncoder:
    """RelayEvent bodies; a table's column list is encoded once per list object."""

    def __init__(self) -> None:
        self._columns: dict[int, tuple[list[dict[str, Any]], bytes]] = {}

    def body(self, r: dict[str, Any]) -> bytes:
        """The Avro binary body of one relay record (no wire-format header)."""
        columns = r["columns"]
        cached = self._columns.get(id(columns))
        if cached is None or cached[0] is not columns:  # `is`: an id can be recycled
            if len(self._columns) > 10_000:
                self._columns.clear()
            cached = self._columns[id(columns)] = (columns, _columns(columns))
        p = r["position"]
        xid = r["xid"]
        return b"".join((
            _text(r["source_id"]), zigzag(r["server_id"]), _KIND[r["kind"]],
            _text(p["file"]), zigzag(p["pos"]), _text(p["gtid"]), zigzag(p["event_index"]),
            zigzag(p["row_index"]), zigzag(r["timestamp_ms"]), _text(r["schema"]),
            _text(r["table"]), _OP[r["op"]], cached[1], _image(r["before"]),
            _image(r["after"]), _text(r["query"]),
            b"\x00" if xid is None else b"\x02" + zigzag(xid), _text(r["txn_gtid"])))


_OPS = ("INSERT", "UPDATE", "DELETE")
_UNPACK_DOUBLE = struct.Struct("<d").unpack_from


def _long(b: bytes, i: int) -> tuple[int, int]:
    """An Avro long at `i`: (value, next index)."""
    byte = b[i]
    if byte < 0x80:
        return (byte >> 1) ^ -(byte & 1), i + 1
    result = byte & 0x7F
    shift = 7
    i += 1
    while True:
        byte = b[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (result >> 1) ^ -(result & 1), i
        shift += 7


def _str(b: bytes, i: int) -> tuple[str, int]:
    """An Avro string at `i`."""
    n, i = _long(b, i)
    j = i + n
    if n < 0 or j > len(b):
        raise ValueError("a string runs past the end of the message")
    return b[i:j].decode(), j


def _block(b: bytes, i: int) -> tuple[int, int]:
    """An Avro array block's item count (0 ends the array); a negative count is followed by
    the block's size in bytes, which the reader does not need."""
    count, i = _long(b, i)
    if count < 0:
        count = -count
        _, i = _long(b, i)
    return count, i


RowFields = tuple[int, str, str, str, list[dict[str, Any]], list[Any] | None, list[Any] | None]
"""What a subtask needs of a ROW record: (timestamp_ms, schema, table, op, columns, before,
after)."""


class RelayEventDecoder:
    """RelayEvent bodies back to records. Consecutive rows of one binlog event repeat most of
    their bytes, so three stretches are remembered with what they decoded to and reused while
    the bytes repeat (a byte comparison instead of a parse): source..event_index,
    timestamp..columns, and query..txn_gtid (the whole rest of a row of one transaction). A
    table's column list is also kept per table."""

    def __init__(self) -> None:
        self._columns: dict[tuple[str, str], tuple[bytes, list[dict[str, Any]]]] = {}
        self._head: tuple[bytes, tuple[Any, ...]] = (b"\xff", ())
        self._middle: tuple[bytes, tuple[Any, ...]] = (b"\xff", ())
        self._tail: tuple[bytes, tuple[Any, ...]] | None = None

    def decode(self, b: bytes, i: int = 5) -> dict[str, Any]:
        """The record whose body starts at `i` (after the wire-format header)."""
        head, row_index, middle, i = self._prefix(b, i)
        source_id, server_id, kind, file, pos, gtid, event_index = head
        ts, schema, table, op, columns = middle
        before, i = self._image(b, i)
        after, i = self._image(b, i)
        query, xid, txn_gtid = self._rest(b, i)
        return {"source_id": source_id, "server_id": server_id, "kind": kind,
                "position": {"file": file, "pos": pos, "gtid": gtid,
                             "event_index": event_index, "row_index": row_index},
                "timestamp_ms": ts, "schema": schema, "table": table, "op": op,
                "columns": columns, "before": before, "after": after, "query": query,
                "xid": xid, "txn_gtid": txn_gtid}

    def decode_row(self, b: bytes, i: int = 5) -> RowFields | None:
        """A ROW record's `RowFields`, checked as fully as `decode` checks it but without
        building the record; None when the record is of another kind."""
        head, _, middle, i = self._prefix(b, i)
        if head[2] != "ROW":
            return None
        image = self._image
        before, i = image(b, i)
        after, i = image(b, i)
        self._rest(b, i)
        ts, schema, table, op, columns = middle
        return ts, schema, table, op, columns, before, after

    def _prefix(self, b: bytes, i: int) -> tuple[tuple[Any, ...], int, tuple[Any, ...], int]:
        """(source..event_index, row_index, timestamp..columns, the index after them)."""
        head_bytes, head = self._head
        if b.startswith(head_bytes, i):
            i += len(head_bytes)
        else:
            start = i
            head, i = self._read_head(b, i)
            self._head = (b[start:i], head)
        row_index, i = _long(b, i)
        middle_bytes, middle = self._middle
        if b.startswith(middle_bytes, i):
            i += len(middle_bytes)
        else:
            start = i
            middle, i = self._read_middle(b, i)
            self._middle = (b[start:i], middle)
        return head, row_index, middle, i

    def _rest(self, b: bytes, i: int) -> tuple[Any, ...]:
        """(query, xid, txn_gtid): the record's last fields, which must end the record."""
        tail = self._tail
        if tail is not None and len(b) - i == len(tail[0]) and b.endswith(tail[0]):
            return tail[1]
        start = i
        query, i = _str(b, i)
        xb, i = _long(b, i)
        xid = None
        if xb:
            xid, i = _long(b, i)
        txn_gtid, i = _str(b, i)
        if i != len(b):
            raise ValueError(f"{len(b) - i} bytes after the record")
        rest = (query, xid, txn_gtid)
        if len(b) - start <= 256:  # a row's; a DDL's long query is not worth keeping
            self._tail = (b[start:], rest)
        return rest

    @staticmethod
    def _read_head(b: bytes, i: int) -> tuple[tuple[Any, ...], int]:
        source_id, i = _str(b, i)
        server_id, i = _long(b, i)
        kind, i = _long(b, i)
        file, i = _str(b, i)
        pos, i = _long(b, i)
        gtid, i = _str(b, i)
        event_index, i = _long(b, i)
        return (source_id, server_id, KINDS[kind], file, pos, gtid, event_index), i

    def _read_middle(self, b: bytes, i: int) -> tuple[tuple[Any, ...], int]:
        ts, i = _long(b, i)
        schema, i = _str(b, i)
        table, i = _str(b, i)
        op_branch, i = _long(b, i)
        op = None
        if op_branch:
            o, i = _long(b, i)
            op = _OPS[o]
        cached = self._columns.get((schema, table))
        if cached is not None and b.startswith(cached[0], i):
            columns = cached[1]
            i += len(cached[0])
        else:
            start = i
            columns, i = self._read_columns(b, i)
            if columns:
                self._columns[(schema, table)] = (b[start:i], columns)
        return (ts, schema, table, op, columns), i

    @staticmethod
    def _read_columns(b: bytes, i: int) -> tuple[list[dict[str, Any]], int]:
        out: list[dict[str, Any]] = []
        while True:
            count, i = _block(b, i)
            if count == 0:
                return out, i
            for _ in range(count):
                name, i = _str(b, i)
                type_, i = _str(b, i)
                unsigned = b[i] == 1
                nullable = b[i + 1] == 1
                i += 2
                key, i = _str(b, i)
                charset, i = _str(b, i)
                out.append({"name": name, "type": type_, "unsigned": unsigned,
                            "nullable": nullable, "key": key, "charset": charset})

    @staticmethod
    def _image(b: bytes, i: int) -> tuple[list[Any] | None, int]:
        # the hot loop of the consumer: block counts and varints of up to three bytes (ids,
        # lengths) are read inline
        if b[i] == 0:
            return None, i + 1
        i += 1
        out: list[Any] = []
        append = out.append
        while True:
            count = b[i]
            if count < 0x80 and not count & 1:  # a short block, no byte size after it
                count >>= 1
                i += 1
            else:
                count, i = _block(b, i)
            if count == 0:
                return out, i
            for _ in range(count):
                u = b[i]
                if u == 2:
                    n = b[i + 1]
                    if n < 0x80:
                        i += 2
                    elif b[i + 2] < 0x80:
                        n = (n & 0x7F) | (b[i + 2] << 7)
                        i += 3
                    elif b[i + 3] < 0x80:
                        n = (n & 0x7F) | ((b[i + 2] & 0x7F) << 7) | (b[i + 3] << 14)
                        i += 4
                    else:
                        v, i = _long(b, i + 1)
                        append(v)
                        continue
                    append((n >> 1) ^ -(n & 1))
                elif u == 6:
                    n = b[i + 1]  # the length, zig-zag encoded
                    if n < 0x80:
                        i += 2
                    elif b[i + 2] < 0x80:
                        n = (n & 0x7F) | (b[i + 2] << 7)
                        i += 3
                    else:
                        n, i = _long(b, i + 1)
                        n <<= 1  # back to the zig-zag form the short cases hold
                    j = i + (n >> 1)
                    if n < 0 or n & 1 or j > len(b):
                        raise ValueError("a string runs past the end of the message")
                    append(b[i:j].decode())
                    i = j
                elif u == 0:
                    append(None)
                    i += 1
                elif u == 4:
                    append(_UNPACK_DOUBLE(b, i + 1)[0])
                    i += 9
                else:
                    n, i = _long(b, i + 1)
                    if n < 0 or i + n > len(b):
                        raise ValueError("bytes run past the end of the message")
                    append(b[i:i + n])
                    i += n


SAMPLE = {
    "source_id": "s", "server_id": 1, "kind": "ROW",
    "position": {"file": "mysql-bin.000001", "pos": 1234, "gtid": "0-1-7", "event_index": 1,
                 "row_index": 2},
    "timestamp_ms": 1_700_000_000_000, "schema": "db", "table": "t", "op": "UPDATE",
    "columns": [{"name": "id", "type": "int", "unsigned": False, "nullable": False,
                 "key": "PRI", "charset": ""},
                {"name": "c", "type": "varchar(10)", "unsigned": False, "nullable": True,
                 "key": "", "charset": "utf8mb4"}],
    "before": [1, None], "after": [-(2**63), "é", 1.5, b"\x00\xff"], "query": "", "xid": 99,
    "txn_gtid": "0-1-8"}
