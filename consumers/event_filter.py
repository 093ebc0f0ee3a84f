"""Binlog event filter: drop events by type or by DDL text, per schema/table (manual §6).

Which rules match `S.T`: a schema-level rule (no `table-pattern`) matches every event of a
schema matching its `schema-pattern`, table events included; a table-level rule matches the
events of tables matching both patterns, and never a schema-level event (T is "": CREATE /
DROP / ALTER DATABASE), just as BA lists and routing never apply table entries to a schema.
Patterns are wildcards (no `~regex`, as in DM 5.3); `*` also matches the empty schema name
the sync unit passes for a statement it could not parse.

What one rule says about an event (tidb-tools `BinlogEvent.Filter`):

* Type test, for a known event type (not for the "" type of an unparseable statement):
  the event is *listed* when the rule's `events` list it. The list is read in order and the
  first entry that decides wins: `all` lists everything and `none` nothing; `all dml` /
  `none dml` decide only for insert/update/delete; `all ddl` / `none ddl` only for DDL;
  a plain name lists that event. A list with no deciding entry does not list the event.
* SQL test, only when the event has SQL text (DDL) and the rule has `sql-pattern`: the
  patterns, joined with `|` and compiled case-insensitively, are searched for in the text.
* `Ignore` rule: it vetoes the event when the event is listed, or its SQL matches.
  `Do` rule: it vetoes the event when the event is *not* listed (so a `Do` rule is an allow
  list: every event type it does not name is dropped), or when it has `sql-pattern` and the
  SQL matches none of them.

Combining rules ("Ignore wins"): the event is skipped when any consulted rule vetoes it, so
the order of rules never matters. Every matching `Ignore` rule is consulted. Of the matching
`Do` rules, only those of the most specific level are consulted: the table-level ones when
any matches the table, else the schema-level ones. DM consults every `Do` rule, which makes
the manual's own "migrate only DML" example drop all DML; the level rule is the deliberate
difference that makes that example work as the manual describes.

Worked example, the manual's "migrate only DML of sharded tables"::

    do-table-rule:  {schema-pattern: test_*, table-pattern: t_*,
                     events: [create table, all dml], action: Do}
    do-schema-rule: {schema-pattern: test_*, events: [create database], action: Do}

* INSERT into test_1.t_1: both rules match; only the table-level `Do` rule is consulted,
  `all dml` lists insert: kept. (DM would also consult do-schema-rule, which does not list
  insert, and drop it.)
* CREATE TABLE test_1.t_1: listed by do-table-rule: kept. DROP TABLE test_1.t_1: not
  listed: skipped.
* CREATE DATABASE test_1 (table ""): only do-schema-rule matches; listed: kept.
  DROP DATABASE test_1: not listed: skipped.
* INSERT into test_1.log: only do-schema-rule matches; insert not listed: skipped.
* Adding `{schema-pattern: test_*, events: [delete], action: Ignore}` skips DELETE on
  test_1.t_1 although do-table-rule lists it: Ignore wins across levels.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from consumers.patterns import NameMatcher, compile_pattern, refuse_duplicates
from kdm.config.common import BinlogEventRule
from kdm.errors import ERR_SYNC_FILTER_UNKNOWN_EVENT, ERR_SYNC_RULE_INVALID

DML, DDL = "dml", "ddl"
DML_EVENTS = frozenset({"insert", "update", "delete"})
DDL_EVENTS = frozenset({
    "create database", "drop database", "alter database", "create table", "create index",
    "drop table", "truncate table", "rename table", "drop index", "alter table",
    "create view", "drop view",
})
# tidb-tools' aliases.
ALIASES = {"create schema": "create database", "drop schema": "drop database",
           "add index": "create index"}
# Group entry -> (the event class it decides for, None = every class; whether it lists).
GROUPS: dict[str, tuple[str | None, bool]] = {
    "all": (None, True), "none": (None, False), "all dml": (DML, True),
    "none dml": (DML, False), "all ddl": (DDL, True), "none ddl": (DDL, False),
}
_KIND = {**{event: DML for event in DML_EVENTS}, **{event: DDL for event in DDL_EVENTS},
         "": ""}


@dataclass(frozen=True)
class _Rule:
    schema: NameMatcher
    table: NameMatcher | None
    events: tuple[str, ...]
    sql: re.Pattern[str] | None
    ignore: bool

    def applies(self, schema: str, table: str) -> bool:
        if not self.schema.matches(schema):
            return False
        return self.table is None or (bool(table) and self.table.matches(table))

    def vetoes(self, kind: str, event: str, sql: str) -> bool:
        if kind and listed(self.events, event, kind) == self.ignore:
            return True
        return bool(sql) and self.sql is not None and (
            (self.sql.search(sql) is not None) == self.ignore)


def listed(events: Sequence[str], event: str, kind: str) -> bool:
    """DM's `matchEvent`: whether `events` list `event` (of class `kind`); first decider wins."""
    for entry in events:
        group = GROUPS.get(entry)
        if group is None:
            if entry == event:
                return True
            continue
        scope, verdict = group
        if scope is None or scope == kind:
            return verdict
    return False


def event_kind(event: str) -> str:
    """The class of an event: dml, ddl, or "" for the type of an unparseable statement."""
    kind = _KIND.get(ALIASES.get(event, event))
    if kind is None:
        raise ERR_SYNC_FILTER_UNKNOWN_EVENT(event=event)
    return kind


class EventFilter:
    """A source's binlog event filter rules, compiled."""

    def __init__(self, rules: Sequence[BinlogEventRule], case_sensitive: bool) -> None:
        refuse_duplicates("binlog event filter",
                          [(r.schema_pattern, r.table_pattern) for r in rules], case_sensitive)
        self._rules = tuple(_compile(rule, case_sensitive) for rule in rules)
        self._cache: dict[tuple[str, str], tuple[_Rule, ...]] = {}

    def skips(self, schema: str, table: str, event: str, sql: str = "") -> bool:
        """Whether the event (a DM event name, "" when unparsed) on `schema.table` is dropped."""
        event = event.lower()
        kind = event_kind(event)
        event = ALIASES.get(event, event)
        return any(rule.vetoes(kind, event, sql) for rule in self._consulted(schema, table))

    def _consulted(self, schema: str, table: str) -> tuple[_Rule, ...]:
        key = (schema, table)
        if key not in self._cache:
            matching = [rule for rule in self._rules if rule.applies(schema, table)]
            ignores = [rule for rule in matching if rule.ignore]
            dos = ([r for r in matching if not r.ignore and r.table is not None]
                   or [r for r in matching if not r.ignore])
            self._cache[key] = (*ignores, *dos)
        return self._cache[key]


def _compile(rule: BinlogEventRule, case_sensitive: bool) -> _Rule:
    what = f"binlog event filter rule `{rule.schema_pattern}`.`{rule.table_pattern}`"
    if not rule.schema_pattern:
        raise ERR_SYNC_RULE_INVALID(what=what, problem="schema-pattern must not be empty")
    table = compile_pattern(rule.table_pattern, case_sensitive) if rule.table_pattern else None
    return _Rule(compile_pattern(rule.schema_pattern, case_sensitive), table,
                 tuple(_event_entry(event, what) for event in rule.events),
                 _sql_regex(rule.sql_pattern, what), rule.action == "Ignore")


def _event_entry(event: str, what: str) -> str:
    entry = event.lower()
    entry = ALIASES.get(entry, entry)
    if not entry or (entry not in GROUPS and entry not in _KIND):
        raise ERR_SYNC_RULE_INVALID(what=what, problem=f"unknown event type `{event}`")
    return entry


def _sql_regex(patterns: Sequence[str], what: str) -> re.Pattern[str] | None:
    if not patterns:
        return None
    try:
        return re.compile("|".join(patterns), re.IGNORECASE)
    except re.error as exc:
        raise ERR_SYNC_RULE_INVALID(exc, what=what,
                                    problem=f"sql-pattern is not a valid regex: {exc}") from exc
