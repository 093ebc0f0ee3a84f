"""DM's control verbs on the coordinator: sources, tasks and stages, answered as dmctl does.

Each verb reads the registry and the status table the coordinator follows, checks the
request, writes the registry and stage requests, and returns dmctl's JSON result (`result`,
`msg`, and a per-source list). The workers do the rest: they follow the same topics and
start, pause or stop the units they own (`producers.worker`, `consumers.worker`).

Decisions where DM and Kafka differ:
- `stop-task` keeps the task registered with its subtasks Stopped (query-status shows
  them; `start-task` starts it again from its checkpoint, or from scratch with
  `--remove-meta`). DM forgets a stopped task; keeping it is what makes the seed's
  Stopped → Running edge reachable.
- `operate-source stop` is refused while a task that is not Stopped uses the source.
- `start-task --remove-meta` on every source of a task also forgets its shard-DDL locks (a
  `remove_task` message through the leader's loop). With `-s` naming only some sources the
  locks stay: the other sources' infos in them would otherwise be lost.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException

from coordinator.precheck import check_task
from coordinator.shardddl.link import send_remove_task
from coordinator.status_view import StatusView
from coordinator.workers import Placement, placement
from kdm.compacted import CompactedTable
from kdm.config import SourceConfig, TaskConfig, parse_source, parse_task
from kdm.config.service import KafkaConfig
from kdm.errors import ERR_KAFKA_ADMIN, ERR_SHARD_SERVICE_DOWN, KdmError
from kdm.kafka_admin import admin_client
from kdm.meta import remove_checkpoints
from kdm.registry import Registry, new_entry
from kdm.stages import Stage, command_transition, relay_key, request, subtask_key
from kdm.topics import Topics

Result = dict[str, Any]
OPS = {"pause-task": "Pause", "resume-task": "Resume", "stop-task": "Stop"}
PLACEMENT_SECONDS = 1.0
STAGE_OF = {"pause-task": Stage.PAUSED, "resume-task": Stage.RUNNING,
            "stop-task": Stage.STOPPED}


def failed(msg: str, **extra: Any) -> Result:
    """A dmctl result that failed with `msg`."""
    return {"result": False, "msg": msg, **extra}


def error_text(exc: Exception) -> str:
    """A coded error's DM form, else the exception's text."""
    return exc.render() if isinstance(exc, KdmError) else str(exc)


class LockService(Protocol):
    """The shard-DDL verbs' backend (`coordinator.shardddl.service.ShardDDLService`)."""

    def show(self, task: str | None, sources: Sequence[str]) -> Result:
        """show-ddl-locks' answer."""

    def unlock(self, lock_id: str, owner: str = "", force_remove: bool = False) -> Result:
        """unlock-ddl-lock's answer."""


class Control:
    """The verbs; `registry` and `status` are followed tables of this coordinator, `locks`
    the shard-DDL service and `forget_locks(task)` asks it to drop a task's locks."""

    def __init__(self, kafka: KafkaConfig, registry: Registry, status: CompactedTable,
                 stages: CompactedTable, precheck: Callable[..., Result] = check_task,
                 placement_of: Callable[[KafkaConfig, str], Placement] = placement,
                 ask: Callable[[str, Stage, str], object] | None = None,
                 locks: LockService | None = None,
                 forget_locks: Callable[[str], object] | None = None) -> None:
        self.kafka = kafka
        self.ask = ask or functools.partial(request, kafka)  # writes a stage request
        self.locks = locks
        self.forget_locks = forget_locks or functools.partial(send_remove_task, kafka)
        self.registry = registry
        self.view = StatusView(status)
        self.stages = stages
        self.precheck = precheck
        self.placement_of = placement_of
        self._placements: dict[str, tuple[float, Placement | None]] = {}

    # -- sources ------------------------------------------------------------------------

    def operate_source(self, op: str, texts: list[str], ids: list[str]) -> Result:
        """`operate-source create|stop|show`."""
        verbs: dict[str, Callable[[], list[Result]]] = {
            "create": lambda: [self._create_source(text) for text in texts],
            "stop": lambda: [self._stop_source(ident) for ident in ids],
            "show": lambda: self._show_sources(ids)}
        if op not in verbs:
            return failed(f"unknown operate-source operation {op!r}; use create, stop or show")
        results = verbs[op]()
        ok = all(r["result"] for r in results)
        return {"result": ok, "msg": "" if ok else "some sources failed", "sources": results}

    def _create_source(self, text: str) -> Result:
        try:
            cfg = parse_source(text)
        except KdmError as exc:
            return {"result": False, "msg": exc.render(), "source": "", "worker": ""}
        known = self.registry.get("source", cfg.source_id)
        if known is not None and known.yaml != text:
            return self._source_result(cfg.source_id, f"source {cfg.source_id} already exists;"
                                       " `operate-source stop` it before creating it again")
        if known is None:
            self.registry.write(new_entry("source", cfg.source_id, text, "operate-source"))
            self.ask(relay_key(cfg.source_id), Stage.RUNNING, "operate-source")
        return self._source_result(cfg.source_id)

    def _stop_source(self, ident: str) -> Result:
        entry = self.registry.get("source", ident)
        if entry is None:
            return self._source_result(ident, f"source {ident} does not exist")
        requests = self.stages.snapshot()
        users = [name for name, task in self._tasks().items() if ident in task.sources()
                 and self.view.stage(name, ident) not in (Stage.STOPPED, Stage.FINISHED)
                 and requests.get(subtask_key(name, ident), {}).get("stage") != "Stopped"]
        if users:
            return self._source_result(ident, f"source {ident} is used by task(s) "
                                       f"{', '.join(sorted(users))}; stop-task them first")
        self.ask(relay_key(ident), Stage.STOPPED, "operate-source")
        self.registry.write(new_entry("source", ident, entry.yaml, "operate-source",
                                      deleted=True))
        return self._source_result(ident)

    def _show_sources(self, ids: list[str]) -> list[Result]:
        known = self.registry.entries("source")
        wanted = ids or sorted(known)
        return [self._source_result(i, "" if i in known else f"source {i} does not exist")
                for i in wanted]

    def _source_result(self, ident: str, msg: str = "") -> Result:
        worker = self._worker("relay", relay_key(ident)) if not msg else ""
        return {"result": not msg, "msg": msg, "source": ident, "worker": worker}

    def _worker(self, role: str, key: str) -> str:
        """The live worker running `key`; the group is described at most once a second per
        role, so one answer listing many sources asks the broker once."""
        now = time.monotonic()
        cached = self._placements.get(role)
        if cached is None or now - cached[0] > PLACEMENT_SECONDS:
            try:
                found: Placement | None = self.placement_of(self.kafka, role)
            except KdmError:
                found = None
            cached = self._placements[role] = (now, found)
        return cached[1].worker_of(key) if cached[1] is not None else ""

    # -- configs ------------------------------------------------------------------------

    def get_config(self, kind: str, name: str) -> Result:
        """`get-config task|source <name>`: the YAML as submitted."""
        if kind not in ("task", "source"):
            return failed(f"get-config supports task and source, not {kind!r}")
        entry = self.registry.get(kind, name)
        if entry is None:
            return failed(f"{kind} {name} does not exist")
        return {"result": True, "msg": "", "cfg": entry.yaml}

    def export_configs(self) -> Result:
        """`config export`: every source and task YAML."""
        return {"result": True, "msg": "",
                "sources": {i: e.yaml for i, e in self.registry.entries("source").items()},
                "tasks": {n: e.yaml for n, e in self.registry.entries("task").items()}}

    def import_configs(self, sources: Mapping[str, str], tasks: Mapping[str, str]) -> Result:
        """`config import`: create the sources, then register and start the tasks."""
        created = self.operate_source("create", list(sources.values()), [])
        if not created["result"]:
            return failed("importing sources failed", sources=created["sources"])
        results = [self.start_task(text, False, []) for text in tasks.values()]
        ok = all(r["result"] for r in results)
        return {"result": ok, "msg": "" if ok else "some tasks failed to start",
                "tasks": results}

    # -- tasks --------------------------------------------------------------------------

    def check(self, text: str, error_limit: int = 10, warn_limit: int = 10) -> Result:
        """`check-task`: DM's precheck of a task file against its registered sources."""
        try:
            task = parse_task(text)
        except KdmError as exc:
            return failed(exc.render())
        missing = self._missing_sources(task)
        if missing:
            return failed(missing)
        sources = {s: self._source(s) for s in task.sources()}
        return self.precheck(task, sources, error_limit, warn_limit)

    def start_task(self, text: str, remove_meta: bool, only: list[str]) -> Result:
        """`start-task [--remove-meta] [-s ...]`: precheck, register, ask to run."""
        try:
            task = parse_task(text)
        except KdmError as exc:
            return failed(exc.render(), sources=[])
        unknown = sorted(set(only) - set(task.sources()))
        problem = (f"sources {unknown} are not in task {task.name}" if unknown else "") or \
            self._missing_sources(task) or self._not_startable(task, only) or \
            self._config_change(task, text)
        if problem:
            return failed(problem, sources=[])
        checked = self.precheck(task, {s: self._source(s) for s in task.sources()}, 10, 10)
        if not checked["result"]:
            return failed(checked["msg"], sources=[], checkResult=checked["msg"])
        chosen = [s for s in task.sources() if not only or s in only]
        if remove_meta:
            failure = self._remove_meta(task, chosen) or self._remove_locks(task, chosen)
            if failure:
                return failed(failure, sources=[])
        known = self.registry.get("task", task.name)
        if known is None or known.yaml != text or remove_meta:  # a new revision restarts units
            self.registry.write(new_entry("task", task.name, text, "start-task"))
        results = []
        for source in chosen:
            self.ask(subtask_key(task.name, source), Stage.RUNNING, "start-task")
            results.append({"result": True, "msg": "", "source": source,
                            "worker": self._worker("sync", subtask_key(task.name, source))})
        warnings = checked["msg"] if checked["msg"] != "check pass!!!" else ""
        return {"result": True, "msg": "", "sources": results, "checkResult": warnings}

    def operate_task(self, verb: str, name: str, only: list[str]) -> Result:
        """`pause-task`, `resume-task`, `stop-task` on a task's subtasks (all, or `-s`)."""
        entry = self.registry.get("task", name)
        # a subtask run outside the registry (`kdm consumer run --task`) is known by its status
        known = entry.task().sources() if entry is not None else self.view.sources_of(name)
        if not known:
            return failed(f"task {name} does not exist", op=OPS[verb], sources=[])
        results = [self._operate_subtask(verb, name, source)
                   for source in known if not only or source in only]
        ok = bool(results) and all(r["result"] for r in results)
        msg = "" if ok else ("no such source in the task" if not results
                             else "some subtasks refused the command")
        return {"op": OPS[verb], "result": ok, "msg": msg, "sources": results}

    def _operate_subtask(self, verb: str, task: str, source: str) -> Result:
        key = subtask_key(task, source)
        try:
            command_transition(self.view.stage(task, source), verb, task=task, source=source)
        except KdmError as exc:
            return {"result": False, "msg": exc.render(), "source": source, "worker": ""}
        self.ask(key, STAGE_OF[verb], verb)
        return {"result": True, "msg": "", "source": source,
                "worker": self._worker("sync", key)}

    # -- shard DDL locks ------------------------------------------------------------------

    def show_ddl_locks(self, task: str | None, sources: list[str]) -> Result:
        """`show-ddl-locks [-s ...] [task]` in seed 003's shape."""
        if self.locks is None:
            return failed(_no_locks().render(), locks=[])
        return self.locks.show(task, sources)

    def unlock_ddl_lock(self, lock_id: str, owner: str, force_remove: bool) -> Result:
        """`unlock-ddl-lock [--owner S] [--force-remove] <lock-ID>`: answers once the owner
        is done (or the wait timed out)."""
        if not lock_id:
            return failed("unlock-ddl-lock needs a lock ID (see show-ddl-locks)")
        if self.locks is None:
            return failed(_no_locks().render())
        return self.locks.unlock(lock_id, owner, force_remove)

    def query_status(self, task: str | None, sources: list[str]) -> Result:
        """`query-status [task] [-s ...]` in seed 002's shape."""
        names = sorted(self.registry.entries("task"))
        return self.view.query(task, sources, names, self._worker)

    # -- helpers ------------------------------------------------------------------------

    def _tasks(self) -> dict[str, TaskConfig]:
        return {name: entry.task() for name, entry in self.registry.entries("task").items()}

    def _source(self, ident: str) -> SourceConfig:
        entry = self.registry.get("source", ident)
        assert entry is not None  # checked by _missing_sources
        return entry.source()

    def _missing_sources(self, task: TaskConfig) -> str:
        known = self.registry.entries("source")
        missing = [s for s in task.sources() if s not in known]
        return (f"sources {missing} have not been added; add them with `operate-source "
                "create`" if missing else "")

    def _not_startable(self, task: TaskConfig, only: list[str]) -> str:
        """Why a registered task cannot be started again: a subtask asked to run that has not
        finished, or one not yet Stopped (what was asked and what was reported both count).
        A Finished subtask (task-mode full) may be started again: with `--remove-meta` (or
        a changed file) it restarts and migrates from scratch; otherwise it stays Finished."""
        if self.registry.get("task", task.name) is None:
            return ""
        requests = self.stages.snapshot()

        def busy(source: str) -> bool:
            reported = self.view.stage(task.name, source)
            asked = requests.get(subtask_key(task.name, source), {}).get("stage")
            return reported != Stage.FINISHED and (
                asked not in (None, "Stopped") or reported not in (Stage.STOPPED, Stage.NEW))
        running = [s for s in task.sources() if (not only or s in only) and busy(s)]
        return (f"task {task.name} already exists and is not Stopped on {running}; "
                "use resume-task, or stop-task first" if running else "")

    def _config_change(self, task: TaskConfig, text: str) -> str:
        """A changed task.yaml restarts every subtask with it: refused while any runs."""
        known = self.registry.get("task", task.name)
        if known is None or known.yaml == text:
            return ""
        busy = self._not_startable(task, [])
        return (f"task {task.name} runs with another config; stop-task it on every source "
                "before starting it with a changed file" if busy else "")

    def _remove_meta(self, task: TaskConfig, sources: list[str]) -> str:
        """Forget the checkpoints: the Kafka offsets first, then the downstream rows. A
        failure in between leaves the rows (a restart resumes from them, as before the
        command) and is reported, so running the command again finishes it."""
        topics = Topics(self.kafka.topic_prefix)
        groups = [topics.sync_group(task.name, s) for s in sources]
        try:
            try:
                futures = admin_client(self.kafka).delete_consumer_groups(groups,
                                                                          request_timeout=10)
            except KafkaException as exc:
                raise ERR_KAFKA_ADMIN(exc, op="delete groups", target=",".join(groups)) \
                    from exc
            for group, future in futures.items():
                _forget_group(future, group)
            remove_checkpoints(task.target_database, task.meta_schema, task.name,
                               tuple(sources))
        except KdmError as exc:
            return exc.render()
        return ""

    def _remove_locks(self, task: TaskConfig, sources: list[str]) -> str:
        """Forget the task's shard-DDL locks when every source starts over (see above)."""
        if set(task.sources()) - set(sources):
            return ""
        try:
            self.forget_locks(task.name)
        except KdmError as exc:
            return exc.render()
        return ""


def _no_locks() -> KdmError:
    return ERR_SHARD_SERVICE_DOWN(problem="this coordinator has no shard DDL service")


def _forget_group(future: Any, group: str) -> None:
    """Wait for a group's deletion; a group that never committed is fine."""
    try:
        future.result(15)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.GROUP_ID_NOT_FOUND:
            raise ERR_KAFKA_ADMIN(exc, op="delete group", target=group) from exc
