"""query-status: DM's output (seed 002) built from the status table the coordinator follows.

Without a task: the task summary (`tasks[]` with `taskName`, `taskStatus`, `sources`), or
the relays of all sources when there is no task. With a task name: `sources[]` with
`sourceStatus` (`source`, `worker`, `result`, `relayStatus`) and `subTaskStatus[]` (`name`,
`stage`, `unit`, `result`, `unresolvedDDLLockID`, `sync`). With `-s` alone: the sources'
relay status. Numbers DM prints as strings are strings. Kafka facts are extra fields
(`topic`, `partition`, `offset`, `events`, `consumerLag`, `secondsBehindMaster`,
`safeMode`), never replacements; so is a subtask's own `worker` (DM runs a source's relay
and subtasks on one worker, in `sourceStatus.worker`; here they may run on different ones).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kdm.compacted import CompactedTable
from kdm.errors import REGISTRY, render
from kdm.stages import Stage, full_key, relay_key, subtask_key
from kdm.task_status import task_status

RELAY_FIELDS = ("masterBinlog", "masterBinlogGtid", "relaySubDir", "relayBinlog",
                "relayBinlogGtid", "relayCatchUpMaster", "stage")
KAFKA_FIELDS = ("topic", "partition", "offset", "events")
SYNC_FIELDS = ("masterBinlog", "masterBinlogGtid", "syncerBinlog", "syncerBinlogGtid",
               "blockingDDLs")
SYNC_EXTRA = ("topic", "partition", "offset", "consumerLag", "secondsBehindMaster",
              "safeMode")
# DM's counters (strings) ← our status record's fields; totalRows/… are DM 5+'s names
SYNC_COUNTERS = (("totalEvents", "totalEvents"), ("totalTps", "totalTps"),
                 ("recentTps", "recentTps"), ("totalRows", "totalEvents"),
                 ("totalRps", "totalTps"), ("recentRps", "recentTps"))
Worker = Callable[[str, str], str]  # (role, unit key) → worker name


def result_of(errors: list[dict[str, Any]]) -> dict[str, Any] | None:
    """DM's `result` object: null without errors; each error as DM's `Type`/`msg` pair (the
    registry name and the rendered error) followed by the structured error fields."""
    if not errors:
        return None
    listed = [{"Type": _type(e["ErrCode"]), "msg": _rendered(e), **e} for e in errors]
    return {"isCanceled": False, "errors": listed, "detail": None}


def _type(code: int) -> str:
    spec = REGISTRY.get(code)
    return spec.name if spec is not None else "UnknownError"


def _rendered(error: dict[str, Any]) -> str:
    spec = REGISTRY.get(error["ErrCode"])
    if spec is None:
        return str(error["Message"])
    return render(spec, error["Message"], error["RawCause"])


def relay_status(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """DM's `relayStatus` object from a status record (None when the source has no relay)."""
    if record is None:
        return None
    status = {name: record[name] for name in RELAY_FIELDS}
    status["result"] = result_of(record["errors"])
    status.update({name: record[name] for name in KAFKA_FIELDS})
    return status


def subtask_status(record: dict[str, Any], full: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """One `subTaskStatus` element with the block of its unit: `dump` or `load` (from the
    full migration's record) while those run, else `sync`."""
    head = {"name": record["name"], "stage": record["stage"], "unit": record["unit"],
            "result": result_of(record["errors"]),
            "unresolvedDDLLockID": record["unresolvedDDLLockID"]}
    if record["unit"] in ("Dump", "Load"):
        block = record["unit"].lower()
        return {**head, block: dict((full or {}).get(block) or {})}
    return {**head, "sync": sync_block(record)}


def sync_block(record: dict[str, Any]) -> dict[str, Any]:
    """DM's `sync` block of a subtask status record."""
    sync: dict[str, Any] = {name: record[name] for name in SYNC_FIELDS}
    sync["unresolvedGroups"] = json.loads(record["unresolvedGroups"] or "[]")
    sync["synced"] = record["synced"]
    for dm_name, field in SYNC_COUNTERS:
        sync[dm_name] = str(record[field])
    sync.update({name: record[name] for name in SYNC_EXTRA})
    return sync


class StatusView:
    """Answers query-status from the followed status table."""

    def __init__(self, status: CompactedTable) -> None:
        self.status = status

    def stage(self, task: str, source: str) -> Stage:
        """The stage a subtask last reported (New before its first report)."""
        record = self.status.snapshot().get(subtask_key(task, source))
        return Stage(record["stage"]) if record else Stage.NEW

    def sources_of(self, task: str) -> list[str]:
        """The sources whose subtask of `task` has reported, sorted."""
        return sorted(v["source"] for k, v in self.status.snapshot().items()
                      if k.startswith("subtask/") and v["name"] == task)

    def query(self, task: str | None, sources: list[str], registered: list[str],
              worker: Worker) -> dict[str, Any]:
        """The whole query-status answer."""
        table = self.status.snapshot()
        relays = {key.split("/", 1)[1]: value for key, value in table.items()
                  if key.startswith("relay/")}
        subtasks = [value for key, value in table.items() if key.startswith("subtask/")]
        names = sorted(set(registered) | {s["name"] for s in subtasks})
        if task is None and not sources and names:
            return self._summary(names, subtasks, relays)
        if task is None:
            return self._sources(sources or sorted(relays), relays, [], worker, table)
        mine = [s for s in subtasks if s["name"] == task
                and (not sources or s["source"] in sources)]
        if task not in names:
            return {"result": False, "msg": f"task {task} does not exist", "sources": []}
        return self._sources(sorted({s["source"] for s in mine} | set(sources)), relays, mine,
                             worker, table)

    def _summary(self, names: list[str], subtasks: list[dict[str, Any]],
                 relays: dict[str, dict[str, Any]]) -> dict[str, Any]:
        tasks = []
        for name in names:
            mine = sorted((s for s in subtasks if s["name"] == name), key=lambda s: s["source"])
            tasks.append({"taskName": name,
                          "taskStatus": task_status(mine, relays) if mine else "New",
                          "sources": [s["source"] for s in mine]})
        return {"result": True, "msg": "", "tasks": tasks}

    def _sources(self, sources: list[str], relays: dict[str, dict[str, Any]],
                 subtasks: list[dict[str, Any]], worker: Worker,
                 table: dict[str, dict[str, Any]]) -> dict[str, Any]:
        results = []
        for source in sources:
            relay = relays.get(source)
            raw = [s for s in subtasks if s["source"] == source]
            known = relay is not None or bool(raw)
            results.append({
                "result": known, "msg": "" if known else f"source {source} has no status",
                "sourceStatus": {"source": source, "worker": worker("relay", relay_key(source))
                                 or (relay or {}).get("worker", ""), "result": None,
                                 "relayStatus": relay_status(relay)},
                "subTaskStatus": [{**subtask_status(s, table.get(full_key(s["name"], source))),
                                   "worker": worker("sync", subtask_key(s["name"], source))}
                                  for s in raw]})
        return {"result": all(r["result"] for r in results), "msg": "", "sources": results}
