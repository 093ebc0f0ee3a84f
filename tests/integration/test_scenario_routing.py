"""Scenario: table routing (manual §4). Sharded tables `$U.t_1`, `$U.t_2` and `$U_2.t_3`
merge into one downstream table by a table-level rule with wildcards (`$U*`.`t_?`); the
shards hold disjoint ids, so the merged table is their union. Every other table (`t_10`: `?`
is one character) keeps its name and, with its DDL (a RENAME too), moves to the downstream
schema by a schema-level rule.

The shards exist before the task starts and the merged table is created downstream up
front (manual §15.3: incremental only), so no shard CREATE TABLE has to be merged.

A table matching two table-level rules is a route conflict: the subtask pauses with 36103.
"""

from __future__ import annotations

import pytest

from kdm.config.service import KafkaConfig
from kdm.stack.stack import Endpoints
from kdm.stages import Stage
from tests.integration.relay_support import gtid_now, wait_for
from tests.integration.scenario_support import (
    WAIT_SECONDS,
    barrier,
    databases,
    query,
    tables_of,
)
from tests.integration.sync_support import execute, rows, running, task_config, task_text

pytestmark = pytest.mark.integration

SHARD = "(id INT PRIMARY KEY, v VARCHAR(20), n INT)"
ERR_SYNC_ROUTE_CONFLICT = 36103


def _shard_dml(endpoints: Endpoints, db: str, table: str, base: int) -> None:
    """Inserts, updates (also of the key, within the shard's own id range) and deletes."""
    execute(endpoints, db,
            f"INSERT INTO {table} VALUES " + ", ".join(
                f"({base + i}, '{table}', {i})" for i in range(300)),
            f"UPDATE {table} SET n = n + 1000 WHERE id % 3 = 0",
            f"UPDATE {table} SET id = id + 500 WHERE id % 7 = 0",
            f"DELETE FROM {table} WHERE id % 5 = 0")


def _task(endpoints: Endpoints, unique: str, routes: str, names: list[str], up: str,
          workers: int, meta: str) -> str:
    body = (f"routes:\n{routes.replace('$U', up)}"
            f"block-allow-list:\n  ba: {{do-dbs: ['{up}*']}}\n")
    return task_text(f"route-{unique}", endpoints, [f"route-{unique}"], body,
                     f"route-rules: [{', '.join(names)}]\nblock-allow-list: ba", workers,
                     meta_schema=meta)


@pytest.mark.parametrize("workers", [1, 16])
def test_shards_merge_and_schemas_move(
        endpoints: Endpoints, kafka: KafkaConfig, upstream_db: str, downstream_db: str,
        unique: str, workers: int) -> None:
    up, up2, down = upstream_db, f"{upstream_db}_2", downstream_db
    routes = (f"  shards: {{schema-pattern: '$U*', table-pattern: 't_?', target-schema: {down},"
              " target-table: t}\n"
              f"  schemas: {{schema-pattern: '$U*', target-schema: {down}}}\n")
    task = task_config(_task(endpoints, unique, routes, ["shards", "schemas"], up, workers,
                             f"{down}_meta"))
    with databases(endpoints, up=(up2,), drop_down=(f"{down}_meta",)):
        execute(endpoints, up, f"CREATE TABLE t_1 {SHARD}", f"CREATE TABLE t_2 {SHARD}")
        execute(endpoints, up2, f"CREATE TABLE t_3 {SHARD}")
        execute(endpoints, down, f"CREATE TABLE t {SHARD}", side="down")
        with running(endpoints, kafka, [f"route-{unique}"], gtid_now(endpoints), task):
            for db, table, base in ((up, "t_1", 10_000), (up, "t_2", 20_000),
                                    (up2, "t_3", 30_000)):
                _shard_dml(endpoints, db, table, base)
            execute(endpoints, up, "CREATE TABLE plain (k VARCHAR(10) PRIMARY KEY, w INT)",
                    "INSERT INTO plain VALUES ('a', 1), ('b', 2)",
                    "ALTER TABLE plain ADD COLUMN x INT NULL",
                    "INSERT INTO plain VALUES ('c', 3, 33)",
                    f"CREATE TABLE t_10 {SHARD}", "INSERT INTO t_10 VALUES (1, 'ten', 10)",
                    "RENAME TABLE t_10 TO t_11", "INSERT INTO t_11 VALUES (2, 'eleven', 11)")
            execute(endpoints, up2, "CREATE TABLE other (id INT PRIMARY KEY)",
                    "INSERT INTO other VALUES (1), (2)", "DELETE FROM other WHERE id = 1")
            barrier(endpoints, up2, down)

            shards = sorted(rows(endpoints, "up", up, "t_1") + rows(endpoints, "up", up, "t_2")
                            + rows(endpoints, "up", up2, "t_3"), key=lambda r: int(r[0]))
            assert len(shards) == 3 * (300 - 60)
            assert rows(endpoints, "down", down, "t") == shards
            for db, table in ((up, "plain"), (up, "t_11"), (up2, "other")):
                assert rows(endpoints, "down", down, table) == rows(endpoints, "up", db, table)
            assert tables_of(endpoints, "down", down) == {"t", "plain", "t_11", "other",
                                                           "zz_barrier"}
            assert not query(endpoints, "down", "SELECT 1 FROM information_schema.SCHEMATA "
                             "WHERE SCHEMA_NAME IN (%s, %s)", (up, up2))


def test_a_table_matching_two_table_rules_pauses_the_subtask(
        endpoints: Endpoints, kafka: KafkaConfig, upstream_db: str, downstream_db: str,
        unique: str) -> None:
    up, down = upstream_db, downstream_db
    routes = (f"  shards: {{schema-pattern: '$U', table-pattern: 't_*', target-schema: {down},"
              " target-table: t}\n"
              f"  second: {{schema-pattern: '$U', table-pattern: 't_2', target-schema: {down},"
              " target-table: t2}\n"
              f"  schemas: {{schema-pattern: '$U', target-schema: {down}}}\n")
    task = task_config(_task(endpoints, unique, routes, ["shards", "second", "schemas"], up, 4,
                             f"{down}_meta"))
    execute(endpoints, up, f"CREATE TABLE t_1 {SHARD}", f"CREATE TABLE t_2 {SHARD}")
    execute(endpoints, down, f"CREATE TABLE t {SHARD}", f"CREATE TABLE t2 {SHARD}", side="down")
    with databases(endpoints, drop_down=(f"{down}_meta",)), \
            running(endpoints, kafka, [f"route-{unique}"], gtid_now(endpoints), task) as units:
        _shard_dml(endpoints, up, "t_1", 10_000)
        barrier(endpoints, up, down)  # t_1's rows are applied before t_2's arrive
        _shard_dml(endpoints, up, "t_2", 20_000)
        runner = units["runners"][0]
        wait_for(lambda: runner.stage == Stage.PAUSED, WAIT_SECONDS, "the subtask to pause")
        assert [error.code for error in runner.errors] == [ERR_SYNC_ROUTE_CONFLICT]
        assert "t_2" in runner.errors[0].message
        assert rows(endpoints, "down", down, "t") == rows(endpoints, "up", up, "t_1")
        assert rows(endpoints, "down", down, "t2") == []
