"""Stages of relays and subtasks, their one transition table, and the stages topic.

The transition table is DM's subtask state machine, exactly the diagram of seeds 000/002
(reference C §5.2); a relay uses the same stages (DM's relay has New, Running, Paused and
Stopped). Every stage change goes through `transition`, which refuses an illegal move by
naming both stages::

                        error occurs
            New -----------------------------------+
             |                resume-task          |
             |   +-----------------------------+   |
             v   v                             |   v
 Finished <- Running --error or pause-task--> Paused
             ^   |                                 |
  start task |   | stop task             stop task |
             |   v                                 |
            Stopped <------------------------------+

New has no edge to Stopped: a unit that never ran is not reported as Stopped (a runner that
finds a stop request before it ever ran stays New). What a user's verb may do is narrower
than the table and lives in `command_transition`.

What a user *asks* for lives on the compacted stages topic (`<prefix>.stages`), one record
per key: `relay/<source-id>` or `subtask/<task>/<source-id>`. The process that runs the
unit watches its key and moves its own stage accordingly; a new revision of the same stage
asks again, so `resume-relay` after an error is a new `Running` request.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

from kdm.compacted import CompactedTable, TableWriter
from kdm.config.service import KafkaConfig
from kdm.errors import ERR_SYNC_ILLEGAL_COMMAND, ErrorSpec
from kdm.relay_log import TopicReader
from kdm.topics import Topics

STAGE = "io.kdm.control.Stage"


class Stage(Enum):
    """A unit's stage; the value is DM's spelling."""

    NEW = "New"
    RUNNING = "Running"
    PAUSED = "Paused"
    STOPPED = "Stopped"
    FINISHED = "Finished"


TRANSITIONS: dict[Stage, frozenset[Stage]] = {
    Stage.NEW: frozenset({Stage.RUNNING, Stage.PAUSED}),
    Stage.RUNNING: frozenset({Stage.PAUSED, Stage.STOPPED, Stage.FINISHED}),
    Stage.PAUSED: frozenset({Stage.RUNNING, Stage.STOPPED}),
    Stage.STOPPED: frozenset({Stage.RUNNING}),
    Stage.FINISHED: frozenset(),
}


def transition(current: Stage, wanted: Stage, error: ErrorSpec, **fields: Any) -> Stage:
    """`wanted` if the table allows current → wanted (or they are equal); else `error`."""
    if wanted == current or wanted in TRANSITIONS[current]:
        return wanted
    raise error(current=current.value, wanted=wanted.value, **fields)


VERB_TARGET: dict[str, Stage] = {
    "start-task": Stage.RUNNING,
    "pause-task": Stage.PAUSED,
    "resume-task": Stage.RUNNING,
    "stop-task": Stage.STOPPED,
}

# The stages each verb is accepted in: the diagram's labelled edges (New -> Running is the
# start of a created task; New -> Paused is an error's edge only), plus DM's two no-ops.
VERB_FROM: dict[str, frozenset[Stage]] = {
    "start-task": frozenset({Stage.NEW, Stage.STOPPED}),
    "pause-task": frozenset({Stage.RUNNING, Stage.PAUSED}),
    "resume-task": frozenset({Stage.PAUSED, Stage.RUNNING}),
    "stop-task": frozenset({Stage.RUNNING, Stage.PAUSED}),
}


def command_transition(current: Stage, verb: str, **fields: Any) -> Stage:
    """The stage a user's `verb` asks of a subtask in `current`, or ERR_SYNC_ILLEGAL_COMMAND.

    A verb is accepted only in its `VERB_FROM` stages, and its move is always a table edge:
    `resume-task` cannot revive a Stopped subtask (the manual says so; that is `start-task`'s
    job), `pause-task` acts on a Running subtask, nothing leaves Finished. Two verbs are no-ops
    on the stage they ask for, as in DM, whose scheduler accepts Paused → Paused and Running →
    Running and writes the same expected stage again: `pause-task` on Paused (for a subtask
    paused by a resumable error it also cancels the auto-resume, as DM does; the runner
    does that on seeing the request) and `resume-task` on Running.
    `start-task` on a Running/Paused subtask and `stop-task` on a Stopped one are refused,
    as DM refuses to start a task that exists and to stop one it no longer has. An unknown
    verb is a programming error (ValueError). `fields` (e.g. task, source) ride on the error.
    """
    if verb not in VERB_TARGET:
        raise ValueError(f"unknown verb {verb!r}; expected one of {sorted(VERB_TARGET)}")
    wanted = VERB_TARGET[verb]
    if current in VERB_FROM[verb] and (current == wanted or wanted in TRANSITIONS[current]):
        return wanted
    raise ERR_SYNC_ILLEGAL_COMMAND(verb=verb, current=current.value, wanted=wanted.value,
                                   **fields)


_worker_name = ""


def set_worker_name(name: str) -> None:
    """Name this process in status records (a worker's `--name`)."""
    global _worker_name
    _worker_name = name


def host_id() -> str:
    """This process's name in status records: its worker name, else host:pid."""
    return _worker_name or f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class StageRequest:
    """One record of the stages topic."""

    key: str
    stage: Stage
    revision: int
    updated_ms: int
    by: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The Avro record form."""
        return {"key": self.key, "stage": self.stage.value, "revision": self.revision,
                "updated_ms": self.updated_ms, "by": self.by}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageRequest:
        """Inverse of `to_dict`."""
        return cls(data["key"], Stage(data["stage"]), int(data["revision"]),
                   int(data["updated_ms"]), data.get("by") or "")


def relay_key(source_id: str) -> str:
    """The stages/status key of a source's relay."""
    return f"relay/{source_id}"


def request(kafka: KafkaConfig, key: str, stage: Stage, by: str) -> StageRequest:
    """Write a stage request for `key` and wait until Kafka has it."""
    now = time.time_ns()
    req = StageRequest(key, stage, now, now // 1_000_000, by)
    write(kafka, key, STAGE, req.to_dict())
    return req


def write(kafka: KafkaConfig, key: str, schema: str, record: dict[str, Any]) -> None:
    """Write one control record to the stages topic and wait until Kafka has it."""
    TableWriter(kafka, Topics(kafka.topic_prefix).compacted("stages")).put(key, schema, record)


def read_requests(kafka: KafkaConfig) -> dict[str, StageRequest]:
    """The latest request of every key."""
    topic = Topics(kafka.topic_prefix).compacted("stages").name
    latest: dict[str, StageRequest] = {}
    with TopicReader(kafka, topic) as reader:
        for message in reader.read(reader.bounds()[0]):
            if message.schema != STAGE:
                continue
            req = StageRequest.from_dict(message.value)
            latest[req.key] = req
    return latest


class StageWatcher(CompactedTable):
    """Follows the stages topic and keeps the latest request for one key (and the latest
    records of `others`, e.g. a subtask's handle-error operation, in `values`). The topic's
    order decides, never the writers' clocks (see `kdm.compacted`)."""

    def __init__(self, kafka: KafkaConfig, key: str, others: tuple[str, ...] = ()) -> None:
        wanted = {key, *others}
        super().__init__(kafka, Topics(kafka.topic_prefix).compacted("stages"),
                         accept=lambda k, _: k in wanted)
        self.key = key
        self._parsed: tuple[dict[str, Any] | None, StageRequest | None] = (None, None)

    @property
    def latest(self) -> StageRequest | None:
        """The latest request for the key (None before the first)."""
        value = self.values.get(self.key)
        if value is not self._parsed[0]:
            self._parsed = (value, StageRequest.from_dict(value) if value else None)
        return self._parsed[1]


def subtask_key(task: str, source_id: str) -> str:
    """The stages/status key of a subtask (task and source)."""
    return f"subtask/{task}/{source_id}"


def full_key(task: str, source_id: str) -> str:
    """The status key of a subtask's full migration progress (dump and load blocks)."""
    return f"full/{task}/{source_id}"
