"""`operate-schema`: read or change the tracked structures a paused subtask persisted with
its checkpoint (the state row of `<meta-schema>.kdm_checkpoint`)."""

from __future__ import annotations

import json
from typing import Any

from consumers import checkpoint
from consumers.downstream import connect
from kdm.config.service import KafkaConfig
from kdm.config.task import TaskConfig
from kdm.errors import ERR_SYNC_NOT_PAUSED, ERR_SYNC_SCHEMA_MISSING
from kdm.schema_tracker import TableSchema, Tracker
from kdm.stages import subtask_key
from kdm.status import read_status


def operate(kafka: KafkaConfig, task: TaskConfig, source: str, op: str, database: str,
            table: str, create_sql: str = "") -> str:
    """Run `get`, `set` or `remove`; the CREATE TABLE text for `get`, else ""."""
    if op != "get":
        _require_paused(kafka, task.name, source, f"operate-schema {op}")
    conn = connect(task.target_database)
    try:
        saved = checkpoint.load(conn, task.meta_schema, task.name, source)
        state: dict[str, Any] = json.loads(saved.state() or "{}")
        tracker = Tracker.from_dict(state["tracker"]) if state.get("tracker") else Tracker()
        current = tracker.get(database, table)
        if op == "get":
            if current is None:
                raise ERR_SYNC_SCHEMA_MISSING(task=task.name, source=source,
                                              table=f"{database}.{table}")
            return current.to_create()
        if op == "remove" and not tracker.remove(database, table):
            raise ERR_SYNC_SCHEMA_MISSING(task=task.name, source=source,
                                          table=f"{database}.{table}")
        if op == "set":
            tracker.set(TableSchema.from_create(create_sql, database).renamed(database, table))
        state["tracker"] = tracker.to_dict()
        _save(conn, task, source, saved, state)
        return ""
    finally:
        conn.close()


def _save(conn: Any, task: TaskConfig, source: str, saved: checkpoint.Saved,
          state: dict[str, Any]) -> None:
    row = next((r for r in saved.rows if r.worker == checkpoint.GLOBAL_WORKER), None)
    with conn.cursor() as cur:
        cur.execute(checkpoint.state_sql(task.meta_schema),
                    (task.name, source, row.round if row else 0, row.start if row else 0,
                     row.end if row else 0, row.safe_until if row else 0,
                     row.position if row else "", json.dumps(state)))
    conn.commit()


def _require_paused(kafka: KafkaConfig, task: str, source: str, verb: str) -> None:
    status = read_status(kafka).get(subtask_key(task, source))
    stage = status["stage"] if status else "unknown"
    if stage not in ("Paused", "Stopped", "New"):
        raise ERR_SYNC_NOT_PAUSED(task=task, source=source, stage=stage, verb=verb)
