"""Binlog event filter: event types, groups, sql-pattern, Do/Ignore, rule levels."""

from __future__ import annotations

from typing import Literal

import pytest

from consumers.event_filter import DDL_EVENTS, DML_EVENTS, EventFilter, event_kind, listed
from kdm.config.common import FILTER_EVENTS, BinlogEventRule
from kdm.errors import KdmError


def rule(schema: str, table: str = "", events: tuple[str, ...] = (),
         sql: tuple[str, ...] = (), action: Literal["Do", "Ignore"] = "Ignore"
         ) -> BinlogEventRule:
    return BinlogEventRule(schema, table, events, sql, action)


# Manual §6: "filter all deletes on sharded tables".
DELETES = [rule("test_*", "t_*", ("truncate table", "drop table", "delete")),
           rule("test_*", "", ("drop database",))]
# Manual §6: "migrate only DML of sharded tables".
ONLY_DML = [rule("test_*", "t_*", ("create table", "all dml"), action="Do"),
            rule("test_*", "", ("create database",), action="Do")]
# Manual §6: procedures and partition DDL.
PROCEDURES = [rule("test_*", "t_*", sql=("^DROP\\s+PROCEDURE", "^CREATE\\s+PROCEDURE"))]
PARTITIONS = [rule("*", sql=("ALTER\\s+TABLE[\\s\\S]*ADD\\s+PARTITION",
                             "ALTER\\s+TABLE[\\s\\S]*DROP\\s+PARTITION"))]


@pytest.mark.parametrize(("schema", "table", "event", "skipped"), [
    ("test_1", "t_1", "delete", True), ("test_1", "t_1", "truncate table", True),
    ("test_1", "t_1", "drop table", True), ("test_1", "", "drop database", True),
    ("test_1", "t_1", "insert", False), ("test_1", "t_1", "update", False),
    ("test_1", "t_1", "alter table", False), ("test_1", "", "create database", False),
    ("test_1", "other", "delete", False), ("prod", "t_1", "delete", False),
])
def test_manual_filter_all_deletes(schema: str, table: str, event: str, skipped: bool) -> None:
    assert EventFilter(DELETES, False).skips(schema, table, event) is skipped


@pytest.mark.parametrize(("schema", "table", "event", "skipped"), [
    # table-level Do rule decides for the sharded tables
    ("test_1", "t_1", "insert", False), ("test_1", "t_1", "update", False),
    ("test_1", "t_1", "delete", False), ("test_1", "t_1", "create table", False),
    ("test_1", "t_1", "drop table", True), ("test_1", "t_1", "alter table", True),
    ("test_1", "t_1", "truncate table", True),
    # schema-level events: only the schema-level Do rule matches
    ("test_1", "", "create database", False), ("test_1", "", "drop database", True),
    # other tables of the schema: the schema-level Do rule decides
    ("test_1", "log", "insert", True), ("test_1", "log", "create table", True),
    # other schemas: no rule
    ("prod", "t_1", "drop table", False),
])
def test_manual_only_dml(schema: str, table: str, event: str, skipped: bool) -> None:
    assert EventFilter(ONLY_DML, False).skips(schema, table, event) is skipped


@pytest.mark.parametrize(("rules", "schema", "table", "event", "sql", "skipped"), [
    (PROCEDURES, "test_1", "t_1", "", "DROP PROCEDURE p1", True),
    (PROCEDURES, "test_1", "t_1", "", "create   procedure p1()", True),  # case-insensitive
    (PROCEDURES, "test_1", "t_1", "alter table", "ALTER TABLE t_1 ADD c INT", False),
    (PROCEDURES, "test_1", "t_1", "insert", "", False),
    (PARTITIONS, "test_1", "t_1", "alter table",
     "ALTER TABLE t_1 ADD PARTITION (PARTITION p3 VALUES LESS THAN (30))", True),
    (PARTITIONS, "test_1", "t_1", "alter table", "ALTER TABLE t_1\nDROP PARTITION p1", True),
    (PARTITIONS, "test_1", "t_1", "alter table", "ALTER TABLE t_1 ADD COLUMN c INT", False),
    # unparseable statements reach the filter with schema "" and type ""
    (PARTITIONS, "", "", "", "ALTER TABLE t ADD PARTITION p", True),
    (PARTITIONS, "", "", "", "CREATE TRIGGER x", False),
])
def test_manual_sql_patterns(rules: list[BinlogEventRule], schema: str, table: str, event: str,
                             sql: str, skipped: bool) -> None:
    assert EventFilter(rules, False).skips(schema, table, event, sql) is skipped


def test_sql_pattern_search_is_unanchored() -> None:
    rules = [rule("db", sql=("PROCEDURE",))]
    assert EventFilter(rules, False).skips("db", "t", "", "DROP PROCEDURE p")


@pytest.mark.parametrize(("events", "event", "is_listed"), [
    (("all",), "insert", True), (("all",), "drop table", True),
    (("none",), "insert", False), (("none",), "create table", False),
    (("all dml",), "delete", True), (("all dml",), "create table", False),
    (("all ddl",), "create view", True), (("all ddl",), "update", False),
    (("none dml", "insert"), "insert", False),   # first deciding entry wins
    (("insert", "none dml"), "insert", True),
    (("none ddl", "insert"), "insert", True),    # `none ddl` does not decide for DML
    (("none", "all"), "insert", False), (("all", "none"), "insert", True),
    (("truncate table",), "truncate table", True), (("truncate table",), "drop table", False),
    ((), "insert", False),
])
def test_listed_follows_dms_match_event(events: tuple[str, ...], event: str,
                                        is_listed: bool) -> None:
    assert listed(events, event, event_kind(event)) is is_listed


@pytest.mark.parametrize(("action", "event", "skipped"), [
    # Ignore: listed events are skipped; Do: unlisted events are skipped.
    ("Ignore", "insert", True), ("Ignore", "delete", False),
    ("Do", "insert", False), ("Do", "delete", True), ("Do", "create table", True),
])
def test_do_is_an_allow_list_and_ignore_a_block_list(action: Literal["Do", "Ignore"],
                                                     event: str, skipped: bool) -> None:
    rules = [rule("db", "t", ("insert",), action=action)]
    assert EventFilter(rules, False).skips("db", "t", event) is skipped


@pytest.mark.parametrize(("sql", "skipped"), [
    ("CREATE TABLE t (a INT)", False), ("DROP TABLE t", True),
])
def test_do_rule_with_sql_pattern_needs_a_match(sql: str, skipped: bool) -> None:
    rules = [rule("db", "t", ("all ddl",), ("^CREATE",), action="Do")]
    assert EventFilter(rules, False).skips("db", "t", "create table", sql) is skipped


def test_do_rule_without_events_vetoes_known_types() -> None:
    rules = [rule("db", sql=("^CREATE",), action="Do")]
    assert EventFilter(rules, False).skips("db", "t", "insert")
    assert EventFilter(rules, False).skips("db", "t", "create table", "CREATE TABLE t (a INT)")
    assert not EventFilter(rules, False).skips("db", "t", "", "CREATE TRIGGER x")


def test_ignore_wins_across_levels() -> None:
    rules = [*ONLY_DML, rule("test*", "", ("delete",))]
    event_filter = EventFilter(rules, False)
    assert event_filter.skips("test_1", "t_1", "delete")
    assert not event_filter.skips("test_1", "t_1", "insert")


def test_ignore_wins_within_a_level() -> None:
    rules = [rule("db", "t*", ("all dml",), action="Do"), rule("db", "t1", ("update",))]
    event_filter = EventFilter(rules, False)
    assert event_filter.skips("db", "t1", "update")
    assert not event_filter.skips("db", "t2", "update")


def test_rule_order_does_not_matter() -> None:
    for rules in (DELETES, ONLY_DML):
        forward, backward = EventFilter(rules, False), EventFilter(rules[::-1], False)
        for event in sorted(DML_EVENTS | DDL_EVENTS):
            for table in ("t_1", "x", ""):
                assert forward.skips("test_1", table, event) == backward.skips(
                    "test_1", table, event)


def test_do_rules_of_one_level_all_apply() -> None:
    rules = [rule("db", "t*", ("insert", "update"), action="Do"),
             rule("db", "t1*", ("insert",), action="Do")]
    event_filter = EventFilter(rules, False)
    assert event_filter.skips("db", "t1", "update")
    assert not event_filter.skips("db", "t1", "insert")
    assert not event_filter.skips("db", "t2", "update")


def test_table_rules_do_not_match_schema_events() -> None:
    event_filter = EventFilter([rule("db", "*", ("all",))], False)
    assert event_filter.skips("db", "t", "create table")
    assert not event_filter.skips("db", "", "drop database")


def test_event_names_aliases_and_case() -> None:
    rules = [rule("db", "", ("Create Schema", "ADD INDEX", "drop schema"))]
    event_filter = EventFilter(rules, False)
    assert event_filter.skips("db", "", "create database")
    assert event_filter.skips("db", "t", "create index")
    assert event_filter.skips("DB", "", "DROP SCHEMA")
    assert not event_filter.skips("db", "t", "drop index")


def test_case_sensitive_patterns() -> None:
    rules = [rule("Db", "T", ("all",))]
    assert EventFilter(rules, False).skips("db", "t", "insert")
    assert not EventFilter(rules, True).skips("db", "t", "insert")
    assert EventFilter(rules, True).skips("Db", "T", "insert")


def test_no_rules_skip_nothing() -> None:
    assert not EventFilter([], False).skips("db", "t", "drop table", "DROP TABLE t")


@pytest.mark.parametrize("event", sorted(DML_EVENTS | DDL_EVENTS))
def test_every_event_is_known(event: str) -> None:
    assert event in FILTER_EVENTS
    assert EventFilter([rule("db", "t", ("all",))], False).skips("db", "t", event)
    assert not EventFilter([rule("db", "t", ("none",))], False).skips("db", "t", event)


def test_unknown_event_at_filter_time_is_coded() -> None:
    with pytest.raises(KdmError) as caught:
        EventFilter([], False).skips("db", "t", "create trigger")
    assert caught.value.code == 36104


@pytest.mark.parametrize(("rules", "code"), [
    ([rule("db", "t", ("create trigger",))], 36101),
    ([rule("db", "t", ("",))], 36101),
    ([rule("db", "t", sql=("(",))], 36101),
    ([rule("", "t", ("all",))], 36101),
    ([rule("d*b", "t", ("all",))], 36101),
    ([rule("db", "t", ("insert",)), rule("DB", "T", ("delete",))], 36102),
])
def test_bad_rules_are_coded(rules: list[BinlogEventRule], code: int) -> None:
    with pytest.raises(KdmError) as caught:
        EventFilter(rules, False)
    assert caught.value.code == code
