"""Helpers for control-plane tests: the coordinator and the workers as real processes (so
they can be killed with SIGKILL), and dmctl's verbs run through the CLI."""

from __future__ import annotations

import json
import os
import signal
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
from tests.integration.relay_support import KDM, wait_for


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
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int | None:
        """SIGTERM and wait (a clean shutdown); SIGKILL after 60 s."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode


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

    def coordinator(self, name: str = "coordinator") -> Service:
        """Start the coordinator and wait until it leads."""
        service = self.start(name, "coordinator", "run", "--addr", self.addr)
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

    def stop_all(self) -> None:
        """SIGTERM every service, by PID (workers before the coordinator)."""
        for name in sorted(self.services, key=lambda n: n == "coordinator"):
            self.services[name].stop()


@contextmanager
def cluster(kafka: KafkaConfig, logs: Path) -> Iterator[Cluster]:
    """A cluster whose every process is stopped when the test ends."""
    running = Cluster(kafka, logs)
    try:
        yield running
    finally:
        running.stop_all()


def subtask(status: dict[str, Any], source: str) -> dict[str, Any]:
    """The subTaskStatus of `source` in a `query-status <task>` answer ({} if absent)."""
    for entry in status.get("sources", []):
        if entry["sourceStatus"]["source"] == source and entry["subTaskStatus"]:
            found: dict[str, Any] = entry["subTaskStatus"][0]
            return found
    return {}
