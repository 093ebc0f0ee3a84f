"""The binlog row decoder against row images built by hand from MySQL's row format.

Every binary fixture comes from a small encoder below that follows the format (MySQL's
`Field::pack`, `decimal2bin`, `my_*_packed_to_binary`); where MySQL documents literal bytes,
the encoder is checked against them first. Columns are fakes carrying the attributes
mysql-replication's `Column` has after a table map with `binlog_row_metadata=FULL`.
"""

from __future__ import annotations

import calendar
import os
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from pymysqlreplication.constants import FIELD_TYPE

from kdm.errors import KdmError
from producers.decoder import ColumnInfo, TableDecoder, charset_name, type_text

INT64_MAX = 2**63 - 1
# MySQL's bytes for a leftover group of 0..9 decimal digits (decimal.cc, dig2bytes)
DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)


# -- fake columns --------------------------------------------------------------------------

@dataclass
class FakeColumn:
    """What mysql-replication's Column carries (only the attributes of its type are real)."""

    type: int
    name: str = "c"
    unsigned: bool = False
    is_primary: bool = False
    character_set_name: str | None = None  # mysql-replication keeps the Python encoding here
    collation_name: str | None = None
    max_length: int = 0
    length_size: int = 0
    precision: int = 0
    decimals: int = 0
    fsp: int = 0
    bits: int = 0
    size: int = 0
    enum_values: list[str] | None = None  # '' first: ENUM's invalid-value member, index 0
    set_values: list[str] | None = None


# MySQL charset -> (a collation of it, the Python encoding mysql-replication reports)
CHARSETS = {"utf8mb4": ("utf8mb4_general_ci", "utf8"), "utf8mb3": ("utf8mb3_general_ci", "utf8"),
            "utf8": ("utf8_general_ci", "utf8"), "latin1": ("latin1_swedish_ci", "cp1252"),
            "gbk": ("gbk_chinese_ci", "gbk"), "binary": ("binary", "binary")}
# MySQL's bytes per character, for the byte lengths a table map gives
MAXLEN = {"utf8mb4": 4, "utf8mb3": 3, "utf8": 3, "latin1": 1, "gbk": 2, "binary": 1}


def col(ftype: int, **kwargs: Any) -> FakeColumn:
    """A non-text column."""
    return FakeColumn(ftype, **kwargs)


def text_col(ftype: int, charset: str, chars: int = 0, **kwargs: Any) -> FakeColumn:
    """A text or binary column; `chars` is the declared length of (VAR)CHAR/(VAR)BINARY."""
    collation, encoding = CHARSETS[charset]
    return FakeColumn(ftype, collation_name=collation, character_set_name=encoding,
                      max_length=chars * MAXLEN[charset], **kwargs)


def decode(column: FakeColumn, payload: bytes) -> Any:
    """The value of a one-column row image whose value bytes are `payload`.

    Layout: 3 unrelated bytes | null bitmap (1 byte, bit 0 = 0: not NULL) | payload | 2 bytes
    of whatever follows; the decoder must start at its offset and stop exactly after the
    payload."""
    decoder = TableDecoder("db", "t", [column], b"\x01")
    buf = b"\xee\xee\xee" + b"\x00" + payload + b"\xee\xee"
    values, end = decoder.image(buf, 3)
    assert end == len(buf) - 2, f"decoder consumed {end - 4} bytes of a {len(payload)}-byte value"
    return values[0]


def same(got: Any, want: Any) -> None:
    """Equal and of the same type (so 1 != True != 1.0 and str != bytes)."""
    assert type(got) is type(want), f"{got!r} is a {type(got).__name__}, not a " \
        f"{type(want).__name__}"
    assert got == want


# -- encoders for MySQL's binlog value formats ---------------------------------------------

def enc_int(value: int, size: int, unsigned: bool) -> bytes:
    """Integers: `size` bytes, little-endian, two's complement when signed."""
    return value.to_bytes(size, "little", signed=not unsigned)


def enc_prefixed(data: bytes, size: int) -> bytes:
    """Strings and blobs: a `size`-byte little-endian length, then the bytes."""
    return len(data).to_bytes(size, "little") + data


def enc_decimal(text: str, precision: int, scale: int) -> bytes:
    """DECIMAL (decimal2bin): integer digits then fraction digits, each side in groups of 9
    digits stored as 4 big-endian bytes; the integer side's leftover (most significant)
    digits come first in DIG2BYTES[n] bytes, the fraction side's leftover digits last.
    Negative: every byte inverted. Then the first byte's top bit is flipped (sign)."""
    negative = text.startswith("-")
    whole, _, fraction = text.lstrip("-").partition(".")
    intg = precision - scale
    whole = whole.lstrip("0").rjust(intg, "0")
    fraction = fraction.ljust(scale, "0")
    assert len(whole) == intg and len(fraction) == scale, text
    intg0, intg0x = divmod(intg, 9)
    frac0, frac0x = divmod(scale, 9)
    out = bytearray()
    if intg0x:
        out += int(whole[:intg0x]).to_bytes(DIG2BYTES[intg0x], "big")
    for i in range(intg0):
        out += int(whole[intg0x + 9 * i:intg0x + 9 * i + 9]).to_bytes(4, "big")
    for i in range(frac0):
        out += int(fraction[9 * i:9 * i + 9]).to_bytes(4, "big")
    if frac0x:
        out += int(fraction[9 * frac0:]).to_bytes(DIG2BYTES[frac0x], "big")
    if negative:
        out = bytearray(b ^ 0xFF for b in out)
    out[0] ^= 0x80
    return bytes(out)


def micros_of(digits: str) -> int:
    """Microseconds of the fraction digits after the point."""
    return int(digits.ljust(6, "0")) if digits else 0


def enc_frac(micros: int, fsp: int) -> bytes:
    """Fractional seconds of DATETIME2/TIMESTAMP2: (fsp+1)//2 big-endian bytes holding the
    microseconds / 10000 (fsp 1-2), / 100 (fsp 3-4) or as they are (fsp 5-6)."""
    size = (fsp + 1) // 2
    return (micros // {0: 1, 1: 10000, 2: 100, 3: 1}[size]).to_bytes(size, "big") if size else b""


def enc_datetime2(text: str, fsp: int) -> bytes:
    """DATETIME2: 5 big-endian bytes of 0x8000000000 + (year*13+month)<<22 | day<<17 |
    hour<<12 | minute<<6 | second (1 sign bit, 17 bits year-month, 5 day, 5 hour, 6 minute,
    6 second), then the fraction."""
    date, _, clock = text.partition(" ")
    year, month, day = (int(x) for x in date.split("-"))
    hms, _, digits = clock.partition(".")
    hour, minute, second = (int(x) for x in hms.split(":"))
    packed = (year * 13 + month) << 22 | day << 17 | hour << 12 | minute << 6 | second
    return (0x8000000000 + packed).to_bytes(5, "big") + enc_frac(micros_of(digits), fsp)


def enc_timestamp2(text: str, fsp: int) -> bytes:
    """TIMESTAMP2: 4 big-endian bytes of seconds since the epoch (UTC; 0 is the zero
    timestamp), then the fraction."""
    clock, _, digits = text.partition(".")
    seconds = 0 if clock.startswith("0000") else calendar.timegm(
        time.strptime(clock, "%Y-%m-%d %H:%M:%S"))
    return seconds.to_bytes(4, "big") + enc_frac(micros_of(digits), fsp)


def enc_time2(text: str, fsp: int) -> bytes:
    """TIME2 (my_time_packed_to_binary): the packed time nr = ±(hour<<12 | minute<<6 |
    second) << 24 + microseconds. fsp 0: 3 big-endian bytes of 0x800000 + (nr >> 24);
    fsp 1-2 and 3-4: the same 3 bytes, then 1 (resp. 2) bytes of the C remainder
    nr % 2^24 divided by 10000 (resp. 100), truncated and stored two's complement - so a
    negative time with a fraction has its integer part one lower and the fraction counted
    back from 0x100 (0x10000); fsp 5-6: 6 big-endian bytes of 0x800000000000 + nr."""
    negative = text.startswith("-")
    hms, _, digits = text.lstrip("-").partition(".")
    hour, minute, second = (int(x) for x in hms.split(":"))
    nr = (hour << 12 | minute << 6 | second) << 24 | micros_of(digits)
    nr = -nr if negative else nr
    int_part = nr >> 24  # an arithmetic shift, as MY_PACKED_TIME_GET_INT_PART
    frac_part = -(-nr % (1 << 24)) if nr < 0 else nr % (1 << 24)  # C's %, sign of nr
    head = (0x800000 + int_part).to_bytes(3, "big")
    if fsp == 0:
        return head
    if fsp <= 2:
        return head + (int(frac_part / 10000) & 0xFF).to_bytes(1, "big")
    if fsp <= 4:
        return head + (int(frac_part / 100) & 0xFFFF).to_bytes(2, "big")
    return (0x800000000000 + nr).to_bytes(6, "big")


def enc_date(text: str) -> bytes:
    """DATE: 3 little-endian bytes of year<<9 | month<<5 | day."""
    year, month, day = (int(x) for x in text.split("-"))
    return (year << 9 | month << 5 | day).to_bytes(3, "little")


def null_bitmap(values: Sequence[Any]) -> bytes:
    """A row image's null bitmap: bit i (little-endian within each byte) set = column i
    is NULL."""
    bits = bytearray((len(values) + 7) // 8)
    for i, value in enumerate(values):
        if value is None:
            bits[i >> 3] |= 1 << (i & 7)
    return bytes(bits)


# -- integers ------------------------------------------------------------------------------

INT_SIZES = [(FIELD_TYPE.TINY, 1, "tinyint"), (FIELD_TYPE.SHORT, 2, "smallint"),
             (FIELD_TYPE.INT24, 3, "mediumint"), (FIELD_TYPE.LONG, 4, "int"),
             (FIELD_TYPE.LONGLONG, 8, "bigint")]


def int_cases() -> Iterator[Any]:
    for ftype, size, name in INT_SIZES:
        bits = 8 * size
        for value in (-(2 ** (bits - 1)), -1, 0, 1, 2 ** (bits - 1) - 1):
            yield pytest.param(ftype, size, False, value, value, id=f"{name}-{value}")
        for value in (0, 1, 2 ** (bits - 1) - 1, 2 ** (bits - 1), 2**bits - 1):
            # BIGINT UNSIGNED above the int64 range: its decimal string
            want: int | str = str(value) if value > INT64_MAX else value
            yield pytest.param(ftype, size, True, value, want, id=f"{name}-unsigned-{value}")


@pytest.mark.parametrize(("ftype", "size", "unsigned", "value", "want"), list(int_cases()))
def test_integers_at_their_extremes(ftype: int, size: int, unsigned: bool, value: int,
                                    want: int | str) -> None:
    same(decode(col(ftype, unsigned=unsigned), enc_int(value, size, unsigned)), want)


def test_bigint_unsigned_max_is_a_decimal_string() -> None:
    column = col(FIELD_TYPE.LONGLONG, unsigned=True)
    same(decode(column, b"\xff" * 8), "18446744073709551615")
    same(decode(column, b"\xff" * 7 + b"\x7f"), INT64_MAX)


# -- floating point ------------------------------------------------------------------------

@pytest.mark.parametrize("value", [0.0, -0.0, 1.5, 3.1415927, -3.4028234663852886e38,
                                   1.17549435e-38, 1.401298464324817e-45, 16777217.0])
def test_float_is_the_exact_float32_widened(value: float) -> None:
    # FLOAT: 4 bytes, IEEE 754 single precision, little-endian
    raw = struct.pack("<f", value)
    got = decode(col(FIELD_TYPE.FLOAT, size=4), raw)
    same(got, struct.unpack("<f", raw)[0])
    assert struct.pack("<d", got) == struct.pack("<d", struct.unpack("<f", raw)[0])  # -0.0


@pytest.mark.parametrize("value", [0.1, -0.0, 1.7976931348623157e308, -5e-324,
                                   2.2250738585072014e-308, 123456789.12345679])
def test_double_is_exact(value: float) -> None:
    # DOUBLE: 8 bytes, IEEE 754 double precision, little-endian
    got = decode(col(FIELD_TYPE.DOUBLE, size=8), struct.pack("<d", value))
    assert struct.pack("<d", got) == struct.pack("<d", value)


# -- DECIMAL -------------------------------------------------------------------------------

def test_decimal_encoder_matches_mysqls_documented_bytes() -> None:
    # decimal.cc's decimal2bin comment: 1234567890.1234 as DECIMAL(14,4)
    assert enc_decimal("1234567890.1234", 14, 4) == bytes.fromhex("810DFB38D204D2")
    assert enc_decimal("-1234567890.1234", 14, 4) == bytes.fromhex("7EF204C72DFB2D")


DEC65_MAX = "9" * 35 + "." + "9" * 30
DECIMALS = [
    (14, 4, "1234567890.1234"), (14, 4, "-1234567890.1234"), (10, 0, "0"), (10, 0, "-1"),
    (10, 0, "9999999999"), (10, 0, "-9999999999"), (6, 3, "-0.500"), (6, 3, "0.500"),
    (1, 1, "0.5"), (1, 1, "-0.9"), (5, 2, "0.00"), (5, 2, "-999.99"), (9, 0, "123456789"),
    (9, 9, "0.000000001"), (18, 9, "-123456789.123456789"), (19, 10, "123456789.0000000001"),
    (20, 5, "-100000000000000.00001"), (65, 30, DEC65_MAX), (65, 30, "-" + DEC65_MAX),
    (65, 30, "0.000000000000000000000000000001"), (65, 30, "-0.000000000000000000000000000001"),
    (65, 30, "12345678901234567890123456789012345.123456789012345678901234567890"),
    (65, 30, "-1.500000000000000000000000000000"), (65, 0, "9" * 65), (65, 0, "-" + "9" * 65),
    (30, 30, "-0." + "9" * 30),
]


@pytest.mark.parametrize(("precision", "scale", "text"), DECIMALS)
def test_decimal_is_its_exact_text(precision: int, scale: int, text: str) -> None:
    column = col(FIELD_TYPE.NEWDECIMAL, precision=precision, decimals=scale)
    same(decode(column, enc_decimal(text, precision, scale)), text)
    assert type_text(column) == f"decimal({precision},{scale})"


# -- temporal types ------------------------------------------------------------------------

def fraction(digits: str, fsp: int) -> str:
    return "." + digits[:fsp] if fsp else ""


def datetime_cases() -> Iterator[Any]:
    for fsp in range(7):
        for base, digits in (("2023-04-05 06:07:08", "123456"), ("9999-12-31 23:59:59", "999999"),
                             ("1000-01-01 00:00:00", "000001"), ("0000-00-00 00:00:00", "000000"),
                             ("2023-00-00 00:00:00", "500000"), ("2024-02-29 12:00:00", "050000")):
            yield pytest.param(fsp, base + fraction(digits, fsp), id=f"{fsp}-{base}")


@pytest.mark.parametrize(("fsp", "text"), list(datetime_cases()))
def test_datetime2_with_every_precision(fsp: int, text: str) -> None:
    column = col(FIELD_TYPE.DATETIME2, fsp=fsp)
    same(decode(column, enc_datetime2(text, fsp)), text)
    assert type_text(column) == (f"datetime({fsp})" if fsp else "datetime")


def timestamp_cases() -> Iterator[Any]:
    for fsp in range(7):
        for base, digits in (("1970-01-01 00:00:01", "000001"), ("2038-01-19 03:14:07", "999999"),
                             ("2024-02-29 12:34:56", "123456"), ("0000-00-00 00:00:00", "000000"),
                             ("2001-09-09 01:46:40", "100000")):
            yield pytest.param(fsp, base + fraction(digits, fsp), id=f"{fsp}-{base}")


@pytest.fixture
def far_from_utc() -> Iterator[None]:
    """The process's local time zone is far from UTC (TIMESTAMP must not depend on it)."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "Pacific/Kiritimati"  # UTC+14
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()


@pytest.mark.parametrize(("fsp", "text"), list(timestamp_cases()))
def test_timestamp2_is_utc_with_every_precision(fsp: int, text: str, far_from_utc: None) -> None:
    column = col(FIELD_TYPE.TIMESTAMP2, fsp=fsp)
    same(decode(column, enc_timestamp2(text, fsp)), text)
    assert type_text(column) == (f"timestamp({fsp})" if fsp else "timestamp")


def time_cases() -> Iterator[Any]:
    values = [("838:59:59", "000000"), ("-838:59:59", "000000"), ("00:00:00", "000000"),
              ("12:34:56", "789012"), ("-12:34:56", "789012"), ("-00:00:00", "100000"),
              ("-00:00:00", "990000"), ("-00:00:00", "000001"), ("-00:00:01", "010000"),
              ("-00:00:01", "100000"), ("-00:00:59", "999999"), ("-01:00:00", "500000"),
              ("00:00:00", "000001"), ("838:59:58", "999999")]
    for fsp in range(7):
        for base, digits in values:
            text = base + fraction(digits, fsp)
            if text.startswith("-") and not text.strip("-0:."):
                continue  # -00:00:00.000 is zero: MySQL itself keeps no sign for it
            yield pytest.param(fsp, text, id=f"{fsp}-{text}")


@pytest.mark.parametrize(("fsp", "text"), list(time_cases()))
def test_time2_with_every_precision_and_negative_fractions(fsp: int, text: str) -> None:
    column = col(FIELD_TYPE.TIME2, fsp=fsp)
    same(decode(column, enc_time2(text, fsp)), text)
    assert type_text(column) == (f"time({fsp})" if fsp else "time")


# my_time_packed_from_binary's table for TIME(2): disk bytes -> value
TIME2_FSP2_DOCUMENTED = [("80000000", "00:00:00.00"), ("7FFFFFFF", "-00:00:00.01"),
                         ("7FFFFF9D", "-00:00:00.99"), ("7FFFFF00", "-00:00:01.00"),
                         ("7FFFFEFF", "-00:00:01.01"), ("7FFFFEF6", "-00:00:01.10")]


@pytest.mark.parametrize(("disk", "text"), TIME2_FSP2_DOCUMENTED)
def test_time2_matches_mysqls_documented_negative_fractions(disk: str, text: str) -> None:
    assert enc_time2(text, 2) == bytes.fromhex(disk)
    same(decode(col(FIELD_TYPE.TIME2, fsp=2), bytes.fromhex(disk)), text)


@pytest.mark.parametrize("text", ["2023-04-05", "0000-00-00", "9999-12-31", "1000-01-01",
                                  "2023-00-00", "2023-04-00"])
def test_date_keeps_zero_dates(text: str) -> None:
    column = col(FIELD_TYPE.DATE)
    same(decode(column, enc_date(text)), text)
    assert type_text(column) == "date"


@pytest.mark.parametrize(("stored", "year"), [(0, 0), (1, 1901), (124, 2024), (255, 2155)])
def test_year(stored: int, year: int) -> None:
    # YEAR: 1 byte, the year - 1900, 0 for the zero year 0000
    same(decode(col(FIELD_TYPE.YEAR), bytes([stored])), year)


def test_pre_5_6_temporal_formats() -> None:
    # TIME: 3 little-endian bytes, signed, of ±HHMMSS as a decimal number
    old_time = col(FIELD_TYPE.TIME)
    same(decode(old_time, (-8385959).to_bytes(3, "little", signed=True)), "-838:59:59")
    same(decode(old_time, (123456).to_bytes(3, "little", signed=True)), "12:34:56")
    # DATETIME: 8 little-endian bytes of YYYYMMDDhhmmss as a decimal number
    old_datetime = col(FIELD_TYPE.DATETIME)
    same(decode(old_datetime, (20230405060708).to_bytes(8, "little")), "2023-04-05 06:07:08")
    same(decode(old_datetime, bytes(8)), "0000-00-00 00:00:00")
    # TIMESTAMP: 4 little-endian bytes of seconds since the epoch, 0 the zero timestamp
    old_timestamp = col(FIELD_TYPE.TIMESTAMP)
    same(decode(old_timestamp, (2**31 - 1).to_bytes(4, "little")), "2038-01-19 03:14:07")
    same(decode(old_timestamp, bytes(4)), "0000-00-00 00:00:00")
    assert [type_text(c) for c in (old_time, old_datetime, old_timestamp)] == \
        ["time", "datetime", "timestamp"]


# -- BIT, ENUM, SET ------------------------------------------------------------------------

@pytest.mark.parametrize(("bits", "value"), [
    (1, 0), (1, 1), (10, 0b1000000001), (10, 1023), (64, 0), (64, 1), (64, INT64_MAX),
    (64, 2**63), (64, 2**64 - 1)])
def test_bit(bits: int, value: int) -> None:
    # BIT(n): (n+7)//8 bytes, big-endian
    column = col(FIELD_TYPE.BIT, bits=bits)
    want: int | str = str(value) if value > INT64_MAX else value
    same(decode(column, value.to_bytes((bits + 7) // 8, "big")), want)
    assert type_text(column) == f"bit({bits})"


def test_enum_by_index_with_the_invalid_member_first() -> None:
    # ENUM: `size` (1 or 2) little-endian bytes of the 1-based index; 0 is the invalid ''
    column = col(FIELD_TYPE.ENUM, size=1, enum_values=["", "a", "b", "it's", "ç", "😀"])
    assert [decode(column, bytes([i])) for i in range(6)] == ["", "a", "b", "it's", "ç", "😀"]
    assert type_text(column) == "enum('a','b','it''s','ç','😀')"
    members = [f"m{i}" for i in range(1, 301)]
    wide = col(FIELD_TYPE.ENUM, size=2, enum_values=["", *members])
    same(decode(wide, (300).to_bytes(2, "little")), "m300")
    same(decode(wide, (256).to_bytes(2, "little")), "m256")


@pytest.mark.parametrize(("mask", "text"), [(0, ""), (0b001, "x"), (0b101, "x,z"),
                                            (0b111, "x,y,z"), (0b1000, "ü")])
def test_set_by_bitmask_including_the_empty_set(mask: int, text: str) -> None:
    # SET: `size` (1, 2, 3, 4 or 8) little-endian bytes, bit i = member i
    column = col(FIELD_TYPE.SET, size=1, set_values=["x", "y", "z", "ü"])
    same(decode(column, bytes([mask])), text)
    assert type_text(column) == "set('x','y','z','ü')"


def test_set_of_64_members() -> None:
    column = col(FIELD_TYPE.SET, size=8, set_values=[f"s{i}" for i in range(64)])
    same(decode(column, (1 << 63 | 1).to_bytes(8, "little")), "s0,s63")
    same(decode(column, bytes(8)), "")


# -- strings, charsets, binary -------------------------------------------------------------

@pytest.mark.parametrize(("charset", "chars", "text"), [
    ("utf8mb4", 10, "😀中ñ"), ("utf8mb4", 100, "emoji 😀🚀 ñ 中文 ①"), ("utf8mb4", 300, "😀" * 300),
    ("utf8mb3", 20, "ñ 中 ①"), ("utf8", 20, "ñ"), ("gbk", 20, "中文汉字"), ("gbk", 200, "汉" * 200),
    ("latin1", 255, "café ÿ £"), ("latin1", 256, "ÿ" * 256), ("utf8mb4", 5, "")])
def test_varchar_in_its_charset(charset: str, chars: int, text: str) -> None:
    # VARCHAR: a 1-byte length when the column's byte length is at most 255, else 2 bytes
    column = text_col(FIELD_TYPE.VARCHAR, charset, chars)
    encoding = "cp1252" if charset == "latin1" else CHARSETS[charset][1]
    prefix = 1 if column.max_length <= 255 else 2
    same(decode(column, enc_prefixed(text.encode(encoding), prefix)), text)
    assert type_text(column) == f"varchar({chars})"


def test_latin1_is_mysqls_latin1_not_pythons_cp1252() -> None:
    # MySQL's latin1 is cp1252 whose five unassigned bytes 0x81 0x8D 0x8F 0x90 0x9D are the
    # C1 controls U+0081.. (SELECT HEX(CONVERT(_latin1 0x81 USING utf8mb4)) gives C281)
    column = text_col(FIELD_TYPE.VARCHAR, "latin1", 20)
    raw = b"caf\xe9 \x80 \x81\x8d\x8f\x90\x9d \xff"
    same(decode(column, enc_prefixed(raw, 1)), "café € \x81\x8d\x8f\x90\x9d ÿ")


def test_char_is_a_string_column() -> None:
    # CHAR(n): type STRING, max_length n * bytes per char; stored without trailing spaces
    column = text_col(FIELD_TYPE.STRING, "utf8mb4", 10)
    same(decode(column, enc_prefixed("😀 a".encode(), 1)), "😀 a")
    assert type_text(column) == "char(10)"
    wide = text_col(FIELD_TYPE.STRING, "utf8mb4", 255)  # 1020 bytes: a 2-byte length
    same(decode(wide, enc_prefixed("ñ".encode() * 255, 2)), "ñ" * 255)
    latin = text_col(FIELD_TYPE.STRING, "latin1", 5)
    same(decode(latin, enc_prefixed(b"\xc6\xe6", 1)), "Ææ")
    assert type_text(latin) == "char(5)"


@pytest.mark.parametrize(("length_size", "name"), [(1, "tiny"), (2, ""), (3, "medium"),
                                                    (4, "long")])
def test_text_and_blob_sizes(length_size: int, name: str) -> None:
    # TEXT/BLOB: a `length_size`-byte little-endian length, then the bytes
    text = text_col(FIELD_TYPE.BLOB, "utf8mb4", length_size=length_size)
    same(decode(text, enc_prefixed("text 🎉".encode(), length_size)), "text 🎉")
    assert type_text(text) == f"{name}text"
    gbk = text_col(FIELD_TYPE.BLOB, "gbk", length_size=length_size)
    same(decode(gbk, enc_prefixed("汉字".encode("gbk"), length_size)), "汉字")
    blob = text_col(FIELD_TYPE.BLOB, "binary", length_size=length_size)
    data = (b"\x00\xff" + bytes(range(256)))[:255 if length_size == 1 else None]
    same(decode(blob, enc_prefixed(data, length_size)), data)
    assert type_text(blob) == f"{name}blob"


def test_long_values_use_every_length_byte() -> None:
    data = b"\x00\xff" * 40000  # 80000 bytes: all three bytes of a MEDIUMBLOB length matter
    blob = text_col(FIELD_TYPE.BLOB, "binary", length_size=3)
    same(decode(blob, enc_prefixed(data, 3)), data)
    text = text_col(FIELD_TYPE.BLOB, "utf8mb4", length_size=4)
    same(decode(text, enc_prefixed("😀".encode() * 100000, 4)), "😀" * 100000)


@pytest.mark.parametrize(("stored", "value"), [
    (b"\x00\xff", b"\x00\xff" + bytes(6)), (b"", bytes(8)), (b"\xff" * 8, b"\xff" * 8),
    (b"\x00\x00\xff", b"\x00\x00\xff" + bytes(5))])
def test_binary_is_padded_back_to_its_length(stored: bytes, value: bytes) -> None:
    # BINARY(n): MySQL strips the trailing 0x00 padding before logging; the value is n bytes
    column = text_col(FIELD_TYPE.STRING, "binary", 8)
    same(decode(column, enc_prefixed(stored, 1)), value)
    assert type_text(column) == "binary(8)"


def test_wide_binary_and_varbinary() -> None:
    wide = text_col(FIELD_TYPE.STRING, "binary", 300)  # 2-byte length, padded to 300
    same(decode(wide, enc_prefixed(b"\xff\x00\xff", 2)), b"\xff\x00\xff" + bytes(297))
    varbinary = text_col(FIELD_TYPE.VARCHAR, "binary", 300)  # never padded
    same(decode(varbinary, enc_prefixed(b"\x00\xff\x00", 2)), b"\x00\xff\x00")
    same(decode(varbinary, enc_prefixed(b"", 2)), b"")
    assert type_text(varbinary) == "varbinary(300)"
    small = text_col(FIELD_TYPE.VARCHAR, "binary", 4)
    same(decode(small, enc_prefixed(b"\x00", 1)), b"\x00")


def test_geometry_is_its_bytes() -> None:
    # GEOMETRY: a `length_size`-byte length, then SRID (4 bytes LE) + WKB; POINT(1 2)
    wkb = bytes(4) + b"\x01\x01\x00\x00\x00" + struct.pack("<dd", 1.0, 2.0)
    column = col(FIELD_TYPE.GEOMETRY, length_size=4, collation_name="binary")
    same(decode(column, enc_prefixed(wkb, 4)), wkb)
    assert type_text(column) == "geometry"
    assert TableDecoder("db", "t", [column], b"\x01").columns[0].charset == ""


# -- JSON (MySQL's binary format) ----------------------------------------------------------

JSON_DOCS = [
    # literal: type 0x04, then 0x00 null / 0x01 true / 0x02 false
    (b"\x04\x01", "true"), (b"\x04\x00", "null"),
    # string: type 0x0C, a variable-length (7 bits a byte) length, then UTF-8
    (b"\x0c\x07" + "héllo".encode() + b"!", '"héllo!"'),
    # small object {"a": 1}: type 0x00 | count 2B | size 2B | key entry (offset 2B, length
    # 2B) | value entry (type 0x05 int16, inlined 2B) | key bytes
    (b"\x00" + b"\x01\x00" + b"\x0c\x00" + b"\x0b\x00\x01\x00" + b"\x05\x01\x00" + b"a",
     '{"a": 1}'),
    # small array [1, "x"]: type 0x02 | count | size | (0x05, 1 inlined) | (0x0C, offset 10)
    # | the string at offset 10: length 1, "x"
    (b"\x02" + b"\x02\x00" + b"\x0c\x00" + b"\x05\x01\x00" + b"\x0c\x0a\x00" + b"\x01x",
     '[1, "x"]'),
    # double: type 0x0B, 8 bytes little-endian
    (b"\x0b" + struct.pack("<d", 2.5), "2.5"),
]


@pytest.mark.parametrize(("doc", "text"), JSON_DOCS, ids=[text for _, text in JSON_DOCS])
def test_mysql_binary_json_is_its_text(doc: bytes, text: str) -> None:
    # JSON: a `length_size`-byte length, then the binary document
    column = col(FIELD_TYPE.JSON, length_size=4)
    same(decode(column, enc_prefixed(doc, 4)), text)
    assert type_text(column) == "json"


def test_empty_mysql_json_is_null() -> None:
    same(decode(col(FIELD_TYPE.JSON, length_size=4), bytes(4)), "null")


@pytest.mark.xfail(strict=True, raises=TypeError,
                   reason="an opaque DECIMAL inside a JSON document reaches json.dumps as a "
                          "decimal.Decimal (mysql-replication's parse_opaque)")
def test_json_with_an_opaque_decimal() -> None:
    # opaque: type 0x0F, the MySQL field type (0xF6 NEWDECIMAL), a length, then precision,
    # scale and the decimal's binary form: CAST(1.50 AS JSON)
    body = bytes([4, 2]) + enc_decimal("1.50", 4, 2)
    doc = b"\x0f\xf6" + bytes([len(body)]) + body
    same(decode(col(FIELD_TYPE.JSON, length_size=4), enc_prefixed(doc, 4)), "1.50")


# -- whole rows ----------------------------------------------------------------------------

def row_columns() -> list[FakeColumn]:
    """Ten columns, so the null bitmap takes two bytes."""
    return [
        col(FIELD_TYPE.LONG, name="id", is_primary=True),
        col(FIELD_TYPE.LONGLONG, name="big", unsigned=True),
        text_col(FIELD_TYPE.VARCHAR, "utf8mb4", 20, name="name"),
        col(FIELD_TYPE.NEWDECIMAL, name="price", precision=10, decimals=2),
        col(FIELD_TYPE.DATETIME2, name="at", fsp=3),
        text_col(FIELD_TYPE.STRING, "binary", 4, name="tag"),
        col(FIELD_TYPE.SET, name="flags", size=1, set_values=["a", "b"]),
        col(FIELD_TYPE.YEAR, name="yr", unsigned=True),  # MariaDB flags YEAR unsigned
        col(FIELD_TYPE.DOUBLE, name="ratio", size=8),
        text_col(FIELD_TYPE.BLOB, "latin1", name="note", length_size=2),
    ]


def encode_row(values: Sequence[Any]) -> bytes:
    """A full row image of `row_columns()`: null bitmap, then each non-NULL value."""
    encoders: list[Callable[[Any], bytes]] = [
        lambda v: enc_int(v, 4, False), lambda v: enc_int(int(v), 8, True),
        lambda v: enc_prefixed(v.encode(), 1), lambda v: enc_decimal(v, 10, 2),
        lambda v: enc_datetime2(v, 3), lambda v: enc_prefixed(v.rstrip(b"\x00"), 1),
        lambda v: bytes([{"": 0, "a": 1, "b": 2, "a,b": 3}[v]]), lambda v: bytes([v - 1900]),
        lambda v: struct.pack("<d", v), lambda v: enc_prefixed(v.encode("cp1252"), 2)]
    out = null_bitmap(values)
    for encoder, value in zip(encoders, values, strict=True):
        if value is not None:
            out += encoder(value)
    return out


ROW_A = [1, "18446744073709551615", "😀 one", "-12.50", "2024-02-29 12:34:56.789",
         b"\x00\xff\x00\x00", "a,b", 2024, 0.1, "café"]
ROW_B = [2, None, "", None, "0000-00-00 00:00:00.000", None, "", None, -0.5, None]
ROW_C = [3, 7, None, "0.00", None, b"\xff\xff\xff\xff", None, 2155, None, ""]


def test_row_images_with_nulls_across_two_bitmap_bytes() -> None:
    decoder = TableDecoder("db", "t", row_columns(), b"\xfe\x03")
    buf = encode_row(ROW_A) + encode_row(ROW_B) + encode_row(ROW_C)
    values, off = decoder.image(buf, 0)
    assert values == ROW_A
    values, off = decoder.image(buf, off)
    assert values == ROW_B
    values, off = decoder.image(buf, off)
    assert values == ROW_C and off == len(buf)
    assert decoder.width == 10 and decoder.full_bitmap == b"\xff\x03"


def test_rows_of_an_insert_and_of_an_update() -> None:
    decoder = TableDecoder("db", "t", row_columns(), b"\xfe\x03")
    body = encode_row(ROW_A) + encode_row(ROW_B)
    buf = b"header" + body + b"crc!"
    assert decoder.rows(buf, 6, 6 + len(body), 1) == [[ROW_A], [ROW_B]]
    # an update row is its before image then its after image
    body = encode_row(ROW_A) + encode_row(ROW_B) + encode_row(ROW_C) + encode_row(ROW_A)
    assert decoder.rows(body, 0, len(body), 2) == [[ROW_A, ROW_B], [ROW_C, ROW_A]]


def test_rows_that_overrun_their_event_are_refused() -> None:
    decoder = TableDecoder("db", "t", row_columns(), b"\xfe\x03")
    body = encode_row(ROW_A)
    with pytest.raises(ValueError, match="overran its event by 3 bytes"):
        decoder.rows(body + b"pad", 0, len(body) - 3, 1)


def test_column_metadata() -> None:
    decoder = TableDecoder("db", "t", row_columns(), b"\xfe\x03")
    assert [c.to_dict() for c in decoder.columns] == decoder.column_dicts
    assert decoder.columns == [
        ColumnInfo("id", "int", False, False, "PRI", ""),
        ColumnInfo("big", "bigint", True, True, "", ""),
        ColumnInfo("name", "varchar(20)", False, True, "", "utf8mb4"),
        ColumnInfo("price", "decimal(10,2)", False, True, "", ""),
        ColumnInfo("at", "datetime(3)", False, True, "", ""),
        ColumnInfo("tag", "binary(4)", False, True, "", ""),
        ColumnInfo("flags", "set('a','b')", False, True, "", ""),
        ColumnInfo("yr", "year", False, True, "", ""),  # UNSIGNED is not part of YEAR
        ColumnInfo("ratio", "double", False, True, "", ""),
        ColumnInfo("note", "text", False, True, "", "latin1"),
    ]
    assert decoder.column_dicts[0] == {"name": "id", "type": "int", "unsigned": False,
                                       "nullable": False, "key": "PRI", "charset": ""}


@pytest.mark.parametrize(("column", "text"), [
    (col(FIELD_TYPE.TINY), "tinyint"), (col(FIELD_TYPE.SHORT), "smallint"),
    (col(FIELD_TYPE.INT24), "mediumint"), (col(FIELD_TYPE.LONG), "int"),
    (col(FIELD_TYPE.LONGLONG), "bigint"), (col(FIELD_TYPE.FLOAT), "float"),
    (col(FIELD_TYPE.DOUBLE), "double"), (col(FIELD_TYPE.YEAR), "year"),
    (col(FIELD_TYPE.NEWDECIMAL, precision=65, decimals=30), "decimal(65,30)"),
    (col(FIELD_TYPE.BIT, bits=64), "bit(64)"),
    (text_col(FIELD_TYPE.VARCHAR, "utf8mb4", 255), "varchar(255)"),
    (text_col(FIELD_TYPE.VARCHAR, "gbk", 50), "varchar(50)"),
    (text_col(FIELD_TYPE.VARCHAR, "latin1", 50), "varchar(50)"),
    (text_col(FIELD_TYPE.STRING, "utf8mb3", 3), "char(3)"),
    (text_col(FIELD_TYPE.STRING, "binary", 16), "binary(16)"),
    (col(FIELD_TYPE.ENUM, size=1, enum_values=[""]), "enum()"),
    (col(FIELD_TYPE.SET, size=1, set_values=["o'k"]), "set('o''k')"),
])
def test_type_text(column: FakeColumn, text: str) -> None:
    assert type_text(column) == text


def test_charset_name_prefers_the_collation() -> None:
    assert charset_name(text_col(FIELD_TYPE.VARCHAR, "utf8mb4")) == "utf8mb4"
    assert charset_name(text_col(FIELD_TYPE.VARCHAR, "binary")) == "binary"
    assert charset_name(FakeColumn(FIELD_TYPE.VARCHAR, collation_name="gbk_bin")) == "gbk"
    assert charset_name(FakeColumn(FIELD_TYPE.VARCHAR, character_set_name="latin1")) == "latin1"
    assert charset_name(col(FIELD_TYPE.LONG)) == ""


@pytest.mark.parametrize("ftype", [FIELD_TYPE.DECIMAL, FIELD_TYPE.NEWDATE, 242])
def test_an_unsupported_column_type_is_a_coded_error(ftype: int) -> None:
    columns = [col(FIELD_TYPE.LONG, name="id"), FakeColumn(ftype, name="odd")]
    with pytest.raises(KdmError) as caught:
        TableDecoder("shop", "orders", columns, b"\x03")
    error = caught.value
    assert error.code == 30001
    assert error.fields == {"schema": "shop", "table": "orders", "column": "odd", "type": ftype}
    assert "shop.orders" in error.message and "odd" in error.message
