"""dmctl's verbs, answered by the coordinator's HTTP API (`--master-addr`, $DM_MASTER_ADDR).

`--master-addr` takes one address or a comma-separated list: a standby coordinator answers
writes with HTTP 503 and the next address is tried. Output is the coordinator's JSON as
dmctl prints it; the exit code is 1 when `result` is false.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import click

from cli.common import emit
from kdm.config import load_source, load_task
from kdm.errors import ERR_CTL_MASTER

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_ADDR = "127.0.0.1:8261"
TIMEOUT = 120.0  # start-task runs the precheck against every source
REPORT_WAIT = 60.0  # --progress: how long to wait for a subtask's first report


def master_option(func: F) -> F:
    """`--master-addr` (or $DM_MASTER_ADDR): the coordinator(s) to ask."""
    return click.option("--master-addr", "master_addr", envvar="DM_MASTER_ADDR",
                        default=DEFAULT_ADDR, show_default=True,
                        help="Coordinator address(es), comma-separated; $DM_MASTER_ADDR.")(func)


def call(addrs: str, method: str, path: str, body: dict[str, Any] | None = None,
         query: dict[str, Any] | None = None) -> dict[str, Any]:
    """One API call, trying each address until one answers (a standby passes writes on)."""
    target = path + ("?" + urlencode(query, doseq=True) if query else "")
    data = json.dumps(body).encode() if body is not None else None
    problems = []
    for addr in [a.strip() for a in addrs.split(",") if a.strip()]:
        url = addr if addr.startswith("http") else f"http://{addr}"
        req = urllib.request.Request(url + target, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
                answer: dict[str, Any] = json.loads(resp.read())
                return answer
        except urllib.error.HTTPError as exc:
            if exc.code == 503:
                problems.append(f"{addr} is a standby (leader: {_leader(exc)})")
                continue
            try:
                answer = json.loads(exc.read() or b"{}")
            except ValueError:
                problems.append(f"{addr}: HTTP {exc.code} without a kdm answer")
                continue
            answer.setdefault("result", False)
            return answer
        except (urllib.error.URLError, OSError) as exc:
            problems.append(f"{addr}: {getattr(exc, 'reason', exc)}")
        except ValueError:  # something else listens there
            problems.append(f"{addr}: the answer is not kdm's JSON")
    raise ERR_CTL_MASTER(addrs=addrs, problems="; ".join(problems))


def _leader(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("leader") or "unknown")
    except ValueError:
        return "unknown"


def show(result: dict[str, Any]) -> None:
    """Print a result; exit 1 when it failed."""
    emit(result)
    if not result.get("result", False):
        raise SystemExit(1)


def task_name(name_or_file: str) -> str:
    """A task name, or the `name` of a task file (dmctl accepts either)."""
    return _named(name_or_file, lambda path: load_task(path).name)


def _source_id(name_or_file: str) -> str:
    """A source id, or the `source-id` of a source file."""
    return _named(name_or_file, lambda path: load_source(path).source_id)


def _named(arg: str, read: Callable[[Path], str]) -> str:
    path = Path(arg)
    return read(path) if path.suffix in (".yaml", ".yml") and path.is_file() else arg


@click.command("operate-source")
@click.argument("op", type=click.Choice(["create", "stop", "show"]))
@click.argument("args", nargs=-1)
@master_option
def operate_source(op: str, args: tuple[str, ...], master_addr: str) -> None:
    """create <source.yaml...> | stop <source-id|source.yaml...> | show [source-id...]."""
    if op == "create":
        if not args:
            raise click.UsageError("operate-source create needs source.yaml files")
        texts = [Path(a).read_text() for a in args]
        show(call(master_addr, "POST", "/api/v1/sources", {"configs": texts}))
    elif op == "stop":
        show(call(master_addr, "POST", "/api/v1/sources/stop",
                  {"sources": [_source_id(a) for a in args]}))
    else:
        show(call(master_addr, "GET", "/api/v1/sources", query={"source": list(args)}))


@click.command("get-config")
@click.argument("kind", type=click.Choice(["task", "source"]))
@click.argument("name")
@click.option("-f", "--file", "out", type=click.Path(dir_okay=False), default=None,
              help="Write the config to this file instead of printing the result.")
@master_option
def get_config(kind: str, name: str, out: str | None, master_addr: str) -> None:
    """Show the YAML a task or source was submitted with."""
    result = call(master_addr, "GET", f"/api/v1/configs/{kind}/{quote(name, safe='')}")
    if out and result.get("result"):
        Path(out).write_text(result["cfg"])
        result = {"result": True, "msg": f"config written to {out}"}
    show(result)


@click.command("check-task")
@click.argument("config_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--error", "error_limit", type=int, default=10, show_default=True,
              help="Print at most this many failed items.")
@click.option("--warn", "warn_limit", type=int, default=10, show_default=True,
              help="Print at most this many warning items.")
@master_option
def check_task(config_file: str, error_limit: int, warn_limit: int, master_addr: str) -> None:
    """Run DM's precheck of a task file against its sources."""
    show(call(master_addr, "POST", "/api/v1/tasks/check",
              {"config": Path(config_file).read_text(), "error": error_limit,
               "warn": warn_limit}))


@click.command("start-task")
@click.argument("config_file", type=click.Path(exists=True, dir_okay=False))
@click.option("-s", "--source", "sources", multiple=True, help="Only these sources.")
@click.option("--remove-meta", is_flag=True, help="Forget the checkpoints: start over.")
@master_option
def start_task(config_file: str, sources: tuple[str, ...], remove_meta: bool,
               master_addr: str) -> None:
    """Precheck, register and start a task (or start a Stopped one again)."""
    show(call(master_addr, "POST", "/api/v1/tasks",
              {"config": Path(config_file).read_text(), "remove_meta": remove_meta,
               "sources": list(sources)}))


def _task_verb(verb: str, summary: str) -> click.Command:
    @click.command(f"{verb}-task", help=summary)
    @click.argument("task")
    @click.option("-s", "--source", "sources", multiple=True, help="Only these sources.")
    @master_option
    def command(task: str, sources: tuple[str, ...], master_addr: str) -> None:
        name = quote(task_name(task), safe="")
        show(call(master_addr, "POST", f"/api/v1/tasks/{name}/{verb}",
                  {"sources": list(sources)}))
    return command


pause_task = _task_verb("pause", "Pause a task's subtasks (the batch in flight finishes).")
resume_task = _task_verb("resume", "Resume a task's Paused subtasks.")
stop_task = _task_verb("stop", "Stop a task's subtasks; start-task starts them again.")


@click.command("query-status")
@click.argument("task", required=False)
@click.option("-s", "--source", "sources", multiple=True, help="Source id (repeatable).")
@click.option("--progress", is_flag=True, help="With a task: draw a live progress bar of its "
              "full migration (dump and load) until every subtask has left those units.")
@master_option
def query_status(task: str | None, sources: tuple[str, ...], progress: bool,
                 master_addr: str) -> None:
    """Show tasks' and sources' status as dmctl does."""
    query: dict[str, Any] = {"source": list(sources)}
    if task:
        query["task"] = task_name(task)
    if progress and task:
        _progress(master_addr, query)
    show(call(master_addr, "GET", "/api/v1/status", query=query))


def full_progress(status: dict[str, Any]) -> tuple[float, bool]:
    """(percent done over the task's subtasks, whether the full migration still runs) from
    a `query-status <task>` answer: dumping counts as the first half, loading the second. It
    still runs while a subtask dumps or loads, or has not reported yet (New)."""
    shares, busy = [], False
    for entry in status.get("sources", []):
        for sub in entry.get("subTaskStatus", []):
            unit, block = sub.get("unit"), sub.get(str(sub.get("unit", "")).lower()) or {}
            percent = float((str(block.get("progress", "")).split() or ["0"])[0])
            busy = busy or sub.get("stage") == "New" or (
                unit in ("Dump", "Load") and sub.get("stage") == "Running")
            shares.append({"Dump": percent / 2, "Load": 50 + percent / 2}.get(unit, 100.0))
    return (sum(shares) / len(shares) if shares else 0.0), busy or not shares


def _progress(master_addr: str, query: dict[str, Any]) -> None:
    """Draw the bar until the migration is done, the task is unknown, or nothing has been
    reported for REPORT_WAIT seconds (no worker runs it)."""
    deadline = time.monotonic() + REPORT_WAIT
    with click.progressbar(length=100, label="full migration", file=sys.stderr) as bar:
        shown = 0
        while True:
            status = call(master_addr, "GET", "/api/v1/status", query=query)
            done, busy = full_progress(status)
            bar.update(int(done) - shown)
            shown = int(done)
            reported = any(e.get("subTaskStatus") for e in status.get("sources", []))
            if not busy or not status.get("result") or (
                    not reported and time.monotonic() > deadline):
                return
            time.sleep(1.0)


@click.command("show-ddl-locks")
@click.argument("task", required=False)
@click.option("-s", "--source", "sources", multiple=True,
              help="Only locks involving this source (repeatable).")
@master_option
def show_ddl_locks(task: str | None, sources: tuple[str, ...], master_addr: str) -> None:
    """Show the unresolved shard-DDL locks (of a task name or task file)."""
    query: dict[str, Any] = {"source": list(sources)}
    if task:
        query["task"] = task_name(task)
    show(call(master_addr, "GET", "/api/v1/ddl-locks", query=query))


@click.command("unlock-ddl-lock")
@click.argument("lock_id")
@click.option("--owner", default="", help="The source that executes the DDLs instead of the "
              "lock's owner (only when the owner was removed from the task).")
@click.option("--force-remove", is_flag=True,
              help="Remove the lock even if the owner fails to execute the DDLs.")
@master_option
def unlock_ddl_lock(lock_id: str, owner: str, force_remove: bool, master_addr: str) -> None:
    """Resolve a pessimistic lock by hand: the owner executes, the others skip (seed 003)."""
    show(call(master_addr, "POST", "/api/v1/ddl-locks/unlock",
              {"id": lock_id, "owner": owner, "force_remove": force_remove}))


@click.group("config")
def config() -> None:
    """Export or import every source and task config."""


@config.command("export")
@click.option("-d", "--dir", "directory", default="configs", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@master_option
def config_export(directory: Path, master_addr: str) -> None:
    """Write source/<id>.yaml and task/<name>.yaml under DIR."""
    result = call(master_addr, "GET", "/api/v1/configs")
    if result.get("result"):
        write_export(result, directory)
        result = {"result": True, "msg": f"export configs to directory `{directory}` succeed"}
    show(result)


@config.command("import")
@click.option("-d", "--dir", "directory", default="configs", show_default=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path))
@master_option
def config_import(directory: Path, master_addr: str) -> None:
    """Create the sources and start the tasks found under DIR (as `config export` wrote)."""
    sources, tasks = read_import(directory)
    show(call(master_addr, "POST", "/api/v1/configs", {"sources": sources, "tasks": tasks}))


def write_export(result: dict[str, Any], directory: Path) -> list[Path]:
    """Write exported YAMLs as DM lays them out: source/<id>.yaml, task/<name>.yaml."""
    written = []
    for kind, entries in (("source", result["sources"]), ("task", result["tasks"])):
        (directory / kind).mkdir(parents=True, exist_ok=True)
        for name, text in entries.items():
            path = directory / kind / f"{name}.yaml"
            path.write_text(text)
            written.append(path)
    return written


def read_import(directory: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The YAMLs of a `config export` directory: (sources, tasks) by file stem."""
    found: dict[str, dict[str, str]] = {"source": {}, "task": {}}
    for kind, texts in found.items():
        for path in sorted((directory / kind).glob("*.yaml")):
            texts[path.stem] = path.read_text()
    return found["source"], found["task"]


COMMANDS = (operate_source, get_config, check_task, start_task, pause_task, resume_task,
            stop_task, query_status, show_ddl_locks, unlock_ddl_lock, config)
