"""Every column type, and text that SQL escaping could get wrong, arrives downstream exactly:
the relay-types table synced in each rendering mode (one row at a time, multi-row
statements, safe mode, compaction), compared with the upstream as the servers print it."""

from __future__ import annotations

import pytest

from kdm.config.service import KafkaConfig
from kdm.stack.stack import Endpoints
from tests.integration.relay_support import gtid_now, wait_for
from tests.integration.sync_support import rows, running, same_tables, task_config, task_text
from tests.integration.test_relay_types import COLUMNS, DELETE, NAMES, ROWS, UPDATE, _connect

pytestmark = pytest.mark.integration

# text that breaks naive quoting or %-formatting, as upstream literals
TRICKY = ["'%s'", "'%%'", "'%(x)s'", "'it''s'", "'back\\\\slash'", "'nul \\0 byte'",
          "'ctrl-z \\Z'", "'\"double\"'", "'new\\nline\\r'", "'😀 ñ 中'", "''"]


@pytest.mark.parametrize("syncer", ["multiple-rows: false", "multiple-rows: true",
                                    "safe-mode: true", "compact: true"])
def test_every_type_and_tricky_text_arrive_exactly(
        endpoints: Endpoints, kafka: KafkaConfig, upstream_db: str, downstream_db: str,
        unique: str, syncer: str) -> None:
    source = f"types-{unique}"
    body = (f"routes:\n  r:\n    schema-pattern: {upstream_db}\n"
            f"    target-schema: {downstream_db}\n"
            f"block-allow-list:\n  ba:\n    do-dbs: [{upstream_db}]\n")
    task = task_config(task_text(f"types-{unique}", endpoints, [source], body,
                                 "route-rules: [r]\nblock-allow-list: ba", 4, syncer=syncer))
    with running(endpoints, kafka, [source], gtid_now(endpoints), task):
        conn = _connect(endpoints, upstream_db, autocommit=True)
        with conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = ''")
            cur.execute("SET SESSION time_zone = '+00:00'")
            cur.execute(f"CREATE TABLE t ({', '.join(f'`{c.name}` {c.ddl}' for c in COLUMNS)})"
                        " DEFAULT CHARSET=utf8mb4")
            cur.execute("CREATE TABLE s (id INT PRIMARY KEY, v VARCHAR(50) CHARACTER SET "
                        "utf8mb4, b VARBINARY(50))")
            values = ", ".join(
                "(" + ", ".join(row.get(name, "NULL" if name != "nn" else "DEFAULT")
                                for name in NAMES) + ")"
                for row in ROWS)
            cur.execute(f"INSERT INTO t VALUES {values}")
            cur.execute(UPDATE)
            cur.execute(DELETE)
            # rows 0.. only inserted (INSERT/REPLACE rendering), rows 100.. also updated
            # (UPDATE rendering, or DELETE + REPLACE in safe mode), then one deleted
            cur.execute("INSERT INTO s VALUES " + ", ".join(
                f"({i + base}, {text}, CAST({text} AS BINARY))"
                for base in (0, 100) for i, text in enumerate(TRICKY)))
            cur.execute("UPDATE s SET v = CONCAT(v, '%s\\\\'), b = CONCAT(b, X'005C27') "
                        "WHERE id >= 100")
            cur.execute("DELETE FROM s WHERE id = 1")
        wait_for(lambda: same_tables(endpoints, (upstream_db, "t"), (downstream_db, "t"))
                 and same_tables(endpoints, (upstream_db, "s"), (downstream_db, "s")),
                 60, "the downstream to match the upstream")
    assert [r[0] for r in rows(endpoints, "down", downstream_db, "t")] == ["1", "3", "4", "5"]
    assert len(rows(endpoints, "down", downstream_db, "s")) == 2 * len(TRICKY) - 1
