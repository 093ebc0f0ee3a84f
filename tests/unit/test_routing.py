"""Table routing: levels, precedence, DM's one-rule-per-level error."""

from __future__ import annotations

import pytest

from consumers.routing import Router
from kdm.config.task import RouteRule
from kdm.errors import KdmError

# Manual §4: shard merge rules.
RULE_1 = RouteRule("test_*", "t_*", "test", "t")
RULE_2 = RouteRule("test_*", "", "test", "")
# Manual §4: the invalid example's third rule.
BAK_RULE = RouteRule("test_1_bak", "t_1_bak", "test", "t_bak")


@pytest.mark.parametrize(("schema", "table", "target"), [
    # rule-1 routes the sharded tables' DML/DDL
    ("test_1", "t_1", ("test", "t")), ("test_2", "t_3", ("test", "t")),
    # rule-2 routes the schema, keeping other tables' names
    ("test_1", "other", ("test", "other")),
    # schema-level (CREATE/DROP DATABASE)
    ("test_1", "", ("test", "")),
    # no rule: unchanged
    ("prod", "t_1", ("prod", "t_1")), ("prod", "", ("prod", "")),
])
def test_shard_merge(schema: str, table: str, target: tuple[str, str]) -> None:
    assert Router([RULE_1, RULE_2], False).target(schema, table) == target


def test_schema_merge_keeps_table_names() -> None:
    router = Router([RouteRule("test_*", "", "test", "")], False)
    assert router.target("test_3", "t_7") == ("test", "t_7")
    assert router.target_schema("test_3") == "test"
    assert router.target_schema("other") == "other"


def test_without_a_schema_rule_schema_ddl_keeps_its_name() -> None:
    # Manual §4: with only rule-1, CREATE DATABASE test_1 is not routed to `test`.
    router = Router([RULE_1], False)
    assert router.target_schema("test_1") == "test_1"
    assert router.target("test_1", "t_1") == ("test", "t")


def test_table_rule_beats_schema_rule() -> None:
    # Manual §4 [impl-note] 6: rule-0 (schema) with rule-1 (table) is fine.
    router = Router([RULE_2, RULE_1], False)
    assert router.target("test_1_bak", "t_1_bak") == ("test", "t")


def test_two_table_rules_for_one_table_is_dms_error() -> None:
    # Manual §4 invalid example: test_1_bak.t_1_bak matches rule-1 and rule-2.
    router = Router([RULE_2, RULE_1, BAK_RULE], False)
    assert router.target("test_2", "t_2") == ("test", "t")
    with pytest.raises(KdmError, match="matches 2 table-level route rules") as caught:
        router.target("test_1_bak", "t_1_bak")
    assert caught.value.code == 36103
    assert caught.value.fields["schema"] == "test_1_bak"


def test_two_schema_rules_for_one_schema_is_dms_error() -> None:
    router = Router([RouteRule("db_*", "", "a", ""), RouteRule("db_1*", "", "b", "")], False)
    assert router.target("db_2", "t") == ("a", "t")
    with pytest.raises(KdmError, match="matches 2 schema-level route rules") as caught:
        router.target_schema("db_1")
    assert caught.value.code == 36103
    with pytest.raises(KdmError):
        router.target("db_12", "t")


def test_schema_level_lookups_ignore_table_rules() -> None:
    router = Router([RouteRule("db", "*", "other", "t")], False)
    assert router.target_schema("db") == "db"
    assert router.target("db", "x") == ("other", "t")


def test_empty_targets_keep_names() -> None:
    router = Router([RouteRule("db", "t*", "db2", "")], False)
    assert router.target("db", "t9") == ("db2", "t9")


def test_schema_rule_with_target_table_renames_tables() -> None:
    router = Router([RouteRule("db", "", "db2", "merged")], False)
    assert router.target("db", "a") == ("db2", "merged")
    assert router.target("db", "") == ("db2", "")


def test_case_sensitivity() -> None:
    rules = [RouteRule("Test_*", "T_*", "Test", "T")]
    assert Router(rules, False).target("TEST_1", "t_1") == ("Test", "T")
    assert Router(rules, True).target("test_1", "t_1") == ("test_1", "t_1")
    assert Router(rules, True).target("Test_1", "T_1") == ("Test", "T")


def test_results_are_cached() -> None:
    router = Router([RULE_1], False)
    assert router.target("test_1", "t_1") is router.target("test_1", "t_1")


@pytest.mark.parametrize(("rules", "code"), [
    ([RouteRule("", "t", "db", "")], 36101),
    ([RouteRule("db", "t", "", "")], 36101),
    ([RouteRule("d*b", "", "db", "")], 36101),
    ([RouteRule("db", "t", "a", ""), RouteRule("DB", "T", "b", "")], 36102),
    ([RouteRule("db", "", "a", ""), RouteRule("db", "", "b", "")], 36102),
])
def test_bad_rules_are_coded(rules: list[RouteRule], code: int) -> None:
    with pytest.raises(KdmError) as caught:
        Router(rules, False)
    assert caught.value.code == code
