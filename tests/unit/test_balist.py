"""Block & allow lists: DM's evaluation order, system schemas, patterns."""

from __future__ import annotations

import pytest

from consumers.balist import SYSTEM_SCHEMAS, BAList, is_system_schema
from kdm.config.task import BAListRule, TableRef
from kdm.errors import KdmError

# Manual §5 worked example.
BW_RULE = BAListRule(
    do_dbs=("forum_backup_2018", "forum"),
    ignore_dbs=("~^forum_backup_",),
    do_tables=(TableRef("logs", "~_2018$"), TableRef("~^forum.*", "messages")),
    ignore_tables=(TableRef("~.*", "^messages.*"),),
)


@pytest.mark.parametrize(("schema", "table", "allowed"), [
    # schema `logs` is in no do-dbs entry (ignore-dbs is not consulted when do-dbs is set)
    ("logs", "messages_2016", False), ("logs", "messages_2017", False),
    ("logs", "messages_2018", False),
    # schema not in do-dbs
    ("forum_backup_2016", "messages", False), ("forum_backup_2017", "messages", False),
    # schema passes; do-tables is non-empty and nothing matches
    ("forum", "users", False),
    # schema passes; matches do-tables {~^forum.*, messages}
    ("forum", "messages", True), ("forum_backup_2018", "messages", True),
    # schema-level events only run the schema check
    ("forum", "", True), ("logs", "", False), ("forum_backup_2018", "", True),
])
def test_manual_worked_example(schema: str, table: str, allowed: bool) -> None:
    assert BAList(BW_RULE, False).allows(schema, table) is allowed


# Manual §5 config examples rule-1 and rule-2.
RULE_1 = BAListRule(do_dbs=("test*",), do_tables=(TableRef("test[123]", "t[1-5]"),
                                                  TableRef("test", "t")))
RULE_2 = BAListRule(do_dbs=("~^test.*",), ignore_dbs=("mysql",),
                    do_tables=(TableRef("~^test.*", "~^t.*"), TableRef("test", "t")),
                    ignore_tables=(TableRef("test", "log"),))


@pytest.mark.parametrize(("rule", "schema", "table", "allowed"), [
    (RULE_1, "test1", "t3", True), (RULE_1, "test4", "t3", False), (RULE_1, "test1", "t6", False),
    (RULE_1, "test", "t", True), (RULE_1, "test", "t1", False), (RULE_1, "other", "t", False),
    (RULE_2, "test_9", "tx", True), (RULE_2, "test", "log", False), (RULE_2, "prod", "t", False),
    # a do-tables match overrides ignore-tables
    (RULE_2, "test", "t", True),
])
def test_manual_rules(rule: BAListRule, schema: str, table: str, allowed: bool) -> None:
    assert BAList(rule, False).allows(schema, table) is allowed


@pytest.mark.parametrize(("rule", "schema", "table", "allowed"), [
    # ignore-dbs only: a match drops, anything else goes on to the table check
    (BAListRule(ignore_dbs=("tmp_*",)), "tmp_1", "t", False),
    (BAListRule(ignore_dbs=("tmp_*",)), "app", "t", True),
    (BAListRule(ignore_dbs=("tmp_*",)), "tmp_1", "", False),
    # ignore-tables only
    (BAListRule(ignore_tables=(TableRef("app", "log_*"),)), "app", "log_1", False),
    (BAListRule(ignore_tables=(TableRef("app", "log_*"),)), "app", "users", True),
    (BAListRule(ignore_tables=(TableRef("app", "log_*"),)), "other", "log_1", True),
    # do-tables only: the schema check passes, a schema-level event is kept
    (BAListRule(do_tables=(TableRef("app", "users"),)), "app", "users", True),
    (BAListRule(do_tables=(TableRef("app", "users"),)), "app", "orders", False),
    (BAListRule(do_tables=(TableRef("app", "users"),)), "other", "", True),
    # do-dbs with table lists: the schema check runs first
    (BAListRule(do_dbs=("app",), ignore_tables=(TableRef("app2", "t"),)), "app2", "t", False),
    # an empty rule allows everything
    (BAListRule(), "anything", "t", True),
])
def test_evaluation_order(rule: BAListRule, schema: str, table: str, allowed: bool) -> None:
    assert BAList(rule, False).allows(schema, table) is allowed


def test_ddl_database_name_from_the_statement() -> None:
    # Manual §5: `USE test_db_2; CREATE TABLE test_db_1.test_table` is replicated with
    # do-dbs [test_db_1]; the caller passes the DDL's own schema.
    balist = BAList(BAListRule(do_dbs=("test_db_1",)), False)
    assert balist.allows("test_db_1", "test_table")
    assert not balist.allows("test_db_2", "test_table")


@pytest.mark.parametrize("schema", [*sorted(SYSTEM_SCHEMAS), "MySQL", "INFORMATION_SCHEMA",
                                    "Performance_Schema", "SYS", "DM_HEARTBEAT"])
def test_system_schemas_are_always_filtered(schema: str) -> None:
    assert is_system_schema(schema)
    for balist in (BAList(None, False), BAList(BAListRule(do_dbs=("*",)), True)):
        assert not balist.allows(schema, "t")
        assert not balist.allows(schema, "")


def test_no_rule_allows_user_schemas() -> None:
    balist = BAList(None, False)
    assert balist.allows("app", "t") and balist.allows("app", "")
    assert balist.allows("mysql_app", "t") and not is_system_schema("sysbench")


def test_case_sensitivity() -> None:
    rule = BAListRule(do_dbs=("App",), do_tables=(TableRef("App", "Users"),))
    assert BAList(rule, False).allows("APP", "users")
    assert not BAList(rule, True).allows("app", "Users")
    assert BAList(rule, True).allows("App", "Users")


def test_results_are_cached() -> None:
    balist = BAList(BAListRule(do_dbs=("app",)), False)
    assert balist.allows("app", "t") and balist.allows("app", "t")
    assert balist._cache == {("app", "t"): True}


@pytest.mark.parametrize("rule", [
    BAListRule(do_dbs=("",)), BAListRule(ignore_dbs=("",)),
    BAListRule(do_tables=(TableRef("a", ""),)), BAListRule(ignore_tables=(TableRef("", "t"),)),
    BAListRule(do_dbs=("a*b",)), BAListRule(do_tables=(TableRef("~(", "t"),)),
])
def test_bad_rules_are_coded(rule: BAListRule) -> None:
    with pytest.raises(KdmError) as caught:
        BAList(rule, False)
    assert caught.value.code == 36101
