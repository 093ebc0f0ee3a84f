"""The per-record steps of a subtask, in DM's order.

ROW: block/allow list → binlog event filter → online DDL (shadow/trash tables) → table
routing → expression filter → a `RowChange` keyed by the downstream table's keys.
DDL: parse → per table: block/allow list → event filter (with sql-pattern) → online DDL →
routing rewrite → the statements to run downstream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from consumers.balist import BAList
from consumers.change import RowChange
from consumers.ddl import parse_ddl
from consumers.downstream import KeyCache
from consumers.event_filter import EventFilter
from consumers.expression import ExpressionFilters
from consumers.feed import Layout
from consumers.online_ddl import OnlineDDL
from consumers.routing import Router
from kdm.config.source import SourceConfig
from kdm.config.task import TaskConfig
from kdm.errors import KdmError

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


@dataclass(frozen=True)
class _Plan:
    """What the rules decide for one upstream table, operation and column list: static for
    a subtask's life (the rules are fixed and online DDL tells ghost tables by name)."""

    schema: str
    table: str
    names: tuple[str, ...]
    filtered: bool


@dataclass
class Pipeline:
    """Turns relay records into row changes and DDL actions."""

    rules: Rules
    keys: KeyCache
    _plans: dict[tuple[str, str, str], tuple[list[Any], _Plan | None]] = field(
        default_factory=dict)
    # the last layout and its plan: rows come in runs of one layout object (`Feed.layouts`)
    _last: tuple[Layout | None, _Plan | None] = (None, None)

    def row(self, record: Record, offset: int) -> RowChange | None:
        """The row change a ROW record becomes, or None when a rule drops it."""
        return self.change(Layout(record["schema"], record["table"], record["op"],
                                  record["columns"]), record["before"], record["after"],
                           offset)

    def change(self, layout: Layout, before: list[Any] | None, after: list[Any] | None,
               offset: int) -> RowChange | None:
        """The row change a ROW record of this layout and images becomes, or None."""
        last, plan = self._last
        if last is not layout:
            plan = self._layout_plan(layout)
            self._last = (layout, plan)
        if plan is None:
            return None
        if plan.filtered and self.rules.expressions.skips(
                layout.schema, layout.table, layout.op, list(plan.names), before, after,
                [c["type"] for c in layout.columns]):
            return None
        key = self.keys.keys(plan.schema, plan.table).where_key
        return RowChange(plan.schema, plan.table, layout.op, plan.names,
                         tuple(before) if before is not None else None,
                         tuple(after) if after is not None else None, key, offset)

    def _layout_plan(self, layout: Layout) -> _Plan | None:
        slot = (layout.schema, layout.table, layout.op)
        cached = self._plans.get(slot)
        if cached is None or cached[0] is not layout.columns:
            cached = self._plans[slot] = (layout.columns, self._plan(layout))
        return cached[1]

    def _plan(self, layout: Layout) -> _Plan | None:
        """DM's order: block/allow list, event filter, online DDL, routing; then whether an
        expression filter must look at the rows."""
        if len(self._plans) > 10_000:  # column lists of tables long gone
            self._plans.clear()
        schema, table = layout.schema, layout.table
        online = self.rules.online
        if not self.rules.balist.allows(schema, table) or \
                self.rules.events.skips(schema, table, layout.op.lower()) or \
                (online is not None and online.ignores_dml(schema, table)):
            return None
        target_schema, target_table = self.rules.router.target(schema, table)
        return _Plan(target_schema, target_table, tuple(c["name"] for c in layout.columns),
                     self.rules.expressions.covers(schema, table))

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

    def replacement(self, record: Record, sqls: tuple[str, ...]) -> tuple[str, ...]:
        """`handle-error replace`'s statements for the DDL `record`, as they run downstream.

        As in DM each is written against the upstream table and routed like the DDL it
        replaces; one that names no table this task migrates (or that kdm cannot parse)
        runs as written."""
        statements: list[str] = []
        for sql in sqls:
            try:
                routed = self.ddl({**record, "query": sql}).statements
            except KdmError:
                routed = ()
            statements.extend(routed or (sql,))
        return tuple(statements)

    def _online(self, ddl: Any, record: Record) -> list[str] | None:
        if self.rules.online is None:
            return [ddl.render(self._target)] if ddl.event else []
        return self.rules.online.ddl(ddl, self._target)

    def _target(self, schema: str, table: str) -> tuple[str, str]:
        if not table:
            return self.rules.router.target_schema(schema), ""
        return self.rules.router.target(schema, table)

    def _ddl_allowed(self, schema: str, table: str, event: str, query: str) -> bool:
        if table and self.rules.online is not None:
            table = self.rules.online.real_name(table)  # a ghost table's DDL is its table's
        if not self.rules.balist.allows(schema, table):
            return False
        return not (event and self.rules.events.skips(schema, table, event, query))
