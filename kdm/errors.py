"""One registry of coded errors, and the exceptions that carry them.

Every error is declared once below with a stable code, a class, a scope, a level, a message
template and a workaround. Codes follow DM's blocks by class (config 20xxx, relay 30xxx,
sync 36xxx, ...), so operators who grep `code=20xxx` keep their habits; the numbers inside
a block are this project's own. A released code is never reused for another meaning:
`tests/unit/test_errors.py` freezes them.

Exception tree::

    KdmError                 every coded error; .spec, .code, .fields, .raw_cause
    ├── ConfigError          bad source.yaml / task.yaml / service config; .path, .line
    └── StackError           the embedded local stack could not be installed or started

Retry-or-stop is decided from `ErrorSpec.resumable` (and typed facts at the call site),
never from message text.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class ErrClass(Enum):
    """The subsystem that raised an error; the value is DM's class string."""

    DATABASE = "database"
    FUNCTIONAL = "functional"
    CONFIG = "config"
    BINLOG_OP = "binlog-op"
    CHECKPOINT = "checkpoint"
    TASK_CHECK = "task-check"
    RELAY_UNIT = "relay-unit"
    DUMP_UNIT = "dump-unit"
    LOAD_UNIT = "load-unit"
    SYNC_UNIT = "sync-unit"
    COORDINATOR = "dm-master"
    WORKER = "dm-worker"
    SCHEMA_TRACKER = "schema-tracker"
    SCHEDULER = "scheduler"
    CTL = "dmctl"
    KAFKA = "kafka"
    STACK = "stack"


CODE_BLOCKS: dict[ErrClass, range] = {
    ErrClass.DATABASE: range(10001, 11000),
    ErrClass.FUNCTIONAL: range(11001, 12000),
    ErrClass.CONFIG: range(20001, 21000),
    ErrClass.BINLOG_OP: range(22001, 23000),
    ErrClass.CHECKPOINT: range(24001, 25000),
    ErrClass.TASK_CHECK: range(26001, 27000),
    ErrClass.RELAY_UNIT: range(30001, 31000),
    ErrClass.DUMP_UNIT: range(32001, 33000),
    ErrClass.LOAD_UNIT: range(34001, 35000),
    ErrClass.SYNC_UNIT: range(36001, 37000),
    ErrClass.COORDINATOR: range(38001, 39000),
    ErrClass.WORKER: range(40001, 41000),
    ErrClass.SCHEMA_TRACKER: range(44001, 45000),
    ErrClass.SCHEDULER: range(46001, 47000),
    ErrClass.CTL: range(48001, 49000),
    ErrClass.KAFKA: range(52001, 53000),
    ErrClass.STACK: range(54001, 55000),
}


class Scope(Enum):
    """What the failing code was acting on."""

    NOT_SET = "not-set"
    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"
    INTERNAL = "internal"


class Level(Enum):
    """low: a user input mistake; medium: a config error; high: a migration may be interrupted."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@dataclass(frozen=True)
class ErrorSpec:
    """One declared error: its identity and the text a user sees."""

    code: int
    name: str
    cls: ErrClass
    scope: Scope
    level: Level
    message: str
    workaround: str = ""
    resumable: bool = False

    def __call__(self, raw_cause: BaseException | str | None = None, **fields: Any) -> KdmError:
        """Build the exception for this error with its message fields filled in."""
        return self.exception_type()(self, raw_cause=raw_cause, **fields)

    def exception_type(self) -> type[KdmError]:
        """The exception class that carries this error."""
        return _EXCEPTION_BY_CLASS.get(self.cls, KdmError)


REGISTRY: dict[int, ErrorSpec] = {}


def declare(
    code: int, name: str, cls: ErrClass, scope: Scope, level: Level, message: str,
    workaround: str = "", *, resumable: bool = False,
) -> ErrorSpec:
    """Register one error; refuse a code outside its class block or declared twice."""
    if code not in CODE_BLOCKS[cls]:
        raise ValueError(f"code {code} is outside the {cls.value} block")
    if code in REGISTRY:
        raise ValueError(f"code {code} is already declared as {REGISTRY[code].name}")
    spec = ErrorSpec(code, name, cls, scope, level, message, workaround, resumable)
    REGISTRY[code] = spec
    return spec


class KdmError(Exception):
    """An error with a registry entry; renders as DM does: `[code=..:class=..:...]`."""

    def __init__(self, spec: ErrorSpec, raw_cause: BaseException | str | None = None,
                 **fields: Any) -> None:
        self.spec = spec
        self.fields = fields
        self.raw_cause = "" if raw_cause is None else str(raw_cause)
        super().__init__(self.render())
        if isinstance(raw_cause, BaseException):
            self.__cause__ = raw_cause

    @property
    def code(self) -> int:
        """The stable error code."""
        return self.spec.code

    @property
    def message(self) -> str:
        """The message template filled with this error's fields."""
        return self.spec.message.format(**self.fields)

    def render(self) -> str:
        """DM's one-line form: header, Message, RawCause and Workaround when non-empty."""
        return render(self.spec, self.message, self.raw_cause)

    def to_dict(self) -> dict[str, Any]:
        """The structured form used in status messages and JSON output."""
        return {
            "ErrCode": self.spec.code, "ErrClass": self.spec.cls.value,
            "ErrScope": self.spec.scope.value, "ErrLevel": self.spec.level.value,
            "Message": self.message, "RawCause": self.raw_cause,
            "Workaround": self.spec.workaround,
        }


def render(spec: ErrorSpec, message: str, raw_cause: str = "") -> str:
    """An error's one-line DM form (also for errors read back from a status record)."""
    parts = [f"[code={spec.code}:class={spec.cls.value}:scope={spec.scope.value}"
             f":level={spec.level.value}]", f"Message: {message}"]
    if raw_cause:
        parts.append(f"RawCause: {raw_cause}")
    if spec.workaround:
        parts.append(f"Workaround: {spec.workaround}")
    return ", ".join(parts)


class ConfigError(KdmError):
    """A configuration file or value is wrong; `path` and `line` say where when known."""

    @property
    def path(self) -> str | None:
        """The file the error was found in."""
        value = self.fields.get("path")
        return None if value is None else str(value)

    @property
    def line(self) -> int | None:
        """The 1-based line the error was found at."""
        value = self.fields.get("line")
        return value if isinstance(value, int) else None


class StackError(KdmError):
    """The embedded local stack failed to install, start or stop."""


_EXCEPTION_BY_CLASS: dict[ErrClass, type[KdmError]] = {
    ErrClass.CONFIG: ConfigError,
    ErrClass.STACK: StackError,
}

_C, _M = ErrClass.CONFIG, Level.MEDIUM
_I = Scope.INTERNAL

ERR_CONFIG_READ = declare(
    20001, "ConfigRead", _C, _I, _M, "cannot read config file {path}",
    "Check that the file exists and is readable.")
ERR_CONFIG_YAML = declare(
    20002, "ConfigYAMLSyntax", _C, _I, _M, "{where}: invalid YAML: {problem}",
    "Fix the YAML syntax at the line shown (indentation, quoting, a missing colon).")
ERR_CONFIG_UNKNOWN_KEY = declare(
    20003, "ConfigUnknownKey", _C, _I, _M, "{where}: unknown key `{key}` in {section}",
    "Remove the key or correct its spelling; the valid keys are listed in the README.")
ERR_CONFIG_MISSING_KEY = declare(
    20004, "ConfigMissingKey", _C, _I, _M, "{where}: required key `{key}` is missing in {section}",
    "Add the key; see the example files in config/.")
ERR_CONFIG_TYPE = declare(
    20005, "ConfigWrongType", _C, _I, _M, "{where}: `{key}` must be {expected}, got {got}",
    "Give the key a value of the expected type.")
ERR_CONFIG_UNSUPPORTED = declare(
    20006, "ConfigUnsupportedKey", _C, _I, _M, "{where}: `{key}` is not supported yet{detail}",
    "Remove the key; kdm refuses keys it does not implement rather than ignoring them.")
ERR_CONFIG_INVALID_VALUE = declare(
    20007, "ConfigInvalidValue", _C, _I, _M, "{where}: `{key}`: {problem}",
    "Correct the value as the message says.")
ERR_CONFIG_UNDEFINED_RULE = declare(
    20008, "ConfigUndefinedRule", _C, _I, _M,
    "{where}: {kind} rule `{rule}` used by source `{source}` is not defined",
    "Define the rule at the top level of the task file, or fix the name in mysql-instances.")
ERR_CONFIG_DUPLICATE_SOURCE = declare(
    20009, "ConfigDuplicateSource", _C, _I, _M,
    "{where}: source-id `{source}` appears more than once in mysql-instances",
    "Each source may appear once per task; merge the entries.")
ERR_CONFIG_DECRYPT = declare(
    20010, "ConfigDecryptPassword", _C, _I, _M, "cannot decrypt password: {problem}",
    "Re-encrypt the password with `kdm encrypt` using the same KDM_SECRET_KEY.")
ERR_CONFIG_CONFLICT = declare(
    20011, "ConfigConflict", _C, _I, _M, "{where}: {problem}",
    "Keep only one of the conflicting keys.")

_S, _H = ErrClass.STACK, Level.HIGH
ERR_STACK_INSTALL = declare(
    54001, "StackInstall", _S, _I, _H, "cannot install {component}: {problem}",
    "Check this machine reaches Debian's packages and Maven Central, then run `kdm stack install`.")
ERR_STACK_START = declare(
    54002, "StackStart", _S, _I, _H,
    "{component} did not become ready within {seconds}s; log: {log}",
    "Read the log shown; a port may be taken (see `kdm stack status`).")
ERR_STACK_PORT_TAKEN = declare(
    54003, "StackPortTaken", _S, _I, _H,
    "{component}: port {port} is already in use by another process",
    "Stop the other process or choose other ports with the --*-port options.")
ERR_STACK_NOT_UP = declare(
    54004, "StackNotUp", _S, _I, Level.MEDIUM, "the local stack is not running under {home}",
    "Start it with `kdm stack up`.")
ERR_STACK_SMOKE = declare(
    54005, "StackSmokeFailed", _S, _I, _H, "smoke check failed at {step}: {problem}",
    "Read the stack logs under the stack directory (`kdm stack status` prints it).")
ERR_STACK_PORTS_CHANGED = declare(
    54006, "StackPortsChanged", _S, _I, Level.MEDIUM,
    "the stack under {home} is running on other ports ({running}); asked for {asked}",
    "Run `kdm stack down` first, or use another --home for a second stack.")

_K = ErrClass.KAFKA
ERR_KAFKA_ADMIN = declare(
    52001, "KafkaAdmin", _K, _I, _H, "kafka admin operation {op} on {target} failed",
    "Check the brokers in kafka.bootstrap-servers are reachable.", resumable=True)
ERR_KAFKA_TOPIC_MISMATCH = declare(
    52002, "KafkaTopicMismatch", _K, _I, _H, "topic {topic} exists with {problem}",
    "Recreate the topic or change its configuration to match; kdm will not alter it silently.")
ERR_KAFKA_DECODE = declare(
    52003, "KafkaMessageDecode", _K, _I, _H, "cannot decode message at {where}: {problem}",
    "The record is not a kdm Avro message of a known schema; inspect it with `kdm read-topic`.")
ERR_KAFKA_SCHEMA_REGISTRY = declare(
    52004, "KafkaSchemaRegistry", _K, _I, _H, "schema registry {url}: {problem}",
    "Check kafka.schema-registry-url, or leave it empty to use the repository's schema ids.",
    resumable=True)

ERR_KAFKA_ENCODE = declare(
    52005, "KafkaMessageEncode", _K, _I, _H, "cannot encode {problem}",
    "This is a kdm bug: report the event's position from the log.")

ERR_POSITION_PARSE = declare(
    22001, "PositionParse", ErrClass.BINLOG_OP, _I, _H,
    "cannot parse binlog position `{text}`: {problem}",
    "Give a position as `file:pos`, optionally followed by a GTID set after `@`.")
ERR_GTID_PARSE = declare(
    22002, "GTIDSetParse", ErrClass.BINLOG_OP, _I, _H, "cannot parse GTID set `{text}`: {problem}",
    "MySQL GTID sets look like `uuid:1-100`; MariaDB's like `0-1-100`.")

_R, _U = ErrClass.RELAY_UNIT, Scope.UPSTREAM
ERR_RELAY_UNSUPPORTED_COLUMN = declare(
    30001, "RelayUnsupportedColumn", _R, _U, _H,
    "table {schema}.{table} column {column}: binlog column type {type} is not supported",
    "Change the column to a supported type, or exclude the table with binlog-do/ignore rules "
    "on the upstream.")
ERR_RELAY_UNSUPPORTED_EVENT = declare(
    30002, "RelayUnsupportedEvent", _R, _U, _H, "unsupported binlog event at {position}: {problem}",
    "Set binlog_format=ROW and binlog_row_image=FULL on the upstream (globally and in every "
    "session), then restart the relay from a position after this event.")
ERR_RELAY_DECODE = declare(
    30003, "RelayEventDecode", _R, _U, _H, "cannot decode binlog event at {position}: {problem}",
    "The event is malformed or uses a feature kdm does not read; report it with the position.")
ERR_RELAY_BINLOG_PURGED = declare(
    30004, "RelayBinlogPurged", _R, _U, _H,
    "the upstream no longer holds the binlog the relay needs at {position}",
    "The events after this point are gone from the upstream: restore them, or re-create the "
    "relay topic and start from a full dump (task-mode all).")
ERR_RELAY_UPSTREAM = declare(
    30005, "RelayUpstreamRead", _R, _U, _H, "cannot read binlog from {address}",
    "Check the upstream is up and the user has REPLICATION SLAVE and REPLICATION CLIENT.",
    resumable=True)
ERR_RELAY_KAFKA_WRITE = declare(
    30006, "RelayKafkaWrite", _R, _I, _H, "cannot write relay events to {topic}",
    "Check the Kafka brokers; the relay retries from its last committed event.", resumable=True)
ERR_RELAY_TAIL = declare(
    30007, "RelayTopicTail", _R, _I, _H,
    "cannot read the resume point from the last record of {topic}: {problem}",
    "Inspect the topic's last records with `kdm read-topic`; a foreign record there blocks "
    "the relay.")
ERR_RELAY_START = declare(
    30008, "RelayStartPosition", _R, _U, _H, "cannot find where to start the relay: {problem}",
    "Check that the upstream has log_bin enabled, or set relay-binlog-name / "
    "relay-binlog-gtid in source.yaml.")
ERR_RELAY_STAGE = declare(
    30009, "RelayStageTransition", _R, _I, Level.LOW,
    "relay of {source} cannot go from {current} to {wanted}",
    "Check the relay's stage with `kdm query-status -s <source>`.")
ERR_RELAY_UPSTREAM_CONFIG = declare(
    30010, "RelayUpstreamConfig", _R, _U, _H, "upstream {address}: {problem}",
    "Set binlog_format=ROW, binlog_row_image=FULL and binlog_row_metadata=FULL on the "
    "upstream (MySQL 8.0.14+ / MariaDB 10.5+).")

# Sync unit 36xxx: 36001-36099 the sync runtime, 36101-36149 filter and routing rules,
# 36151-36199 DDL handling and online DDL. Schema tracker 44xxx.
ERR_SYNC_DOWNSTREAM = declare(
    36001, "SyncDownstream", ErrClass.SYNC_UNIT, Scope.DOWNSTREAM, Level.HIGH,
    "downstream {address}: {op} failed", "Check the downstream is up and reachable; the "
    "subtask retries from its checkpoint.", resumable=True)
ERR_SYNC_EXEC = declare(
    36002, "SyncExecSQL", ErrClass.SYNC_UNIT, Scope.DOWNSTREAM, Level.HIGH,
    "the downstream refused {what} at {position}: {sql}",
    "Fix the downstream or the statement, then `resume-task`; for a DDL, "
    "`handle-error <task> skip|replace` resolves it.")
ERR_SYNC_META = declare(
    36003, "SyncStartPosition", ErrClass.SYNC_UNIT, Scope.INTERNAL, Level.HIGH,
    "task {task} source {source}: {problem}",
    "Set mysql-instances[].meta to a position the relay topic still holds, or replay the "
    "relay from an earlier point.")
ERR_SYNC_CHECKPOINT = declare(
    36004, "SyncCheckpoint", ErrClass.SYNC_UNIT, Scope.DOWNSTREAM, Level.HIGH,
    "task {task} source {source}: checkpoint {problem}",
    "Inspect the checkpoint table in meta-schema; remove its rows to start from meta.")
ERR_SYNC_STAGE = declare(
    36005, "SyncStageTransition", ErrClass.SYNC_UNIT, Scope.INTERNAL, Level.LOW,
    "subtask {task}/{source} cannot go from {current} to {wanted}",
    "Check the subtask's stage with `kdm query-status <task>`.")

_Y = ErrClass.SYNC_UNIT
ERR_SYNC_RULE_INVALID = declare(
    36101, "SyncRuleInvalid", _Y, _I, _M, "invalid {what}: {problem}",
    "Correct the rule in the task (or source) file as the message says; see the DM manual on "
    "wildcard and ~regex patterns.")
ERR_SYNC_RULE_DUPLICATE = declare(
    36102, "SyncRuleDuplicate", _Y, _I, _M,
    "two {kind} rules have the same schema-pattern and table-pattern {patterns}",
    "Merge the two rules into one, or make their patterns differ.")
ERR_SYNC_ROUTE_CONFLICT = declare(
    36103, "SyncRouteConflict", _Y, _I, Level.HIGH,
    "`{schema}`.`{table}` matches {count} {level}-level route rules, which is more than one; "
    "the first two are {first} and {second}",
    "Change the route rules so that each table matches at most one table-level rule and at "
    "most one schema-level rule, then resume the task.")
ERR_SYNC_FILTER_UNKNOWN_EVENT = declare(
    36104, "SyncFilterUnknownEvent", _Y, _I, Level.HIGH,
    "binlog event filter asked about unknown event type `{event}`",
    "This is a kdm bug: report it with the statement that produced the event.")
ERR_SYNC_EXPR_INVALID = declare(
    36105, "SyncExpressionInvalid", _Y, _I, _M, "expression `{expr}`{where}: {problem}",
    "Rewrite the expression with the supported operators and functions (comparisons, AND/OR/"
    "NOT/XOR, + - * / DIV %, IS [NOT] NULL, IN, BETWEEN, LIKE, LENGTH, CHAR_LENGTH, LOWER, "
    "UPPER, ABS, CONCAT, COALESCE/IFNULL, NOW).")
ERR_SYNC_EXPR_ROW = declare(
    36106, "SyncExpressionRow", _Y, _I, Level.HIGH,
    "expression filter on `{schema}`.`{table}` cannot test the row change: {problem}",
    "This is a kdm bug: report it with the row change's position.")

_TRK = ErrClass.SCHEMA_TRACKER
_TRK_FIX = ("The tracked structure differs from the upstream's at this position: compare "
            "`operate-schema get` with the upstream table and correct it with "
            "`operate-schema set`.")
ERR_SCHEMA_PARSE = declare(
    44001, "SchemaTrackerParseDDL", _TRK, Scope.UPSTREAM, Level.HIGH,
    "cannot track DDL: {sql}: the statement does not parse as MySQL",
    "Skip or replace the statement with `handle-error`, then resume the task.")
ERR_SCHEMA_UNSUPPORTED = declare(
    44002, "SchemaTrackerUnsupportedDDL", _TRK, Scope.UPSTREAM, Level.HIGH,
    "cannot track DDL: {sql}: {problem}",
    "Skip or replace the statement with `handle-error`; when the table structure changed, "
    "set it with `operate-schema set` before resuming.")
ERR_SCHEMA_NOT_TRACKED = declare(
    44003, "SchemaTrackerTableNotTracked", _TRK, Scope.INTERNAL, Level.HIGH,
    "table {table} has no tracked structure",
    "Give the structure the binlog rows have at this position with `operate-schema set` "
    "(a CREATE TABLE file), then resume the task.")
ERR_SCHEMA_UNKNOWN_OBJECT = declare(
    44004, "SchemaTrackerUnknownObject", _TRK, Scope.INTERNAL, Level.HIGH,
    "cannot track DDL: {sql}: {kind} `{name}` does not exist in {table}", _TRK_FIX)
ERR_SCHEMA_DUPLICATE_OBJECT = declare(
    44005, "SchemaTrackerDuplicateObject", _TRK, Scope.INTERNAL, Level.HIGH,
    "cannot track DDL: {sql}: {kind} `{name}` already exists in {table}", _TRK_FIX)
ERR_SCHEMA_LOAD = declare(
    44006, "SchemaTrackerLoad", _TRK, Scope.INTERNAL, Level.HIGH,
    "cannot load a tracked table structure: {problem}",
    "The stored table_info is damaged: remove it with `operate-schema remove` and set it again "
    "with `operate-schema set`.")
ERR_SHARD_SCHEMA_CONFLICT = declare(
    44007, "ShardSchemaConflict", _TRK, Scope.UPSTREAM, Level.HIGH,
    "shard tables {tables} cannot be merged: {problem}",
    "Make the conflicting definition the same on every shard (type, default, generated "
    "expression, index columns), as optimistic shard DDL requires, then resume the task.")

# 36151-36199: DDL parsing and rendering (consumers/ddl.py), online DDL (consumers/online_ddl.py).
ERR_DDL_UNPARSABLE = declare(
    36151, "SyncDDLUnparsable", ErrClass.SYNC_UNIT, Scope.UPSTREAM, Level.HIGH,
    "cannot understand DDL `{sql}`: {problem}",
    "Skip the statement with `handle-error <task> skip`, or replace it with statements kdm "
    "understands (`handle-error <task> replace`); a global sql-pattern filter rule "
    "(schema-pattern \"*\") can drop such statements ahead of time.")
ERR_DDL_UNSUPPORTED = declare(
    36152, "SyncDDLUnsupported", ErrClass.SYNC_UNIT, Scope.UPSTREAM, Level.HIGH,
    "DDL is not supported: {problem}: `{sql}`",
    "Skip the statement with `handle-error <task> skip`, or replace it with supported "
    "statements (`handle-error <task> replace`), as DM requires.")
ERR_DDL_NO_SCHEMA = declare(
    36153, "SyncDDLNoSchema", ErrClass.SYNC_UNIT, Scope.UPSTREAM, Level.HIGH,
    "DDL `{sql}` names `{name}` without a schema, and the event has no default schema",
    "Replace the statement with a schema-qualified one (`handle-error <task> replace`).")
ERR_ONLINE_DDL_RULE = declare(
    36154, "SyncOnlineDDLRule", ErrClass.SYNC_UNIT, Scope.INTERNAL, Level.MEDIUM,
    "{key} rule `{rule}`: {problem}",
    "Give each shadow-table-rules / trash-table-rules entry exactly one capturing group that "
    "matches the real table's name, e.g. `^_(.+)_(?:new|gho)$`.")
ERR_ONLINE_DDL_RENAME = declare(
    36155, "SyncOnlineDDLRename", ErrClass.SYNC_UNIT, Scope.UPSTREAM, Level.HIGH,
    "online DDL: unexpected rename `{sql}`: {problem}",
    "Check that shadow-table-rules and trash-table-rules match the names the online-DDL tool "
    "uses; if the statement is not part of an online-DDL run, skip it with `handle-error`.")
ERR_ONLINE_DDL_NO_RECORD = declare(
    36156, "SyncOnlineDDLNoRecord", ErrClass.SYNC_UNIT, Scope.UPSTREAM, Level.HIGH,
    "online DDL: no DDL was recorded for ghost table `{schema}`.`{table}` before its cut-over "
    "`{sql}`",
    "The task started inside an online-DDL run (its start must lie before the ghost table's "
    "CREATE or after the cut-over): run the tool's ALTER on the downstream table by hand, then "
    "skip this statement with `handle-error <task> skip`.")
ERR_ONLINE_DDL_STATE = declare(
    36157, "SyncOnlineDDLState", ErrClass.SYNC_UNIT, Scope.INTERNAL, Level.HIGH,
    "cannot restore the online DDL state saved with the checkpoint: {problem}",
    "The saved state is damaged: restart the task from a position outside any online-DDL run "
    "(before the ghost table's CREATE or after the cut-over).")
ERR_SYNC_NOT_PAUSED = declare(
    36006, "SyncSubtaskNotPaused", ErrClass.SYNC_UNIT, Scope.INTERNAL, Level.LOW,
    "subtask {task}/{source} is {stage}; {verb} needs it Paused",
    "Run `kdm pause-task <task> -s <source>` first.")
ERR_SYNC_SCHEMA_MISSING = declare(
    36007, "SyncSchemaNotTracked", ErrClass.SYNC_UNIT, Scope.INTERNAL, Level.LOW,
    "subtask {task}/{source} tracks no table {table}",
    "Check the names; `operate-schema set` adds a table's structure.")
ERR_SYNC_META_AHEAD = declare(
    36008, "SyncMetaAheadOfRelay", ErrClass.SYNC_UNIT, Scope.INTERNAL, Level.MEDIUM,
    "task {task} source {source}: the relay has not reached meta {meta} yet",
    "Wait: the subtask retries until the relay producer has published that position.",
    resumable=True)
ERR_SYNC_INTERNAL = declare(
    36009, "SyncInternal", ErrClass.SYNC_UNIT, Scope.INTERNAL, Level.HIGH,
    "subtask {task}/{source} stopped on an unexpected error",
    "This is a kdm bug: report it with the log; `resume-task` retries from the checkpoint.")
ERR_SYNC_RELAY_GAP = declare(
    36010, "SyncRelayGap", ErrClass.SYNC_UNIT, Scope.INTERNAL, Level.HIGH,
    "task {task} source {source}: the relay topic no longer holds offset {offset} "
    "(it starts at {low})",
    "The relay's retention removed events this subtask had not applied; re-create the task "
    "from a full dump, or raise the source's purge.expires.")
ERR_SYNC_ILLEGAL_COMMAND = declare(
    36011, "SyncIllegalCommand", ErrClass.SYNC_UNIT, Scope.INTERNAL, Level.LOW,
    "{verb} cannot move a subtask from {current} to {wanted}",
    "Check the subtask's stage with `kdm query-status <task>`: start-task needs New or "
    "Stopped, pause-task Running, resume-task Paused, stop-task Running or Paused.")
ERR_SYNC_FULL_SOURCE = declare(
    36012, "SyncFullNeedsSource", ErrClass.SYNC_UNIT, Scope.INTERNAL, Level.MEDIUM,
    "task {task} source {source}: task-mode {mode} dumps the upstream, but this subtask was "
    "started without the source's configuration",
    "Run the task under the control plane (`operate-source create`, `start-task`, a consumer "
    "worker), or use task-mode incremental with `kdm consumer run --task`.")
ERR_SYNC_SHARD_SEQUENCE = declare(
    36013, "SyncShardDDLSequence", ErrClass.SYNC_UNIT, Scope.UPSTREAM, Level.HIGH,
    "detect inconsistent DDL sequence from source: shard {table} ran {ddls}, but the group of "
    "{target} first met {first} at {position}",
    "Pessimistic shard mode needs every shard of a target to run the same DDLs in the same "
    "order. Replace the differing DDL with `handle-error <task> replace -b <pos> <sql>` (or "
    "skip it), then resume-task.")
ERR_SYNC_SHARD_TABLES = declare(
    36014, "SyncShardTables", ErrClass.SYNC_UNIT, Scope.UPSTREAM, Level.HIGH,
    "task {task} source {source}: cannot list the upstream shard tables: {problem}",
    "A shard-merge subtask reads the upstream's table list (information_schema) to know every "
    "shard of a target: check the source's `from` connection and grants, then resume-task.")
ERR_SYNC_SHARD_REFUSED = declare(
    36016, "SyncShardDDLRefused", ErrClass.SYNC_UNIT, Scope.UPSTREAM, Level.HIGH,
    "shard DDL of {table} refused by the coordinator (lock {lock}): {error}",
    "The table's DDL cannot be merged with the other shards' (see the error). Make the "
    "shards agree, or replace or skip this DDL with `handle-error <task> replace|skip -b "
    "<pos>`, then resume-task; show-ddl-locks shows the lock.")
ERR_SYNC_SHARD_ADD_TABLE = declare(
    36017, "SyncShardAddTableInLock", ErrClass.SYNC_UNIT, Scope.UPSTREAM, Level.HIGH,
    "in sharding mode, table {table} cannot be created while the shards of {target} are "
    "meeting DDL {ddls}",
    "Create new shard tables only when no shard DDL of their target is in progress: skip "
    "the CREATE with `handle-error <task> skip`, let the lock resolve (show-ddl-locks), then "
    "create the table again.")
ERR_SYNC_SHARD_ROUTES = declare(
    36015, "SyncShardRoutesChanged", ErrClass.SYNC_UNIT, Scope.INTERNAL, Level.HIGH,
    "task {task} source {source}: table routing changed while shard tables {tables} wait on "
    "a shard DDL lock",
    "Routing may not change while a shard DDL is being coordinated: start the task with its "
    "previous routes until the lock resolves (show-ddl-locks), or resolve it with "
    "unlock-ddl-lock first.")

# -- task precheck, check-task (26xxx) ---------------------------------------------------
ERR_PRECHECK_OPEN_DB = declare(
    26001, "TaskCheckOpenDB", ErrClass.TASK_CHECK, Scope.UPSTREAM, Level.HIGH,
    "failed to open DSN {user}:***@{host}:{port}",
    "Please check the database connection and the database config in configuration file.")
ERR_PRECHECK_QUERY = declare(
    26002, "TaskCheckQuery", ErrClass.TASK_CHECK, Scope.UPSTREAM, Level.MEDIUM,
    "upstream {address}: `{query}` failed",
    "Check that the source's user may run the statement shown, or skip the check item with "
    "ignore-checking-items.")
# (end of precheck errors)

# -- coordinator and control plane (38xxx) -----------------------------------------------
ERR_CTL_MASTER = declare(
    48001, "CtlMasterUnreachable", ErrClass.CTL, Scope.INTERNAL, Level.HIGH,
    "no coordinator at {addrs} answered: {problems}",
    "Start one with `kdm coordinator run`, or point --master-addr / $DM_MASTER_ADDR at a "
    "running coordinator (a comma-separated list tries each).", resumable=True)
# 38001-38029: shard-DDL locks (coordinator/shardddl).
_LOCKS = "Run `kdm show-ddl-locks` to see the lock's owner, DDLs and synced/unsynced sources."
ERR_SHARD_DDL_DIFFERENT = declare(
    38001, "ShardDDLDifferent", ErrClass.COORDINATOR, Scope.UPSTREAM, Level.HIGH,
    "sharding ddls {lock_ddls} in ddl lock {lock} is different with {ddls} from source {source}",
    "Pessimistic mode needs every shard to run the same DDLs in the same order: replace the "
    "differing source's DDL with `handle-error <task> replace -s <source>`, then resume-task. "
    + _LOCKS)
ERR_SHARD_LOCK_NOT_FOUND = declare(
    38002, "ShardDDLLockNotFound", ErrClass.COORDINATOR, Scope.INTERNAL, Level.LOW,
    "lock with ID {lock} not found", "Please use show-ddl-locks command to see lock id.")
ERR_SHARD_LOCK_RESOLVED = declare(
    38003, "ShardDDLLockResolved", ErrClass.COORDINATOR, Scope.INTERNAL, Level.LOW,
    "lock {lock} is resolving: every source had done its operation, the lock is removed now",
    "Nothing is left to unlock; check the subtasks with `kdm query-status`.")
ERR_SHARD_OWNER_NOT_WAITING = declare(
    38004, "ShardDDLOwnerNotWaiting", ErrClass.COORDINATOR, Scope.INTERNAL, Level.LOW,
    "owner {owner} is not waiting for a lock, but sources {synced} are waiting for the lock "
    "{lock}",
    "Give --owner one of the synced sources; replace the owner only when the original owner "
    "was removed from the task. " + _LOCKS)
ERR_SHARD_OWNER_NOT_DONE = declare(
    38005, "ShardDDLOwnerNotDone", ErrClass.COORDINATOR, Scope.INTERNAL, Level.HIGH,
    "the owner {owner} of the lock {lock} has not done the operation",
    "Check the owner's subtask with `kdm query-status` (a downstream error pauses it), fix it "
    "and run unlock-ddl-lock again; --force-remove removes the lock even if the owner fails.")
ERR_SHARD_OPTIMISTIC_CONFLICT = declare(
    38006, "ShardDDLOptimisticConflict", ErrClass.COORDINATOR, Scope.UPSTREAM, Level.HIGH,
    "fail to try sync the optimistic shard ddl lock {lock}: {problem}",
    "Make the definition the same on every shard (type, default, index columns), as "
    "optimistic mode requires, or replace the DDL with `handle-error <task> replace`; then "
    "resume-task. " + _LOCKS)
ERR_SHARD_DDL_UNSUPPORTED = declare(
    38007, "ShardDDLUnsupported", ErrClass.COORDINATOR, Scope.UPSTREAM, Level.HIGH,
    "{mode} shard DDL `{sql}` is not supported: {problem}",
    "Replace the statement with supported ones (`handle-error <task> replace`), as the "
    "shard-merge restrictions require, then resume-task.")
ERR_SHARD_DDL_INFO = declare(
    38008, "ShardDDLInfoInvalid", ErrClass.COORDINATOR, Scope.INTERNAL, Level.HIGH,
    "shard DDL info from {source} for lock {lock} is invalid: {problem}",
    "This is a kdm bug: report it with the sync consumer's log.")
ERR_SHARD_LOCK_LOAD = declare(
    38009, "ShardDDLLockLoad", ErrClass.COORDINATOR, Scope.INTERNAL, Level.HIGH,
    "cannot load a shard DDL lock from the locks topic: {problem}",
    "The stored lock is damaged: inspect it with `kdm read-topic`, write a tombstone for its "
    "key, then pause-task and resume-task the waiting subtasks so they send their shard DDL "
    "infos again.")
ERR_SHARD_UNLOCK_OPTIMISTIC = declare(
    38010, "ShardDDLUnlockOptimistic", ErrClass.COORDINATOR, Scope.INTERNAL, Level.LOW,
    "lock {lock} is an optimistic lock: unlock-ddl-lock handles pessimistic locks only",
    "An optimistic lock resolves by itself once every shard has the joined structure; a "
    "paused shard is resumed with `handle-error <task> replace|skip`, then resume-task.")
ERR_SHARD_MESSAGE_INVALID = declare(
    38011, "ShardDDLMessageInvalid", ErrClass.COORDINATOR, Scope.INTERNAL, Level.HIGH,
    "shard DDL message {kind} of task {task} from source {source} at {where} is invalid: "
    "{problem}",
    "The coordinator skipped the message. This is a kdm bug: report it with the message "
    "(`kdm read-topic <prefix>.ddl --offset <offset> -n 1`); pause-task and resume-task the "
    "subtask so it sends its shard DDL info again.")
ERR_SHARD_SERVICE_DOWN = declare(
    38012, "ShardDDLServiceNotRunning", ErrClass.COORDINATOR, Scope.INTERNAL, Level.MEDIUM,
    "shard DDL coordination is not running on this coordinator: {problem}",
    "A coordinator that just became the leader rebuilds its locks first: try again in a few "
    "seconds, and check the coordinator's log for code=38013 if it persists.",
    resumable=True)
ERR_SHARD_TRANSACTION = declare(
    38013, "ShardDDLTransaction", ErrClass.COORDINATOR, Scope.INTERNAL, Level.HIGH,
    "shard DDL coordination: {op} failed; the locks are rebuilt from {topic} and the "
    "unanswered messages read again",
    "Check the Kafka brokers are reachable and that no other coordinator of this prefix "
    "claims the lead (a fenced producer means one did).", resumable=True)
# (end of coordinator errors)

# -- workers and scheduling (40xxx, 46xxx) -----------------------------------------------
ERR_MEMBERSHIP_FAILED = declare(
    46001, "SchedulerMembershipFailed", ErrClass.SCHEDULER, Scope.INTERNAL, Level.HIGH,
    "member {member} of group {group} stopped taking part in the group: {problem}",
    "The process owns no work any more: restart it, after checking the Kafka cluster's health "
    "and the group with `kafka-consumer-groups --describe --group <group>`.")
# (end of worker errors)
# -- dump and load units (32xxx, 34xxx) --
ERR_DUMP_UPSTREAM = declare(
    32001, "DumpUpstream", ErrClass.DUMP_UNIT, Scope.UPSTREAM, Level.HIGH,
    "upstream {address}: {op} failed",
    "Check the upstream is up and reachable; the full migration resumes from its finished "
    "chunks.", resumable=True)
ERR_DUMP_CONSISTENCY = declare(
    32002, "DumpConsistency", ErrClass.DUMP_UNIT, Scope.UPSTREAM, Level.HIGH,
    "cannot open a consistent snapshot with --consistency {mode}: {problem}",
    "Grant the source's user RELOAD (FLUSH TABLES WITH READ LOCK) or LOCK TABLES, or set the "
    "mydumpers extra-args to `--consistency auto` (on MariaDB a lock-free snapshot) or "
    "`--consistency none` (the sync unit then replays the dump window in safe mode).")
ERR_DUMP_TABLE = declare(
    32003, "DumpTable", ErrClass.DUMP_UNIT, Scope.UPSTREAM, Level.HIGH,
    "cannot dump `{schema}`.`{table}`: {problem}",
    "Check the table on the upstream and the mydumpers `where` setting, then `resume-task`: "
    "finished chunks are not dumped again.")
ERR_LOAD_DOWNSTREAM = declare(
    34001, "LoadDownstream", ErrClass.LOAD_UNIT, Scope.DOWNSTREAM, Level.HIGH,
    "downstream {address}: {op} failed",
    "Check the downstream is up and reachable; the full migration resumes from its finished "
    "chunks.", resumable=True)
ERR_LOAD_EXEC = declare(
    34002, "LoadExecSQL", ErrClass.LOAD_UNIT, Scope.DOWNSTREAM, Level.HIGH,
    "the downstream refused chunk {chunk} of `{schema}`.`{table}`: {problem}",
    "Fix the downstream table (columns, types, privileges), then `resume-task`: finished "
    "chunks are not loaded again.")
ERR_LOAD_CREATE = declare(
    34003, "LoadCreateTable", ErrClass.LOAD_UNIT, Scope.DOWNSTREAM, Level.HIGH,
    "cannot create {what} downstream: {problem}",
    "Create it on the downstream by hand (the upstream's columns, or more), then "
    "`resume-task`.")
ERR_LOAD_CHECKPOINT = declare(
    34004, "LoadCheckpoint", ErrClass.LOAD_UNIT, Scope.DOWNSTREAM, Level.HIGH,
    "task {task} source {source}: load checkpoint {problem}",
    "Inspect `<meta-schema>`.kdm_load_checkpoint; `start-task --remove-meta` starts the full "
    "migration over.")
ERR_LOAD_INTERNAL = declare(
    34005, "LoadInternal", ErrClass.LOAD_UNIT, Scope.INTERNAL, Level.HIGH,
    "full migration of {task}/{source} stopped on an unexpected error",
    "This is a kdm bug: report it with the log; `resume-task` resumes from the finished "
    "chunks.")
ERR_DUMP_PLAN = declare(
    32004, "DumpPlan", ErrClass.DUMP_UNIT, Scope.UPSTREAM, Level.HIGH,
    "cannot {op} on upstream {address}: {problem}",
    "Check that the source's user may read information_schema and SELECT the tables the "
    "block & allow list selects, then `resume-task`.")
# (end of dump and load errors)
