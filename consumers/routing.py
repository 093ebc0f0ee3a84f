"""Table routing: upstream schema/table to downstream schema/table (manual §4).

A rule with a `table-pattern` is table-level; one without is schema-level. For `S.T`:

1. If T is not "" and some table-level rules match `S.T`, exactly one must match: it wins.
2. Otherwise the schema-level rules matching S decide; again at most one may match.
3. No matching rule: the name is kept. An empty `target-schema`/`target-table` keeps the
   upstream name, so a schema-level rule renames the schema and keeps the table name.

More than one match at the deciding level is DM's error "matches N route rules which is
more than one" (ERR_SYNC_ROUTE_CONFLICT). So `{test_*}→test` plus `{test_*.t_*}→test.t` is
fine (different levels), but adding `{test_1_bak.t_1_bak}→test.t_bak` is not: the table
`test_1_bak.t_1_bak` then matches two table-level rules. Patterns are wildcards (no `~regex`
in routing, as in DM 5.3); two rules with the same patterns are refused when the router is
built, as DM's rule selector does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from consumers.patterns import NameMatcher, compile_pattern, refuse_duplicates
from kdm.config.task import RouteRule
from kdm.errors import ERR_SYNC_ROUTE_CONFLICT, ERR_SYNC_RULE_INVALID


@dataclass(frozen=True)
class _Route:
    rule: RouteRule
    schema: NameMatcher
    table: NameMatcher | None

    def matches(self, schema: str, table: str) -> bool:
        if not self.schema.matches(schema):
            return False
        return self.table is None or self.table.matches(table)

    def describe(self) -> str:
        rule = self.rule
        source = f"`{rule.schema_pattern}`" + (f".`{rule.table_pattern}`"
                                               if rule.table_pattern else "")
        return f"{source} -> `{rule.target_schema}`.`{rule.target_table}`"


class Router:
    """A source's route rules, compiled."""

    def __init__(self, rules: Sequence[RouteRule], case_sensitive: bool) -> None:
        routes = [_compile(rule, case_sensitive) for rule in rules]
        refuse_duplicates("route", [(r.schema_pattern, r.table_pattern) for r in rules],
                          case_sensitive)
        self._table_routes = tuple(r for r in routes if r.table is not None)
        self._schema_routes = tuple(r for r in routes if r.table is None)
        self._cache: dict[tuple[str, str], tuple[str, str]] = {}

    def target(self, schema: str, table: str) -> tuple[str, str]:
        """The downstream (schema, table) of `schema.table`; table "" routes a schema."""
        key = (schema, table)
        if key not in self._cache:
            route = self._route(schema, table)
            self._cache[key] = (schema, table) if route is None else (
                route.rule.target_schema or schema,
                (route.rule.target_table or table) if table else "")
        return self._cache[key]

    def target_schema(self, schema: str) -> str:
        """The downstream schema for schema-level DDL (CREATE/DROP DATABASE)."""
        return self.target(schema, "")[0]

    def _route(self, schema: str, table: str) -> _Route | None:
        if table:
            found = [r for r in self._table_routes if r.matches(schema, table)]
            if found:
                return _only(found, "table", schema, table)
        found = [r for r in self._schema_routes if r.matches(schema, table)]
        return _only(found, "schema", schema, table) if found else None


def _compile(rule: RouteRule, case_sensitive: bool) -> _Route:
    what = f"route rule `{rule.schema_pattern}`.`{rule.table_pattern}`"
    if not rule.schema_pattern:
        raise ERR_SYNC_RULE_INVALID(what=what, problem="schema-pattern must not be empty")
    if not rule.target_schema:
        raise ERR_SYNC_RULE_INVALID(what=what, problem="target-schema must not be empty")
    table = compile_pattern(rule.table_pattern, case_sensitive) if rule.table_pattern else None
    return _Route(rule, compile_pattern(rule.schema_pattern, case_sensitive), table)


def _only(found: list[_Route], level: str, schema: str, table: str) -> _Route:
    if len(found) > 1:
        raise ERR_SYNC_ROUTE_CONFLICT(schema=schema, table=table, count=len(found), level=level,
                                      first=found[0].describe(), second=found[1].describe())
    return found[0]
