"""The task precheck, DM's `check-task`: are the upstreams ready for this task?

`check_task(task, sources)` works in four steps:

1. Choose the items: every name of DM's `ignore-checking-items` list, less the ones the task
   ignores (`all` ignores every one) and the ones its task-mode does not need, as DM's
   CheckSyncConfig decides: `full` skips the replication items (server_id, binlog_*,
   replication_privilege); `incremental` skips dump_privilege and the shard items, because
   SHOW CREATE TABLE gives today's schema, not the one at the binlog start point. The shard
   items also need a shard-mode.
2. Per source: connect (an unreachable upstream is one failed item, not an exception) and
   run the per-source items of `precheck_items.SOURCE_ITEMS` on the tables the source's
   block-allow list selects.
3. Shard merges: the tables that the sources' routes send to one target (two or more) are
   compared: schema_of_shard_tables and auto_increment_ID, one DM checker per target.
4. Answer as dmctl does. Every item passed: `{"result": true, "msg": "check pass!!!"}`.
   Otherwise `msg` is the checker result as JSON, DM's shape::

       {"results": [{"id": 2, "name": "mysql_binlog_format", "state": "fail",
                     "desc": "check whether mysql binlog_format is ROW",
                     "errors": [{"severity": "fail",
                                 "short_error": "binlog_format is MIXED, and should be ROW"}],
                     "instruction": "please execute 'set global binlog_format=ROW;'",
                     "extra": "address of db instance - 127.0.0.1:3306"}],
        "summary": {"passed": false, "total": 9, "successful": 8, "failed": 1, "warning": 0}}

   `results` holds only failed and warned items, cut to `error_limit` failures and
   `warn_limit` warnings (dmctl's --error/--warn); `summary` counts every item. Warnings
   alone still pass (`result` true) with DM's msg "fail to check synchronization
   configuration with type: no errors but some warnings\\n detail: <json>".
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from coordinator.precheck_items import (
    SOURCE_ITEMS,
    Finding,
    MySQLUpstream,
    Problem,
    SourceView,
    State,
    Upstream,
    fail,
    qualified,
    warn,
)
from kdm.config.source import SourceConfig
from kdm.config.task import BAListRule, MySQLInstance, RouteRule, TaskConfig, resolve_units
from kdm.errors import KdmError
from kdm.schema_join import join
from kdm.schema_table import Column, TableSchema
from kdm.schema_types import canonical_type

PASS_MSG = "check pass!!!"
MSG_HEADER = "fail to check synchronization configuration with type"
SHARD_ITEMS = ("schema_of_shard_tables", "auto_increment_ID")
ITEMS = (*SOURCE_ITEMS, *SHARD_ITEMS)
MODE_SKIPS: dict[str, frozenset[str]] = {
    "full": frozenset({"server_id", "binlog_enable", "binlog_format", "binlog_row_image",
                       "binlog_row_metadata", "replication_privilege"}),
    "incremental": frozenset({"dump_privilege", *SHARD_ITEMS}),
    "all": frozenset(),
}
CONNECTION_ITEM = ("source db connection checker", "check the connection to the source DB")
AUTO_INCREMENT_EXTRA = "auto-increment key checking"
AUTO_INCREMENT_INSTRUCTION = (
    "If happen conflict, please handle it by yourself. You can refer to https://docs.pingcap."
    "com/tidb-data-migration/stable/shard-merge-best-practices/#handle-conflicts-between-primary"
    "-keys-or-unique-indexes-across-multiple-sharded-tables")

Connector = Callable[[SourceConfig], Upstream]


def check_task(task: TaskConfig, sources: Mapping[str, SourceConfig], error_limit: int = 10,
               warn_limit: int = 10) -> dict[str, Any]:
    """Run the precheck of `task` against its sources (every source of the task must be in
    `sources`); dmctl's check-task answer."""
    return run_precheck(task, sources, MySQLUpstream.open, error_limit, warn_limit)


def run_precheck(task: TaskConfig, sources: Mapping[str, SourceConfig], connect: Connector,
                 error_limit: int = 10, warn_limit: int = 10) -> dict[str, Any]:
    """`check_task` reaching each upstream through `connect` (tests give in-memory ones)."""
    items = enabled_items(task)
    if not items:
        return {"result": True, "msg": PASS_MSG}
    with ExitStack() as stack:
        results = [check.result() for check in _checks(task, sources, connect, items, stack)]
    return answer(results, error_limit, warn_limit)


def enabled_items(task: TaskConfig) -> frozenset[str]:
    """The items to run: all, less the ignored ones and those the task-mode does not need."""
    ignored = set(task.ignore_checking_items)
    if "all" in ignored:
        return frozenset()
    return frozenset(ITEMS) - ignored - MODE_SKIPS[task.task_mode]


# -- results and the answer -----------------------------------------------------------------

@dataclass(frozen=True)
class Result:
    """DM's checker result of one item."""

    name: str
    desc: str
    state: State
    errors: tuple[Problem, ...] = ()
    instruction: str = ""
    extra: str = ""

    def to_dict(self, index: int) -> dict[str, Any]:
        """DM's JSON form; empty errors, instruction and extra are left out, as DM does."""
        found: dict[str, Any] = {"id": index, "name": self.name, "desc": self.desc,
                                 "state": self.state.value}
        if self.errors:
            found["errors"] = [p.to_dict() for p in self.errors]
        found.update((k, v) for k, v in (("instruction", self.instruction),
                                         ("extra", self.extra)) if v)
        return found


def judged(problems: Iterable[Problem]) -> State:
    """fail when any problem fails, warn when any warns, else success."""
    severities = {p.severity for p in problems}
    return next((s for s in (State.FAIL, State.WARN) if s in severities), State.SUCCESS)


@dataclass(frozen=True)
class Check:
    """An item ready to run: DM's name, description and extra, and what finds its problems."""

    name: str
    desc: str
    extra: str
    run: Callable[[], Finding]

    def result(self) -> Result:
        """Run the item; a coded error on the way fails it with the error's text, as DM does."""
        try:
            found = self.run()
        except KdmError as exc:
            found = Finding((fail(str(exc)),))
        return Result(self.name, self.desc, judged(found.problems), found.problems,
                      found.instruction, found.extra or self.extra)


def answer(results: Sequence[Result], error_limit: int, warn_limit: int) -> dict[str, Any]:
    """dmctl's check-task answer for the results (see the module docstring)."""
    counts = Counter(result.state for result in results)
    summary = {"passed": counts[State.FAIL] == 0, "total": len(results),
               "successful": counts[State.SUCCESS], "failed": counts[State.FAIL],
               "warning": counts[State.WARN]}
    if counts[State.SUCCESS] == len(results):
        return {"result": True, "msg": PASS_MSG}
    detail = json.dumps({"results": shown(results, error_limit, warn_limit),
                         "summary": summary}, indent="\t", ensure_ascii=False)
    if counts[State.FAIL]:
        return {"result": False, "msg": detail}
    return {"result": True, "msg": f"{MSG_HEADER}: no errors but some warnings\n detail: {detail}"}


def shown(results: Sequence[Result], error_limit: int, warn_limit: int) -> list[dict[str, Any]]:
    """The failed and warned results in DM's JSON form, keeping at most `error_limit` fail
    and `warn_limit` warn entries in id order; a result whose entries are all cut is left out
    (DM's Checker.Process). A result that is not a success always has entries."""
    left = {State.FAIL: error_limit, State.WARN: warn_limit}
    found = []
    for index, result in enumerate(results):
        kept = tuple(p for p in result.errors if _take(left, p))
        if kept:
            found.append(replace(result, errors=kept).to_dict(index))
    return found


def _take(left: dict[State, int], problem: Problem) -> bool:
    if left[problem.severity] <= 0:
        return False
    left[problem.severity] -= 1
    return True


# -- assembling the checks ------------------------------------------------------------------

def _checks(task: TaskConfig, sources: Mapping[str, SourceConfig], connect: Connector,
            items: frozenset[str], stack: ExitStack) -> list[Check]:
    checks: list[Check] = []
    views: list[SourceView] = []
    for inst in task.mysql_instances:
        opened = _open(task, inst, sources[inst.source_id], connect, stack)
        if isinstance(opened, Check):
            checks.append(opened)
            continue
        views.append(opened)
        checks += [Check(spec.name, spec.desc, opened.extra, partial(spec.run, opened))
                   for key, spec in SOURCE_ITEMS.items() if key in items]
    if task.effective_shard_mode and items & set(SHARD_ITEMS):
        checks += _shard_checks(task, views, items)
    return checks


def _open(task: TaskConfig, inst: MySQLInstance, source: SourceConfig, connect: Connector,
          stack: ExitStack) -> SourceView | Check:
    """The source's view, or the failed connection item when the upstream is unreachable."""
    address = f"{source.from_.host}:{source.from_.port}"
    try:
        upstream = connect(source)
    except KdmError as exc:
        return Check(*CONNECTION_ITEM, f"address of db instance - {address}", _failed(exc))
    stack.callback(upstream.close)
    rules = TableRules.of(task, inst)
    return SourceView(inst.source_id, address, upstream, rules.select,
                      resolve_units(task, inst).mydumper.consistency())


def _failed(exc: KdmError) -> Callable[[], Finding]:
    """An item's run that reports `exc`, for items that cannot start."""
    return partial(Finding, (fail(str(exc)),))


def _shard_checks(task: TaskConfig, views: Sequence[SourceView],
                  items: frozenset[str]) -> list[Check]:
    optimistic = task.effective_shard_mode == "optimistic"
    parts = ShardParts("schema_of_shard_tables" in items, "auto_increment_ID" in items,
                       optimistic)
    checks, listed = [], []
    for view in views:
        try:
            view.tables()
            listed.append(view)
        except KdmError as exc:
            checks.append(Check("sharding table consistency checking", "check consistency of "
                                "sharding table structures", view.extra, _failed(exc)))
    for target, shards in shard_groups(listed).items():
        name, desc, extra = shard_item(target, optimistic)
        checks.append(Check(name, desc, extra, partial(check_shards, target, shards, parts)))
    return checks


# -- shard merges: schema_of_shard_tables and auto_increment_ID -----------------------------

@dataclass(frozen=True)
class Shard:
    """One upstream table of a shard group."""

    view: SourceView
    schema: str
    table: str

    @property
    def label(self) -> str:
        """DM's `sourceID <id> table <table>`."""
        return f"sourceID {self.view.source_id} table {qualified(self.schema, self.table)}"


@dataclass(frozen=True)
class ShardParts:
    """What the shard-group check looks at; DM checks both parts in one checker."""

    consistency: bool
    auto_increment: bool
    optimistic: bool


def shard_groups(views: Iterable[SourceView]) -> dict[tuple[str, str], list[Shard]]:
    """The targets that more than one upstream table routes to, with those tables."""
    groups: dict[tuple[str, str], list[Shard]] = {}
    for view in views:
        for (schema, table), target in view.tables().items():
            groups.setdefault(target, []).append(Shard(view, schema, table))
    return {target: shards for target, shards in groups.items() if len(shards) > 1}


def shard_item(target: tuple[str, str], optimistic: bool) -> tuple[str, str, str]:
    """DM's (name, desc, extra) of the check of one target."""
    name = qualified(*target)
    if optimistic:
        return (f"optimistic sharding table {name} consistency checking", "check consistency "
                "of sharding table structures for Optimistic Sharding Merge", f"sharding {name}")
    return (f"sharding table {name} consistency checking",
            "check consistency of sharding table structures", f"sharding {name}")


def check_shards(target: tuple[str, str], shards: Sequence[Shard], parts: ShardParts) -> Finding:
    """The tables merged into `target` have one structure (pessimistic: the same columns in the
    same order with the same types, and the same primary and unique keys; optimistic: a join
    exists), and auto-increment columns are pointed out since their values may collide."""
    name = qualified(*target)
    structures, problems = _structures(shards)
    if parts.auto_increment:
        problems += [warn(f"{shard.label} of sharding {name} have auto-increment key, please "
                          "make sure them don't conflict in target table!")
                     for shard, structure in structures
                     if any(column.auto_increment for column in structure.columns)]
    mismatches = _mismatches(structures, parts.optimistic) if parts.consistency else []
    if mismatches:
        return Finding((*problems, *mismatches),
                       "please set same table structure for sharding tables",
                       f"error on sharding {name}")
    if any(p.severity is State.WARN for p in problems):
        return Finding(tuple(problems), AUTO_INCREMENT_INSTRUCTION, AUTO_INCREMENT_EXTRA)
    return Finding(tuple(problems))


def _structures(shards: Sequence[Shard]) -> tuple[list[tuple[Shard, TableSchema]],
                                                   list[Problem]]:
    found: list[tuple[Shard, TableSchema]] = []
    problems: list[Problem] = []
    for shard in shards:
        try:
            found.append((shard, shard.view.structure(shard.schema, shard.table)))
        except KdmError as exc:
            problems.append(fail(f"{shard.label}: {exc.message}"))
    return found, problems


def _mismatches(structures: Sequence[tuple[Shard, TableSchema]],
                optimistic: bool) -> list[Problem]:
    if len(structures) < 2:
        return []
    if optimistic:
        try:
            join([structure for _, structure in structures])
        except KdmError as exc:
            return [fail(exc.message)]
        return []
    found = (_compare(structures[0], other) for other in structures[1:])
    return [problem for problem in found if problem is not None]


def _compare(first: tuple[Shard, TableSchema], other: tuple[Shard, TableSchema]) -> Problem | None:
    """DM's pessimistic comparison of a shard with the first one, plus the keys."""
    (mine, a), (theirs, b) = first, other
    columns_a, columns_b = [_brief(c) for c in a.columns], [_brief(c) for c in b.columns]
    if len(columns_a) != len(columns_b):
        return fail(f"column length mismatch (self: {len(columns_a)} vs other: "
                    f"{len(columns_b)})", f"{mine.label} columns {_names(a)}",
                    f"{theirs.label} columns {_names(b)}")
    for column_a, column_b in zip(columns_a, columns_b, strict=True):
        if column_a != column_b:
            return fail("different column definition", f"{mine.label} column {column_a}",
                        f"{theirs.label} column {column_b}")
    if _keys(a) != _keys(b):
        return fail("different primary key or unique keys", f"{mine.label} keys {_keys(a)}",
                    f"{theirs.label} keys {_keys(b)}")
    return None


def _brief(column: Column) -> str:
    unsigned = " unsigned" if column.unsigned else ""
    return f"{column.name.lower()} {canonical_type(column.type)}{unsigned}"


def _names(structure: TableSchema) -> str:
    return "[" + " ".join(column.name.lower() for column in structure.columns) + "]"


def _keys(structure: TableSchema) -> str:
    """The primary and unique keys by their columns (key names do not count)."""
    def columns(names: Sequence[str]) -> str:
        return "(" + ", ".join(name.lower() for name in names) + ")"

    primary = [f"PRIMARY KEY {columns(structure.primary_key)}"] if structure.primary else []
    unique = sorted(f"UNIQUE KEY {columns(i.columns)}" for i in structure.indexes if i.unique)
    return ", ".join(primary + unique) or "none"


# -- which tables a source migrates, and where they go --------------------------------------

# consumers/balist.py and consumers/routing.py hold the sync unit's block-allow list and
# routing, but roles never import each other. The precheck only needs to know which tables
# a source migrates and their targets, so it keeps this short reading of the same rules;
# the sync unit itself refuses bad patterns and ambiguous routes.
SYSTEM_SCHEMAS = frozenset({"mysql", "sys", "information_schema", "performance_schema",
                            "metrics_schema", "inspection_schema", "dm_heartbeat"})


@dataclass(frozen=True)
class TableRules:
    """A source's block-allow list and routes: wildcards, `~regex` in the list only."""

    balist: BAListRule
    routes: tuple[RouteRule, ...]
    case_sensitive: bool

    @classmethod
    def of(cls, task: TaskConfig, inst: MySQLInstance) -> TableRules:
        """The rules `inst` names in `task`."""
        balist = task.ba_lists().get(inst.ba_list_name) or BAListRule()
        return cls(balist, tuple(task.routes[name] for name in inst.route_rules),
                   task.case_sensitive)

    def select(self, schema: str, table: str) -> tuple[str, str] | None:
        """The target (schema, table) of a migrated table; None when the list skips it."""
        return self._target(schema, table) if self._allowed(schema, table) else None

    def _allowed(self, schema: str, table: str) -> bool:
        rule = self.balist
        if schema.lower() in SYSTEM_SCHEMAS:
            return False
        if rule.do_dbs and not any(self._match(p, schema, True) for p in rule.do_dbs):
            return False
        if not rule.do_dbs and any(self._match(p, schema, True) for p in rule.ignore_dbs):
            return False
        refs = rule.do_tables or rule.ignore_tables
        hit = any(self._match(r.db_name, schema, True) and self._match(r.tbl_name, table, True)
                  for r in refs)
        return hit if rule.do_tables else not hit

    def _target(self, schema: str, table: str) -> tuple[str, str]:
        by_table = [r for r in self.routes if r.table_pattern and self._match(
            r.schema_pattern, schema) and self._match(r.table_pattern, table)]
        by_schema = [r for r in self.routes
                     if not r.table_pattern and self._match(r.schema_pattern, schema)]
        rule = next(iter(by_table or by_schema), None)
        if rule is None:
            return schema, table
        return rule.target_schema or schema, rule.target_table or table

    def _match(self, pattern: str, name: str, regex: bool = False) -> bool:
        if regex and pattern.startswith("~"):
            flags = 0 if self.case_sensitive else re.IGNORECASE
            return re.search(pattern[1:], name, flags) is not None
        if not self.case_sensitive:
            pattern, name = pattern.lower(), name.lower()
        return fnmatch.fnmatchcase(name, pattern)
