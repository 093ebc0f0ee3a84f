"""End to end through the CLI only: a coordinator, a producer worker and a consumer worker as
processes; two sources (each its own schema of the test upstream) created with
`operate-source`, a task checked and started, writes applied, the stages moved by
pause/resume/stop/start as seed 002's diagram says, illegal moves refused, and a stopped task
started again from its checkpoint. Asserted by comparing upstream and downstream tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdm.config.service import KafkaConfig
from kdm.stack.stack import Endpoints
from tests.integration.control_support import (
    Cluster,
    cluster,
    side_by_side_task,
    source_files,
    subtask,
)
from tests.integration.relay_support import wait_for
from tests.integration.scenario_support import databases
from tests.integration.sync_support import execute, rows

pytestmark = pytest.mark.integration

TABLE = "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))"


def _insert(endpoints: Endpoints, db: str, start: int, count: int) -> None:
    execute(endpoints, db, "INSERT INTO t VALUES " + ", ".join(
        f"({i}, 'v{i}')" for i in range(start, start + count)))


def _caught_up(endpoints: Endpoints, pairs: list[tuple[str, str]]) -> bool:
    try:
        return all(rows(endpoints, "up", up, "t") == rows(endpoints, "down", down, "t")
                   for up, down in pairs)
    except Exception:
        return False


def _stages(ctl: Cluster, task: str) -> dict[str, str]:
    status = ctl.ctl("query-status", task, ok=None)
    return {e["sourceStatus"]["source"]: e["subTaskStatus"][0]["stage"]
            for e in status.get("sources", []) if e["subTaskStatus"]}


def _wait_stages(ctl: Cluster, task: str, sources: list[str], stage: str) -> None:
    wait_for(lambda: _stages(ctl, task) == dict.fromkeys(sources, stage), 60,
             f"every subtask of {task} {stage}")


def _task_status(ctl: Cluster, task: str) -> str:
    summary = ctl.ctl("query-status")
    found = [t["taskStatus"] for t in summary["tasks"] if t["taskName"] == task]
    return found[0] if found else ""


def test_cli_drives_sources_tasks_and_stages(endpoints: Endpoints, kafka: KafkaConfig,
                                             unique: str, tmp_path: Path) -> None:
    names = {"a": f"cp-a-{unique}", "b": f"cp-b-{unique}"}
    ups = {s: f"up_{unique}_{s}" for s in names}
    downs = {s: f"down_{unique}_{s}" for s in names}
    task = f"cp{unique}"
    with databases(endpoints, up=tuple(ups.values()), down=tuple(downs.values()),
                   drop_down=(f"kdm_meta_{task}",)), cluster(kafka, tmp_path) as ctl:
        for s in names:
            execute(endpoints, ups[s], TABLE)
            execute(endpoints, downs[s], TABLE, side="down")
        files = source_files(endpoints, tmp_path, names)
        task_file = side_by_side_task(endpoints, tmp_path, task, names, ups, downs)
        sources = sorted(names.values())
        pairs = [(ups[s], downs[s]) for s in names]

        ctl.coordinator()
        ctl.producer("p1")
        ctl.consumer("c1")

        created = ctl.ctl("operate-source", "create", *map(str, files.values()))
        assert sorted(r["source"] for r in created["sources"]) == sources
        shown = ctl.ctl("operate-source", "show")
        assert sorted(r["source"] for r in shown["sources"]) == sources
        wait_for(lambda: all(r["worker"] == "p1" for r in
                             ctl.ctl("operate-source", "show")["sources"]), 60,
                 "the relays to run on p1")
        assert ctl.ctl("get-config", "source", names["a"])["cfg"] == files["a"].read_text()

        assert ctl.ctl("check-task", str(task_file))["msg"].startswith("check pass")
        started = ctl.ctl("start-task", str(task_file))
        assert sorted(r["source"] for r in started["sources"]) == sources
        ctl.ctl("start-task", str(task_file), ok=False)  # it exists and runs

        for s in names:
            _insert(endpoints, ups[s], 0, 50)
        wait_for(lambda: _caught_up(endpoints, pairs), 90, "the first rows downstream")
        _wait_stages(ctl, task, sources, "Running")
        wait_for(lambda: all(subtask(ctl.ctl("query-status", task), s)["sync"]["syncerBinlog"]
                             for s in sources), 30, "syncerBinlog reported")
        status = ctl.ctl("query-status", task)
        for source in sources:
            entry = subtask(status, source)
            assert entry["unit"] == "Sync" and entry["result"] is None
        first = {s: subtask(status, s)["sync"]["syncerBinlog"] for s in sources}
        wait_for(lambda: all(subtask(ctl.ctl("query-status", task), s)["sync"]["synced"]
                             for s in sources), 60, "synced: true once caught up")
        assert _task_status(ctl, task) == "Running"

        # pause → Paused; writes wait; resume → Running and they arrive
        ctl.ctl("pause-task", task)
        _wait_stages(ctl, task, sources, "Paused")
        assert _task_status(ctl, task) == "Paused"
        for s in names:
            _insert(endpoints, ups[s], 100, 50)
        ctl.ctl("pause-task", task)  # Paused → Paused is DM's no-op
        ctl.ctl("resume-task", task)
        _wait_stages(ctl, task, sources, "Running")
        wait_for(lambda: _caught_up(endpoints, pairs), 90, "rows written while Paused")
        wait_for(lambda: all(subtask(ctl.ctl("query-status", task), s)["sync"]["syncerBinlog"]
                             != first[s] for s in sources), 30, "syncerBinlog to advance")

        # stop → Stopped; resume is refused (only start-task leaves Stopped)
        ctl.ctl("stop-task", "-s", names["a"], task)
        wait_for(lambda: _stages(ctl, task).get(names["a"]) == "Stopped", 60, "a Stopped")
        again = ctl.ctl("stop-task", task, ok=False)  # a is Stopped already: refused; b stops
        assert [r["result"] for r in again["sources"]] == [False, True]
        _wait_stages(ctl, task, sources, "Stopped")
        assert _task_status(ctl, task) == "Stopped"
        refused = ctl.ctl("resume-task", task, ok=False)
        assert all("Stopped" in r["msg"] for r in refused["sources"])
        ctl.ctl("pause-task", task, ok=False)

        # written while Stopped; start-task resumes from the checkpoint, no duplicates
        for s in names:
            _insert(endpoints, ups[s], 200, 50)
            execute(endpoints, ups[s], "UPDATE t SET v = CONCAT(v, '+') WHERE id % 7 = 0")
        ctl.ctl("start-task", str(task_file))
        _wait_stages(ctl, task, sources, "Running")
        wait_for(lambda: _caught_up(endpoints, pairs), 90, "rows written while Stopped")
        for _, down in pairs:
            assert len(rows(endpoints, "down", down, "t")) == 150

        # a source in use cannot be removed; config export/import round-trips the YAMLs
        ctl.ctl("operate-source", "stop", names["a"], ok=False)
        export = tmp_path / "export"
        ctl.ctl("config", "export", "-d", str(export))
        assert (export / "task" / f"{task}.yaml").read_text() == task_file.read_text()
        assert (export / "source" / f"{names['b']}.yaml").read_text() == files["b"].read_text()
        ctl.ctl("stop-task", task)
        _wait_stages(ctl, task, sources, "Stopped")
        ctl.ctl("operate-source", "stop", names["a"])
        assert names["a"] not in [r["source"] for r in ctl.ctl("operate-source",
                                                                 "show")["sources"]]
        openapi = ctl.api("/api/v1/openapi.json")
        assert "/api/v1/tasks/{name}/{verb}" in openapi["paths"]
    for name in ("coordinator", "p1", "c1"):
        assert ctl.services[name].proc is not None
        assert ctl.services[name].proc.returncode == 0, f"{name} did not exit cleanly"
