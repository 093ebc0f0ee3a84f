"""The row expression evaluator: MySQL's NULL, coercion, arithmetic and pattern rules."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from consumers.row_expr import UnknownColumn, compare, compile_expression, to_number, truth
from kdm.errors import KdmError

ROW: dict[str, Any] = {
    "id": 7, "c": 4, "n": None, "name": "abc", "price": "10.50", "neg": "-0.500",
    "f": 2.5, "blob": b"\x00ab", "ts": "2021-01-01 12:34:56.5678", "state": 1, "z": 0,
    "word": "12abc", "utf": "é",
}


@pytest.mark.parametrize(("text", "value"), [
    # manual §9 examples
    ("c % 2 = 0", 1), ("id % 2 = 0", 0), ("3*3 + 4*4 = 5*5", 1),
    ("state = 1 AND name LIKE 'a%'", 1),
    # comparisons and NULL
    ("id > 5", 1), ("id >= 7", 1), ("id < 7", 0), ("id <= 6", 0), ("id != 7", 0),
    ("id <> 8", 1), ("n = 1", None), ("n = NULL", None), ("n <=> NULL", 1), ("id <=> NULL", 0),
    ("n IS NULL", 1), ("id IS NULL", 0), ("id IS NOT NULL", 1), ("n IS NOT NULL", 0),
    ("z IS FALSE", 1), ("state IS TRUE", 1), ("n IS TRUE", 0), ("n IS NOT TRUE", 1),
    # numeric strings compare numerically against numbers; DECIMAL text as Decimal
    ("price > 10.4", 1), ("price = 10.5", 1), ("price > 10.5", 0), ("neg = -0.5", 1),
    ("neg < 0", 1), ("word = 12", 1), ("name = 0", 1), ("price = 10.50e0", 1),
    # two strings compare as binary strings (TiDB's default collation)
    ("name = 'abc'", 1), ("name = 'ABC'", 0), ("name < 'abd'", 1), ("price = '10.5'", 0),
    ("ts > '2021-01-01'", 1), ("ts < '2021-01-02'", 1), ("blob = 'x'", 0),
    # logic, three-valued
    ("id = 7 AND n = 1", None), ("id = 8 AND n = 1", 0), ("id = 7 OR n = 1", 1),
    ("id = 8 OR n = 1", None), ("NOT n", None), ("NOT z", 1), ("id XOR z", 1),
    ("id XOR n", None), ("id = 7 && state = 1", 1), ("z || state", 1), ("!z", 1),
    ("TRUE", 1), ("FALSE", 0), ("NULL", None),
    # arithmetic with MySQL's types and NULL
    ("id + 1", 8), ("id - 10", -3), ("id * 2", 14), ("7 / 2", Decimal("3.5")),
    ("id / 0", None), ("f * 2", 5.0), ("price + 1", Decimal("11.50")), ("n + 1", None),
    ("-7 % 3", -1), ("7 % -3", 1), ("7 MOD 0", None), ("MOD(id, 4)", 3), ("-7 DIV 2", -3),
    ("7 DIV 0", None), ("f DIV 1", 2), ("price DIV 3", 3), ("f % 1", 0.5),
    ("-price", Decimal("-10.50")), ("-n", None), ("word + 1", 13), ("price % 3", Decimal("1.50")),
    # IN and BETWEEN
    ("id IN (1, 7)", 1), ("id IN (1, 2)", 0), ("id IN (1, NULL)", None), ("n IN (1)", None),
    ("id NOT IN (1, 2)", 1), ("name IN ('x', 'abc')", 1), ("price IN (10.5)", 1),
    ("id BETWEEN 1 AND 7", 1), ("id BETWEEN 8 AND 9", 0), ("id NOT BETWEEN 8 AND 9", 1),
    ("n BETWEEN 1 AND 2", None), ("price BETWEEN 10 AND 11", 1),
    # LIKE: % and _, escapes, binary
    ("name LIKE 'a_c'", 1), ("name LIKE 'A%'", 0), ("name NOT LIKE 'x%'", 1),
    ("name LIKE '%'", 1), ("n LIKE '%'", None), ("'a%c' LIKE 'a\\%c'", 1),
    ("'abc' LIKE 'a\\%c'", 0), ("'a%c' LIKE 'a!%c' ESCAPE '!'", 1),
    ("'a%c' NOT LIKE 'a!%c' ESCAPE '!'", 0), ("n NOT LIKE 'a'", None), ("'a.c' LIKE 'a.c'", 1),
    ("'axc' LIKE 'a.c'", 0), ("id LIKE '7'", 1), ("'a\\nb' LIKE 'a_b'", 1),
    # functions
    ("LENGTH(utf)", 2), ("CHAR_LENGTH(utf)", 1), ("LENGTH(blob)", 3), ("LENGTH(n)", None),
    ("LENGTH(id)", 1), ("LOWER('AbC')", "abc"), ("UPPER(name)", "ABC"), ("LOWER(n)", None),
    ("UPPER(blob)", b"\x00ab"), ("ABS(-3)", 3), ("ABS(neg)", Decimal("0.500")),
    ("CONCAT(name, id)", "abc7"), ("CONCAT(name, n)", None), ("COALESCE(n, 2)", 2),
    ("IFNULL(n, id)", 7), ("COALESCE(n, n)", None), ("LENGTH(CONCAT(name, 'de')) = 5", 1),
    ("(id + 1) * 2", 16),
])
def test_evaluation(text: str, value: Any) -> None:
    result = compile_expression(text)(ROW)
    assert result == value and type(result) is type(value)


def test_now_is_utc_text() -> None:
    before = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    now = compile_expression("NOW()")({})
    assert before <= now <= datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert compile_expression("ts < NOW()")(ROW) == 1
    assert compile_expression("ts > CURRENT_TIMESTAMP")(ROW) == 0


def test_columns_are_case_insensitive_and_may_be_qualified() -> None:
    assert compile_expression("ID = 7 AND tbl.`Name` = 'abc'")(ROW) == 1


def test_unknown_column_raises() -> None:
    with pytest.raises(UnknownColumn):
        compile_expression("missing = 1")(ROW)


@pytest.mark.parametrize(("value", "number"), [
    ("12abc", 12), ("abc", 0), ("  -3.50x", Decimal("-3.50")), ("1e3", 1000.0),
    (".5", Decimal(".5")), (b"42", 42), (True, 1), (2.5, 2.5), ("", 0),
    ("18446744073709551615", 18446744073709551615),
])
def test_to_number(value: Any, number: Any) -> None:
    assert to_number(value) == number and type(to_number(value)) is type(number)


@pytest.mark.parametrize(("left", "right", "order"), [
    (1, "1.0", 0), ("b", "a", 1), (b"a", "a", 0), ("10", "9", -1), (10, "9", 1),
    (Decimal("0.1"), 0.1, 0), (None, 1, None), (1, None, None),
])
def test_compare(left: Any, right: Any, order: int | None) -> None:
    assert compare(left, right) == order


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), (0, False), (2, True), ("0.0", False), ("x", False), ("1x", True),
    (Decimal("0.01"), True),
])
def test_truth(value: Any, expected: bool | None) -> None:
    assert truth(value) is expected


@pytest.mark.parametrize(("text", "problem"), [
    ("c = (SELECT 1)", "is not supported"),
    ("foo(c)", "function foo\\(\\) is not supported"),
    ("c REGEXP 'x'", "is not supported"),
    ("CASE WHEN c THEN 1 END", "is not supported"),
    ("c IN (SELECT id FROM t)", "not supported"),
    ("c LIKE 'x' ESCAPE 'ab'", "one-character"),
    ("CAST(c AS SIGNED)", "is not supported"),
    ("c = ", "cannot be parsed"),
    ("SELECT 1", "is not supported"),
])
def test_unsupported_constructs_fail_at_compile_time(text: str, problem: str) -> None:
    with pytest.raises(KdmError, match=problem) as caught:
        compile_expression(text, " of rule x")
    assert caught.value.code == 36105
    assert " of rule x" in caught.value.message
