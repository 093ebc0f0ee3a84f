"""The sync consumer under faults: SIGKILL at random points under load, offset resets to
the beginning and to a timestamp (replay in safe mode) — each ending with the downstream
equal to the upstream."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import main
from kdm.config.service import KafkaConfig
from kdm.stack.stack import Endpoints
from tests.integration.relay_support import KDM, Workload, gtid_now, wait_for
from tests.integration.sync_support import execute, running, same_tables, task_text

pytestmark = pytest.mark.integration


class ConsumerProcess:
    """`kdm consumer run` as a child process."""

    def __init__(self, task_path: Path, kafka: KafkaConfig, log_path: Path) -> None:
        self.args = [KDM, "consumer", "run", "--task", str(task_path)]
        self.env = {"KDM_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
                    "KDM_TOPIC_PREFIX": kafka.topic_prefix}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.children_killed = 0

    def start(self) -> None:
        import os
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, **self.env})

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            children = _children(self.proc.pid)
            self.children_killed += len(children)
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            # the relay reader process of each subtask notices its parent is gone
            wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in children), 10,
                     f"the killed consumer's child processes {children} to exit")

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode


def _children(pid: int) -> list[int]:
    """PIDs of the processes whose parent is `pid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.fixture
def routed_task(endpoints: Endpoints, upstream_db: str, downstream_db: str, unique: str,
                tmp_path: Path, request: Any) -> Iterator[tuple[Path, str]]:
    workers = getattr(request, "param", 4)
    source = f"sf-{unique}"
    body = (f"routes:\n  r:\n    schema-pattern: {upstream_db}\n"
            f"    target-schema: {downstream_db}\n")
    path = tmp_path / "task.yaml"
    path.write_text(task_text(f"faults-{unique}", endpoints, [source], body,
                              "route-rules: [r]", workers))
    yield path, source


@pytest.mark.parametrize("routed_task", [1, 16], indirect=True)
def test_sigkill_at_random_points_under_load(
        routed_task: tuple[Path, str], endpoints: Endpoints, kafka: KafkaConfig,
        upstream_db: str, downstream_db: str, tmp_path: Path) -> None:
    path, source = routed_task
    consumer = ConsumerProcess(path, kafka, tmp_path / "consumer.log")
    with running(endpoints, kafka, [source], gtid_now(endpoints)):
        workload = Workload(endpoints, upstream_db).start()
        consumer.start()
        rng = random.Random(11)
        for _ in range(5):
            time.sleep(rng.uniform(1.0, 2.5))
            consumer.kill()
            time.sleep(rng.uniform(0.0, 0.3))
            consumer.start()
        workload.finish()
        wait_for(lambda: same_tables(endpoints, (upstream_db, "t"), (downstream_db, "t")),
                 90, "the downstream to match the upstream after the kills")
        assert consumer.stop() == 0
    assert consumer.children_killed > 0  # the reader processes' exit was checked


def _replay(kafka: KafkaConfig, task: str, source: str, *args: str) -> None:
    result = CliRunner().invoke(main, ["replay", task, "-s", source, *args], env={
        "KDM_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KDM_TOPIC_PREFIX": kafka.topic_prefix})
    assert result.exit_code == 0, result.output


def test_offset_reset_to_the_beginning_and_to_a_time_replays_in_safe_mode(
        routed_task: tuple[Path, str], endpoints: Endpoints, kafka: KafkaConfig,
        upstream_db: str, downstream_db: str) -> None:
    from kdm.config.task import load_task

    path, source = routed_task
    task = load_task(path)
    with running(endpoints, kafka, [source], gtid_now(endpoints), task):
        execute(endpoints, upstream_db, "CREATE TABLE t (id INT PRIMARY KEY, v INT)",
                *[f"INSERT INTO t VALUES ({i}, {i})" for i in range(200)])
        wait_for(lambda: same_tables(endpoints, (upstream_db, "t"), (downstream_db, "t")),
                 60, "the first copy")
        middle = int(time.time() * 1000)
        time.sleep(1.0)
        execute(endpoints, upstream_db, "UPDATE t SET v = v * 2 WHERE id < 100",
                "DELETE FROM t WHERE id >= 150")
        wait_for(lambda: same_tables(endpoints, (upstream_db, "t"), (downstream_db, "t")),
                 60, "the changes")
        for where in (["--offset", "0"], ["--timestamp", str(middle)]):
            _replay(kafka, task.name, source, *where)
            time.sleep(3.0)
            execute(endpoints, upstream_db, f"INSERT INTO t VALUES ({1000 + len(where[1])}, 1)")
            wait_for(lambda: same_tables(endpoints, (upstream_db, "t"),
                                         (downstream_db, "t")), 60, f"replay from {where}")
