"""What the downstream holds for kdm, by name: the checkpoint table in `meta-schema`.

The sync consumer writes it (`consumers.checkpoint`); the coordinator removes a task's rows
for `start-task --remove-meta`, so both take the names from here.
"""

from __future__ import annotations

from typing import Any

import pymysql

from kdm.config.common import DBConfig
from kdm.errors import ERR_SYNC_DOWNSTREAM
from kdm.schema_sql import quote_name as quote

CHECKPOINT_TABLE = "kdm_checkpoint"


def remove_checkpoints(target: DBConfig, meta_schema: str, task: str,
                       sources: tuple[str, ...]) -> int:
    """Delete the checkpoint rows of `task` on `sources` (all rows of a source: DML workers
    and the subtask's own state); the number of rows removed. A missing table removes
    nothing."""
    args: dict[str, Any] = target.connect_args()
    try:
        conn = pymysql.connect(**args, autocommit=True)
    except pymysql.MySQLError as exc:
        raise ERR_SYNC_DOWNSTREAM(exc, address=f"{target.host}:{target.port}",
                                  op="remove meta") from exc
    removed = 0
    with conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s "
                    "AND table_name = %s", (meta_schema, CHECKPOINT_TABLE))
        if not cur.fetchone()[0]:
            return 0
        for source in sources:
            removed += cur.execute(f"DELETE FROM {quote(meta_schema)}.{quote(CHECKPOINT_TABLE)}"
                                   " WHERE task = %s AND source = %s", (task, source))
    return removed
