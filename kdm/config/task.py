"""task.yaml: one migration task in DM's format.

Stages: parse (decode.py) → defaults (field defaults, then `resolve_units` per source) →
validate (`validate`, pure: rule references, duplicates, patterns, expressions). A DM user's
task file loads unchanged; keys kdm does not implement are refused by name, and keys DM
itself deprecated into no-ops are accepted as no-ops.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import sqlglot
import sqlglot.errors

from kdm.config.common import BinlogEventRule, DBConfig
from kdm.config.decode import Locations, Path_, decode_document, dotted, key, read_text
from kdm.errors import (
    ERR_CONFIG_CONFLICT,
    ERR_CONFIG_DUPLICATE_SOURCE,
    ERR_CONFIG_INVALID_VALUE,
    ERR_CONFIG_UNDEFINED_RULE,
    ERR_CONFIG_UNSUPPORTED,
    KdmError,
)
from kdm.position import GTIDSet

CHECKING_ITEMS = frozenset({
    "all", "dump_privilege", "replication_privilege", "version", "server_id", "binlog_enable",
    "binlog_format", "binlog_row_image", "table_schema", "schema_of_shard_tables",
    "auto_increment_ID", "binlog_db",
    "binlog_row_metadata",  # ours: the relay needs FULL row metadata (MariaDB, MySQL 8)
})
CONSISTENCY_MODES = ("auto", "none", "flush", "lock", "snapshot")


@dataclass(frozen=True)
class Meta:
    """Where incremental replication starts when no checkpoint exists."""

    binlog_name: str = key("binlog-name", "Binlog file to start from.", default="")
    binlog_pos: int = key("binlog-pos", "Position in that file.", default=4)
    binlog_gtid: str = key("binlog-gtid", "GTID set to start after (enable-gtid sources).",
                           default="")


@dataclass(frozen=True)
class TableRef:
    """A `{db-name, tbl-name}` pattern pair in a block-allow-list rule."""

    db_name: str = key("db-name", "Schema pattern; wildcards, or a regex starting with ~.",
                       required=True, default="")
    tbl_name: str = key("tbl-name", "Table pattern; wildcards, or a regex starting with ~.",
                        required=True, default="")


@dataclass(frozen=True)
class BAListRule:
    """Block & allow list: which schemas and tables a source migrates."""

    do_dbs: tuple[str, ...] = key("do-dbs", "Schemas to migrate.", default=())
    ignore_dbs: tuple[str, ...] = key("ignore-dbs", "Schemas to skip (unused if do-dbs set).",
                                      default=())
    do_tables: tuple[TableRef, ...] = key("do-tables", "Tables to migrate.", default=())
    ignore_tables: tuple[TableRef, ...] = key("ignore-tables", "Tables to skip (unused if "
                                              "do-tables set).", default=())


@dataclass(frozen=True)
class RouteRule:
    """Table routing: upstream schema/table patterns to a downstream schema/table."""

    schema_pattern: str = key("schema-pattern", "Upstream schema pattern.", required=True,
                              default="")
    table_pattern: str = key("table-pattern", "Upstream table pattern; empty = schema rule.",
                             default="")
    target_schema: str = key("target-schema", "Downstream schema.", required=True, default="")
    target_table: str = key("target-table", "Downstream table; empty keeps the name.",
                            default="")


@dataclass(frozen=True)
class ExpressionFilter:
    """Row filter by SQL expression; a row for which the expression is true is dropped."""

    schema: str = key("schema", "Upstream schema name.", required=True, default="")
    table: str = key("table", "Upstream table name.", required=True, default="")
    insert_value_expr: str = key("insert-value-expr", "Tested on inserted rows.", default="")
    update_old_value_expr: str = key("update-old-value-expr", "Tested on the old row of "
                                     "updates.", default="")
    update_new_value_expr: str = key("update-new-value-expr", "Tested on the new row of "
                                     "updates.", default="")
    delete_value_expr: str = key("delete-value-expr", "Tested on deleted rows.", default="")

    def expressions(self) -> dict[str, str]:
        """The non-empty expressions by their YAML key."""
        pairs = {"insert-value-expr": self.insert_value_expr,
                 "update-old-value-expr": self.update_old_value_expr,
                 "update-new-value-expr": self.update_new_value_expr,
                 "delete-value-expr": self.delete_value_expr}
        return {k: v for k, v in pairs.items() if v}


@dataclass(frozen=True)
class MydumperConfig:
    """Dump unit settings (DM's `mydumpers`); the dump unit is built in, not mydumper."""

    mydumper_path: str = key("mydumper-path", "DM's mydumper binary; without effect here.",
                             default="")
    threads: int = key("threads", "Tables/chunks dumped in parallel.", default=4)
    chunk_filesize: str = key("chunk-filesize", "Chunk size in MB.", default="64")
    statement_size: int = key("statement-size", "Bytes per multi-row INSERT; 0 = default.",
                              default=0)
    rows: int = key("rows", "Rows per chunk; overrides chunk-filesize when set.", default=0)
    where: str = key("where", "WHERE condition applied to every dumped table.", default="")
    skip_tz_utc: bool = key("skip-tz-utc", "Dump temporal values without converting to UTC.",
                            default=True)
    extra_args: str = key("extra-args", "Supported: --consistency auto|none|flush|lock|snapshot.",
                          default="")

    def consistency(self) -> str:
        """The --consistency mode in extra-args; 'auto' when absent."""
        args = _split_args(self.extra_args)
        for index, arg in enumerate(args):
            if arg.startswith("--consistency="):
                return arg.split("=", 1)[1]
            if arg == "--consistency" and index + 1 < len(args):
                return args[index + 1]
        return "auto"

    def unsupported_args(self) -> list[str]:
        """Flags in extra-args other than --consistency and its value."""
        args = _split_args(self.extra_args)
        rest = []
        skip = False
        for arg in args:
            if skip:
                skip = False
            elif arg == "--consistency":
                skip = True
            elif not arg.startswith("--consistency="):
                rest.append(arg)
        return rest


def _split_args(text: str) -> list[str]:
    """Shell-style words of extra-args; an unbalanced quote is itself an unsupported word."""
    try:
        return shlex.split(text)
    except ValueError:
        return [text]


@dataclass(frozen=True)
class LoaderConfig:
    """Load unit settings (DM's `loaders`)."""

    pool_size: int = key("pool-size", "Parallel load connections.", default=16)
    dir: str = key("dir", "Directory for dumped chunks.", default="./dumped_data")
    import_mode: str = key("import-mode", "Only SQL (logical) import.",
                           refused="kdm loads with SQL only", accepts=("sql", "logical"),
                           default="")
    on_duplicate: str = key("on-duplicate", "Only replace.", refused="kdm's load always "
                            "replaces", accepts=("replace",), default="")


@dataclass(frozen=True)
class SyncerConfig:
    """Sync unit settings (DM's `syncers`)."""

    meta_file: str = key("meta-file", "", refused="DM-internal; use mysql-instances.meta",
                         default="")
    worker_count: int = key("worker-count", "Parallel DML workers (causality-partitioned).",
                            default=16)
    batch: int = key("batch", "Changes per downstream transaction per worker.", default=100)
    queue_size: int = key("queue-size", "Per-worker queue length.", default=1024)
    checkpoint_flush_interval: int = key("checkpoint-flush-interval", "Seconds between "
                                         "checkpoint flushes when idle.", default=30)
    max_retry: int = key("max-retry", "Deprecated in DM; without effect.", default=0)
    auto_fix_gtid: bool = key("auto-fix-gtid", "Deprecated in DM; without effect.",
                              default=False)
    enable_gtid: bool = key("enable-gtid", "Deprecated in DM; the source's enable-gtid rules.",
                            default=False)
    disable_detect: bool = key("disable-detect", "Disable causality detection (unsafe with "
                               "worker-count > 1).", default=False)
    safe_mode: bool = key("safe-mode", "Always write in safe mode (REPLACE / DELETE+REPLACE).",
                          default=False)
    enable_ansi_quotes: bool = key("enable-ansi-quotes", "Deprecated in DM; without effect.",
                                   default=False)
    compact: bool = key("compact", "Compact changes to the same key within a batch.",
                        default=False)
    multiple_rows: bool = key("multiple-rows", "Merge changes into multi-row statements.",
                              default=False)


@dataclass(frozen=True)
class MySQLInstance:
    """One source of the task, with the names of the global rules it uses."""

    source_id: str = key("source-id", "A source created with operate-source.", required=True,
                         default="")
    meta: Meta | None = key("meta", "Start position when there is no checkpoint.", default=None)
    filter_rules: tuple[str, ...] = key("filter-rules", "Names under `filters`.", default=())
    column_mapping_rules: tuple[str, ...] = key(
        "column-mapping-rules", "", refused="column mapping is deprecated in DM", default=())
    route_rules: tuple[str, ...] = key("route-rules", "Names under `routes`.", default=())
    expression_filters: tuple[str, ...] = key("expression-filters", "Names under "
                                              "`expression-filter`.", default=())
    black_white_list: str = key("black-white-list", "Deprecated name of block-allow-list.",
                                default="")
    block_allow_list: str = key("block-allow-list", "Name under `block-allow-list`.",
                                default="")
    mydumper_config_name: str = key("mydumper-config-name", "Name under `mydumpers`.",
                                    default="")
    mydumper: MydumperConfig | None = key("mydumper", "Inline dump settings.", default=None)
    mydumper_thread: int = key("mydumper-thread", "Overrides mydumper threads.", default=0)
    loader_config_name: str = key("loader-config-name", "Name under `loaders`.", default="")
    loader: LoaderConfig | None = key("loader", "Inline load settings.", default=None)
    loader_thread: int = key("loader-thread", "Overrides loader pool-size.", default=0)
    syncer_config_name: str = key("syncer-config-name", "Name under `syncers`.", default="")
    syncer: SyncerConfig | None = key("syncer", "Inline sync settings.", default=None)
    syncer_thread: int = key("syncer-thread", "Overrides syncer worker-count.", default=0)

    @property
    def ba_list_name(self) -> str:
        """The block-allow-list rule name, honouring the deprecated spelling."""
        return self.block_allow_list or self.black_white_list


@dataclass(frozen=True)
class TaskConfig:
    """One migration task."""

    name: str = key("name", "Task name, unique in the cluster.", required=True, default="")
    task_mode: Literal["full", "incremental", "all"] = key(
        "task-mode", "full (dump+load), incremental (binlog), or all.", required=True,
        default="all")
    shard_mode: Literal["", "pessimistic", "optimistic"] = key(
        "shard-mode", "Shard DDL coordination; empty = none.", default="")
    is_sharding: bool = key("is-sharding", "Deprecated: true means shard-mode pessimistic.",
                            default=False)
    ignore_checking_items: tuple[str, ...] = key("ignore-checking-items", "Precheck items to "
                                                 "skip.", default=())
    meta_schema: str = key("meta-schema", "Downstream schema for checkpoints.",
                           default="dm_meta")
    enable_heartbeat: bool = key("enable-heartbeat", "Deprecated in DM; kdm's relay always "
                                 "publishes heartbeats.", default=False)
    heartbeat_update_interval: int = key("heartbeat-update-interval", "Deprecated in DM; "
                                         "without effect.", default=1)
    heartbeat_report_interval: int = key("heartbeat-report-interval", "Deprecated in DM; "
                                         "without effect.", default=10)
    timezone: str = key("timezone", "Deprecated in DM; only UTC is accepted.", default="")
    case_sensitive: bool = key("case-sensitive", "Case-sensitive schema/table names in rules.",
                               default=False)
    collation_compatible: Literal["loose", "strict"] = key(
        "collation_compatible", "strict: carry charset/collation into created tables.",
        default="loose")
    target_database: DBConfig = key("target-database", "Downstream TiDB.", required=True,
                                    factory=DBConfig)
    mysql_instances: tuple[MySQLInstance, ...] = key("mysql-instances", "Sources of the task.",
                                                     required=True, default=())
    online_ddl: bool = key("online-ddl", "Handle gh-ost and pt-osc shadow tables.",
                           default=False)
    online_ddl_scheme: Literal["", "gh-ost", "pt"] = key(
        "online-ddl-scheme", "Deprecated: set online-ddl instead.", default="")
    shadow_table_rules: tuple[str, ...] = key("shadow-table-rules", "Regexes for online DDL "
                                              "shadow tables.", default=())
    trash_table_rules: tuple[str, ...] = key("trash-table-rules", "Regexes for online DDL "
                                             "trash tables.", default=())
    routes: dict[str, RouteRule] = key("routes", "Table routing rules by name.", factory=dict)
    filters: dict[str, BinlogEventRule] = key("filters", "Binlog event filter rules by name.",
                                              factory=dict)
    column_mappings: dict[str, str] = key("column-mappings", "",
                                          refused="column mapping is deprecated in DM",
                                          factory=dict)
    expression_filter: dict[str, ExpressionFilter] = key("expression-filter", "Expression "
                                                         "filters by name.", factory=dict)
    black_white_list: dict[str, BAListRule] = key("black-white-list", "Deprecated name of "
                                                  "block-allow-list.", factory=dict)
    block_allow_list: dict[str, BAListRule] = key("block-allow-list", "Block & allow lists by "
                                                  "name.", factory=dict)
    mydumpers: dict[str, MydumperConfig] = key("mydumpers", "Dump settings by name.",
                                               factory=dict)
    loaders: dict[str, LoaderConfig] = key("loaders", "Load settings by name.", factory=dict)
    syncers: dict[str, SyncerConfig] = key("syncers", "Sync settings by name.", factory=dict)
    clean_dump_file: bool = key("clean-dump-file", "Remove dumped chunks after load.",
                                default=True)
    ansi_quotes: bool = key("ansi-quotes", "Deprecated in DM; without effect.", default=False)
    remove_meta: bool = key("remove-meta", "Deprecated in DM: use start-task --remove-meta.",
                            default=False)
    tidb: dict[str, str] = key("tidb", "", refused="TiDB Lightning backends are not used",
                               factory=dict)

    @property
    def effective_shard_mode(self) -> str:
        """shard-mode, with DM's reading of the deprecated is-sharding."""
        return self.shard_mode or ("pessimistic" if self.is_sharding else "")

    @property
    def effective_online_ddl(self) -> bool:
        """online-ddl, or DM's reading of the deprecated online-ddl-scheme (gh-ost or pt)."""
        return self.online_ddl or bool(self.online_ddl_scheme)

    def ba_lists(self) -> Mapping[str, BAListRule]:
        """Both spellings of the block-allow-list map, the new one winning."""
        return {**self.black_white_list, **self.block_allow_list}

    def instance(self, source_id: str) -> MySQLInstance:
        """The mysql-instances entry of `source_id`."""
        return next(inst for inst in self.mysql_instances if inst.source_id == source_id)

    def sources(self) -> list[str]:
        """The task's source ids, in mysql-instances order."""
        return [inst.source_id for inst in self.mysql_instances]


@dataclass(frozen=True)
class UnitConfigs:
    """The dump, load and sync settings that apply to one source after DM's resolution."""

    mydumper: MydumperConfig
    loader: LoaderConfig
    syncer: SyncerConfig


def resolve_units(task: TaskConfig, inst: MySQLInstance) -> UnitConfigs:
    """A named global entry, else the inline block, else defaults; *-thread aliases win."""
    dump = inst.mydumper or task.mydumpers.get(inst.mydumper_config_name) or MydumperConfig()
    load = inst.loader or task.loaders.get(inst.loader_config_name) or LoaderConfig()
    sync = inst.syncer or task.syncers.get(inst.syncer_config_name) or SyncerConfig()
    if inst.mydumper_thread:
        dump = replace(dump, threads=inst.mydumper_thread)
    if inst.loader_thread:
        load = replace(load, pool_size=inst.loader_thread)
    if inst.syncer_thread:
        sync = replace(sync, worker_count=inst.syncer_thread)
    return UnitConfigs(dump, load, sync)


class _Validator:
    """Cross-field checks of a decoded task, each failing with the offending key's line."""

    def __init__(self, task: TaskConfig, locs: Locations) -> None:
        self.task = task
        self.locs = locs

    def invalid(self, at: Path_, problem: str) -> Exception:
        return ERR_CONFIG_INVALID_VALUE(where=self.locs.where(at), key=dotted(at),
                                        problem=problem, path=self.locs.path)

    def run(self) -> None:
        task = self.task
        if not task.name:
            raise self.invalid(("name",), "must not be empty")
        if not task.mysql_instances:
            raise self.invalid(("mysql-instances",), "at least one source is required")
        if task.timezone not in ("", "UTC", "+00:00"):
            raise ERR_CONFIG_UNSUPPORTED(where=self.locs.where(("timezone",)), key="timezone",
                                         detail=" for values other than UTC (DM forces UTC)")
        for flag in ("enable-heartbeat", "remove-meta"):
            if getattr(task, flag.replace("-", "_")):
                raise ERR_CONFIG_UNSUPPORTED(where=self.locs.where((flag,)), key=flag,
                                             detail=" as true (DM deprecated it)")
        for item in task.ignore_checking_items:
            if item not in CHECKING_ITEMS:
                raise self.invalid(("ignore-checking-items",), f"unknown item `{item}`")
        self._instances()
        self._rules()
        self._unused()

    def _instances(self) -> None:
        seen: set[str] = set()
        for index, inst in enumerate(self.task.mysql_instances):
            at: Path_ = ("mysql-instances", index)
            if inst.source_id in seen:
                raise ERR_CONFIG_DUPLICATE_SOURCE(where=self.locs.where(at),
                                                  source=inst.source_id, path=self.locs.path)
            seen.add(inst.source_id)
            self._references(inst, at)
            self._unit_conflicts(inst, at)
            if inst.meta is not None:
                self._meta(inst.meta, (*at, "meta"))

    def _references(self, inst: MySQLInstance, at: Path_) -> None:
        task = self.task
        refs: list[tuple[str, str, Mapping[str, object], str]] = [
            ("route", name, task.routes, "route-rules") for name in inst.route_rules]
        refs += [("filter", name, task.filters, "filter-rules") for name in inst.filter_rules]
        refs += [("expression-filter", name, task.expression_filter, "expression-filters")
                 for name in inst.expression_filters]
        for kind, name, table, field_key in [
            ("block-allow-list", inst.ba_list_name, task.ba_lists(), "block-allow-list"),
            ("mydumper", inst.mydumper_config_name, task.mydumpers, "mydumper-config-name"),
            ("loader", inst.loader_config_name, task.loaders, "loader-config-name"),
            ("syncer", inst.syncer_config_name, task.syncers, "syncer-config-name"),
        ]:
            if name:
                refs.append((kind, name, table, field_key))
        for kind, name, table, field_key in refs:
            if name not in table:
                raise ERR_CONFIG_UNDEFINED_RULE(where=self.locs.where((*at, field_key)),
                                                kind=kind, rule=name, source=inst.source_id,
                                                path=self.locs.path)

    def _unused(self) -> None:
        task = self.task
        used: dict[str, set[str]] = {kind: set() for kind in
                                     ("routes", "filters", "expression-filter", "mydumpers",
                                      "loaders", "syncers", "block-allow-list")}
        for inst in task.mysql_instances:
            used["routes"].update(inst.route_rules)
            used["filters"].update(inst.filter_rules)
            used["expression-filter"].update(inst.expression_filters)
            used["mydumpers"].add(inst.mydumper_config_name)
            used["loaders"].add(inst.loader_config_name)
            used["syncers"].add(inst.syncer_config_name)
            used["block-allow-list"].add(inst.ba_list_name)
        defined: dict[str, Mapping[str, object]] = {"routes": task.routes, "filters": task.filters,
                   "expression-filter": task.expression_filter, "mydumpers": task.mydumpers,
                   "loaders": task.loaders, "syncers": task.syncers,
                   "block-allow-list": task.ba_lists()}
        for kind, rules in defined.items():
            for name in sorted(set(rules) - used[kind]):
                raise self.invalid((kind, name), f"`{name}` is defined but no source in "
                                   "mysql-instances uses it (DM refuses unused rules)")

    def _unit_conflicts(self, inst: MySQLInstance, at: Path_) -> None:
        for unit in ("mydumper", "loader", "syncer"):
            if getattr(inst, f"{unit}_config_name") and getattr(inst, unit) is not None:
                raise ERR_CONFIG_CONFLICT(where=self.locs.where((*at, unit)),
                                          problem=f"{unit}-config-name and {unit} are both set "
                                          f"for source {inst.source_id}")

    def _meta(self, meta: Meta, at: Path_) -> None:
        if not meta.binlog_name and not meta.binlog_gtid:
            raise self.invalid(at, "meta needs binlog-name (and binlog-pos) or binlog-gtid")
        if meta.binlog_gtid:
            try:
                GTIDSet.parse(meta.binlog_gtid)
            except KdmError as exc:
                raise self.invalid((*at, "binlog-gtid"), exc.message) from exc

    def _rules(self) -> None:
        task = self.task
        for name, rule in task.filters.items():
            for field_key, problem in rule.problems():
                raise self.invalid(("filters", name, field_key), problem)
        for name, expr_rule in task.expression_filter.items():
            for field_key, expr in expr_rule.expressions().items():
                self._expression(("expression-filter", name, field_key), expr)
        for name, dump in task.mydumpers.items():
            self._dumper(dump, ("mydumpers", name))
        for index, inst in enumerate(task.mysql_instances):
            if inst.mydumper is not None:
                self._dumper(inst.mydumper, ("mysql-instances", index, "mydumper"))
        for field_key, patterns in (("shadow-table-rules", task.shadow_table_rules),
                                    ("trash-table-rules", task.trash_table_rules)):
            for pattern in patterns:
                self._regex((field_key,), pattern)

    def _dumper(self, dump: MydumperConfig, at: Path_) -> None:
        for arg in dump.unsupported_args():
            raise ERR_CONFIG_UNSUPPORTED(where=self.locs.where((*at, "extra-args")),
                                         key=dotted((*at, "extra-args")),
                                         detail=f": flag `{arg}` (only --consistency is)")
        if dump.consistency() not in CONSISTENCY_MODES:
            raise self.invalid((*at, "extra-args"),
                               f"--consistency must be one of {', '.join(CONSISTENCY_MODES)}")

    def _expression(self, at: Path_, expr: str) -> None:
        try:
            sqlglot.parse_one(expr, read="mysql")
        except sqlglot.errors.SqlglotError as exc:
            raise self.invalid(at, f"`{expr}` is not a valid SQL expression: "
                               f"{str(exc).splitlines()[0]}") from exc

    def _regex(self, at: Path_, pattern: str) -> None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise self.invalid(at, f"`{pattern}` is not a valid regex: {exc}") from exc


def validate(task: TaskConfig, locs: Locations) -> TaskConfig:
    """Check references, duplicates, patterns and expressions; return `task` when valid."""
    _Validator(task, locs).run()
    return task


def parse_task(text: str, path: str = "<task.yaml>") -> TaskConfig:
    """Parse, default and validate a task.yaml text."""
    task, locs = decode_document(TaskConfig, text, path)
    return validate(task, locs)


def load_task(path: str | Path) -> TaskConfig:
    """Read and parse a task.yaml file."""
    return parse_task(read_text(path), str(path))
