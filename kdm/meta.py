"""What the downstream holds for kdm, by name: the checkpoint tables in `meta-schema`.

The sync consumer writes `kdm_checkpoint` (`consumers.checkpoint`) and the full migration
`kdm_load_checkpoint` (`consumers.load_checkpoint`); the coordinator removes a task's rows
from both for `start-task --remove-meta`, so all take the names from here.
"""

from __future__ import annotations

from typing import Any

import pymysql

from kdm.config.common import DBConfig
from kdm.errors import ERR_SYNC_DOWNSTREAM
from kdm.schema_sql import quote_name as quote

CHECKPOINT_TABLE = "kdm_checkpoint"
LOAD_CHECKPOINT_TABLE = "kdm_load_checkpoint"
TABLES = (CHECKPOINT_TABLE, LOAD_CHECKPOINT_TABLE)


def remove_checkpoints(target: DBConfig, meta_schema: str, task: str,
                       sources: tuple[str, ...]) -> int:
    """Delete every checkpoint row of `task` on `sources` (sync workers, the subtask's own
    state, the load plan and its chunks); the number of rows removed. Missing tables remove
    nothing."""
    args: dict[str, Any] = target.connect_args()
    try:
        conn = pymysql.connect(**args, autocommit=True)
    except pymysql.MySQLError as exc:
        raise ERR_SYNC_DOWNSTREAM(exc, address=f"{target.host}:{target.port}",
                                  op="remove meta") from exc
    removed = 0
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.tables WHERE "
                        "table_schema = %s", (meta_schema,))
            present = {row[0] for row in cur.fetchall()}
            for table in (t for t in TABLES if t in present):
                for source in sources:
                    removed += cur.execute(f"DELETE FROM {quote(meta_schema)}.{quote(table)} "
                                           "WHERE task = %s AND source = %s", (task, source))
    except pymysql.MySQLError as exc:
        raise ERR_SYNC_DOWNSTREAM(exc, address=f"{target.host}:{target.port}",
                                  op="remove meta") from exc
    return removed
