"""Scenario: block & allow lists (manual §5). Tables that match the lists arrive with the
upstream rows; tables and schemas that do not must not exist downstream at all.

Schemas `$U` (main), `$U_logs`, `$U_skip` ($U is `up_<unique>`), each routed to its own
existing downstream schema (`down_<unique>...`), so a wrongly migrated CREATE TABLE would
succeed there and be seen. (Downstream names differ from the upstream ones so that another
task sharing the stack without a block & allow list cannot write into them.)
"""

from __future__ import annotations

import pytest

from kdm.config.service import KafkaConfig
from kdm.stack.stack import Endpoints
from tests.integration.relay_support import gtid_now
from tests.integration.scenario_support import barrier, databases, tables_of
from tests.integration.sync_support import execute, rows, running, task_config, task_text

pytestmark = pytest.mark.integration

TABLES = {
    "main": ["t_1", "t_22", "xt_1", "keep", "other", "tmp_a", "bak_1", "notbak"],
    "logs": ["msg_2017", "msg_2018"],
    "skip": ["t_1", "keep"],
}

ALLOW = """\
do-dbs: ["$U", "~^$U_l"]
do-tables:
  - {db-name: "$U", tbl-name: "t_*"}
  - {db-name: "$U", tbl-name: "KEEP"}
  - {db-name: "$U", tbl-name: "zz_*"}
  - {db-name: "~^$U_lo", tbl-name: "~_2018$"}
  - {db-name: "$U_skip", tbl-name: "*"}
"""

# `~^(?!$U)` ignores every schema but this test's own, so writes of other tests or benchmarks
# sharing the upstream stay out (a Python-regex lookahead: kdm compiles with `re`).
BLOCK = """\
ignore-dbs: ["~^(?!$U)", "$U_sk*"]
ignore-tables:
  - {db-name: "$U", tbl-name: "tmp_*"}
  - {db-name: "$U", tbl-name: "~^bak"}
  - {db-name: "~_logs$", tbl-name: "msg_201[0-7]"}
"""


def test_allow_lists_migrate_only_the_listed_tables(
        endpoints: Endpoints, kafka: KafkaConfig, unique: str) -> None:
    # do-dbs: $U by name, $U_logs by regex; $U_skip is not listed, so its do-tables entry is moot.
    # do-tables: t_* (a whole-name wildcard: not xt_1), KEEP (case-insensitive), a regex pair.
    _scenario(endpoints, kafka, unique, ALLOW,
              {"main": {"t_1", "t_22", "t_9", "keep"}, "logs": {"msg_2018"}, "skip": set()})


def test_block_lists_drop_the_listed_tables(
        endpoints: Endpoints, kafka: KafkaConfig, unique: str) -> None:
    # ignore-dbs: $U_skip by wildcard; ignore-tables: tmp_* (wildcard), ~^bak (regex: not
    # notbak), msg_201[0-7] (character range: msg_2017 but not msg_2018).
    _scenario(endpoints, kafka, unique, BLOCK,
              {"main": {"t_1", "t_22", "t_9", "xt_1", "keep", "other", "notbak"},
               "logs": {"msg_2018"}, "skip": set()})


def _scenario(endpoints: Endpoints, kafka: KafkaConfig, unique: str, rule: str,
              migrated: dict[str, set[str]]) -> None:
    """Write every table of `TABLES` under the BA rule; check exactly `migrated` arrived."""
    main, target = f"up_{unique}", f"down_{unique}"
    suffixes = {"main": "", "logs": "_logs", "skip": "_skip"}
    schemas = {role: main + suffix for role, suffix in suffixes.items()}
    targets = {role: target + suffix for role, suffix in suffixes.items()}
    source = f"ba-{unique}"
    body = "routes:\n" + "".join(
        f"  r{role}: {{schema-pattern: {schemas[role]}, target-schema: {targets[role]}}}\n"
        for role in suffixes) + "block-allow-list:\n  ba:\n" + "".join(
        f"    {line}\n" for line in rule.replace("$U", main).splitlines())
    task = task_config(task_text(f"ba-{unique}", endpoints, [source], body,
                                 "route-rules: [rmain, rlogs, rskip]\nblock-allow-list: ba",
                                 meta_schema=f"{target}_meta"))
    with databases(endpoints, up=tuple(schemas.values()), down=tuple(targets.values()),
                   drop_down=(f"{target}_meta",)), \
            running(endpoints, kafka, [source], gtid_now(endpoints), task):
        _write(endpoints, schemas)
        barrier(endpoints, main, target)
        for role, db in targets.items():
            assert tables_of(endpoints, "down", db) - {"zz_barrier"} == migrated[role], role
            for table in migrated[role]:
                assert rows(endpoints, "down", db, table) == rows(
                    endpoints, "up", schemas[role], table)


def _write(endpoints: Endpoints, schemas: dict[str, str]) -> None:
    """Every table of `TABLES`: created, filled, updated and partly deleted."""
    for role, tables in TABLES.items():
        for table in tables:
            execute(endpoints, schemas[role],
                    f"CREATE TABLE `{table}` (id INT PRIMARY KEY, v VARCHAR(20))",
                    f"INSERT INTO `{table}` VALUES " + ", ".join(
                        f"({i}, '{table}-{i}')" for i in range(20)),
                    f"UPDATE `{table}` SET v = CONCAT(v, '!') WHERE id % 3 = 0",
                    f"DELETE FROM `{table}` WHERE id % 4 = 0")
    # A DDL is judged by the schema it names, not by the connection's default one (§5).
    main, skip = schemas["main"], schemas["skip"]
    execute(endpoints, skip, f"CREATE TABLE `{main}`.t_9 (id INT PRIMARY KEY)",
            f"INSERT INTO `{main}`.t_9 VALUES (1), (2)")
    execute(endpoints, main, f"CREATE TABLE `{skip}`.t_5 (id INT PRIMARY KEY)",
            f"INSERT INTO `{skip}`.t_5 VALUES (1), (2)")
