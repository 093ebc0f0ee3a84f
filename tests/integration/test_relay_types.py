"""Every column type MariaDB has, through the real relay: each value in the relay topic is
exactly the value the upstream holds (compared with the server's own text form), with the
column metadata the relay publishes, for inserts, update before/after images and deletes."""

from __future__ import annotations

import contextlib
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pymysql
import pytest

from kdm.config.service import KafkaConfig
from kdm.config.source import parse_source
from kdm.kafka_admin import admin_client, delete_topics
from kdm.position import GTIDSet
from kdm.relay_log import TopicReader
from kdm.stack.stack import Endpoints
from kdm.topics import Topics
from producers.relay import Relay

pytestmark = pytest.mark.integration

INT64_MAX = 2**63 - 1
DEADLINE_SECONDS = 90.0


@dataclass(frozen=True)
class Col:
    """One column of the test table: its DDL, what the relay must say about it, and how its
    value compares with the server's text (`kind`)."""

    name: str
    ddl: str
    type: str
    kind: str  # int | bit | float | double | str | bytes
    unsigned: bool = False
    charset: str = ""
    nullable: bool = True
    key: str = ""


U8 = "CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
COLUMNS = [
    Col("id", "INT NOT NULL PRIMARY KEY", "int", "int", nullable=False, key="PRI"),
    Col("ti", "TINYINT", "tinyint", "int"),
    Col("ti_u", "TINYINT UNSIGNED", "tinyint", "int", unsigned=True),
    Col("si", "SMALLINT", "smallint", "int"),
    Col("si_u", "SMALLINT UNSIGNED", "smallint", "int", unsigned=True),
    Col("mi", "MEDIUMINT", "mediumint", "int"),
    Col("mi_u", "MEDIUMINT UNSIGNED", "mediumint", "int", unsigned=True),
    Col("i", "INT", "int", "int"),
    Col("i_u", "INT UNSIGNED", "int", "int", unsigned=True),
    Col("bi", "BIGINT", "bigint", "int"),
    Col("bi_u", "BIGINT UNSIGNED", "bigint", "int", unsigned=True),
    Col("nn", "SMALLINT NOT NULL DEFAULT 7", "smallint", "int", nullable=False),
    Col("f", "FLOAT", "float", "float"),
    Col("d", "DOUBLE", "double", "double"),
    Col("dec65", "DECIMAL(65,30)", "decimal(65,30)", "str"),
    Col("dec10", "DECIMAL(10,0)", "decimal(10,0)", "str"),
    Col("dec7", "DECIMAL(7,3)", "decimal(7,3)", "str"),
    Col("dt", "DATE", "date", "str"),
    Col("tm", "TIME", "time", "str"),
    Col("tm1", "TIME(1)", "time(1)", "str"),
    Col("tm3", "TIME(3)", "time(3)", "str"),
    Col("tm6", "TIME(6)", "time(6)", "str"),
    Col("dtm", "DATETIME", "datetime", "str"),
    Col("dtm3", "DATETIME(3)", "datetime(3)", "str"),
    Col("dtm6", "DATETIME(6)", "datetime(6)", "str"),
    Col("ts", "TIMESTAMP NULL DEFAULT NULL", "timestamp", "str"),
    Col("ts2", "TIMESTAMP(2) NULL DEFAULT NULL", "timestamp(2)", "str"),
    Col("ts6", "TIMESTAMP(6) NULL DEFAULT NULL", "timestamp(6)", "str"),
    Col("yr", "YEAR", "year", "int"),
    # numeric columns after YEAR: its signedness bit must not shift theirs
    Col("i_after", "INT UNSIGNED", "int", "int", unsigned=True),
    Col("dec_u", "DECIMAL(5,2) UNSIGNED", "decimal(5,2)", "str", unsigned=True),
    Col("ti_after", "TINYINT", "tinyint", "int"),
    Col("c", f"CHAR(10) {U8}", "char(10)", "str", charset="utf8mb4"),
    Col("vc", f"VARCHAR(300) {U8}", "varchar(300)", "str", charset="utf8mb4"),
    Col("vc_s", f"VARCHAR(20) {U8}", "varchar(20)", "str", charset="utf8mb4"),
    Col("tt", f"TINYTEXT {U8}", "tinytext", "str", charset="utf8mb4"),
    Col("tx", f"TEXT {U8}", "text", "str", charset="utf8mb4"),
    Col("mtx", f"MEDIUMTEXT {U8}", "mediumtext", "str", charset="utf8mb4"),
    Col("ltx", f"LONGTEXT {U8}", "longtext", "str", charset="utf8mb4"),
    Col("lat", "VARCHAR(50) CHARACTER SET latin1", "varchar(50)", "str", charset="latin1"),
    Col("lat_c", "CHAR(5) CHARACTER SET latin1", "char(5)", "str", charset="latin1"),
    Col("gb", "VARCHAR(50) CHARACTER SET gbk", "varchar(50)", "str", charset="gbk"),
    Col("gb_t", "TEXT CHARACTER SET gbk", "text", "str", charset="gbk"),
    Col("bn", "BINARY(8)", "binary(8)", "bytes"),
    Col("vb", "VARBINARY(300)", "varbinary(300)", "bytes"),
    Col("tb", "TINYBLOB", "tinyblob", "bytes"),
    Col("bl", "BLOB", "blob", "bytes"),
    Col("mbl", "MEDIUMBLOB", "mediumblob", "bytes"),
    Col("lbl", "LONGBLOB", "longblob", "bytes"),
    Col("en", f"ENUM('a','b','ç','😀') {U8}", "enum('a','b','ç','😀')", "str",
        charset="utf8mb4"),
    Col("st", f"SET('x','y','z','ü') {U8}", "set('x','y','z','ü')", "str", charset="utf8mb4"),
    Col("b1", "BIT(1)", "bit(1)", "bit"),
    Col("b10", "BIT(10)", "bit(10)", "bit"),
    Col("b64", "BIT(64)", "bit(64)", "bit"),
    # MariaDB's JSON is LONGTEXT utf8mb4_bin with a json_valid() check: binlogged as text
    Col("js", "JSON", "longtext", "str", charset="utf8mb4"),
    Col("g", "GEOMETRY", "geometry", "bytes"),
]
NAMES = [c.name for c in COLUMNS]

DEC65_MAX = "9" * 35 + "." + "9" * 30
# SQL literals per row (columns left out are NULL). Inserted with sql_mode='' (zero dates,
# an invalid ENUM value) and time_zone='+00:00' (TIMESTAMP literals are UTC).
ROWS: list[dict[str, str]] = [
    {  # minimums and negatives
        "id": "1", "ti": "-128", "ti_u": "0", "si": "-32768", "si_u": "0", "mi": "-8388608",
        "mi_u": "0", "i": "-2147483648", "i_u": "0", "bi": "-9223372036854775808",
        "bi_u": "0", "nn": "-32768", "f": "-3.40282e38", "d": "-1.7976931348623157e308",
        "dec65": f"-{DEC65_MAX}", "dec10": "-9999999999", "dec7": "-9999.999",
        "dt": "'1000-01-01'", "tm": "'-838:59:59'", "tm1": "'-00:00:00.1'",
        "tm3": "'-00:00:01.001'", "tm6": "'-838:59:59.000000'", "dtm": "'1000-01-01 00:00:00'",
        "dtm3": "'1000-01-01 00:00:00.001'", "dtm6": "'1000-01-01 00:00:00.000000'",
        "ts": "'1970-01-01 00:00:01'", "ts2": "'1970-01-01 00:00:01.01'",
        "ts6": "'1970-01-01 00:00:01.000001'", "yr": "1901", "i_after": "4294967295",
        "dec_u": "0.01", "ti_after": "-128",
        "c": "'😀中ñ'", "vc": "'emoji 😀🚀, ñ, 中文, ①'", "vc_s": "'a'", "tt": "'tiny 😀'",
        "tx": "'text 🎉 ok'", "mtx": "REPEAT('x😀', 20000)", "ltx": "REPEAT('long ✓ ', 3000)",
        "lat": "'café ÿ £ ©'", "lat_c": "'Ææ'", "gb": "'中文汉字'", "gb_t": "'汉字测试 GBK'",
        "bn": "X'00FF00'", "vb": "X'00FF00FF'", "tb": "X'FF'", "bl": "X'00'",
        "mbl": "REPEAT(X'00FF80', 30000)", "lbl": "REPEAT(X'FF00', 70000)",
        "en": "'a'", "st": "'x,z'", "b1": "b'0'", "b10": "b'1000000001'", "b64": "b'1'",
        "js": "'{\"a\": [1, 2.5, \"x😀\"], \"b\": null}'",
        "g": "ST_GeomFromText('POINT(1 2)')",
    },
    {  # maximums
        "id": "2", "ti": "127", "ti_u": "255", "si": "32767", "si_u": "65535",
        "mi": "8388607", "mi_u": "16777215", "i": "2147483647", "i_u": "4294967295",
        "bi": "9223372036854775807", "bi_u": "18446744073709551615", "nn": "32767",
        "f": "3.40282e38", "d": "1.7976931348623157e308", "dec65": DEC65_MAX,
        "dec10": "9999999999", "dec7": "9999.999", "dt": "'9999-12-31'", "tm": "'838:59:59'",
        "tm1": "'838:59:59.9'", "tm3": "'838:59:59.999'", "tm6": "'838:59:59.999999'",
        "dtm": "'9999-12-31 23:59:59'", "dtm3": "'9999-12-31 23:59:59.999'",
        "dtm6": "'9999-12-31 23:59:59.999999'", "ts": "'2038-01-19 03:14:07'",
        "ts2": "'2038-01-19 03:14:07.99'", "ts6": "'2038-01-19 03:14:07.999999'",
        "yr": "2155", "i_after": "1", "dec_u": "999.99", "ti_after": "127",
        "c": "'ÿÿÿÿÿÿÿÿÿÿ'", "vc": "REPEAT('😀', 300)",
        "vc_s": "REPEAT('中', 20)", "tt": "REPEAT('é', 127)", "tx": "REPEAT('z', 65535)",
        "mtx": "''", "ltx": "REPEAT('😀', 100000)", "lat": "'ÿ'", "lat_c": "'ÿÿÿÿÿ'",
        "gb": "REPEAT('汉', 50)", "gb_t": "'中'", "bn": "X'FFFFFFFFFFFFFFFF'",
        "vb": "REPEAT(X'FF', 300)", "tb": "REPEAT(X'00', 255)", "bl": "REPEAT(X'FF', 65535)",
        "mbl": "X'FF'", "lbl": "X'00'", "en": "'😀'", "st": "'x,y,z,ü'", "b1": "b'1'",
        "b10": "b'1111111111'", "b64": "18446744073709551615", "js": "'[]'",
        "g": "ST_GeomFromText('LINESTRING(0 0, 1 1, 2 1)')",
    },
    {  # zeros, zero dates, empty values, negative fractions of a second
        "id": "3", "ti": "0", "ti_u": "0", "si": "0", "si_u": "0", "mi": "0", "mi_u": "0",
        "i": "0", "i_u": "0", "bi": "0", "bi_u": "0", "nn": "0", "f": "0", "d": "0",
        "dec65": "0", "dec10": "0", "dec7": "0", "dt": "'0000-00-00'", "tm": "'00:00:00'",
        "tm1": "'-00:00:00.9'", "tm3": "'-00:00:00.001'", "tm6": "'-00:00:00.000001'",
        "dtm": "'0000-00-00 00:00:00'", "dtm3": "'0000-00-00 00:00:00.000'",
        "dtm6": "'0000-00-00 00:00:00.000000'", "ts": "'0000-00-00 00:00:00'",
        "ts2": "'0000-00-00 00:00:00'", "ts6": "'0000-00-00 00:00:00.000000'", "yr": "0",
        "i_after": "0", "dec_u": "0", "ti_after": "0",
        "c": "''", "vc": "''", "vc_s": "''", "tt": "''", "tx": "''", "mtx": "''", "ltx": "''",
        "lat": "''", "lat_c": "''", "gb": "''", "gb_t": "''", "bn": "X''", "vb": "X''",
        "tb": "X''", "bl": "X''", "mbl": "X''", "lbl": "X''", "en": "'not a member'",
        "st": "''", "b1": "b'0'", "b10": "0", "b64": "0", "js": "'null'",
        "g": "ST_GeomFromText('POINT(0 0)')",
    },
    {"id": "4"},  # NULL everywhere it may be
    {  # assorted values around the edges
        "id": "5", "ti": "-1", "ti_u": "128", "si": "-1", "si_u": "32768", "mi": "-1",
        "mi_u": "8388608", "i": "-1", "i_u": "2147483648", "bi": "-1",
        "bi_u": "9223372036854775808", "nn": "-1", "f": "3.1415927", "d": "0.1",
        "dec65": "0.000000000000000000000000000001", "dec10": "-1", "dec7": "-0.5",
        "dt": "'2023-00-00'", "tm": "'-00:00:01'", "tm1": "'-00:00:01.5'",
        "tm3": "'12:34:56.789'", "tm6": "'-12:34:56.789012'",
        "dtm": "'2024-02-29 12:34:56'", "dtm3": "'2024-02-29 12:34:56.7'",
        "dtm6": "'2024-02-29 12:34:56.000001'", "ts": "'2024-02-29 12:34:56'",
        "ts2": "'2024-02-29 12:34:56.5'", "ts6": "'2024-02-29 12:34:56.123456'",
        "yr": "2000", "i_after": "2147483648", "dec_u": "1.5", "ti_after": "-1",
        "c": "'abc'", "vc": "'quote '' and \\\\ backslash\ttab\nnewline'",
        "vc_s": "'trailing  '", "tt": "'😀'", "tx": "'ñ'", "mtx": "'中'", "ltx": "'x'",
        "lat": "'café\u0081\u008d\u008f\u0090\u009d€'", "lat_c": "'a b'", "gb": "'中文'",
        "gb_t": "'€'", "bn": "X'FF'", "vb": "X'00'", "tb": "X'0000'", "bl": "X'FF00FF'",
        "mbl": "X''", "lbl": "X'FF'", "en": "'ç'", "st": "'ü'", "b1": "1",
        "b10": "512", "b64": "9223372036854775808", "js": "'{\"k\": \"v\", \"n\": 1e400}'",
        "g": "ST_GeomFromText('POLYGON((0 0, 1 0, 1 1, 0 0))')",
    },
]
UPDATE = ("UPDATE t SET vc = 'updated 😀', bi_u = bi_u + 1, tm6 = '-00:00:00.5', f = -1.5, "
          "st = 'x,y', b64 = 12345, js = '[1]', dec65 = -1.5, lat = 'ÿ' WHERE id = 5")
DELETE = "DELETE FROM t WHERE id = 2"


def _connect(endpoints: Endpoints, database: str | None = None, **extra: Any) -> Any:
    up = endpoints.upstream
    return pymysql.connect(host=up["host"], port=up["port"], user=up["user"],
                           password=up["password"], database=database, charset="utf8mb4",
                           **extra)


def _read_back(endpoints: Endpoints, database: str) -> dict[int, tuple[Any, ...]]:
    """Every row by id as the server's text (bytes for binary columns), untouched by any
    client conversion; FLOAT columns also as CAST(.. AS DOUBLE), its exact float32 value."""
    # conv={}: no decoders, so values stay the server's text; autocommit=None: pymysql would
    # otherwise need an encoder to send SET AUTOCOMMIT.
    conn = _connect(endpoints, database, conv={}, autocommit=None)
    with conn, conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        cur.execute(f"SELECT {', '.join(f'`{n}`' for n in NAMES)}, CAST(f AS DOUBLE) "
                    "FROM t ORDER BY id")
        return {int(row[0]): tuple(row) for row in cur.fetchall()}


def _big(value: int) -> int | str:
    return str(value) if value > INT64_MAX else value


def _mismatches(col: Col, got: Any, text: Any, exact_float: Any) -> str | None:
    """Why the relay's `got` differs from the server's `text`, or None when it does not."""
    if text is None or got is None:
        return None if text is got else f"relay {got!r}, server {text!r}"
    if col.kind == "int":
        want: Any = _big(int(text))
    elif col.kind == "bit":
        want = _big(int.from_bytes(text, "big"))
    elif col.kind == "float":
        # the server prints FLOAT to 6 significant digits; CAST(.. AS DOUBLE) is exact
        if not isinstance(got, float) or got != float(exact_float):
            return f"relay {got!r}, server float32 {exact_float!r}"
        want = struct.pack("<f", float(text))
        got = struct.pack("<f", float(f"{got:.6g}"))
    elif col.kind == "double":
        want = float(text)
    else:
        want = text
    if col.kind in ("int", "bit", "float", "double"):
        ok = got == want and type(got) is type(want)
    else:
        ok = got == want and isinstance(got, bytes if col.kind == "bytes" else str)
    return None if ok else f"relay {_short(got)}, server {_short(want)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else f"{text[:100]}...({len(value)} long)"


def _check_image(image: list[Any] | None, row: tuple[Any, ...], what: str) -> list[str]:
    assert image is not None, f"{what}: no row image"
    assert len(image) == len(COLUMNS), f"{what}: {len(image)} values for {len(COLUMNS)}"
    problems = []
    for index, col in enumerate(COLUMNS):
        problem = _mismatches(col, image[index], row[index], row[len(COLUMNS)])
        if problem:
            problems.append(f"{what} {col.name} ({col.type}): {problem}")
    return problems


@contextlib.contextmanager
def _running_relay(relay: Relay) -> Iterator[list[BaseException]]:
    """The relay in a thread until the block ends; its exception, if any, in the list."""
    stop = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            relay.run(stop)
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)

    thread = threading.Thread(target=run, name="relay-types", daemon=True)
    thread.start()
    try:
        yield failures
    finally:
        stop.set()
        thread.join(60)
        assert not thread.is_alive(), "the relay did not stop within 60s"


def _records(kafka: KafkaConfig, topic: str) -> list[dict[str, Any]]:
    with TopicReader(kafka, topic) as reader:
        return [message.value for message in reader.read(reader.bounds()[0])]


def _wait_for_commit(relay: Relay, failures: list[BaseException], gtid: str) -> None:
    """Poll until the relay has committed to Kafka the COMMIT of transaction `gtid`."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        assert not failures, f"the relay thread failed: {failures[0]!r}"
        errors = [e for e in relay.errors if not e.spec.resumable]  # others are retried
        assert not errors, f"the relay stopped on {errors[0].render()}"
        committed = relay.committed
        # a committed record's GTID set holds every transaction committed before it
        if committed is not None and committed["position"]["gtid"] and \
                GTIDSet.parse(committed["position"]["gtid"]).contains(gtid):
            return
        assert time.monotonic() < deadline, \
            f"the relay did not commit {gtid} within {DEADLINE_SECONDS}s (last error: " \
            f"{relay.errors[-1].render() if relay.errors else 'none'})"
        time.sleep(0.2)


def _delete_prefixed_topics(kafka: KafkaConfig) -> None:
    names = admin_client(kafka).list_topics(timeout=30).topics
    delete_topics(kafka, [n for n in names if n.startswith(f"{kafka.topic_prefix}.")])


def _gtid_binlog_pos(cur: Any) -> str:
    cur.execute("SELECT @@GLOBAL.gtid_binlog_pos")
    gtid = str(cur.fetchone()[0])
    assert gtid, "the upstream has no GTID position yet"
    return gtid


def _relay(endpoints: Endpoints, kafka: KafkaConfig, source_id: str, start_gtid: str,
           last_gtid: str) -> list[dict[str, Any]]:
    """Run the relay from `start_gtid` until its topic holds the COMMIT of `last_gtid`;
    every record of the topic. The test's topics are deleted afterwards."""
    up = endpoints.upstream
    source = parse_source(
        f"source-id: {source_id}\nenable-gtid: true\nrelay-binlog-gtid: \"{start_gtid}\"\n"
        f"from:\n  host: {up['host']}\n  port: {up['port']}\n  user: {up['user']}\n")
    topic = Topics(kafka.topic_prefix).relay(source_id).name
    relay = Relay(source, kafka)
    try:
        with _running_relay(relay) as failures:
            _wait_for_commit(relay, failures, last_gtid)
        assert not failures, f"the relay thread failed: {failures[0]!r}"
        records = _records(kafka, topic)
    finally:
        _delete_prefixed_topics(kafka)
    assert [r["kind"] for r in records if r["txn_gtid"] == last_gtid][-1:] == ["COMMIT"], \
        f"the relay topic lacks the COMMIT of {last_gtid}"
    return records


def test_every_type_round_trips_exactly_through_the_relay(
        endpoints: Endpoints, kafka: KafkaConfig, upstream_db: str, unique: str) -> None:
    conn = _connect(endpoints, upstream_db, autocommit=True)
    with conn, conn.cursor() as cur:
        start_gtid = _gtid_binlog_pos(cur)
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute("SET SESSION time_zone = '+00:00'")
        cur.execute(f"CREATE TABLE t ({', '.join(f'`{c.name}` {c.ddl}' for c in COLUMNS)}) "
                    "DEFAULT CHARSET=utf8mb4")
        values = ", ".join(
            "(" + ", ".join(row.get(name, "NULL" if name != "nn" else "DEFAULT")
                            for name in NAMES) + ")"
            for row in ROWS)
        cur.execute(f"INSERT INTO t VALUES {values}")
        inserted = _read_back(endpoints, upstream_db)
        assert sorted(inserted) == [1, 2, 3, 4, 5]
        assert cur.execute(UPDATE) == 1
        assert cur.execute(DELETE) == 1
        cur.execute("SELECT @@last_gtid")
        last_gtid = str(cur.fetchone()[0])
    final = _read_back(endpoints, upstream_db)

    records = _relay(endpoints, kafka, f"types-{unique}", start_gtid, last_gtid)

    rows = [r for r in records if r["kind"] == "ROW" and r["schema"] == upstream_db]
    assert [(r["table"], r["op"]) for r in rows] == \
        [("t", "INSERT")] * 5 + [("t", "UPDATE"), ("t", "DELETE")]
    ddl = [r for r in records if r["kind"] == "DDL" and r["schema"] == upstream_db]
    assert len(ddl) == 1 and ddl[0]["query"].startswith("CREATE TABLE t")

    expected_columns = [
        {"name": c.name, "type": c.type, "unsigned": c.unsigned, "nullable": c.nullable,
         "key": c.key, "charset": c.charset} for c in COLUMNS]
    for record in rows:
        wrong = [f"{want['name']}: relay {got}, expected {want}" for got, want in
                 zip(record["columns"], expected_columns, strict=True) if got != want]
        assert not wrong, f"{record['op']} column metadata:\n" + "\n".join(wrong)

    problems: list[str] = []
    for record, row_id in zip(rows[:5], [1, 2, 3, 4, 5], strict=True):
        assert record["before"] is None
        problems += _check_image(record["after"], inserted[row_id], f"INSERT id={row_id}")
    update, delete = rows[5], rows[6]
    problems += _check_image(update["before"], inserted[5], "UPDATE before")
    problems += _check_image(update["after"], final[5], "UPDATE after")
    assert delete["after"] is None
    problems += _check_image(delete["before"], inserted[2], "DELETE before")
    assert not problems, "values that did not round-trip:\n" + "\n".join(problems)

    # the images really differ where the statements changed them
    assert inserted[5] != final[5] and 2 not in final


def test_enum_and_set_members_outside_utf8(endpoints: Endpoints, kafka: KafkaConfig,
                                           upstream_db: str, unique: str) -> None:
    conn = _connect(endpoints, upstream_db, autocommit=True)
    with conn, conn.cursor() as cur:
        start_gtid = _gtid_binlog_pos(cur)
        cur.execute("CREATE TABLE e (id INT PRIMARY KEY, en ENUM('é','ü') CHARACTER SET latin1, "
                    "st SET('中','文') CHARACTER SET gbk)")
        cur.execute("INSERT INTO e VALUES (1, 'é', '中,文'), (2, 'ü', '文')")
        cur.execute("SELECT @@last_gtid")
        last_gtid = str(cur.fetchone()[0])
    records = _relay(endpoints, kafka, f"enums-{unique}", start_gtid, last_gtid)
    rows = [r for r in records if r["kind"] == "ROW" and r["schema"] == upstream_db]
    assert [r["after"] for r in rows] == [[1, "é", "中,文"], [2, "ü", "文"]]
    assert [c["type"] for c in rows[0]["columns"]] == ["int", "enum('é','ü')", "set('中','文')"]
