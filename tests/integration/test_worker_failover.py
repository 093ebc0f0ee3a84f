"""A consumer worker killed with SIGKILL under load: Kafka's group gives its subtasks to the
surviving worker, which resumes them from their checkpoints; the downstream ends equal to the
upstream, with no row lost or doubled."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from kdm.config.service import KafkaConfig
from kdm.stack.stack import Endpoints
from tests.integration.control_support import cluster, side_by_side_task, source_files, subtask
from tests.integration.relay_support import wait_for
from tests.integration.scenario_support import databases
from tests.integration.sync_support import execute, rows

pytestmark = pytest.mark.integration

TABLE = "CREATE TABLE t (id INT PRIMARY KEY, v INT, note VARCHAR(30))"


def _load(endpoints: Endpoints, dbs: list[str], stop: threading.Event) -> None:
    """Inserts, updates and deletes on every database until `stop`."""
    rng = random.Random(7)
    next_id = 0
    while not stop.is_set():
        for db in dbs:
            ids = range(next_id, next_id + 40)
            execute(endpoints, db,
                    "INSERT INTO t VALUES " + ", ".join(f"({i}, {i}, 'n{i}')" for i in ids),
                    f"UPDATE t SET v = v + 1 WHERE id % 5 = {rng.randrange(5)}",
                    f"DELETE FROM t WHERE id % 13 = {rng.randrange(13)} AND id < {next_id}")
        next_id += 40
        stop.wait(0.02)


def test_killed_worker_moves_its_subtasks(endpoints: Endpoints, kafka: KafkaConfig,
                                          unique: str, tmp_path: Path) -> None:
    names = {"a": f"fo-a-{unique}", "b": f"fo-b-{unique}"}
    ups = {s: f"up_{unique}_{s}" for s in names}
    downs = {s: f"down_{unique}_{s}" for s in names}
    task = f"fo{unique}"
    with databases(endpoints, up=tuple(ups.values()), down=tuple(downs.values()),
                   drop_down=(f"kdm_meta_{task}",)), cluster(kafka, tmp_path) as ctl:
        for s in names:
            execute(endpoints, ups[s], TABLE)
            execute(endpoints, downs[s], TABLE, side="down")
        files = [str(path) for path in source_files(endpoints, tmp_path, names).values()]
        task_file = side_by_side_task(endpoints, tmp_path, task, names, ups, downs)
        ctl.coordinator()
        ctl.producer("p1")
        workers = {"c1": ctl.consumer("c1"), "c2": ctl.consumer("c2")}
        ctl.ctl("operate-source", "create", *files)
        ctl.ctl("start-task", str(task_file))

        stop = threading.Event()
        load = threading.Thread(target=_load, args=(endpoints, list(ups.values()), stop))
        load.start()
        try:
            def placed() -> dict[str, str]:
                status = ctl.ctl("query-status", task, ok=None)
                return {s: subtask(status, s).get("worker", "") for s in names.values()}
            wait_for(lambda: all(w in workers for w in placed().values())
                     and all(subtask(ctl.ctl("query-status", task), s).get("stage")
                             == "Running" for s in names.values()), 60,
                     "both subtasks running on a worker")
            stop.wait(3)  # under load for a while
            # a rebalance may be under way (no owner for a moment): ask until one answers
            owner: dict[str, str] = {}

            def owner_known() -> bool:
                owner["a"] = placed()[names["a"]]
                return owner["a"] in workers
            wait_for(owner_known, 30, "a's worker")
            victim = owner["a"]
            survivor = next(w for w in workers if w != victim)
            workers[victim].kill()
            wait_for(lambda: set(placed().values()) == {survivor}, 60,
                     f"the subtasks to move to {survivor}")
            stop.wait(3)  # and under load on the survivor
        finally:
            stop.set()
            load.join(30)

        def equal() -> bool:
            return all(rows(endpoints, "up", ups[s], "t") == rows(endpoints, "down", downs[s], "t")
                       for s in names)
        wait_for(equal, 120, "downstream equal to upstream after the failover")
        for s in names:
            assert len(rows(endpoints, "down", downs[s], "t")) > 100
        status = ctl.ctl("query-status", task)
        assert all(subtask(status, s)["stage"] == "Running" for s in names.values())
