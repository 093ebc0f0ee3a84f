"""The sync consumer applies a source's relay to the downstream: DML in parallel by
causality, DDL with routing, checked by comparing upstream and downstream tables."""

from __future__ import annotations

import pytest

from kdm.config.service import KafkaConfig
from kdm.stack.stack import Endpoints
from tests.integration.relay_support import gtid_now, wait_for
from tests.integration.sync_support import (
    execute,
    rows,
    running,
    same_tables,
    task_config,
    task_text,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("workers", "syncer"), [
    (1, ""), (16, ""), (4, "compact: true\nmultiple-rows: true")],
    ids=["1-worker", "16-workers", "compact"])
def test_dml_and_ddl_reach_the_routed_table(
        endpoints: Endpoints, kafka: KafkaConfig, upstream_db: str, downstream_db: str,
        unique: str, workers: int, syncer: str) -> None:
    source = f"sync-{unique}"
    body = (f"routes:\n  r:\n    schema-pattern: {upstream_db}\n"
            f"    target-schema: {downstream_db}\n"
            f"block-allow-list:\n  ba:\n    do-dbs: [{upstream_db}]\n")
    task = task_config(task_text(f"basic-{unique}", endpoints, [source], body,
                                 "route-rules: [r]\nblock-allow-list: ba", workers,
                                 syncer=syncer))
    with running(endpoints, kafka, [source], gtid_now(endpoints), task):
        execute(endpoints, upstream_db,
                "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), n INT)",
                "INSERT INTO t VALUES " + ", ".join(f"({i}, 'v{i}', {i})" for i in range(500)),
                "UPDATE t SET n = n + 1 WHERE id % 3 = 0",
                "UPDATE t SET id = id + 1000 WHERE id % 7 = 0",
                "DELETE FROM t WHERE id % 5 = 0",
                "ALTER TABLE t ADD COLUMN extra DECIMAL(10,2) NULL",
                "INSERT INTO t VALUES (5000, 'after', 1, 12.5)",
                "CREATE TABLE other (k VARCHAR(10) PRIMARY KEY, w BLOB)",
                "INSERT INTO other VALUES ('a', X'00FF'), ('b', NULL)")
        wait_for(lambda: same_tables(endpoints, (upstream_db, "t"), (downstream_db, "t"))
                 and same_tables(endpoints, (upstream_db, "other"), (downstream_db, "other")),
                 60, "the downstream to match the upstream")
    assert len(rows(endpoints, "down", downstream_db, "t")) == 500 - 100 + 1
    from prometheus_client import REGISTRY
    labels = {"task": task.name, "source": source}
    assert (REGISTRY.get_sample_value("kdm_syncer_rows_total", labels) or 0) >= 500 + 100
    assert (REGISTRY.get_sample_value("kdm_syncer_ddl_total", labels) or 0) >= 3
    assert (REGISTRY.get_sample_value("kdm_relay_events_total",
                                      {"source": source, "kind": "all"}) or 0) >= 600
