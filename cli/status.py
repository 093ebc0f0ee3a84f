"""`query-status`: DM's status output, built from the status topic.

Shapes are dmctl's (seed 002). Without arguments: the task summary (`tasks[]` with
`taskName`, `taskStatus`, `sources`), or the relays of all sources when there is no task.
With a task name: `sources[]` with `sourceStatus` (`source`, `worker`, `result`,
`relayStatus`) and `subTaskStatus[]` (`name`, `stage`, `unit`, `result`,
`unresolvedDDLLockID`, `sync`). With `-s` alone: the sources' relay status. Kafka facts are
extra fields (`topic`, `partition`, `offset`, `events`, `consumerLag`,
`secondsBehindMaster`, `safeMode`).
"""

from __future__ import annotations

from typing import Any

import click

from cli.common import config_option, emit, kafka_config
from kdm.status import read_status

RELAY_FIELDS = ("masterBinlog", "masterBinlogGtid", "relaySubDir", "relayBinlog",
                "relayBinlogGtid", "relayCatchUpMaster", "stage")
KAFKA_FIELDS = ("topic", "partition", "offset", "events")
SYNC_FIELDS = ("masterBinlog", "masterBinlogGtid", "syncerBinlog", "syncerBinlogGtid",
               "blockingDDLs")
SYNC_EXTRA = ("topic", "partition", "offset", "consumerLag", "secondsBehindMaster",
              "safeMode")


def result_of(errors: list[dict[str, Any]]) -> dict[str, Any] | None:
    """DM's `result` object: null without errors."""
    return {"isCanceled": False, "errors": errors, "detail": None} if errors else None


def relay_status(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """DM's `relayStatus` object from a status record (None when the source has no relay)."""
    if record is None:
        return None
    status = {name: record[name] for name in RELAY_FIELDS}
    status["result"] = result_of(record["errors"])
    status.update({name: record[name] for name in KAFKA_FIELDS})
    return status


def subtask_status(record: dict[str, Any]) -> dict[str, Any]:
    """One `subTaskStatus` element with its `sync` block."""
    import json

    sync: dict[str, Any] = {name: record[name] for name in SYNC_FIELDS}
    sync["unresolvedGroups"] = json.loads(record["unresolvedGroups"] or "[]")
    sync["synced"] = record["synced"]
    for dm_name, field in (("totalEvents", "totalEvents"), ("totalTps", "totalTps"),
                           ("recentTps", "recentTps"), ("totalRows", "totalEvents"),
                           ("totalRps", "totalTps"), ("recentRps", "recentTps")):
        sync[dm_name] = str(record[field])
    sync.update({name: record[name] for name in SYNC_EXTRA})
    return {"name": record["name"], "stage": record["stage"], "unit": record["unit"],
            "result": result_of(record["errors"]),
            "unresolvedDDLLockID": record["unresolvedDDLLockID"], "sync": sync}


def task_status(subtasks: list[dict[str, Any]], relays: dict[str, dict[str, Any]]) -> str:
    """DM's `wrapTaskResult` fold over a task's subtasks (reference C §4.2)."""
    status = ""
    for sub in subtasks:
        relay = relays.get(sub["source"])
        if status.startswith("Error"):
            break
        if sub["stage"] == "Paused" and sub["errors"]:
            status = "Error - Some error occurred in subtask"
        elif (sub["unit"] == "Sync" and sub["stage"] == "Running" and relay is not None
              and relay["stage"] in ("Paused", "Stopped")):
            status = "Error - Relay status is " + ("Error" if relay["errors"]
                                                   else relay["stage"])
        elif status == "Paused":
            continue
        elif not status or sub["stage"] == "Paused":
            status = sub["stage"]
        elif status != sub["stage"]:
            status = "Running"
    if status.startswith("Error"):
        status += ". Please run `query-status <task>` to get more details."
    return status


@click.command("query-status")
@click.argument("task", required=False)
@click.option("-s", "--source", "sources", multiple=True, help="Source id (repeatable).")
@config_option
def query_status(task: str | None, sources: tuple[str, ...], config_path: str | None) -> None:
    """Show tasks' and sources' status as dmctl does."""
    statuses = read_status(kafka_config(config_path))
    relays = {key.split("/", 1)[1]: value for key, value in statuses.items()
              if key.startswith("relay/")}
    subtasks = [value for key, value in statuses.items() if key.startswith("subtask/")]
    if task is None and not sources and subtasks:
        emit(_summary(subtasks, relays))
    elif task is None:
        emit(_sources(sources or tuple(sorted(relays)), relays, []))
    else:
        mine = [s for s in subtasks if s["name"] == task and (not sources
                                                              or s["source"] in sources)]
        if not mine:
            emit({"result": False, "msg": f"task {task} has no status yet", "sources": []})
            raise SystemExit(1)
        emit(_sources(tuple(sorted({s["source"] for s in mine})), relays, mine))


def _summary(subtasks: list[dict[str, Any]], relays: dict[str, dict[str, Any]]
             ) -> dict[str, Any]:
    tasks = []
    for name in sorted({s["name"] for s in subtasks}):
        mine = sorted((s for s in subtasks if s["name"] == name), key=lambda s: s["source"])
        tasks.append({"taskName": name, "taskStatus": task_status(mine, relays),
                      "sources": [s["source"] for s in mine]})
    return {"result": True, "msg": "", "tasks": tasks}


def _sources(sources: tuple[str, ...], relays: dict[str, dict[str, Any]],
             subtasks: list[dict[str, Any]]) -> dict[str, Any]:
    results = []
    for source in sources:
        relay = relays.get(source)
        raw = [s for s in subtasks if s["source"] == source]
        known = relay is not None or bool(raw)
        worker = (relay or (raw[0] if raw else {})).get("worker", "")
        results.append({
            "result": known, "msg": "" if known else f"source {source} has no status",
            "sourceStatus": {"source": source, "worker": worker, "result": None,
                             "relayStatus": relay_status(relay)},
            "subTaskStatus": [subtask_status(s) for s in raw]})
    return {"result": all(r["result"] for r in results), "msg": "", "sources": results}

