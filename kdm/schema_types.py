"""MySQL column type text: read from sqlglot's types, compared, and widened.

Type text is what SHOW CREATE TABLE prints, lower-case, UNSIGNED kept apart:
`int(11)`, `decimal(10,0)`, `varchar(300)`, `enum('a','b')`, `datetime(6)`. Parsing fills
in the implied parameters (`decimal` -> `decimal(10,0)`, `char` -> `char(1)`, `bool` ->
`tinyint(1)`) so the same type written two ways compares equal; integer display widths
and `year(4)` are ignored when comparing (`canonical_type`).

`widen_type` is the optimistic shard-DDL rule "compatible types take the wider one":

| family                                   | wider                                         |
|------------------------------------------|-----------------------------------------------|
| tinyint < smallint < mediumint < int < bigint | the higher rank                          |
| float < double                           | the higher rank                               |
| tinytext < text < mediumtext < longtext (blob alike) | the higher rank                   |
| char, varchar, binary, varbinary, bit (same name) | the longer length                    |
| datetime, timestamp, time (same name)    | the larger fractional-seconds precision       |
| decimal(p,s)                             | max integer digits + max scale (at most 65)   |
| enum, set (same name)                    | the member list the other is a prefix of      |

Anything else must be the same type; otherwise there is no wider type (a conflict).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlglot import exp

from kdm.errors import ERR_SCHEMA_UNSUPPORTED
from kdm.schema_sql import quote_text

_T = exp.DType
_NAMES: dict[exp.DType, str] = {
    _T.TINYINT: "tinyint", _T.UTINYINT: "tinyint", _T.SMALLINT: "smallint",
    _T.USMALLINT: "smallint", _T.MEDIUMINT: "mediumint", _T.UMEDIUMINT: "mediumint",
    _T.INT: "int", _T.UINT: "int", _T.BIGINT: "bigint", _T.UBIGINT: "bigint",
    _T.BOOLEAN: "bool", _T.DECIMAL: "decimal", _T.UDECIMAL: "decimal", _T.FLOAT: "float",
    _T.DOUBLE: "double", _T.UDOUBLE: "double", _T.BIT: "bit", _T.YEAR: "year",
    _T.DATE: "date", _T.DATETIME: "datetime", _T.TIMESTAMP: "timestamp",
    _T.TIMESTAMPTZ: "timestamp", _T.TIME: "time", _T.CHAR: "char", _T.NCHAR: "char",
    _T.VARCHAR: "varchar", _T.NVARCHAR: "varchar", _T.BINARY: "binary",
    _T.VARBINARY: "varbinary", _T.TINYTEXT: "tinytext", _T.TEXT: "text",
    _T.MEDIUMTEXT: "mediumtext", _T.LONGTEXT: "longtext", _T.TINYBLOB: "tinyblob",
    _T.BLOB: "blob", _T.MEDIUMBLOB: "mediumblob", _T.LONGBLOB: "longblob", _T.ENUM: "enum",
    _T.SET: "set", _T.JSON: "json", _T.GEOMETRY: "geometry",
}
_UNSIGNED = frozenset({_T.UTINYINT, _T.USMALLINT, _T.UMEDIUMINT, _T.UINT, _T.UBIGINT,
                       _T.UDECIMAL, _T.UDOUBLE})
_RANKS: dict[str, tuple[str, int]] = {
    **{name: ("int", i) for i, name in enumerate(
        ("tinyint", "smallint", "mediumint", "int", "bigint"))},
    "float": ("float", 0), "double": ("float", 1),
    **{name: ("text", i) for i, name in enumerate(
        ("tinytext", "text", "mediumtext", "longtext"))},
    **{name: ("blob", i) for i, name in enumerate(
        ("tinyblob", "blob", "mediumblob", "longblob"))},
}
_WIDTH_IGNORED = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint", "year"})
_QUOTED = re.compile(r"'((?:[^']|'')*)'")


def parse_type(kind: exp.DataType, sql: str) -> tuple[str, bool]:
    """(type text, unsigned) of a parsed column type; types kdm cannot track are refused."""
    name = _NAMES.get(kind.this)
    if name is None:
        raise ERR_SCHEMA_UNSUPPORTED(
            sql=sql, problem=f"column type {kind.sql('mysql')} is not supported")
    params = [_param(p) for p in kind.expressions]
    return _SHAPES.get(name, _plain)(name, params), kind.this in _UNSIGNED


def _param(node: exp.Expr) -> str:
    value = node.this if isinstance(node, exp.DataTypeParam) else node
    if isinstance(value, exp.Literal) and value.is_string:
        return quote_text(value.name)
    return value.name


def _plain(name: str, params: list[str]) -> str:
    return f"{name}({','.join(params)})" if params else name


def _decimal(name: str, params: list[str]) -> str:
    precision, scale = (params + ["10", "0"][len(params):])[:2]
    return f"decimal({precision},{scale})"


def _float(name: str, params: list[str]) -> str:
    # FLOAT(p) is FLOAT up to 24 bits of precision and DOUBLE above
    if len(params) == 1:
        return "double" if int(params[0]) > 24 else "float"
    return _plain(name, params)


def _one(name: str, params: list[str]) -> str:
    return _plain(name, params or ["1"])


_SHAPES: dict[str, Callable[[str, list[str]], str]] = {
    "decimal": _decimal, "float": _float, "char": _one, "binary": _one, "bit": _one,
    "bool": lambda name, params: "tinyint(1)",
}


def split_type(text: str) -> tuple[str, str]:
    """(name, parameter text): `('varchar', '300')` for `varchar(300)`."""
    name, _, rest = text.partition("(")
    return name, rest[:-1] if rest.endswith(")") else rest


def canonical_type(text: str) -> str:
    """The type text with display widths dropped, for comparing two definitions."""
    name, _ = split_type(text)
    return name if name in _WIDTH_IGNORED else text


def widen_type(a: str, b: str) -> str | None:
    """The narrowest type holding every value of both (see the table above), or None."""
    if canonical_type(a) == canonical_type(b):
        return a
    name_a, name_b = split_type(a)[0], split_type(b)[0]
    if name_a in _RANKS and name_b in _RANKS:
        return _wider_rank(a, b)
    if name_a != name_b:
        return None
    widen = _SAME_NAME_RULES.get(name_a)
    return widen(a, b) if widen else None


def _wider_rank(a: str, b: str) -> str | None:
    (family_a, rank_a), (family_b, rank_b) = (_RANKS[split_type(t)[0]] for t in (a, b))
    if family_a != family_b or rank_a == rank_b:
        return None
    return a if rank_a > rank_b else b


def _longer(a: str, b: str) -> str | None:
    return a if _number(a, 1) >= _number(b, 1) else b


def _finer(a: str, b: str) -> str | None:
    return a if _number(a, 0) >= _number(b, 0) else b


def _number(text: str, default: int) -> int:
    params = split_type(text)[1]
    return int(params) if params.isdigit() else default


def _decimal_join(a: str, b: str) -> str | None:
    (pa, sa), (pb, sb) = (map(int, split_type(t)[1].split(",")) for t in (a, b))
    scale = max(sa, sb)
    precision = max(pa - sa, pb - sb) + scale
    return f"decimal({precision},{scale})" if precision <= 65 else None


def _members_join(a: str, b: str) -> str | None:
    ma, mb = (_QUOTED.findall(split_type(t)[1]) for t in (a, b))
    if ma[:len(mb)] == mb:
        return a
    return b if mb[:len(ma)] == ma else None


_SAME_NAME_RULES: dict[str, Callable[[str, str], str | None]] = {
    "char": _longer, "varchar": _longer, "binary": _longer, "varbinary": _longer,
    "bit": _longer, "datetime": _finer, "timestamp": _finer, "time": _finer,
    "decimal": _decimal_join, "enum": _members_join, "set": _members_join,
}
