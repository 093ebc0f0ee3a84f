"""Block & allow lists: which schemas and tables a source migrates (manual §5).

Is `S.T` migrated? DM's order, exactly:

1. A system schema is never migrated, whatever the rule says: `mysql`, `sys`,
   `information_schema`, `performance_schema`, `metrics_schema`, `inspection_schema` and
   DM's own `dm_heartbeat`, compared case-insensitively (DM's `skipByTable` tests
   `filter.IsSystemSchema` before the list).
2. Schema check: when `do-dbs` is non-empty, S must match one of its entries; otherwise, when
   `ignore-dbs` is non-empty, S must match none of its entries. (`ignore-dbs` is not
   consulted at all when `do-dbs` is set.)
3. Table check, skipped for a schema-level event (T is ""): when `do-tables` is non-empty,
   `S.T` must match one of its entries; otherwise it must match no `ignore-tables` entry.
   (A `do-tables` match therefore overrides `ignore-tables`.)

No rule, or a rule with all four lists empty, migrates everything but the system schemas.
Entries are wildcards or `~regex`es (see `consumers.patterns`); a table entry matches when
its `db-name` matches S and its `tbl-name` matches T. Results are cached per name pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from consumers.patterns import NameMatcher, compile_pattern
from kdm.config.task import BAListRule, TableRef
from kdm.errors import ERR_SYNC_RULE_INVALID

SYSTEM_SCHEMAS = frozenset({
    "mysql", "sys", "information_schema", "performance_schema", "metrics_schema",
    "inspection_schema", "dm_heartbeat",
})


def is_system_schema(schema: str) -> bool:
    """Whether DM always filters `schema` (case-insensitive)."""
    return schema.lower() in SYSTEM_SCHEMAS


@dataclass(frozen=True)
class _TableEntry:
    schema: NameMatcher
    table: NameMatcher

    def matches(self, schema: str, table: str) -> bool:
        return self.schema.matches(schema) and self.table.matches(table)


class BAList:
    """One source's block & allow list, compiled."""

    def __init__(self, rule: BAListRule | None, case_sensitive: bool) -> None:
        rule = rule or BAListRule()
        self._do_dbs = _schemas(rule.do_dbs, "do-dbs", case_sensitive)
        self._ignore_dbs = _schemas(rule.ignore_dbs, "ignore-dbs", case_sensitive)
        self._do_tables = _tables(rule.do_tables, "do-tables", case_sensitive)
        self._ignore_tables = _tables(rule.ignore_tables, "ignore-tables", case_sensitive)
        self._cache: dict[tuple[str, str], bool] = {}

    def allows(self, schema: str, table: str) -> bool:
        """Whether `schema.table` (or the schema itself, when `table` is "") is migrated."""
        key = (schema, table)
        if key not in self._cache:
            self._cache[key] = (not is_system_schema(schema) and self._schema_allowed(schema)
                                and self._table_allowed(schema, table))
        return self._cache[key]

    def _schema_allowed(self, schema: str) -> bool:
        if self._do_dbs:
            return any(entry.matches(schema) for entry in self._do_dbs)
        return not any(entry.matches(schema) for entry in self._ignore_dbs)

    def _table_allowed(self, schema: str, table: str) -> bool:
        if not table:
            return True
        if self._do_tables:
            return any(entry.matches(schema, table) for entry in self._do_tables)
        return not any(entry.matches(schema, table) for entry in self._ignore_tables)


def _schemas(patterns: Sequence[str], key: str, case_sensitive: bool) -> tuple[NameMatcher, ...]:
    for pattern in patterns:
        _refuse_empty(pattern, key)
    return tuple(compile_pattern(p, case_sensitive, allow_regex=True) for p in patterns)


def _tables(refs: Sequence[TableRef], key: str, case_sensitive: bool) -> tuple[_TableEntry, ...]:
    for ref in refs:
        _refuse_empty(ref.db_name, f"{key} db-name")
        _refuse_empty(ref.tbl_name, f"{key} tbl-name")
    return tuple(_TableEntry(compile_pattern(ref.db_name, case_sensitive, allow_regex=True),
                             compile_pattern(ref.tbl_name, case_sensitive, allow_regex=True))
                 for ref in refs)


def _refuse_empty(pattern: str, key: str) -> None:
    if not pattern:
        raise ERR_SYNC_RULE_INVALID(what=f"block-allow-list {key} entry",
                                    problem="the pattern must not be empty")
