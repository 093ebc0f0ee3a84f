"""The error registry: released codes are frozen, every code sits in its class's block."""

from __future__ import annotations

import pytest

from kdm.errors import (
    CODE_BLOCKS,
    ERR_CONFIG_UNKNOWN_KEY,
    REGISTRY,
    ConfigError,
    ErrClass,
    KdmError,
    Level,
    Scope,
    StackError,
    declare,
)

# Released codes and their names. A code may be added here, never changed or removed.
FROZEN = {
    20001: "ConfigRead", 20002: "ConfigYAMLSyntax", 20003: "ConfigUnknownKey",
    20004: "ConfigMissingKey", 20005: "ConfigWrongType", 20006: "ConfigUnsupportedKey",
    20007: "ConfigInvalidValue", 20008: "ConfigUndefinedRule", 20009: "ConfigDuplicateSource",
    20010: "ConfigDecryptPassword", 20011: "ConfigConflict",
    22001: "PositionParse", 22002: "GTIDSetParse",
    30001: "RelayUnsupportedColumn", 30002: "RelayUnsupportedEvent", 30003: "RelayEventDecode",
    30004: "RelayBinlogPurged", 30005: "RelayUpstreamRead", 30006: "RelayKafkaWrite",
    30007: "RelayTopicTail", 30008: "RelayStartPosition", 30009: "RelayStageTransition",
    30010: "RelayUpstreamConfig",
    44001: "SchemaTrackerParseDDL", 44002: "SchemaTrackerUnsupportedDDL",
    44003: "SchemaTrackerTableNotTracked", 44004: "SchemaTrackerUnknownObject",
    44005: "SchemaTrackerDuplicateObject", 44006: "SchemaTrackerLoad",
    44007: "ShardSchemaConflict",
    36001: "SyncDownstream", 36002: "SyncExecSQL", 36003: "SyncStartPosition",
    36004: "SyncCheckpoint", 36005: "SyncStageTransition", 36006: "SyncSubtaskNotPaused",
    36007: "SyncSchemaNotTracked", 36008: "SyncMetaAheadOfRelay",
    36009: "SyncInternal", 36010: "SyncRelayGap",
    36011: "SyncIllegalCommand", 36012: "SyncFullNeedsSource",
    36013: "SyncShardDDLSequence", 36014: "SyncShardTables", 36015: "SyncShardRoutesChanged",
    36016: "SyncShardDDLRefused", 36017: "SyncShardAddTableInLock",
    36101: "SyncRuleInvalid", 36102: "SyncRuleDuplicate", 36103: "SyncRouteConflict",
    36104: "SyncFilterUnknownEvent", 36105: "SyncExpressionInvalid", 36106: "SyncExpressionRow",
    36151: "SyncDDLUnparsable", 36152: "SyncDDLUnsupported", 36153: "SyncDDLNoSchema",
    36154: "SyncOnlineDDLRule", 36155: "SyncOnlineDDLRename", 36156: "SyncOnlineDDLNoRecord",
    36157: "SyncOnlineDDLState",
    52001: "KafkaAdmin", 52002: "KafkaTopicMismatch", 52003: "KafkaMessageDecode",
    52004: "KafkaSchemaRegistry", 52005: "KafkaMessageEncode",
    54001: "StackInstall", 54002: "StackStart", 54003: "StackPortTaken", 54004: "StackNotUp",
    54005: "StackSmokeFailed", 54006: "StackPortsChanged",
    # precheck (26xxx)
    26001: "TaskCheckOpenDB", 26002: "TaskCheckQuery",
    # coordinator (38xxx)
    38001: "ShardDDLDifferent", 38002: "ShardDDLLockNotFound", 38003: "ShardDDLLockResolved",
    38004: "ShardDDLOwnerNotWaiting", 38005: "ShardDDLOwnerNotDone",
    38006: "ShardDDLOptimisticConflict", 38007: "ShardDDLUnsupported",
    38008: "ShardDDLInfoInvalid", 38009: "ShardDDLLockLoad",
    38010: "ShardDDLUnlockOptimistic", 38011: "ShardDDLMessageInvalid",
    38012: "ShardDDLServiceNotRunning", 38013: "ShardDDLTransaction",
    48001: "CtlMasterUnreachable",
    # workers and scheduling (40xxx, 46xxx)
    46001: "SchedulerMembershipFailed",
    # dump and load (32xxx, 34xxx)
    32001: "DumpUpstream", 32002: "DumpConsistency", 32003: "DumpTable", 32004: "DumpPlan",
    34001: "LoadDownstream", 34002: "LoadExecSQL", 34003: "LoadCreateTable",
    34004: "LoadCheckpoint", 34005: "LoadInternal",
}


def test_released_codes_keep_their_meaning() -> None:
    for code, name in FROZEN.items():
        assert code in REGISTRY, f"released code {code} ({name}) was removed"
        assert REGISTRY[code].name == name, f"code {code} changed meaning"


def test_every_declared_code_is_frozen() -> None:
    assert set(REGISTRY) <= set(FROZEN), "add new codes to FROZEN when they are released"


def test_codes_sit_in_their_class_block() -> None:
    for code, spec in REGISTRY.items():
        assert code in CODE_BLOCKS[spec.cls], f"{code} outside {spec.cls.value}"
        assert spec.message and spec.workaround, f"{code} needs a message and a workaround"


def test_declare_refuses_duplicates_and_foreign_blocks() -> None:
    with pytest.raises(ValueError, match="already declared"):
        declare(20001, "Again", ErrClass.CONFIG, Scope.INTERNAL, Level.LOW, "m")
    with pytest.raises(ValueError, match="outside"):
        declare(30001, "Wrong", ErrClass.CONFIG, Scope.INTERNAL, Level.LOW, "m")


def test_render_matches_dms_form() -> None:
    err = ERR_CONFIG_UNKNOWN_KEY("yaml said no", where="t.yaml:3", key="foo", section="top")
    assert err.render() == (
        "[code=20003:class=config:scope=internal:level=medium], "
        "Message: t.yaml:3: unknown key `foo` in top, RawCause: yaml said no, "
        f"Workaround: {ERR_CONFIG_UNKNOWN_KEY.workaround}")
    assert str(err) == err.render()


def test_exception_types_and_dict_form() -> None:
    err = ERR_CONFIG_UNKNOWN_KEY(where="t.yaml:3", key="k", section="s", path="t.yaml", line=3)
    assert isinstance(err, ConfigError) and (err.path, err.line) == ("t.yaml", 3)
    assert isinstance(REGISTRY[54001](component="c", problem="p"), StackError)
    assert isinstance(REGISTRY[52001](op="o", target="t"), KdmError)
    assert err.to_dict() == {
        "ErrCode": 20003, "ErrClass": "config", "ErrScope": "internal", "ErrLevel": "medium",
        "Message": "t.yaml:3: unknown key `k` in s", "RawCause": "",
        "Workaround": ERR_CONFIG_UNKNOWN_KEY.workaround}


def test_raw_cause_chains_the_exception() -> None:
    cause = OSError("disk")
    err = REGISTRY[20001](cause, path="x")
    assert err.__cause__ is cause and err.raw_cause == "disk"
