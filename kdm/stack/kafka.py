"""A single-node Apache Kafka broker in KRaft mode, its jars resolved by Maven from the pom here."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kdm.errors import ERR_STACK_INSTALL, ERR_STACK_PORT_TAKEN, ERR_STACK_START
from kdm.stack import process

READY_SECONDS = 90


def jar_cache_root() -> Path:
    """Where resolved broker jars live, shared by every stack on this machine."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kdm" / "kafka"


def install_jars(quiet: bool = False) -> Path:
    """Resolve the broker's jars from Maven Central once per pom version; return the lib dir."""
    pom = resources.files("kdm.stack").joinpath("pom.xml").read_bytes()
    target = jar_cache_root() / hashlib.sha256(pom).hexdigest()[:16]
    lib = target / "lib"
    if (target / ".complete").exists():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None or shutil.which("java") is None:
        raise ERR_STACK_INSTALL(component="kafka", problem="`mvn` and `java` must be on PATH")
    target.mkdir(parents=True, exist_ok=True)
    (target / "pom.xml").write_bytes(pom)
    argv = [mvn, "-B", "-q", "-f", str(target / "pom.xml"), "dependency:copy-dependencies",
            f"-DoutputDirectory={lib}"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ERR_STACK_INSTALL(done.stdout[-2000:] + done.stderr[-2000:], component="kafka",
                                problem=f"maven exited with {done.returncode}")
    (target / ".complete").write_text("ok\n")
    if not quiet:
        print(f"kafka jars resolved into {lib}")
    return lib


@dataclass(frozen=True)
class KafkaBroker:
    """One broker+controller node whose files all live under `home`."""

    home: Path
    port: int
    controller_port: int

    @property
    def bootstrap(self) -> str:
        """The bootstrap address clients use."""
        return f"127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.home / "config" / "server.properties"

    @property
    def pid_path(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def log_path(self) -> Path:
        return self.home / "logs" / "kafka.out"

    def running_pid(self) -> int | None:
        """The broker's PID if it is running from this home."""
        return process.running_pid(self.pid_path, str(self.config_path))

    def start(self) -> None:
        """Write the config, format storage on first start, start the broker, wait for it."""
        if self.running_pid() is not None:
            return
        for port in (self.port, self.controller_port):
            if process.port_open("127.0.0.1", port):
                raise ERR_STACK_PORT_TAKEN(component="kafka", port=port)
        lib = install_jars(quiet=True)
        self._write_config()
        self._format_storage(lib)
        process.spawn(self._command(lib), self.log_path, self.pid_path)
        if not process.wait_until(self._ready, READY_SECONDS, interval=0.5):
            raise ERR_STACK_START(component="kafka", seconds=READY_SECONDS, log=self.log_path)

    def stop(self) -> bool:
        """Stop the broker this home started; True if one was running."""
        return process.stop(self.pid_path, str(self.config_path), timeout=60)

    def _ready(self) -> bool:
        if process.exited(self.pid_path, str(self.config_path)):
            raise ERR_STACK_START(component="kafka (process exited)", seconds=0, log=self.log_path)
        if not process.port_open("127.0.0.1", self.port):
            return False
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        # A KRaft broker answers metadata requests while still fenced; creating a topic
        # succeeds only once it is unfenced and can host partitions.
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        try:
            futures = admin.create_topics([NewTopic("__kdm_ready", 1, 1)], request_timeout=5)
            futures["__kdm_ready"].result()
            return True
        except KafkaException as exc:
            return bool(exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS)
        except Exception:
            return False

    def _command(self, lib: Path) -> list[str]:
        log4j = resources.files("kdm.stack").joinpath("log4j2.properties")
        return [
            shutil.which("java") or "java", "-Xms256m", "-Xmx1g", "-XX:+UseG1GC",
            "-Djava.awt.headless=true", f"-Dkafka.logs.dir={self.home / 'logs'}",
            f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{lib}/*",
            "kafka.Kafka", str(self.config_path),
        ]

    def _format_storage(self, lib: Path) -> None:
        if (self.home / "data" / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        argv = ["java", "-cp", f"{lib}/*", "kafka.tools.StorageTool", "format",
                "-t", cluster_id, "-c", str(self.config_path)]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ERR_STACK_INSTALL(done.stdout + done.stderr, component="kafka storage",
                                    problem="format failed")

    def _write_config(self) -> None:
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.home / "data"),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
