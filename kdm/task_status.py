"""A task's `taskStatus`, folded from its subtasks' status records as DM's `wrapTaskResult`.

The table of seed 002 ("Task status") and reference C §4.2, subtask statuses → taskStatus:

- one subtask is Paused and its result has errors → `Error - Some error occurred in subtask`
- one Sync subtask is Running but its source's relay is not running →
  `Error - Relay status is Error` (the relay has errors), `... is Paused`, `... is Stopped`
- one subtask is Paused without errors → `Paused`
- all subtasks New / Finished / Stopped → `New` / `Finished` / `Stopped`
- anything else → `Running`

DM folds over the subtasks in source order, so the order of the rules is the fold's: an
error is final (later subtasks are not looked at), Paused sticks over anything but an error,
and two different non-error stages collapse to Running. For example Running, Paused, New
gives Running → Paused → Paused; New, Running gives Running; Paused (with errors) anywhere
gives the error. The relay is "Error" when its result has errors, else its stage name. Every
error status ends with DM's hint to run `query-status <task>`.

Records are the status topic's: a subtask has `source`, `stage`, `unit` and `errors`; a relay
has `stage` and `errors`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kdm.stages import Stage

ERROR = "Error"
SUBTASK_ERROR = "Error - Some error occurred in subtask"
RELAY_ERROR = "Error - Relay status is "
DETAILS = ". Please run `query-status <task>` to get more details."
RELAY_DOWN = (Stage.PAUSED.value, Stage.STOPPED.value)

Record = Mapping[str, Any]


def task_status(subtasks: Sequence[Record], relays: Mapping[str, Record]) -> str:
    """DM's task status of `subtasks` (in source order); `relays` by source id."""
    status = ""
    for sub in subtasks:
        if status.startswith(ERROR):
            break
        status = fold(status, sub, relays.get(sub["source"]))
    return status + DETAILS if status.startswith(ERROR) else status


def fold(status: str, sub: Record, relay: Record | None) -> str:
    """One step of the fold: the status so far, updated with one subtask (and its relay)."""
    stage = sub["stage"]
    if stage == Stage.PAUSED.value and sub["errors"]:
        return SUBTASK_ERROR
    if relay is not None and relay_down(sub, relay):
        return RELAY_ERROR + (ERROR if relay["errors"] else relay["stage"])
    if status == Stage.PAUSED.value:
        return status
    if not status or stage == Stage.PAUSED.value:
        return str(stage)
    return status if status == stage else Stage.RUNNING.value


def relay_down(sub: Record, relay: Record) -> bool:
    """Whether a Running Sync subtask's relay is not running (Paused or Stopped)."""
    return (sub["unit"] == "Sync" and sub["stage"] == Stage.RUNNING.value
            and relay["stage"] in RELAY_DOWN)
