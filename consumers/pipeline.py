"""The per-record steps of a subtask, in DM's order, as one table so tests can swap a step.

ROW: block/allow list → binlog event filter → online DDL (shadow/trash tables) → table
routing → expression filter → a `RowChange` keyed by the downstream table's keys.
DDL: parse → per table: block/allow list → event filter (with sql-pattern) → online DDL →
routing rewrite → the statements to run downstream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from consumers.balist import BAList
from consumers.change import RowChange
from consumers.ddl import parse_ddl
from consumers.downstream import KeyCache
from consumers.event_filter import EventFilter
from consumers.expression import ExpressionFilters
from consumers.online_ddl import OnlineDDL
from consumers.routing import Router
from kdm.config.source import SourceConfig
from kdm.config.task import TaskConfig

Record = dict[str, Any]


@dataclass
class Rules:
    """The rules one subtask applies, built from task.yaml (and source.yaml's filters)."""

    balist: BAList
    events: EventFilter
    router: Router
    expressions: ExpressionFilters
    online: OnlineDDL | None

    @classmethod
    def build(cls, task: TaskConfig, source_id: str, source: SourceConfig | None = None
              ) -> Rules:
        """The rules of the task's mysql-instances entry for `source_id`."""
        inst = task.instance(source_id)
        sensitive = task.case_sensitive
        filters = [task.filters[name] for name in inst.filter_rules]
        if source is not None:
            filters = [*source.filters, *filters]
        balist_name = inst.block_allow_list or inst.black_white_list
        return cls(
            BAList(task.ba_lists().get(balist_name) if balist_name else None, sensitive),
            EventFilter(filters, sensitive),
            Router([task.routes[name] for name in inst.route_rules], sensitive),
            ExpressionFilters([task.expression_filter[name]
                               for name in inst.expression_filters], sensitive),
            OnlineDDL(task) if task.effective_online_ddl else None)


@dataclass(frozen=True)
class DDLAction:
    """What a DDL record becomes downstream: the statements to run (possibly none)."""

    statements: tuple[str, ...]
    query: str


@dataclass
class Pipeline:
    """Turns relay records into row changes and DDL actions."""

    rules: Rules
    keys: KeyCache
    steps: tuple[Callable[[Record], bool], ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.steps:
            self.steps = (self._allowed, self._not_filtered, self._not_shadow)

    def row(self, record: Record, offset: int) -> RowChange | None:
        """The row change a ROW record becomes, or None when a rule drops it."""
        for step in self.steps:
            if not step(record):
                return None
        schema, table = self.rules.router.target(record["schema"], record["table"])
        names = [c["name"] for c in record["columns"]]
        before, after = record["before"], record["after"]
        expressions = self.rules.expressions
        if expressions.covers(record["schema"], record["table"]) and expressions.skips(
                record["schema"], record["table"], record["op"], names, before, after,
                [c["type"] for c in record["columns"]]):
            return None
        key = self.keys.keys(schema, table).where_key
        return RowChange(schema, table, record["op"], tuple(names),
                         tuple(before) if before is not None else None,
                         tuple(after) if after is not None else None, key, offset)

    def ddl(self, record: Record) -> DDLAction:
        """What a DDL record becomes downstream."""
        statements: list[str] = []
        for ddl in parse_ddl(record["query"], record["schema"]):
            tables = ddl.tables
            if not all(self._ddl_allowed(s, t, ddl.event, record["query"]) for s, t in tables):
                continue
            rendered = self._online(ddl, record)
            if rendered is None:
                continue
            statements.extend(rendered)
        return DDLAction(tuple(statements), record["query"])

    def _online(self, ddl: Any, record: Record) -> list[str] | None:
        if self.rules.online is None:
            return [ddl.render(self._target)] if ddl.event else []
        return self.rules.online.ddl(ddl, self._target)

    def _target(self, schema: str, table: str) -> tuple[str, str]:
        if not table:
            return self.rules.router.target_schema(schema), ""
        return self.rules.router.target(schema, table)

    def _allowed(self, record: Record) -> bool:
        return self.rules.balist.allows(record["schema"], record["table"])

    def _not_filtered(self, record: Record) -> bool:
        return not self.rules.events.skips(record["schema"], record["table"],
                                           record["op"].lower())

    def _not_shadow(self, record: Record) -> bool:
        online = self.rules.online
        return online is None or not online.ignores_dml(record["schema"], record["table"])

    def _ddl_allowed(self, schema: str, table: str, event: str, query: str) -> bool:
        if table and self.rules.online is not None:
            table = self.rules.online.real_name(table)  # a ghost table's DDL is its table's
        if not self.rules.balist.allows(schema, table):
            return False
        return not (event and self.rules.events.skips(schema, table, event, query))
