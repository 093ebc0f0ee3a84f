"""consumers.online_ddl: gh-ost and pt-osc runs as the manual (§8) describes them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from consumers.ddl import parse_ddl
from consumers.online_ddl import (
    Action,
    Decision,
    OnlineDDL,
    OnlineDDLRules,
    TableType,
)
from kdm.config.task import parse_task
from kdm.errors import KdmError


def same(schema: str, table: str) -> tuple[str, str]:
    """No routing."""
    return schema, table


def steps(online: OnlineDDL, *sqls: str, schema: str = "test") -> list[Decision]:
    """The decisions for each (split) statement of `sqls`, in order."""
    return [online.on_ddl(ddl) for sql in sqls for ddl in parse_ddl(sql, schema)]


def actions(decisions: list[Decision]) -> list[Action]:
    return [decision.action for decision in decisions]


def emitted(decision: Decision) -> list[str]:
    return [ddl.render(same) for ddl in decision.ddls]


GH_OST = (
    "DROP /* gh-ost */ TABLE IF EXISTS `test`.`_test4_gho`",
    "CREATE /* gh-ost */ TABLE `test`.`_test4_ghc` (id bigint auto_increment, hint varchar(64), "
    "primary key(id))",
    "CREATE /* gh-ost */ TABLE `test`.`_test4_gho` LIKE `test`.`test4`",
    "ALTER /* gh-ost */ TABLE `test`.`_test4_gho` ADD COLUMN c11 INT NOT NULL DEFAULT 0",
)
GH_OST_CUT_OVER = ("RENAME /* gh-ost */ TABLE `test`.`test4` TO `test`.`_test4_del`, "
                   "`test`.`_test4_gho` TO `test`.`test4`")


def test_gh_ost_run_as_in_the_manual() -> None:
    online = OnlineDDL(OnlineDDLRules())
    decisions = steps(online, *GH_OST, GH_OST_CUT_OVER, "DROP TABLE IF EXISTS `_test4_del`")
    assert actions(decisions) == [Action.IGNORE, Action.IGNORE, Action.IGNORE, Action.REMEMBER,
                                  Action.IGNORE, Action.EMIT, Action.IGNORE]
    assert emitted(decisions[3]) == [
        "ALTER /* gh-ost */ TABLE `test`.`test4` ADD COLUMN c11 INT NOT NULL DEFAULT 0"]
    assert emitted(decisions[5]) == emitted(decisions[3])
    assert decisions[5].ddls[0].event == "alter table"


def test_gh_ost_row_changes_on_ghost_and_trash_tables_are_ignored() -> None:
    online = OnlineDDL(OnlineDDLRules())
    assert [online.on_dml("test", t) for t in ("_test4_gho", "_test4_ghc", "_test4_del",
                                               "test4", "_test4")] == [
        Action.IGNORE, Action.IGNORE, Action.IGNORE, Action.APPLY, Action.APPLY]
    assert online.ignores_dml("test", "_test4_gho") and not online.ignores_dml("test", "test4")


def test_pt_osc_run_as_in_the_manual() -> None:
    online = OnlineDDL(OnlineDDLRules())
    decisions = steps(
        online,
        "CREATE TABLE `test`.`_test4_new` (`id` int NOT NULL, PRIMARY KEY (`id`))",
        "ALTER TABLE `test`.`_test4_new` ADD COLUMN c3 int",
        "CREATE TRIGGER `pt_osc_test_test4_ins` AFTER INSERT ON `test`.`test4` FOR EACH ROW "
        "REPLACE INTO `test`.`_test4_new` (`id`) VALUES (NEW.`id`)",
        "RENAME TABLE `test`.`test4` TO `test`.`_test4_old`, "
        "`test`.`_test4_new` TO `test`.`test4`",
        "DROP TABLE IF EXISTS `test`.`_test4_old`",
        "DROP TRIGGER IF EXISTS `test`.`pt_osc_test_test4_ins`")
    assert actions(decisions) == [Action.IGNORE, Action.REMEMBER, Action.APPLY, Action.IGNORE,
                                  Action.EMIT, Action.IGNORE, Action.APPLY]
    assert emitted(decisions[4]) == ["ALTER TABLE `test`.`test4` ADD COLUMN c3 int"]
    assert not decisions[2].ddls[0].is_schema_change  # the trigger: skipped by the sync unit
    assert online.on_dml("test", "_test4_new") is Action.IGNORE


def test_several_ddls_are_emitted_in_order_and_a_repeat_is_remembered_once() -> None:
    online = OnlineDDL(OnlineDDLRules())
    alter = "ALTER TABLE _t_gho ADD COLUMN a INT"
    decisions = steps(online, "CREATE TABLE _t_gho LIKE t", alter, alter,
                      "CREATE INDEX i ON _t_gho (a)", "ALTER TABLE _t_gho DROP INDEX j",
                      "TRUNCATE TABLE _t_gho", "RENAME TABLE t TO _t_del, _t_gho TO t")
    assert decisions[5].action is Action.IGNORE
    assert emitted(decisions[-1]) == [
        "ALTER TABLE `test`.`t` ADD COLUMN a INT", "CREATE INDEX i ON `test`.`t` (a)",
        "ALTER TABLE `test`.`t` DROP INDEX j"]


def test_other_statements_pass_through() -> None:
    online = OnlineDDL(OnlineDDLRules())
    decisions = steps(online, "ALTER TABLE t ADD x INT", "RENAME TABLE a TO b",
                      "CREATE DATABASE d", "GRANT ALL ON *.* TO u")
    assert actions(decisions) == [Action.APPLY] * 4
    assert [d.ddls[0].sql for d in decisions] == [
        "ALTER TABLE t ADD x INT", "RENAME TABLE a TO b", "CREATE DATABASE d",
        "GRANT ALL ON *.* TO u"]


def test_state_survives_a_restart_between_alter_and_cut_over() -> None:
    before = OnlineDDL(OnlineDDLRules())
    steps(before, *GH_OST)
    saved = json.loads(json.dumps(before.to_dict()))
    assert saved == {"ghosts": [{
        "schema": "test", "table": "_test4_gho", "real-schema": "test", "real-table": "test4",
        "ddls": ["ALTER /* gh-ost */ TABLE `test`.`test4` ADD COLUMN c11 INT NOT NULL "
                 "DEFAULT 0"]}]}
    after = OnlineDDL(OnlineDDLRules())
    after.restore(saved)
    (_, cut_over) = steps(after, GH_OST_CUT_OVER)
    assert emitted(cut_over) == saved["ghosts"][0]["ddls"]


def test_a_retried_cut_over_emits_again_until_the_ghost_is_created_anew() -> None:
    online = OnlineDDL(OnlineDDLRules())
    steps(online, *GH_OST)
    first, second = steps(online, GH_OST_CUT_OVER, GH_OST_CUT_OVER)[1::2]
    assert emitted(first) == emitted(second) and first.action is Action.EMIT
    steps(online, "CREATE TABLE `_test4_gho` LIKE `test4`")
    assert online.to_dict() == {"ghosts": []}


def test_a_cut_over_without_a_record_stops_the_task() -> None:
    online = OnlineDDL(OnlineDDLRules())
    with pytest.raises(KdmError) as raised:
        steps(online, GH_OST_CUT_OVER)
    assert raised.value.code == 36156
    assert raised.value.fields["table"] == "_test4_gho"


@pytest.mark.parametrize("sql", [
    "RENAME TABLE t TO _t_gho",
    "RENAME TABLE _a_gho TO _b_new",
    "RENAME TABLE _t_del TO _t_gho",
])
def test_renames_into_ghost_tables_are_refused(sql: str) -> None:
    with pytest.raises(KdmError) as raised:
        steps(OnlineDDL(OnlineDDLRules()), sql)
    assert raised.value.code == 36155


def test_renaming_a_ghost_to_a_trash_table_forgets_it() -> None:
    online = OnlineDDL(OnlineDDLRules())
    steps(online, "ALTER TABLE _t_gho ADD a INT")
    assert actions(steps(online, "RENAME TABLE _t_gho TO _t_del", "RENAME TABLE _t_del TO t",
                         "RENAME TABLE _t_del TO _t_old")) == [Action.IGNORE] * 3
    assert online.to_dict() == {"ghosts": []}


def test_the_cut_over_aims_at_the_table_the_ghost_becomes() -> None:
    online = OnlineDDL(OnlineDDLRules())
    (_, cut_over) = steps(online, "ALTER TABLE _t_gho ADD a INT",
                          "RENAME TABLE _t_gho TO other.t2")
    assert emitted(cut_over) == ["ALTER TABLE `other`.`t2` ADD a INT"]


def test_custom_rules_are_anchored() -> None:
    online = OnlineDDL(OnlineDDLRules(("(.+)_shadow",), ("(.+)_trash",)))
    assert online.table_type("orders_shadow") is TableType.GHOST
    assert online.table_type("orders_trash") is TableType.TRASH
    assert online.table_type("_orders_gho") is TableType.REAL
    assert online.table_type("orders_shadow_x") is TableType.REAL
    assert online.real_name("orders_shadow") == "orders"
    decisions = steps(online, "ALTER TABLE orders_shadow ADD b INT",
                      "RENAME TABLE orders TO orders_trash, orders_shadow TO orders")
    assert emitted(decisions[-1]) == ["ALTER TABLE `test`.`orders` ADD b INT"]


def test_default_rules_name_the_real_table() -> None:
    online = OnlineDDL(OnlineDDLRules())
    assert [online.real_name(t) for t in ("_t_gho", "_t_ghc", "_t_del", "_t_new", "_t_old",
                                          "t", "_a_b_gho")] == ["t"] * 6 + ["a_b"]
    assert [online.table_type(t).value for t in ("_t_gho", "_t_new", "_t_ghc", "t")] == [
        "ghost table", "ghost table", "trash table", "real table"]


@pytest.mark.parametrize(("shadow", "problem"), [
    ("_(.+)_(gho)", "2 capturing groups"),
    ("_tmp", "0 capturing groups"),
    ("(unclosed", "not a regex"),
])
def test_rules_need_one_capturing_group(shadow: str, problem: str) -> None:
    with pytest.raises(KdmError) as raised:
        OnlineDDL(OnlineDDLRules(shadow_table_rules=(shadow,)))
    assert raised.value.code == 36154 and problem in raised.value.message


def test_task_config_supplies_the_rules() -> None:
    task = parse_task("name: t\ntask-mode: incremental\nonline-ddl: true\n"
                      "target-database: {host: 127.0.0.1, port: 4000, user: root}\n"
                      "shadow-table-rules: ['^_(.+)_tmp$']\n"
                      "mysql-instances:\n  - source-id: s1\n")
    online = OnlineDDL(task)
    assert online.table_type("_t_tmp") is TableType.GHOST
    assert online.table_type("_t_gho") is TableType.REAL
    assert online.table_type("_t_del") is TableType.TRASH


def test_ddl_gives_the_routed_statements_or_none() -> None:
    online = OnlineDDL(OnlineDDLRules())

    def route(schema: str, table: str) -> tuple[str, str]:
        return "r_" + schema, table

    (alter,) = parse_ddl("ALTER TABLE _t_gho ADD a INT", "db")
    (plain,) = parse_ddl("ALTER TABLE t ADD a INT", "db")
    (grant,) = parse_ddl("GRANT ALL ON *.* TO u", "db")
    to_trash, cut_over = parse_ddl("RENAME TABLE t TO _t_del, _t_gho TO t", "db")
    assert online.ddl(alter, route) is None
    assert online.ddl(plain, route) == ["ALTER TABLE `r_db`.`t` ADD a INT"]
    assert online.ddl(grant, route) == []
    assert online.ddl(to_trash, route) is None
    assert online.ddl(cut_over, route) == ["ALTER TABLE `r_db`.`t` ADD a INT"]


@pytest.mark.parametrize("state", [
    {},
    {"ghosts": "x"},
    {"ghosts": [{"schema": "s"}]},
    {"ghosts": [{"schema": "s", "table": "_t_gho", "real-schema": "s", "real-table": "t",
                 "ddls": "ALTER TABLE t ADD a INT"}]},
    {"ghosts": [{"schema": "s", "table": 1, "real-schema": "s", "real-table": "t",
                 "ddls": []}]},
    {"ghosts": [{"schema": "s", "table": "_t_gho", "real-schema": "s", "real-table": "t",
                 "ddls": ["ALTER TABLE"]}]},
])
def test_restore_refuses_a_damaged_state(state: dict[str, Any]) -> None:
    with pytest.raises(KdmError) as raised:
        OnlineDDL(OnlineDDLRules()).restore(state)
    assert raised.value.code == 36157
