"""DM's online-DDL support for gh-ost and pt-osc, as a pure state machine (no I/O).

Both tools change a table `t` without locking it: they create a ghost table, run the ALTER
on it, copy the rows over, keep it in step while copying, then swap it in with one RENAME.
With `online-ddl: true`, DM replicates none of that: ghost and trash tables never reach the
downstream, and at the swap the ALTER recorded for the ghost table runs on the real table.

Tables are told apart by name, with `shadow-table-rules` and `trash-table-rules` (DM's
defaults below; a user rule gets `^`/`$` added and must have exactly one capturing group,
the real table's name):

    gh-ost   ghost `_t_gho`    trash `_t_ghc` (its changelog), `_t_del` (the old `t`)
    pt-osc   ghost `_t_new`    trash `_t_old`

Decisions (`OnlineDDL.on_dml`, `OnlineDDL.on_ddl`):

    row change on a ghost or trash table                     IGNORE
    CREATE / DROP of a ghost table                           IGNORE, forget its record
    ALTER TABLE / CREATE INDEX / DROP INDEX on a ghost       REMEMBER, rewritten for the real
    any other DDL on a ghost or trash table                  IGNORE
    RENAME real -> trash (cut-over, first half)              IGNORE
    RENAME ghost -> real (cut-over, second half)             EMIT the remembered DDLs for it
    RENAME ghost -> trash                                    IGNORE, forget its record
    RENAME real -> ghost, ghost -> ghost, trash -> ghost     error 36155
    anything else                                            APPLY (not online DDL's business)

Worked example, gh-ost altering `test.test4` (manual §8):

    CREATE TABLE test._test4_ghc (...)                     IGNORE (trash)
    CREATE TABLE test._test4_gho LIKE test.test4           IGNORE, record of _test4_gho cleared
    ALTER TABLE test._test4_gho ADD COLUMN c11 INT         REMEMBER
        state: {test._test4_gho -> test.test4:
                ["ALTER TABLE `test`.`test4` ADD COLUMN c11 INT"]}
    INSERT INTO test._test4_ghc / test._test4_gho rows     IGNORE
    RENAME TABLE test.test4 TO test._test4_del,            split by consumers.ddl into:
                 test._test4_gho TO test.test4
        RENAME test.test4 TO test._test4_del               IGNORE
        RENAME test._test4_gho TO test.test4               EMIT ALTER TABLE `test`.`test4`
                                                           ADD COLUMN c11 INT
    DROP TABLE IF EXISTS test._test4_del                   IGNORE (trash)
    (the next run's CREATE TABLE test._test4_gho clears the record)

pt-osc is the same with `_test4_new` / `_test4_old`; its `pt_osc_*` triggers are not schema
changes, so `consumers.ddl` already skips them.

The state (`to_dict`, restored by `restore`) must be saved with the checkpoint, as it stands
right after the last event the checkpoint covers: a restart then replays later events on the
state they first met. Every transition is also safe to repeat: a replayed ALTER equal to the
last remembered one is not remembered twice (as in DM), CREATE/DROP of a ghost clear its
record, and EMIT leaves the record in place. A task that starts inside a run (after the
ghost's ALTER) finds no record at the cut-over and stops with 36156, as DM does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from consumers.ddl import (
    ALTER_TABLE,
    CREATE_INDEX,
    CREATE_TABLE,
    DDL,
    DROP_INDEX,
    DROP_TABLE,
    RENAME_TABLE,
    Rename,
    parse_ddl,
)
from kdm.errors import (
    ERR_ONLINE_DDL_NO_RECORD,
    ERR_ONLINE_DDL_RENAME,
    ERR_ONLINE_DDL_RULE,
    ERR_ONLINE_DDL_STATE,
    KdmError,
)

DEFAULT_SHADOW_RULES = ("^_(.+)_(?:new|gho)$",)
DEFAULT_TRASH_RULES = ("^_(.+)_(?:ghc|del|old)$",)


class TableType(Enum):
    """What a table is to an online-DDL run."""

    REAL = "real table"
    GHOST = "ghost table"
    TRASH = "trash table"


class Action(Enum):
    """What the sync unit does with a row change or DDL."""

    APPLY = "apply"
    IGNORE = "ignore"
    REMEMBER = "remember"
    EMIT = "emit"


@dataclass(frozen=True)
class Decision:
    """An action and its statements: APPLY the DDL itself, EMIT the remembered DDLs for the
    real table, REMEMBER the rewritten DDL just recorded; IGNORE carries none."""

    action: Action
    ddls: tuple[DDL, ...] = ()


class TableRules(Protocol):
    """The task keys online DDL reads (`TaskConfig` has them)."""

    @property
    def shadow_table_rules(self) -> tuple[str, ...]: ...

    @property
    def trash_table_rules(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class OnlineDDLRules:
    """The two rule lists on their own, for callers without a task."""

    shadow_table_rules: tuple[str, ...] = ()
    trash_table_rules: tuple[str, ...] = ()


def compile_rules(key: str, rules: Sequence[str], default: Sequence[str]
                  ) -> tuple[re.Pattern[str], ...]:
    """DM's adjustment: defaults when empty, else anchored, each with one capturing group."""
    return tuple(_compile_rule(key, rule) for rule in (rules or default))


def _compile_rule(key: str, rule: str) -> re.Pattern[str]:
    anchored = ("" if rule.startswith("^") else "^") + rule + ("" if rule.endswith("$") else "$")
    try:
        pattern = re.compile(anchored)
    except re.error as exc:
        raise ERR_ONLINE_DDL_RULE(exc, key=key, rule=rule, problem=f"not a regex: {exc}") from exc
    if pattern.groups != 1:
        raise ERR_ONLINE_DDL_RULE(key=key, rule=rule, problem=f"has {pattern.groups} capturing "
                                  "groups; exactly one (the real table's name) is needed")
    return pattern


@dataclass
class _Record:
    """What is remembered for one ghost table: its real table and the rewritten DDLs."""

    real_schema: str
    real_table: str
    ddls: list[str]


_Handler = Callable[["OnlineDDL", DDL], Decision]


class OnlineDDL:
    """Decides, per row change and DDL, what gh-ost's and pt-osc's statements become."""

    def __init__(self, rules: TableRules) -> None:
        self.shadow = compile_rules("shadow-table-rules", rules.shadow_table_rules,
                                    DEFAULT_SHADOW_RULES)
        self.trash = compile_rules("trash-table-rules", rules.trash_table_rules,
                                   DEFAULT_TRASH_RULES)
        self._records: dict[tuple[str, str], _Record] = {}

    def table_type(self, table: str) -> TableType:
        """Ghost if a shadow rule matches, else trash if a trash rule does, else real."""
        if any(rule.match(table) for rule in self.shadow):
            return TableType.GHOST
        if any(rule.match(table) for rule in self.trash):
            return TableType.TRASH
        return TableType.REAL

    def real_name(self, table: str) -> str:
        """The real table a ghost or trash table belongs to (the rule's group); else `table`."""
        for rule in (*self.shadow, *self.trash):
            match = rule.match(table)
            if match:
                return match.group(1)
        return table

    def on_dml(self, schema: str, table: str) -> Action:
        """IGNORE a row change on a ghost or trash table, else APPLY."""
        return Action.APPLY if self.table_type(table) is TableType.REAL else Action.IGNORE

    def on_ddl(self, ddl: DDL) -> Decision:
        """The decision for one (split) DDL, updating the remembered DDLs."""
        if not ddl.is_schema_change or not ddl.tables:
            return Decision(Action.APPLY, (ddl,))
        if ddl.event == RENAME_TABLE and len(ddl.tables) == 2:
            return self._rename(ddl)
        return _BY_TYPE[self.table_type(ddl.tables[0][1])](self, ddl)

    def ignores_dml(self, schema: str, table: str) -> bool:
        """Whether a row change on `schema`.`table` is dropped."""
        return self.on_dml(schema, table) is Action.IGNORE

    def ddl(self, ddl: DDL, rename: Rename) -> list[str] | None:
        """The statements to run downstream for `ddl`, routed; None when online DDL takes it."""
        decision = self.on_ddl(ddl)
        if decision.action in (Action.IGNORE, Action.REMEMBER):
            return None
        return [each.render(rename) for each in decision.ddls if each.is_schema_change]

    def to_dict(self) -> dict[str, Any]:
        """The remembered DDLs as a JSON-able dict, saved with the checkpoint."""
        return {"ghosts": [
            {"schema": schema, "table": table, "real-schema": record.real_schema,
             "real-table": record.real_table, "ddls": list(record.ddls)}
            for (schema, table), record in sorted(self._records.items())]}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Replace the remembered DDLs with those of a `to_dict` result."""
        try:
            self._records = dict(_restore_one(entry) for entry in state["ghosts"])
        except (KeyError, TypeError, ValueError, KdmError) as exc:
            raise ERR_ONLINE_DDL_STATE(exc, problem=f"{type(exc).__name__}: {exc}") from exc

    def _apply(self, ddl: DDL) -> Decision:
        return Decision(Action.APPLY, (ddl,))

    def _ignore(self, ddl: DDL) -> Decision:
        return Decision(Action.IGNORE)

    def _forget(self, ddl: DDL) -> Decision:
        self._records.pop(ddl.tables[0], None)
        return Decision(Action.IGNORE)

    def _on_ghost(self, ddl: DDL) -> Decision:
        return _ON_GHOST.get(ddl.event, OnlineDDL._ignore)(self, ddl)

    def _remember(self, ddl: DDL) -> Decision:
        """Record `ddl`, rewritten for the real table; an exact repeat of the last is dropped."""
        ghost = ddl.tables[0]
        real = (ghost[0], self.real_name(ghost[1]))
        record = self._records.setdefault(ghost, _Record(*real, []))
        rewritten = ddl.render(_moving(ghost, real))
        if not record.ddls or record.ddls[-1] != rewritten:
            record.ddls.append(rewritten)
        return Decision(Action.REMEMBER, parse_ddl(rewritten, ghost[0]))

    def _rename(self, ddl: DDL) -> Decision:
        old, new = (self.table_type(table) for _, table in ddl.tables)
        handler = _RENAMES.get((old, new))
        if handler is None:
            raise ERR_ONLINE_DDL_RENAME(sql=ddl.sql, problem=f"it renames a {old.value} to a "
                                        f"{new.value}")
        return handler(self, ddl)

    def _emit(self, ddl: DDL) -> Decision:
        """The cut-over: the ghost's remembered DDLs, aimed at the table it becomes. The record
        stays until the ghost is created or dropped again, so a retried cut-over (a failed
        downstream ALTER, a restart) emits the same statements."""
        ghost, target = ddl.tables
        record = self._records.get(ghost)
        if record is None:
            raise ERR_ONLINE_DDL_NO_RECORD(schema=ghost[0], table=ghost[1], sql=ddl.sql)
        real = (record.real_schema, record.real_table)
        return Decision(Action.EMIT, tuple(
            each for sql in record.ddls for each in _retarget(sql, real, target)))


def _moving(old: tuple[str, str], new: tuple[str, str]) -> Rename:
    """A rename that moves `old` to `new` and keeps every other name."""
    def rename(schema: str, table: str) -> tuple[str, str]:
        return new if (schema, table) == old else (schema, table)
    return rename


def _retarget(sql: str, real: tuple[str, str], target: tuple[str, str]) -> tuple[DDL, ...]:
    """A remembered statement as DDL values; aimed at `target` when the swap renamed the ghost
    to another table than the rule's real name."""
    ddls = parse_ddl(sql, real[0])
    if target == real:
        return ddls
    return tuple(each for ddl in ddls for each in parse_ddl(ddl.render(_moving(real, target))))


def _restore_one(entry: Mapping[str, Any]) -> tuple[tuple[str, str], _Record]:
    ddls = entry["ddls"]
    if not isinstance(ddls, list):
        raise TypeError(f"ddls of a ghost entry must be a list, got {ddls!r}")
    fields = (entry["schema"], entry["table"], entry["real-schema"], entry["real-table"], *ddls)
    if not all(isinstance(item, str) for item in fields):
        raise TypeError(f"malformed ghost entry {entry!r}")
    for sql in ddls:
        parse_ddl(sql, entry["schema"])
    return (entry["schema"], entry["table"]), _Record(entry["real-schema"], entry["real-table"],
                                                      list(ddls))


_BY_TYPE: dict[TableType, _Handler] = {
    TableType.REAL: OnlineDDL._apply,
    TableType.TRASH: OnlineDDL._ignore,
    TableType.GHOST: OnlineDDL._on_ghost,
}
_ON_GHOST: dict[str, _Handler] = {
    CREATE_TABLE: OnlineDDL._forget,
    DROP_TABLE: OnlineDDL._forget,
    ALTER_TABLE: OnlineDDL._remember,
    CREATE_INDEX: OnlineDDL._remember,
    DROP_INDEX: OnlineDDL._remember,
}
_R, _G, _T = TableType.REAL, TableType.GHOST, TableType.TRASH
_RENAMES: dict[tuple[TableType, TableType], _Handler] = {
    (_R, _R): OnlineDDL._apply,
    (_R, _T): OnlineDDL._ignore,
    (_G, _R): OnlineDDL._emit,
    (_G, _T): OnlineDDL._forget,
    (_T, _R): OnlineDDL._ignore,
    (_T, _T): OnlineDDL._ignore,
}
