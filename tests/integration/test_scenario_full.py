"""Scenario: full migration through the control plane, two sources whose shard tables merge
into one downstream table (DM's Dump and Load units, then Sync for task-mode `all`).

* `all`: rows exist before the task; more are inserted and updated while the dump runs and
  after; the subtasks go Dump/Load → Sync and every write lands exactly once (the
  downstream equals the merge of the upstream shards, row for row).
* `full`: the subtasks end Finished with their load block at 100 %, the task status is
  Finished, and the downstream holds the snapshot.
* a consumer worker killed with SIGKILL while the dump/load runs: another worker resumes it
  from its finished chunks, with no row missing or doubled.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from kdm.config.service import KafkaConfig
from kdm.stack.stack import Endpoints
from tests.integration.control_support import Cluster, cluster, subtask
from tests.integration.relay_support import gtid_now, source_text, wait_for
from tests.integration.scenario_support import databases, per_source_task_text
from tests.integration.sync_support import execute, rows

pytestmark = pytest.mark.integration

SHARD = "CREATE TABLE t (id INT PRIMARY KEY, v INT, note VARCHAR(40))"
ROWS = 30_000


def _seed(endpoints: Endpoints, db: str, base: int) -> None:
    execute(endpoints, db, SHARD, f"INSERT INTO t SELECT seq + {base}, seq, CONCAT('n', seq) "
            f"FROM seq_1_to_{ROWS}")


def _writes(endpoints: Endpoints, dbs: dict[str, int], stop: threading.Event) -> None:
    step = 0
    while not stop.is_set():
        for db, base in dbs.items():
            ids = range(base + ROWS + 1 + step * 10, base + ROWS + 11 + step * 10)
            execute(endpoints, db, "INSERT INTO t VALUES " + ", ".join(
                f"({i}, {i}, 'late')" for i in ids),
                f"UPDATE t SET v = v + 1 WHERE id = {base + 1 + step}")
        step += 1
        stop.wait(0.05)


def _merged(endpoints: Endpoints, ups: list[str]) -> list[tuple[Any, ...]]:
    """The shards' rows together, sorted (as text: both sides are compared the same way)."""
    return sorted(r for up in ups for r in rows(endpoints, "up", up, "t"))


def _down(endpoints: Endpoints, down: str) -> list[tuple[Any, ...]]:
    try:
        return sorted(rows(endpoints, "down", down, "t"))
    except Exception:  # not created yet
        return []


def _setup(endpoints: Endpoints, ctl: Cluster, tmp_path: Path, unique: str, mode: str,
           ups: dict[str, str], down: str) -> tuple[Path, list[str]]:
    names = {s: f"full-{s}-{unique}" for s in ups}
    gtid = gtid_now(endpoints)
    files = []
    for source in names.values():
        path = tmp_path / f"{source}.yaml"
        path.write_text(source_text(endpoints, source, gtid=gtid))
        files.append(str(path))
    body = (f"routes:\n  merge: {{schema-pattern: 'up_{unique}_?', table-pattern: t, "
            f"target-schema: {down}, target-table: t}}\n"
            f"  schema: {{schema-pattern: 'up_{unique}_?', target-schema: {down}}}\n"
            "block-allow-list:\n" + "".join(f"  only-{s}: {{do-dbs: [{ups[s]}]}}\n"
                                             for s in ups)
            + "mydumpers:\n  global:\n    threads: 2\n    rows: 4000\n"
            "loaders:\n  global:\n    pool-size: 2\n")
    text = per_source_task_text(f"full{unique}", endpoints, {
        source: f"route-rules: [merge, schema]\nblock-allow-list: only-{s}\n"
        "mydumper-config-name: global\nloader-config-name: global"
        for s, source in names.items()}, body)
    task_file = tmp_path / "task.yaml"
    task_file.write_text(text.replace("task-mode: incremental", f"task-mode: {mode}"))
    ctl.ctl("operate-source", "create", *files)
    return task_file, sorted(names.values())


def _stages(ctl: Cluster, task: str, sources: list[str]) -> list[tuple[str, str]]:
    status = ctl.ctl("query-status", task, ok=None)
    return [(subtask(status, s).get("stage", ""), subtask(status, s).get("unit", ""))
            for s in sources]


@pytest.mark.parametrize("mode", ["all", "full"])
def test_full_migration_of_two_merged_sources(endpoints: Endpoints, kafka: KafkaConfig,
                                              unique: str, tmp_path: Path, mode: str) -> None:
    ups = {"a": f"up_{unique}_a", "b": f"up_{unique}_b"}
    down, task = f"down_{unique}", f"full{unique}"
    bases = {ups["a"]: 0, ups["b"]: 1_000_000}
    with databases(endpoints, up=tuple(ups.values()), drop_down=(down, f"kdm_meta_{task}")), \
            cluster(kafka, tmp_path) as ctl:
        for db, base in bases.items():
            _seed(endpoints, db, base)
        ctl.coordinator()
        ctl.producer("p1")
        ctl.consumer("c1")
        task_file, sources = _setup(endpoints, ctl, tmp_path, unique, mode, ups, down)
        stop = threading.Event()
        writer = threading.Thread(target=_writes, args=(endpoints, bases, stop))
        if mode == "all":
            writer.start()  # during the dump, and after
        try:
            ctl.ctl("start-task", str(task_file))
            if mode == "full":  # the live progress bar returns once the load is done
                ctl.ctl("query-status", task, "--progress")
                assert all(st == ("Finished", "Load") for st in _stages(ctl, task, sources))
            units_seen: set[str] = set()

            def settled() -> bool:
                now = _stages(ctl, task, sources)
                units_seen.update(unit for _, unit in now)
                want = ("Running", "Sync") if mode == "all" else ("Finished", "Load")
                return all(s == want for s in now)
            wait_for(settled, 180, f"every subtask settled for task-mode {mode}")
            stop.wait(1.0)
        finally:
            stop.set()
            if writer.is_alive():
                writer.join(30)
        wait_for(lambda: _merged(endpoints, list(ups.values())) == _down(endpoints, down), 120,
                 "downstream equal to the merge")
        merged = rows(endpoints, "down", down, "t")
        assert len(merged) == len({r[0] for r in merged}) >= 2 * ROWS
        assert units_seen & {"Dump", "Load"}, units_seen
        status = ctl.ctl("query-status", task)
        if mode == "full":
            assert all(subtask(status, s)["load"]["progress"] == "100.00 %" for s in sources)
            summary = ctl.ctl("query-status")["tasks"]
            assert [t["taskStatus"] for t in summary if t["taskName"] == task] == ["Finished"]
        else:
            assert any(r[2] == "late" for r in merged)
            assert all("sync" in subtask(status, s) for s in sources)


@pytest.mark.parametrize("fault", ["dump.after_read:3", "load.after_commit:3"])
def test_killed_worker_resumes_the_full_migration(endpoints: Endpoints, kafka: KafkaConfig,
                                                   unique: str, tmp_path: Path,
                                                   fault: str) -> None:
    """The first consumer worker SIGKILLs itself at `fault` (while dumping: after reading its
    3rd chunk; while loading: after committing its 3rd); a second worker resumes both
    subtasks from their finished chunks and syncs on."""
    ups = {"a": f"up_{unique}_a", "b": f"up_{unique}_b"}
    down, task = f"down_{unique}", f"full{unique}"
    bases = {ups["a"]: 0, ups["b"]: 1_000_000}
    with databases(endpoints, up=tuple(ups.values()), drop_down=(down, f"kdm_meta_{task}")), \
            cluster(kafka, tmp_path) as ctl:
        for db, base in bases.items():
            _seed(endpoints, db, base)
        ctl.coordinator()
        ctl.producer("p1")
        first = ctl.consumer("c1", faults=fault)
        task_file, sources = _setup(endpoints, ctl, tmp_path, unique, "all", ups, down)
        ctl.ctl("start-task", str(task_file))
        assert first.proc is not None
        first.proc.wait(120)
        assert first.proc.returncode == -9, "the fault point killed c1"
        partial = len(_down(endpoints, down))
        assert partial < 2 * ROWS, "c1 died before finishing the load"
        execute(endpoints, ups["b"], f"INSERT INTO t VALUES ({1_000_000 + ROWS + 1}, 1, 'mid')")
        ctl.consumer("c2")
        wait_for(lambda: all(st == ("Running", "Sync") for st in _stages(ctl, task, sources)),
                 180, "the subtasks resumed on c2 and syncing")
        execute(endpoints, ups["a"], "INSERT INTO t VALUES (999999, 1, 'after')")
        wait_for(lambda: _merged(endpoints, list(ups.values())) == _down(endpoints, down), 120,
                 "downstream equal to the merge")
        merged = rows(endpoints, "down", down, "t")
        assert len(merged) == len({r[0] for r in merged}) == 2 * ROWS + 2
