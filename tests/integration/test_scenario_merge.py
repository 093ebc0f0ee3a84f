"""Scenario: two sources merged into one TiDB (manual §15.1). Sources `merge-a` and
`merge-b` read the same upstream server but each migrates only its own schema (`$U_a`,
`$U_b`, by its block & allow list):

* their `t` tables (disjoint ids) merge into the downstream `t` by one shared wildcard rule;
  both exist before the task starts and the downstream `t` is created up front, so no
  CREATE TABLE has to be merged (shard DDL is another scenario);
* their `info` tables keep apart under per-source names `info_a` and `info_b`, by each
  source's own route rule, as §15.1 renames `store_sz` per instance.
"""

from __future__ import annotations

import pytest

from kdm.config.service import KafkaConfig
from kdm.stack.stack import Endpoints
from tests.integration.relay_support import gtid_now
from tests.integration.scenario_support import (
    barrier,
    databases,
    per_source_task_text,
    tables_of,
)
from tests.integration.sync_support import execute, rows, running, task_config

pytestmark = pytest.mark.integration

SHARD = "(id INT PRIMARY KEY, v VARCHAR(20), n INT)"


def _dml(endpoints: Endpoints, db: str, base: int) -> None:
    """Shard writes, ids within [base, base + 10000)."""
    execute(endpoints, db,
            "INSERT INTO t VALUES " + ", ".join(f"({base + i}, '{db[-1]}{i}', {i})"
                                                for i in range(400)),
            "UPDATE t SET n = n * 2 WHERE id % 3 = 0",
            "UPDATE t SET id = id + 5000 WHERE id % 11 = 0",
            "DELETE FROM t WHERE id % 4 = 1",
            "CREATE TABLE info (k VARCHAR(10) PRIMARY KEY, w INT)",
            f"INSERT INTO info VALUES ('from', {base}), ('x', 1)",
            "UPDATE info SET w = w + 1 WHERE k = 'x'")


@pytest.mark.parametrize("workers", [1, 16])
def test_two_sources_merge_into_one_table(
        endpoints: Endpoints, kafka: KafkaConfig, downstream_db: str, unique: str,
        workers: int) -> None:
    up_a, up_b, down = f"up_{unique}_a", f"up_{unique}_b", downstream_db
    sources = {"a": f"merge-a-{unique}", "b": f"merge-b-{unique}"}
    body = (f"routes:\n"
            f"  shard: {{schema-pattern: 'up_{unique}_?', table-pattern: t, "
            f"target-schema: {down}, target-table: t}}\n"
            f"  schema: {{schema-pattern: 'up_{unique}_?', target-schema: {down}}}\n"
            + "".join(f"  info-{s}: {{schema-pattern: up_{unique}_{s}, table-pattern: info, "
                      f"target-schema: {down}, target-table: info_{s}}}\n" for s in sources)
            + "block-allow-list:\n"
            + "".join(f"  only-{s}: {{do-dbs: [up_{unique}_{s}]}}\n" for s in sources))
    instances = {source: f"route-rules: [shard, schema, info-{s}]\nblock-allow-list: only-{s}"
                 for s, source in sources.items()}
    task = task_config(per_source_task_text(f"merge-{unique}", endpoints, instances, body,
                                            workers, meta_schema=f"{down}_meta"))
    with databases(endpoints, up=(up_a, up_b), drop_down=(f"{down}_meta",)):
        for db in (up_a, up_b):
            execute(endpoints, db, f"CREATE TABLE t {SHARD}")
        execute(endpoints, down, f"CREATE TABLE t {SHARD}", side="down")
        with running(endpoints, kafka, list(sources.values()), gtid_now(endpoints), task):
            _dml(endpoints, up_a, 10_000)
            _dml(endpoints, up_b, 20_000)
            barrier(endpoints, up_a, down, "zz_barrier_a")
            barrier(endpoints, up_b, down, "zz_barrier_b")

            union = sorted(rows(endpoints, "up", up_a, "t") + rows(endpoints, "up", up_b, "t"),
                           key=lambda row: int(row[0]))
            assert len(union) == 2 * 300
            assert rows(endpoints, "down", down, "t") == union
            for s, db in (("a", up_a), ("b", up_b)):
                assert rows(endpoints, "down", down, f"info_{s}") == rows(endpoints, "up", db,
                                                                            "info")
            assert tables_of(endpoints, "down", down) == {
                "t", "info_a", "info_b", "zz_barrier_a", "zz_barrier_b"}
