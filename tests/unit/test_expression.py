"""Expression filters: per-operation expressions, UPDATE's AND, OR across rules, errors."""

from __future__ import annotations

import re
from typing import Any

import pytest

from consumers.expression import ExpressionFilters
from kdm.config.task import ExpressionFilter
from kdm.errors import KdmError

COLUMNS = ("id", "c")


def rule(**exprs: str) -> ExpressionFilter:
    return ExpressionFilter(schema="expr_filter", table="tbl", **exprs)


def test_manual_even_c_example() -> None:
    # Manual §9: INSERT INTO tbl(id,c) VALUES (1,1),(2,2),(3,3),(4,4) leaves (1,1) and (3,3).
    filters = ExpressionFilters([rule(insert_value_expr="c % 2 = 0")], False)
    kept = [(i, i) for i in range(1, 5)
            if not filters.skips("expr_filter", "tbl", "INSERT", COLUMNS, None, (i, i))]
    assert kept == [(1, 1), (3, 3)]


@pytest.mark.parametrize(("op", "before", "after", "skipped"), [
    ("INSERT", None, (1, 2), True), ("INSERT", None, (1, 3), False),
    ("insert", None, (1, 2), True),
    # an insert-only rule says nothing about updates and deletes
    ("UPDATE", (1, 2), (1, 2), False), ("DELETE", (1, 2), None, False),
])
def test_insert_rule(op: str, before: Any, after: Any, skipped: bool) -> None:
    filters = ExpressionFilters([rule(insert_value_expr="c % 2 = 0")], False)
    assert filters.skips("expr_filter", "tbl", op, COLUMNS, before, after) is skipped


@pytest.mark.parametrize(("before", "skipped"), [((1, 5), True), ((1, 4), False)])
def test_delete_rule(before: Any, skipped: bool) -> None:
    filters = ExpressionFilters([rule(delete_value_expr="c > 4")], False)
    assert filters.skips("expr_filter", "tbl", "DELETE", COLUMNS, before, None) is skipped
    assert not filters.skips("expr_filter", "tbl", "INSERT", COLUMNS, None, before)


@pytest.mark.parametrize(("exprs", "before", "after", "skipped"), [
    # Manual §9: with both, an update is dropped only when old AND new satisfy their exprs.
    ({"update_old_value_expr": "c = 1", "update_new_value_expr": "c = 2"}, (1, 1), (1, 2), True),
    ({"update_old_value_expr": "c = 1", "update_new_value_expr": "c = 2"}, (1, 1), (1, 3), False),
    ({"update_old_value_expr": "c = 1", "update_new_value_expr": "c = 2"}, (1, 0), (1, 2), False),
    # with one of them, it alone decides
    ({"update_old_value_expr": "c = 1"}, (1, 1), (1, 9), True),
    ({"update_old_value_expr": "c = 1"}, (1, 9), (1, 1), False),
    ({"update_new_value_expr": "c = 1"}, (1, 9), (1, 1), True),
    ({"update_new_value_expr": "c = 1"}, (1, 1), (1, 9), False),
])
def test_update_rules(exprs: dict[str, str], before: Any, after: Any, skipped: bool) -> None:
    filters = ExpressionFilters([rule(**exprs)], False)
    assert filters.skips("expr_filter", "tbl", "UPDATE", COLUMNS, before, after) is skipped


def test_update_rules_are_or_across_rules() -> None:
    filters = ExpressionFilters([
        rule(update_old_value_expr="c = 1", update_new_value_expr="c = 2"),
        rule(update_new_value_expr="c = 5"),
    ], False)
    assert filters.skips("expr_filter", "tbl", "UPDATE", COLUMNS, (1, 1), (1, 2))
    assert filters.skips("expr_filter", "tbl", "UPDATE", COLUMNS, (1, 7), (1, 5))
    assert not filters.skips("expr_filter", "tbl", "UPDATE", COLUMNS, (1, 7), (1, 2))


def test_several_rules_on_one_table_are_or() -> None:
    # Manual §9: matching any rule filters the row change.
    filters = ExpressionFilters([rule(insert_value_expr="c = 1"),
                                 rule(insert_value_expr="id = 9")], False)
    for values, skipped in (((0, 1), True), ((9, 0), True), ((2, 2), False)):
        assert filters.skips("expr_filter", "tbl", "INSERT", COLUMNS, None, values) is skipped


def test_null_is_not_true() -> None:
    filters = ExpressionFilters([rule(insert_value_expr="c > 1")], False)
    assert not filters.skips("expr_filter", "tbl", "INSERT", COLUMNS, None, (1, None))


def test_other_tables_are_untouched() -> None:
    filters = ExpressionFilters([rule(insert_value_expr="TRUE")], False)
    assert not filters.skips("expr_filter", "other", "INSERT", COLUMNS, None, (1, 2))
    assert not filters.skips("other", "tbl", "INSERT", COLUMNS, None, (1, 2))


def test_names_fold_unless_case_sensitive() -> None:
    rules = [ExpressionFilter(schema="Expr", table="Tbl", insert_value_expr="C = 2")]
    assert ExpressionFilters(rules, False).skips("expr", "TBL", "INSERT", ("ID", "c"), None,
                                                 (1, 2))
    assert not ExpressionFilters(rules, True).skips("expr", "tbl", "INSERT", COLUMNS, None,
                                                    (1, 2))
    assert ExpressionFilters(rules, True).skips("Expr", "Tbl", "INSERT", COLUMNS, None, (1, 2))


def test_unknown_column_drops_nothing() -> None:
    # DM builds an expression over an unknown column as FALSE.
    filters = ExpressionFilters([rule(insert_value_expr="missing = 1"),
                                 rule(update_old_value_expr="missing = 1")], False)
    assert not filters.skips("expr_filter", "tbl", "INSERT", COLUMNS, None, (1, 1))
    assert not filters.skips("expr_filter", "tbl", "UPDATE", COLUMNS, (1, 1), (1, 1))


def test_row_values_from_the_relay() -> None:
    filters = ExpressionFilters([rule(insert_value_expr="price >= 10.5 AND name LIKE 'a%' "
                                                        "AND LENGTH(data) = 2")], False)
    columns = ("price", "name", "data")
    assert filters.skips("expr_filter", "tbl", "INSERT", columns, None, ["10.50", "ab", b"xy"])
    assert not filters.skips("expr_filter", "tbl", "INSERT", columns, None, ["10.49", "ab", b"xy"])


@pytest.mark.parametrize("exprs", [
    {"insert_value_expr": "c = 1", "delete_value_expr": "c = 1"},
    {"insert_value_expr": "c = 1", "update_old_value_expr": "c = 1"},
    {"insert_value_expr": "c = 1", "update_new_value_expr": "c = 1"},
    {"delete_value_expr": "c = 1", "update_new_value_expr": "c = 1"},
])
def test_exclusive_expressions(exprs: dict[str, str]) -> None:
    # Manual §9: insert cannot be combined with update/delete, nor delete with update.
    with pytest.raises(KdmError, match="cannot be set in the same rule") as caught:
        ExpressionFilters([rule(**exprs)], False)
    assert caught.value.code == 36101


def test_empty_table_is_refused() -> None:
    with pytest.raises(KdmError) as caught:
        ExpressionFilters([ExpressionFilter(schema="db", table="", insert_value_expr="1")], False)
    assert caught.value.code == 36101


def test_bad_expression_fails_when_built() -> None:
    where = re.escape("expr_filter`.`tbl` (delete-value-expr)")
    with pytest.raises(KdmError, match=where) as caught:
        ExpressionFilters([rule(delete_value_expr="c REGEXP 'x'")], False)
    assert caught.value.code == 36105


@pytest.mark.parametrize(("op", "before", "after", "problem"), [
    ("REPLACE", None, (1, 2), "unknown operation"),
    ("INSERT", None, None, "no after image"),
    ("UPDATE", None, (1, 2), "no before image"),
    ("DELETE", (1,), None, "2 columns but 1 values"),
])
def test_bad_row_changes_are_coded(op: str, before: Any, after: Any, problem: str) -> None:
    filters = ExpressionFilters([rule(insert_value_expr="c = 1"),
                                 rule(update_old_value_expr="c = 1"),
                                 rule(delete_value_expr="c = 1")], False)
    with pytest.raises(KdmError, match=problem) as caught:
        filters.skips("expr_filter", "tbl", op, COLUMNS, before, after)
    assert caught.value.code == 36106


def test_evaluation_failures_are_coded() -> None:
    filters = ExpressionFilters([rule(insert_value_expr="c * 1e308 > 0")], False)
    assert filters.skips("expr_filter", "tbl", "INSERT", COLUMNS, None, (1, 1))
    overflow = ExpressionFilters([rule(insert_value_expr="c DIV 1e-320 > 0")], False)
    with pytest.raises(KdmError) as caught:
        overflow.skips("expr_filter", "tbl", "INSERT", COLUMNS, None, (1, 1))
    assert caught.value.code == 36106
