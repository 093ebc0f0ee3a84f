"""Helpers for control-plane tests: the coordinator and the workers as real processes (so
they can be killed with SIGKILL), and dmctl's verbs run through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from cli.main import main
from kdm.config.service import KafkaConfig
from kdm.stack.process import free_ports
from kdm.stack.stack import Endpoints
from tests.integration.relay_support import (
    KDM,
    gtid_now,
    kill_process,
    source_text,
    stop_process,
    wait_for,
)
from tests.integration.scenario_support import per_source_task_text


@dataclass
class Service:
    """One `kdm ...` service process, stopped or killed by its PID."""

    args: list[str]
    kafka: KafkaConfig
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> Service:
        """Start it, its output appended to `log_path`."""
        environment = {**os.environ, "KDM_KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
                       "KDM_TOPIC_PREFIX": self.kafka.topic_prefix, **self.env}
        if "KDM_FAULTS" not in self.env:
            environment.pop("KDM_FAULTS", None)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([KDM, *self.args], stdout=log,
                                         stderr=subprocess.STDOUT, env=environment)
        return self

    def kill(self) -> None:
        """SIGKILL: no cleanup at all."""
        kill_process(self.proc)

    def stop(self) -> int | None:
        """SIGTERM and wait (a clean shutdown); SIGKILL after 60 s."""
        return stop_process(self.proc, 60)


class Cluster:
    """A coordinator, producer workers and consumer workers for one test."""

    def __init__(self, kafka: KafkaConfig, logs: Path) -> None:
        self.kafka = kafka
        self.logs = logs
        self.port = free_ports(1)[0]
        self.addr = f"127.0.0.1:{self.port}"
        self.services: dict[str, Service] = {}

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> Service:
        """Start a named service (with extra environment, e.g. KDM_FAULTS)."""
        service = Service(list(args), self.kafka, self.logs / f"{name}.log",
                          env=env or {}).start()
        self.services[name] = service
        return service

    def coordinator(self, name: str = "coordinator", env: dict[str, str] | None = None
                    ) -> Service:
        """Start the coordinator (with extra environment) and wait until it leads."""
        service = self.start(name, "coordinator", "run", "--addr", self.addr, env=env)
        wait_for(lambda: self.api("/api/v1/leader").get("isLeader") is True, 60,
                 "the coordinator to lead")
        return service

    def producer(self, name: str) -> Service:
        """Start a producer worker."""
        return self.start(name, "producer", "run", "--name", name, "--commit-interval", "0.05")

    def consumer(self, name: str, faults: str = "") -> Service:
        """Start a consumer worker (`faults`: its KDM_FAULTS, see kdm.faults)."""
        return self.start(name, "consumer", "run", "--name", name,
                          env={"KDM_FAULTS": faults} if faults else None)

    def api(self, path: str) -> dict[str, Any]:
        """GET an API path ({} while the coordinator does not answer)."""
        try:
            with urllib.request.urlopen(f"http://{self.addr}{path}", timeout=5) as resp:
                answer: dict[str, Any] = json.loads(resp.read())
                return answer
        except OSError:
            return {}

    def ctl(self, *args: str, ok: bool | None = True) -> dict[str, Any]:
        """Run a dmctl verb through the CLI; its JSON result (checked against `ok`)."""
        result = CliRunner().invoke(main, [*args, "--master-addr", self.addr],
                                    catch_exceptions=False)
        try:
            answer: dict[str, Any] = json.loads(result.stdout)
        except ValueError as exc:
            raise AssertionError(f"{args}: not JSON: {result.output!r}") from exc
        if ok is not None:
            assert answer["result"] is ok, (args, answer)
            assert result.exit_code == (0 if ok else 1), (args, result.exit_code)
        return answer

    def print_logs(self, tail: int = 200) -> None:
        """Print the last `tail` lines of every service's log (pytest shows them with a
        failure, so a failure in CI can be read without the files)."""
        for name, service in self.services.items():
            lines = service.log_path.read_text(errors="replace").splitlines()
            print(f"----- {name}: last {min(tail, len(lines))} of {len(lines)} lines -----")
            print("\n".join(lines[-tail:]))

    def stop_all(self) -> None:
        """SIGTERM every service, by PID (workers before the coordinator)."""
        for name in sorted(self.services, key=lambda n: n == "coordinator"):
            self.services[name].stop()


@contextmanager
def cluster(kafka: KafkaConfig, logs: Path) -> Iterator[Cluster]:
    """A cluster whose every process is stopped when the test ends."""
    running = Cluster(kafka, logs)
    failed = True
    try:
        yield running
        failed = False
    finally:
        running.stop_all()
        if failed:
            running.print_logs()


def subtask(status: dict[str, Any], source: str) -> dict[str, Any]:
    """The subTaskStatus of `source` in a `query-status <task>` answer ({} if absent)."""
    for entry in status.get("sources", []):
        if entry["sourceStatus"]["source"] == source and entry["subTaskStatus"]:
            found: dict[str, Any] = entry["subTaskStatus"][0]
            return found
    return {}


def source_files(endpoints: Endpoints, tmp_path: Path, names: dict[str, str]
                 ) -> dict[str, Path]:
    """A source.yaml per source (by its short name), relays starting at the upstream's
    current GTID set."""
    gtid = gtid_now(endpoints)
    files = {}
    for short, source in names.items():
        files[short] = tmp_path / f"{source}.yaml"
        files[short].write_text(source_text(endpoints, source, gtid=gtid))
    return files


def side_by_side_task(endpoints: Endpoints, tmp_path: Path, task: str, names: dict[str, str],
                      ups: dict[str, str], downs: dict[str, str]) -> Path:
    """A task file in which each source (by short name) migrates its own upstream schema
    `ups[s]` into its own downstream schema `downs[s]`."""
    body = ("routes:\n" + "".join(
        f"  r-{s}: {{schema-pattern: {ups[s]}, target-schema: {downs[s]}}}\n"
        for s in names) + "block-allow-list:\n" + "".join(
        f"  only-{s}: {{do-dbs: [{ups[s]}]}}\n" for s in names))
    path = tmp_path / "task.yaml"
    path.write_text(per_source_task_text(task, endpoints, {
        source: f"route-rules: [r-{s}]\nblock-allow-list: only-{s}"
        for s, source in names.items()}, body))
    return path
