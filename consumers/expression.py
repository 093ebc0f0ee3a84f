"""Expression filters: drop single row changes for which a SQL expression is true (manual §9).

A rule names one upstream table exactly (`schema`, `table`: no wildcards; compared
case-insensitively unless the task is case-sensitive) and one or more expressions; each is
parsed once, when the filters are built (see `consumers.row_expr` for the language).

* INSERT: the change is dropped when `insert-value-expr` is true for the new row.
* DELETE: dropped when `delete-value-expr` is true for the old row.
* UPDATE: a rule with `update-old-value-expr` and/or `update-new-value-expr` drops the change
  when the old-row expression is true for the old row AND the new-row expression is true for
  the new row; a missing one counts as true, so a single expression decides alone. The update
  is dropped as a whole. (This is DM's `genAndFilterUpdateDMLs`, and the manual's wording;
  it is AND within a rule, not OR.)
* Several rules on one table: any rule that drops the change drops it (OR across rules).

As in DM, `insert-value-expr` cannot share a rule with any other expression, nor
`delete-value-expr` with the update ones. An expression naming a column the table does not
have is false (DM builds it as FALSE with a warning), so it drops nothing. Column names are
compared case-insensitively, as MySQL does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from consumers.row_expr import Evaluator, Temporal, UnknownColumn, compile_expression, truth
from kdm.config.task import ExpressionFilter
from kdm.errors import ERR_SYNC_EXPR_ROW, ERR_SYNC_RULE_INVALID

Row = Mapping[str, Any]


@dataclass(frozen=True)
class _Expr:
    text: str
    evaluate: Evaluator

    def holds(self, row: Row) -> bool:
        try:
            return truth(self.evaluate(row)) is True
        except UnknownColumn:
            return False


@dataclass
class _TableFilters:
    inserts: list[_Expr] = field(default_factory=list)
    deletes: list[_Expr] = field(default_factory=list)
    updates: list[tuple[_Expr | None, _Expr | None]] = field(default_factory=list)


class ExpressionFilters:
    """A source's expression filters, grouped by upstream table."""

    def __init__(self, rules: Sequence[ExpressionFilter], case_sensitive: bool) -> None:
        self._case_sensitive = case_sensitive
        self._tables: dict[tuple[str, str], _TableFilters] = {}
        for rule in rules:
            self._add(rule)

    def skips(self, schema: str, table: str, op: str, columns: Sequence[str],
              before: Sequence[Any] | None, after: Sequence[Any] | None,
              types: Sequence[str] = ()) -> bool:
        """Whether the row change (op INSERT, UPDATE or DELETE) is dropped by a rule;
        `types` (the relay's column types) make date and time columns compare as times."""
        filters = self._tables.get(self._key(schema, table))
        if filters is None:
            return False
        if types:
            before, after = _typed(types, before), _typed(types, after)
        check = _CHECKS.get(op.upper())
        if check is None:
            raise ERR_SYNC_EXPR_ROW(schema=schema, table=table, problem=f"unknown operation `{op}`")
        try:
            return check(filters, columns, before, after)
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise ERR_SYNC_EXPR_ROW(exc, schema=schema, table=table, problem=str(exc)) from exc

    def covers(self, schema: str, table: str) -> bool:
        """Whether any rule names this table (the hot path asks before building a row)."""
        return self._key(schema, table) in self._tables

    def _key(self, schema: str, table: str) -> tuple[str, str]:
        return (schema, table) if self._case_sensitive else (schema.lower(), table.lower())

    def _add(self, rule: ExpressionFilter) -> None:
        _check_rule(rule)
        where = f" of expression-filter on `{rule.schema}`.`{rule.table}`"
        compiled = {key: _Expr(text, compile_expression(text, f"{where} ({key})"))
                    for key, text in rule.expressions().items()}
        filters = self._tables.setdefault(self._key(rule.schema, rule.table), _TableFilters())
        if "insert-value-expr" in compiled:
            filters.inserts.append(compiled["insert-value-expr"])
        if "delete-value-expr" in compiled:
            filters.deletes.append(compiled["delete-value-expr"])
        old, new = compiled.get("update-old-value-expr"), compiled.get("update-new-value-expr")
        if old is not None or new is not None:
            filters.updates.append((old, new))


def _check_rule(rule: ExpressionFilter) -> None:
    """DM's checks: a named table, and one kind of change per rule."""
    what = f"expression-filter rule on `{rule.schema}`.`{rule.table}`"
    if not rule.schema or not rule.table:
        raise ERR_SYNC_RULE_INVALID(what=what, problem="schema and table must not be empty")
    kinds = [kind for kind, present in (
        ("insert-value-expr", rule.insert_value_expr),
        ("update-old-value-expr/update-new-value-expr",
         rule.update_old_value_expr or rule.update_new_value_expr),
        ("delete-value-expr", rule.delete_value_expr)) if present]
    if len(kinds) > 1:
        raise ERR_SYNC_RULE_INVALID(what=what, problem=f"{' and '.join(kinds)} cannot be set in "
                                    "the same rule; use one rule per kind of change")


_TEMPORAL_TYPES = ("date", "datetime", "timestamp")


def _typed(types: Sequence[str], values: Sequence[Any] | None) -> Sequence[Any] | None:
    """The image with DATE/DATETIME/TIMESTAMP text wrapped as `Temporal`."""
    if values is None:
        return None
    return [Temporal(v) if isinstance(v, str) and t.split("(")[0] in _TEMPORAL_TYPES else v
            for t, v in zip(types, values, strict=False)]


@functools.lru_cache(maxsize=1024)
def _folded(columns: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name.lower() for name in columns)


def _row(columns: Sequence[str], values: Sequence[Any] | None, image: str) -> Row:
    if values is None:
        raise ValueError(f"the change has no {image} image")
    if len(values) != len(columns):
        raise ValueError(f"{len(columns)} columns but {len(values)} values in the {image} image")
    return dict(zip(_folded(tuple(columns)), values, strict=True))


def _any_holds(exprs: Sequence[_Expr], columns: Sequence[str], values: Sequence[Any] | None,
               image: str) -> bool:
    if not exprs:
        return False
    row = _row(columns, values, image)
    return any(expr.holds(row) for expr in exprs)


def _check_insert(filters: _TableFilters, columns: Sequence[str], before: Sequence[Any] | None,
                  after: Sequence[Any] | None) -> bool:
    return _any_holds(filters.inserts, columns, after, "after")


def _check_delete(filters: _TableFilters, columns: Sequence[str], before: Sequence[Any] | None,
                  after: Sequence[Any] | None) -> bool:
    return _any_holds(filters.deletes, columns, before, "before")


def _check_update(filters: _TableFilters, columns: Sequence[str], before: Sequence[Any] | None,
                  after: Sequence[Any] | None) -> bool:
    if not filters.updates:
        return False
    old, new = _row(columns, before, "before"), _row(columns, after, "after")
    return any((old_expr is None or old_expr.holds(old)) and (new_expr is None
                                                               or new_expr.holds(new))
               for old_expr, new_expr in filters.updates)


_Check = Callable[[_TableFilters, Sequence[str], Sequence[Any] | None, Sequence[Any] | None],
                  bool]
_CHECKS: dict[str, _Check] = {"INSERT": _check_insert, "UPDATE": _check_update,
                              "DELETE": _check_delete}
