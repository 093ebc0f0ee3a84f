"""Row images from binlog row events, decoded to exact values.

mysql-replication frames the stream and parses table maps; the row bodies are decoded here,
per table, by a list of small column readers compiled once per table map. Two reasons:
the library's own row decoding loses information (zero dates and empty SETs become NULL,
TIMESTAMP goes through the local time zone) and it is the slowest step of the relay.

Values follow the relay event's row-image union (`schemas/relay_event.avsc`):

============================  ==============================================================
integers, YEAR, BIT           int (BIGINT UNSIGNED and BIT(64) above 2^63-1: decimal string)
FLOAT, DOUBLE                 float (a FLOAT is the exact float32 value, widened)
DECIMAL                       exact text with the column's scale, e.g. ``-0.500``
DATE, DATETIME, TIMESTAMP     MySQL's text, zero dates kept (``0000-00-00``); TIMESTAMP in
                              UTC; fractional digits exactly as the column's precision
TIME                          ``[-]HHH:MM:SS[.frac]``
CHAR, VARCHAR, TEXT, ENUM,    str, decoded with the column's character set
SET, JSON (MariaDB)
BINARY, VARBINARY, BLOB,      bytes (BINARY padded back to its length with 0x00)
GEOMETRY
JSON (MySQL binary)           its JSON text
============================  ==============================================================
"""

from __future__ import annotations

import codecs
import json
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pymysql.charset import charset_by_name
from pymysqlreplication.constants import FIELD_TYPE
from pymysqlreplication.json_binary import parse_json
from pymysqlreplication.row_event import TableMapEvent

from kdm.errors import ERR_RELAY_UNSUPPORTED_COLUMN

Reader = Callable[[bytes, int], tuple[Any, int]]
_INT64_MAX = 2**63 - 1
_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
# Python names for MySQL character sets pymysql does not map, and MySQL's bytes per char.
_ENCODINGS = {"utf8mb3": "utf8", "utf8mb4": "utf8", "latin1": "kdm_mysql_latin1",
              "utf16le": "utf-16-le", "ucs2": "utf-16-be",
              "utf16": "utf-16-be", "utf32": "utf-32-be", "gb18030": "gb18030",
              "eucjpms": "euc_jp", "ujis": "euc_jp", "koi8u": "koi8_u", "koi8r": "koi8_r"}
_MAXLEN = {"utf8mb4": 4, "utf8": 3, "utf8mb3": 3, "ucs2": 2, "utf16": 4, "utf16le": 4,
           "utf32": 4, "gbk": 2, "big5": 2, "sjis": 2, "cp932": 2, "ujis": 3, "eucjpms": 3,
           "euckr": 2, "gb2312": 2, "gb18030": 4}
_BLOB_NAMES = {1: "tiny", 2: "", 3: "medium", 4: "long"}
_UNSIGNED_TYPES = frozenset({FIELD_TYPE.TINY, FIELD_TYPE.SHORT, FIELD_TYPE.INT24, FIELD_TYPE.LONG,
                             FIELD_TYPE.LONGLONG, FIELD_TYPE.FLOAT, FIELD_TYPE.DOUBLE,
                             FIELD_TYPE.NEWDECIMAL})
# MySQL's latin1 is Windows-1252 with its five unassigned bytes (0x81 0x8D 0x8F 0x90 0x9D)
# mapped to the C1 controls of the same number; Python's cp1252 refuses those bytes.
_LATIN1_TABLE = "".join(chr(b) if b in (0x81, 0x8D, 0x8F, 0x90, 0x9D)
                        else bytes([b]).decode("cp1252") for b in range(256))
_LATIN1_ENCODE = codecs.charmap_build(_LATIN1_TABLE)


def _mysql_latin1(name: str) -> codecs.CodecInfo | None:
    if name != "kdm_mysql_latin1":
        return None
    return codecs.CodecInfo(
        name="kdm_mysql_latin1",
        encode=lambda text, errors="strict": codecs.charmap_encode(text, errors, _LATIN1_ENCODE),
        decode=lambda data, errors="strict": codecs.charmap_decode(data, errors, _LATIN1_TABLE))


codecs.register(_mysql_latin1)


@dataclass(frozen=True)
class ColumnInfo:
    """A column as the relay publishes it (the Avro `Column` record)."""

    name: str
    type: str
    unsigned: bool
    nullable: bool
    key: str
    charset: str

    def to_dict(self) -> dict[str, Any]:
        """The Avro record form."""
        return {"name": self.name, "type": self.type, "unsigned": self.unsigned,
                "nullable": self.nullable, "key": self.key, "charset": self.charset}


class TableDecoder:
    """Decodes the rows of one table map's row events."""

    def __init__(self, schema: str, table: str, columns: Sequence[Any],
                 null_bitmask: bytes) -> None:
        self.schema = schema
        self.table = table
        self.readers = [_reader(schema, table, column) for column in columns]
        self.columns = [
            _column_info(column, bool(null_bitmask[i >> 3] >> (i & 7) & 1))
            for i, column in enumerate(columns)]
        self.column_dicts = [column.to_dict() for column in self.columns]
        self.width = len(columns)
        self.full_bitmap = bytes(
            sum(1 << bit for bit in range(8) if byte * 8 + bit < self.width)
            for byte in range((self.width + 7) // 8))

    def image(self, buf: bytes, off: int) -> tuple[list[Any], int]:
        """One full row image starting at `off`: (values, offset after it)."""
        readers = self.readers
        nulls = buf[off:off + ((len(readers) + 7) >> 3)]
        off += len(nulls)
        values: list[Any] = []
        append = values.append
        for i, read in enumerate(readers):
            if nulls[i >> 3] >> (i & 7) & 1:
                append(None)
            else:
                value, off = read(buf, off)
                append(value)
        return values, off

    def rows(self, buf: bytes, off: int, end: int, images: int) -> list[list[list[Any]]]:
        """Every row in buf[off:end], each as `images` row images (1, or 2 for an update)."""
        rows = []
        image = self.image
        while off < end:
            row = []
            for _ in range(images):
                values, off = image(buf, off)
                row.append(values)
            rows.append(row)
        if off != end:
            raise ValueError(f"row data overran its event by {off - end} bytes")
        return rows


def _column_info(column: Any, nullable: bool) -> ColumnInfo:
    charset = charset_name(column)
    # only where UNSIGNED is part of the type: MariaDB flags YEAR unsigned, MySQL does not
    unsigned = bool(column.unsigned) and column.type in _UNSIGNED_TYPES
    return ColumnInfo(column.name or "", type_text(column), unsigned, nullable,
                      "PRI" if column.is_primary else "",
                      "" if charset == "binary" else charset)


def charset_name(column: Any) -> str:
    """The MySQL character set of a text column ('binary' for binary ones, '' otherwise).

    mysql-replication keeps the Python encoding and the collation; every MySQL and MariaDB
    collation name starts with its character set's name."""
    collation = getattr(column, "collation_name", None)
    if collation:
        return "binary" if collation == "binary" else str(collation).split("_")[0]
    return str(column.character_set_name or "")


def type_text(column: Any) -> str:
    """The column's type as SHOW CREATE TABLE spells it, from what the table map tells."""
    t = column.type
    charset = charset_name(column)
    binary = charset == "binary"
    simple = {FIELD_TYPE.TINY: "tinyint", FIELD_TYPE.SHORT: "smallint",
              FIELD_TYPE.INT24: "mediumint", FIELD_TYPE.LONG: "int",
              FIELD_TYPE.LONGLONG: "bigint", FIELD_TYPE.FLOAT: "float",
              FIELD_TYPE.DOUBLE: "double", FIELD_TYPE.DATE: "date", FIELD_TYPE.YEAR: "year",
              FIELD_TYPE.JSON: "json", FIELD_TYPE.GEOMETRY: "geometry",
              FIELD_TYPE.TIMESTAMP: "timestamp", FIELD_TYPE.DATETIME: "datetime",
              FIELD_TYPE.TIME: "time"}
    if t in simple:
        return simple[t]
    if t == FIELD_TYPE.NEWDECIMAL:
        return f"decimal({column.precision},{column.decimals})"
    if t in (FIELD_TYPE.TIMESTAMP2, FIELD_TYPE.DATETIME2, FIELD_TYPE.TIME2):
        name = {FIELD_TYPE.TIMESTAMP2: "timestamp", FIELD_TYPE.DATETIME2: "datetime",
                FIELD_TYPE.TIME2: "time"}[t]
        return f"{name}({column.fsp})" if column.fsp else name
    if t == FIELD_TYPE.BIT:
        return f"bit({column.bits})"
    if t in (FIELD_TYPE.ENUM, FIELD_TYPE.SET):
        # mysql-replication puts ENUM's invalid-value member '' (index 0) in front
        values = members(column, (column.enum_values or [""])[1:] if t == FIELD_TYPE.ENUM
                         else column.set_values)
        quoted = ",".join("'" + v.replace("'", "''") + "'" for v in values or ())
        return f"{'enum' if t == FIELD_TYPE.ENUM else 'set'}({quoted})"
    if t == FIELD_TYPE.BLOB:
        size = _BLOB_NAMES.get(column.length_size, "")
        return f"{size}{'blob' if binary else 'text'}"
    if t in (FIELD_TYPE.VARCHAR, FIELD_TYPE.VAR_STRING, FIELD_TYPE.STRING):
        length = column.max_length // (1 if binary else _MAXLEN.get(charset, 1))
        name = "var" if t != FIELD_TYPE.STRING else ""
        return f"{name}{'binary' if binary else 'char'}({length})"
    return f"type#{t}"


def _reader(schema: str, table: str, column: Any) -> Reader:
    make = _READERS.get(column.type)
    if make is None:
        raise ERR_RELAY_UNSUPPORTED_COLUMN(schema=schema, table=table, column=column.name,
                                           type=column.type)
    return make(column)


def _int_reader(fmt_signed: str, fmt_unsigned: str, size: int) -> Callable[[Any], Reader]:
    def make(column: Any) -> Reader:
        unpack = struct.Struct(fmt_unsigned if column.unsigned else fmt_signed).unpack_from
        big = column.unsigned and size == 8

        def read(buf: bytes, off: int) -> tuple[Any, int]:
            value = unpack(buf, off)[0]
            return (str(value) if big and value > _INT64_MAX else value), off + size
        return read
    return make


def _int24(column: Any) -> Reader:
    signed = not column.unsigned

    def read(buf: bytes, off: int) -> tuple[Any, int]:
        return int.from_bytes(buf[off:off + 3], "little", signed=signed), off + 3
    return read


def _fixed(fmt: str) -> Callable[[Any], Reader]:
    def make(column: Any) -> Reader:
        unpack = struct.Struct(fmt).unpack_from
        size = struct.calcsize(fmt)

        def read(buf: bytes, off: int) -> tuple[Any, int]:
            return unpack(buf, off)[0], off + size
        return read
    return make


def _year(column: Any) -> Reader:
    def read(buf: bytes, off: int) -> tuple[Any, int]:
        value = buf[off]
        return (value + 1900 if value else 0), off + 1
    return read


def _bit(column: Any) -> Reader:
    size = (column.bits + 7) // 8

    def read(buf: bytes, off: int) -> tuple[Any, int]:
        value = int.from_bytes(buf[off:off + size], "big")
        return (str(value) if value > _INT64_MAX else value), off + size
    return read


def _encoding(column: Any) -> str | None:
    name = charset_name(column) or "binary"
    if name == "binary":
        return None
    if name in _ENCODINGS:
        return _ENCODINGS[name]
    charset = charset_by_name(name)
    return charset.encoding if charset else name


def _length_prefixed(size: int, encoding: str | None, pad_to: int = 0) -> Reader:
    def read(buf: bytes, off: int) -> tuple[Any, int]:
        length = int.from_bytes(buf[off:off + size], "little")
        start = off + size
        raw = buf[start:start + length]
        if encoding is not None:
            return raw.decode(encoding), start + length
        if pad_to > length:
            raw += b"\x00" * (pad_to - length)
        return raw, start + length

    def read1(buf: bytes, off: int) -> tuple[Any, int]:
        length = buf[off]
        end = off + 1 + length
        return buf[off + 1:end].decode(encoding), end  # type: ignore[arg-type]
    return read1 if size == 1 and encoding is not None else read


def _string(column: Any) -> Reader:
    size = 2 if column.max_length > 255 else 1
    encoding = _encoding(column)
    pad = column.max_length if column.type == FIELD_TYPE.STRING and encoding is None else 0
    return _length_prefixed(size, encoding, pad)


def _blob(column: Any) -> Reader:
    return _length_prefixed(column.length_size, _encoding(column))


def _geometry(column: Any) -> Reader:
    return _length_prefixed(column.length_size, None)


def _json(column: Any) -> Reader:
    size = column.length_size

    def read(buf: bytes, off: int) -> tuple[Any, int]:
        length = int.from_bytes(buf[off:off + size], "little")
        start = off + size
        raw = buf[start:start + length]
        value = _json_text(parse_json(raw[0], raw[1:])) if length else "null"
        return value, start + length
    return read


def _json_text(value: Any) -> str:
    def plain(item: Any) -> Any:
        if isinstance(item, bytes):
            return item.decode("utf8")
        if isinstance(item, dict):
            return {plain(k): plain(v) for k, v in item.items()}
        if isinstance(item, list):
            return [plain(v) for v in item]
        return item
    return json.dumps(plain(value), ensure_ascii=False)


def members(column: Any, values: Sequence[Any] | None) -> list[str]:
    """ENUM/SET member names as text, decoded with the column's character set (the table
    map carries them as bytes once `keep_raw_members` is installed)."""
    encoding = _encoding(column) or "utf8"
    return [v.decode(encoding) if isinstance(v, bytes) else str(v) for v in values or ()]


def keep_raw_members() -> None:
    """Make mysql-replication keep ENUM/SET member names as bytes.

    The library decodes them as UTF-8 and replaces any other charset's names with '', so a
    latin1 ENUM('é') would lose its member; the decoder decodes them with the column's own
    character set instead (`members`)."""
    def read_type_values(self: Any, length: int) -> list[list[bytes]]:
        result, until = [], self.packet.read_bytes + length
        while self.packet.read_bytes < until:
            count = self.packet.read_length_coded_binary()
            result.append([self.packet.read_variable_length_string() for _ in range(count)])
        return result
    TableMapEvent._read_type_values = read_type_values


def _enum(column: Any) -> Reader:
    values = members(column, column.enum_values or [""])
    size = column.size

    def read(buf: bytes, off: int) -> tuple[Any, int]:
        index = int.from_bytes(buf[off:off + size], "little")
        return (values[index] if index < len(values) else ""), off + size
    return read


def _set(column: Any) -> Reader:
    names = members(column, column.set_values)
    size = column.size

    def read(buf: bytes, off: int) -> tuple[Any, int]:
        mask = int.from_bytes(buf[off:off + size], "little")
        return ",".join(m for i, m in enumerate(names) if mask >> i & 1), off + size
    return read


def _decimal(column: Any) -> Reader:
    precision, scale = column.precision, column.decimals
    intg = precision - scale
    intg0, intg0x = divmod(intg, 9)
    frac0, frac0x = divmod(scale, 9)
    size = intg0 * 4 + _DIG2BYTES[intg0x] + frac0 * 4 + _DIG2BYTES[frac0x]
    head = _DIG2BYTES[intg0x]
    tail = _DIG2BYTES[frac0x]

    def read(buf: bytes, off: int) -> tuple[Any, int]:
        raw = bytearray(buf[off:off + size])
        negative = not raw[0] & 0x80
        raw[0] ^= 0x80
        if negative:
            raw = bytearray(b ^ 0xFF for b in raw)
        pos = head
        digits = [str(int.from_bytes(raw[:head], "big"))] if head else []
        for _ in range(intg0):
            digits.append(f"{int.from_bytes(raw[pos:pos + 4], 'big'):09d}")
            pos += 4
        integer = "".join(digits).lstrip("0") or "0"
        fraction = []
        for _ in range(frac0):
            fraction.append(f"{int.from_bytes(raw[pos:pos + 4], 'big'):09d}")
            pos += 4
        if tail:
            fraction.append(f"{int.from_bytes(raw[pos:pos + tail], 'big'):0{frac0x}d}")
        text = integer + ("." + "".join(fraction) if scale else "")
        if negative and text.strip("0.") != "":
            text = "-" + text
        return text, off + size
    return read


def _frac_reader(fsp: int) -> tuple[int, Callable[[bytes, int], int]]:
    """(bytes, read) for a fractional-seconds part: read gives microseconds."""
    size = (fsp + 1) // 2
    scale = {0: 0, 1: 10000, 2: 100, 3: 1}[size]

    def read(buf: bytes, off: int) -> int:
        return int.from_bytes(buf[off:off + size], "big") * scale if size else 0
    return size, read


def _frac_text(fsp: int, micros: int) -> str:
    return f".{micros:06d}"[:fsp + 1] if fsp else ""


def _datetime2(column: Any) -> Reader:
    fsp = column.fsp
    frac_size, frac = _frac_reader(fsp)

    def read(buf: bytes, off: int) -> tuple[Any, int]:
        v = int.from_bytes(buf[off:off + 5], "big") - 0x8000000000
        ym = v >> 22 & 0x1FFFF
        text = (f"{ym // 13:04d}-{ym % 13:02d}-{v >> 17 & 31:02d} "
                f"{v >> 12 & 31:02d}:{v >> 6 & 63:02d}:{v & 63:02d}")
        return text + _frac_text(fsp, frac(buf, off + 5)), off + 5 + frac_size
    return read


def _timestamp2(column: Any) -> Reader:
    fsp = column.fsp
    frac_size, frac = _frac_reader(fsp)

    def read(buf: bytes, off: int) -> tuple[Any, int]:
        seconds = int.from_bytes(buf[off:off + 4], "big")
        micros = frac(buf, off + 4)
        text = (time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) if seconds or micros
                else "0000-00-00 00:00:00")
        return text + _frac_text(fsp, micros), off + 4 + frac_size
    return read


def _time2(column: Any) -> Reader:
    fsp = column.fsp
    size = 3 + (fsp + 1) // 2

    def read(buf: bytes, off: int) -> tuple[Any, int]:
        packed = _time2_packed(buf[off:off + size], fsp)
        sign = "-" if packed < 0 else ""
        packed = abs(packed)
        hms, micros = packed >> 24, packed % (1 << 24)
        text = f"{sign}{hms >> 12 & 0x3FF:02d}:{hms >> 6 & 63:02d}:{hms & 63:02d}"
        return text + _frac_text(fsp, micros), off + size
    return read


def _time2_packed(raw: bytes, fsp: int) -> int:
    """MySQL's packed TIME (integer part << 24 | microseconds), signed."""
    if fsp >= 5:
        return int.from_bytes(raw[:6], "big") - 0x800000000000
    intpart = int.from_bytes(raw[:3], "big") - 0x800000
    if fsp == 0:
        return intpart << 24
    width = 1 if fsp <= 2 else 2
    frac = int.from_bytes(raw[3:3 + width], "big")
    if intpart < 0 and frac:
        intpart += 1
        frac -= 1 << (8 * width)
    return (intpart << 24) + frac * (10000 if width == 1 else 100)


def _date(column: Any) -> Reader:
    def read(buf: bytes, off: int) -> tuple[Any, int]:
        v = int.from_bytes(buf[off:off + 3], "little")
        return f"{v >> 9:04d}-{v >> 5 & 15:02d}-{v & 31:02d}", off + 3
    return read


def _old_time(column: Any) -> Reader:
    def read(buf: bytes, off: int) -> tuple[Any, int]:
        v = int.from_bytes(buf[off:off + 3], "little", signed=True)
        sign, v = ("-" if v < 0 else ""), abs(v)
        return f"{sign}{v // 10000:02d}:{v // 100 % 100:02d}:{v % 100:02d}", off + 3
    return read


def _old_datetime(column: Any) -> Reader:
    def read(buf: bytes, off: int) -> tuple[Any, int]:
        v = int.from_bytes(buf[off:off + 8], "little")
        d, t = divmod(v, 1000000)
        return (f"{d // 10000:04d}-{d // 100 % 100:02d}-{d % 100:02d} "
                f"{t // 10000:02d}:{t // 100 % 100:02d}:{t % 100:02d}"), off + 8
    return read


def _old_timestamp(column: Any) -> Reader:
    def read(buf: bytes, off: int) -> tuple[Any, int]:
        seconds = int.from_bytes(buf[off:off + 4], "little")
        text = (time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) if seconds
                else "0000-00-00 00:00:00")
        return text, off + 4
    return read


_READERS: dict[int, Callable[[Any], Reader]] = {
    FIELD_TYPE.TINY: _int_reader("<b", "<B", 1),
    FIELD_TYPE.SHORT: _int_reader("<h", "<H", 2),
    FIELD_TYPE.LONG: _int_reader("<i", "<I", 4),
    FIELD_TYPE.LONGLONG: _int_reader("<q", "<Q", 8),
    FIELD_TYPE.INT24: _int24,
    FIELD_TYPE.FLOAT: _fixed("<f"),
    FIELD_TYPE.DOUBLE: _fixed("<d"),
    FIELD_TYPE.YEAR: _year,
    FIELD_TYPE.BIT: _bit,
    FIELD_TYPE.NEWDECIMAL: _decimal,
    FIELD_TYPE.DATE: _date,
    FIELD_TYPE.TIME: _old_time,
    FIELD_TYPE.DATETIME: _old_datetime,
    FIELD_TYPE.TIMESTAMP: _old_timestamp,
    FIELD_TYPE.DATETIME2: _datetime2,
    FIELD_TYPE.TIMESTAMP2: _timestamp2,
    FIELD_TYPE.TIME2: _time2,
    FIELD_TYPE.VARCHAR: _string,
    FIELD_TYPE.VAR_STRING: _string,
    FIELD_TYPE.STRING: _string,
    FIELD_TYPE.BLOB: _blob,
    FIELD_TYPE.GEOMETRY: _geometry,
    FIELD_TYPE.JSON: _json,
    FIELD_TYPE.ENUM: _enum,
    FIELD_TYPE.SET: _set,
}
