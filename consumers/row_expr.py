"""SQL boolean expressions over one row, evaluated with MySQL's value rules.

`compile_expression` parses an expression once (sqlglot, MySQL dialect) and turns the tree
into nested closures, one per node, chosen from the `_BUILDERS` table by node type. Anything
not in the table is refused there, at rule-compile time, never while a row is tested.

Supported: column references, string/number literals, NULL, TRUE/FALSE; `= <> != < <= > >=
<=>`; `AND OR XOR NOT` (and `&& || !`); `+ - * / DIV % MOD` and unary minus; `IS [NOT]
NULL|TRUE|FALSE`; `[NOT] IN (...)`; `[NOT] BETWEEN`; `[NOT] LIKE [ESCAPE]`; and the functions
LENGTH, CHAR_LENGTH, LOWER, UPPER, ABS, CONCAT, COALESCE, IFNULL, NOW / CURRENT_TIMESTAMP.

Values are those of a relay row image: None (NULL), int, float, str (also DECIMAL and
temporal values, as text) and bytes; literals add Decimal for exact numbers like `1.5`.
MySQL's rules, with TiDB's default binary collation:

* NULL propagates through arithmetic, comparisons and functions (but COALESCE, `<=>`, IS);
  AND, OR, XOR and NOT are three-valued; results of tests are 1, 0 or NULL.
* Two strings (str or bytes) compare as binary strings, case-sensitively. Any other pair
  compares as numbers: a string becomes the number of its longest numeric prefix (`'12ab'`
  is 12, `'abc'` is 0), exact text (`'-0.500'`) as a Decimal; a float on either side makes
  the comparison a float one.
* Arithmetic: ints stay ints, a float makes a float, else Decimal; `/` is exact (Decimal)
  and NULL on a zero divisor; `DIV` truncates towards zero; `%` has the dividend's sign and
  is NULL on a zero divisor.
* LIKE: `%` any run, `_` one character, `\\` (or the ESCAPE character) quotes; binary.
* Truth: a non-NULL value whose number is not zero. NOW() is UTC (`YYYY-MM-DD HH:MM:SS`),
  compared as text with temporal columns, which are text too.

A column that is not in the row raises `UnknownColumn`.
"""

from __future__ import annotations

import functools
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlglot
import sqlglot.errors
from sqlglot import exp

from kdm.errors import ERR_SYNC_EXPR_INVALID

Row = Mapping[str, Any]
Evaluator = Callable[[Row], Any]
Builder = Callable[[Any], Evaluator]
Number = int | float | Decimal

_NUMBER_PREFIX = re.compile(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")


class UnknownColumn(LookupError):
    """The expression names a column the row does not have."""


class _Unsupported(Exception):
    """A construct the evaluator does not implement."""


def compile_expression(text: str, where: str = "") -> Evaluator:
    """The evaluator of `text`; a parse error or unsupported construct is ERR_SYNC_EXPR_INVALID."""
    try:
        tree = sqlglot.parse_one(text, read="mysql")
    except sqlglot.errors.SqlglotError as exc:
        raise ERR_SYNC_EXPR_INVALID(exc, expr=text, where=where, problem="cannot be parsed: "
                                    f"{str(exc).splitlines()[0]}") from exc
    try:
        return _build(tree)
    except _Unsupported as exc:
        raise ERR_SYNC_EXPR_INVALID(expr=text, where=where, problem=str(exc)) from None


def truth(value: Any) -> bool | None:
    """MySQL's truth of a value: None for NULL, else whether its number is not zero."""
    return None if value is None else to_number(value) != 0


def to_number(value: Any) -> Number:
    """A value as MySQL reads it in numeric context (strings by their numeric prefix)."""
    if isinstance(value, int | float | Decimal):
        return int(value) if isinstance(value, bool) else value
    found = _NUMBER_PREFIX.match(_text(value))
    return 0 if found is None else _number_text(found.group(1))


class Temporal(str):
    """A DATE, DATETIME or TIMESTAMP value: text for string functions, compared as a time.

    Compared with a string, the string is read as a MySQL date/time literal (short fields
    such as `2021-6-1`, an optional time and fraction, an optional `+HH:MM` offset converted
    to UTC, as the relay's TIMESTAMPs are), so `d = '2021-06-01'` holds for
    `2021-06-01 00:00:00` as in TiDB. A string that is no date compares as text."""

    key: tuple[int, ...] | None

    def __new__(cls, text: str) -> Temporal:
        """Wrap a value as the relay carries it."""
        value = super().__new__(cls, text)
        value.key = temporal_key(text)
        return value


_TEMPORAL = re.compile(r"^\s*(\d{1,4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{1,2})"
                       r"(?::(\d{1,2})(?:\.(\d{1,6}))?)?)?\s*(?:([+-])(\d{1,2}):(\d{2}))?\s*$")


def temporal_key(text: str) -> tuple[int, ...] | None:
    """(year, month, day, hour, minute, second, microsecond) of a date/time literal, in UTC
    when it carries an offset; None when the text is not one."""
    match = _TEMPORAL.match(text)
    if match is None:
        return None
    y, mo, d, h, mi, sec, frac, sign, oh, om = match.groups()
    fields = [int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(sec or 0),
              int((frac or "0").ljust(6, "0"))]
    if sign and fields[1] and fields[2]:
        import datetime as dt
        y_, mo_, d_, h_, mi_, s_, us_ = fields
        moment = dt.datetime(y_, mo_, d_, h_, mi_, s_, us_) - (1 if sign == "+" else -1) * \
            dt.timedelta(hours=int(oh), minutes=int(om))
        fields = [moment.year, moment.month, moment.day, moment.hour, moment.minute,
                  moment.second, moment.microsecond]
    return tuple(fields)


def _temporal_compare(left: Any, right: Any) -> int | None:
    keys = [v.key if isinstance(v, Temporal) else temporal_key(v) if isinstance(v, str)
            else None for v in (left, right)]
    if keys[0] is None or keys[1] is None:
        return None
    return (keys[0] > keys[1]) - (keys[0] < keys[1])


def compare(left: Any, right: Any) -> int | None:
    """-1, 0 or 1 as MySQL orders the two values; None when either is NULL."""
    if left is None or right is None:
        return None
    if isinstance(left, Temporal) or isinstance(right, Temporal):
        as_times = _temporal_compare(left, right)
        if as_times is not None:
            return as_times
    if isinstance(left, str | bytes) and isinstance(right, str | bytes):
        a, b = _binary(left), _binary(right)
        return (a > b) - (a < b)
    x, y = _unify(left, right)
    return (x > y) - (x < y)


def _build(node: Any) -> Evaluator:
    builder = _BUILDERS.get(type(node))
    if builder is None:
        raise _Unsupported(f"`{node.sql(dialect='mysql')}` ({type(node).__name__}) is not "
                           "supported")
    return _negatable(node, builder(node))


def _negatable(node: Any, evaluate: Evaluator) -> Evaluator:
    """`evaluate`, negated when sqlglot marks the node so (its form of NOT LIKE)."""
    if node.args.get("negate"):
        return lambda row: _not(evaluate(row))
    return evaluate


# Values.

def _number_text(text: str) -> Number:
    if "e" in text or "E" in text:
        return float(text)
    return Decimal(text) if "." in text else int(text)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


def _binary(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


def _unify(left: Any, right: Any) -> tuple[Number, Number]:
    x, y = to_number(left), to_number(right)
    if isinstance(x, float) or isinstance(y, float):
        return float(x), float(y)
    if isinstance(x, Decimal) or isinstance(y, Decimal):
        return Decimal(x), Decimal(y)
    return x, y


# Operators: plain functions of evaluated operands.

def _arithmetic(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(left: Any, right: Any) -> Any:
        if left is None or right is None:
            return None
        return op(*_unify(left, right))
    return apply


def _divide(x: Number, y: Number) -> Number | None:
    if y == 0:
        return None
    if isinstance(x, float) or isinstance(y, float):
        return float(x) / float(y)
    return Decimal(x) / Decimal(y)


def _int_divide(x: Number, y: Number) -> int | None:
    if y == 0:
        return None
    if isinstance(x, int) and isinstance(y, int):
        quotient = abs(x) // abs(y)
        return quotient if (x >= 0) == (y > 0) else -quotient
    if isinstance(x, float) or isinstance(y, float):
        return int(float(x) / float(y))
    return int(Decimal(x) / Decimal(y))


def _modulo(x: Number, y: Number) -> Number | None:
    if y == 0:
        return None
    if isinstance(x, int) and isinstance(y, int):
        rest = abs(x) % abs(y)
        return rest if x >= 0 else -rest
    if isinstance(x, float) or isinstance(y, float):
        return math.fmod(float(x), float(y))
    return Decimal(x) % Decimal(y)  # Decimal's remainder keeps the dividend's sign


def _comparison(accepted: frozenset[int]) -> Callable[[Any, Any], int | None]:
    """A comparison operator: true when `compare` gives one of the `accepted` orders."""
    def apply(left: Any, right: Any) -> int | None:
        order = compare(left, right)
        return None if order is None else int(order in accepted)
    return apply


_EQ, _NE, _LT, _LE, _GT, _GE = (frozenset(orders) for orders in
                                ((0,), (-1, 1), (-1,), (-1, 0), (1,), (0, 1)))


def _null_safe_equal(left: Any, right: Any) -> int:
    if left is None or right is None:
        return int(left is None and right is None)
    return int(compare(left, right) == 0)


def _and(left: Any, right: Any) -> int | None:
    x, y = truth(left), truth(right)
    if x is False or y is False:
        return 0
    return None if x is None or y is None else 1


def _or(left: Any, right: Any) -> int | None:
    x, y = truth(left), truth(right)
    if x or y:
        return 1
    return None if x is None or y is None else 0


def _xor(left: Any, right: Any) -> int | None:
    x, y = truth(left), truth(right)
    return None if x is None or y is None else int(x != y)


def _not(value: Any) -> int | None:
    x = truth(value)
    return None if x is None else int(not x)


def _negate(value: Any) -> Number | None:
    return None if value is None else -to_number(value)


def _in_list(probe: Any, options: Sequence[Any]) -> int | None:
    if probe is None:
        return None
    orders = [compare(probe, option) for option in options]
    if 0 in orders:
        return 1
    return None if None in orders else 0


def _like(value: Any, pattern: Any, escape: str) -> int | None:
    if value is None or pattern is None:
        return None
    return int(_like_regex(_text(pattern), escape).fullmatch(_text(value)) is not None)


@functools.lru_cache(maxsize=1024)
def _like_regex(pattern: str, escape: str) -> re.Pattern[str]:
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == escape and index + 1 < len(pattern):
            char, index = pattern[index + 1], index + 1
            parts.append(re.escape(char))
        else:
            parts.append(_LIKE_WILDCARDS.get(char) or re.escape(char))
        index += 1
    return re.compile("".join(parts), re.DOTALL)


_LIKE_WILDCARDS = {"%": ".*", "_": "."}


def _strict(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`fn` made NULL-in, NULL-out."""
    return lambda value: None if value is None else fn(value)


def _byte_length(value: Any) -> int:
    return len(value) if isinstance(value, bytes) else len(_text(value).encode("utf-8"))


def _char_length(value: Any) -> int:
    return len(value) if isinstance(value, bytes) else len(_text(value))


def _case(fn: Callable[[str], str]) -> Callable[[Any], Any]:
    """LOWER/UPPER: binary strings are returned unchanged, as in MySQL."""
    return lambda value: value if isinstance(value, bytes) else fn(_text(value))


def _concat(values: Sequence[Any]) -> str | None:
    return None if any(v is None for v in values) else "".join(_text(v) for v in values)


def _coalesce(values: Sequence[Any]) -> Any:
    return next((value for value in values if value is not None), None)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


# Builders: one per node type, each returning the node's evaluator.

def _binary_node(fn: Callable[[Any, Any], Any]) -> Builder:
    def build(node: Any) -> Evaluator:
        left, right = _build(node.this), _build(node.expression)
        return lambda row: fn(left(row), right(row))
    return build


def _unary_node(fn: Callable[[Any], Any]) -> Builder:
    def build(node: Any) -> Evaluator:
        inner = _build(node.this)
        return lambda row: fn(inner(row))
    return build


def _variadic_node(fn: Callable[[Sequence[Any]], Any], head: bool) -> Builder:
    """A function over its argument list (`head`: the first argument sits in `this`)."""
    def build(node: Any) -> Evaluator:
        args = [_build(arg) for arg in ([node.this] if head else []) + list(node.expressions)]
        return lambda row: fn([arg(row) for arg in args])
    return build


def _constant(value: Any) -> Evaluator:
    return lambda row: value


def _literal_node(node: Any) -> Evaluator:
    return _constant(node.this if node.is_string else _number_text(node.this))


def _column_node(node: Any) -> Evaluator:
    name = node.name.lower()

    def get(row: Row) -> Any:
        try:
            return row[name]
        except KeyError:
            raise UnknownColumn(name) from None
    return get


def _is_node(node: Any) -> Evaluator:
    inner, target = _build(node.this), node.expression
    if isinstance(target, exp.Null):
        return lambda row: int(inner(row) is None)
    if isinstance(target, exp.Boolean):
        wanted = bool(target.this)
        return lambda row: int(truth(inner(row)) is wanted)
    raise _Unsupported(f"`IS {target.sql(dialect='mysql')}` is not supported")


def _in_node(node: Any) -> Evaluator:
    if node.args.get("query") is not None or node.args.get("unnest") is not None:
        raise _Unsupported("IN with a subquery is not supported")
    probe, options = _build(node.this), [_build(option) for option in node.expressions]
    return lambda row: _in_list(probe(row), [option(row) for option in options])


def _between_node(node: Any) -> Evaluator:
    value, low, high = _build(node.this), _build(node.args["low"]), _build(node.args["high"])
    at_least, at_most = _comparison(_GE), _comparison(_LE)

    def between(row: Row) -> int | None:
        probe = value(row)
        return _and(at_least(probe, low(row)), at_most(probe, high(row)))
    return between


def _like_node(node: Any, escape: str = "\\") -> Evaluator:
    value, pattern = _build(node.this), _build(node.expression)
    return lambda row: _like(value(row), pattern(row), escape)


def _escape_node(node: Any) -> Evaluator:
    escape = node.expression
    if not isinstance(node.this, exp.Like) or not (isinstance(escape, exp.Literal)
                                                   and escape.is_string and len(escape.this) == 1):
        raise _Unsupported("ESCAPE needs LIKE and a one-character string")
    return _negatable(node.this, _like_node(node.this, escape.this))


def _length_node(node: Any) -> Evaluator:
    return _unary_node(_strict(_byte_length if node.args.get("binary") else _char_length))(node)


def _anonymous_node(node: Any) -> Evaluator:
    if node.name.upper() == "NOW" and not node.expressions:
        return lambda row: _now()
    raise _Unsupported(f"function {node.name}() is not supported")


_BUILDERS: dict[type[Any], Builder] = {
    exp.Literal: _literal_node,
    exp.Null: lambda node: _constant(None),
    exp.Boolean: lambda node: _constant(int(bool(node.this))),
    exp.Column: _column_node,
    exp.Paren: lambda node: _build(node.this),
    exp.EQ: _binary_node(_comparison(_EQ)),
    exp.NEQ: _binary_node(_comparison(_NE)),
    exp.LT: _binary_node(_comparison(_LT)),
    exp.LTE: _binary_node(_comparison(_LE)),
    exp.GT: _binary_node(_comparison(_GT)),
    exp.GTE: _binary_node(_comparison(_GE)),
    exp.NullSafeEQ: _binary_node(_null_safe_equal),
    exp.And: _binary_node(_and),
    exp.Or: _binary_node(_or),
    exp.Xor: _binary_node(_xor),
    exp.Not: _unary_node(_not),
    exp.Neg: _unary_node(_negate),
    exp.Add: _binary_node(_arithmetic(operator.add)),
    exp.Sub: _binary_node(_arithmetic(operator.sub)),
    exp.Mul: _binary_node(_arithmetic(operator.mul)),
    exp.Div: _binary_node(_arithmetic(_divide)),
    exp.IntDiv: _binary_node(_arithmetic(_int_divide)),
    exp.Mod: _binary_node(_arithmetic(_modulo)),
    exp.Is: _is_node,
    exp.In: _in_node,
    exp.Between: _between_node,
    exp.Like: _like_node,
    exp.Escape: _escape_node,
    exp.Length: _length_node,
    exp.Lower: _unary_node(_strict(_case(str.lower))),
    exp.Upper: _unary_node(_strict(_case(str.upper))),
    exp.Abs: _unary_node(_strict(lambda value: abs(to_number(value)))),
    exp.Concat: _variadic_node(_concat, head=False),
    exp.Coalesce: _variadic_node(_coalesce, head=True),
    exp.CurrentTimestamp: lambda node: (lambda row: _now()),
    exp.Anonymous: _anonymous_node,
}
