"""`kdm stack up|down|status`: the whole local stack, its ports remembered in `stack.json`.

Layout under the stack home (default `~/.kdm/stack`, or `$KDM_STACK_HOME`)::

    stack.json              endpoints and ports; `up` reuses them, so `up` twice is harmless
    kafka/                  config/, data/, logs/, kafka.pid
    upstream/, downstream/  data/, mariadbd.log, mariadbd.pid, mysqld.sock
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kdm.errors import ERR_STACK_NOT_UP, ERR_STACK_PORTS_CHANGED
from kdm.stack.kafka import KafkaBroker, install_jars
from kdm.stack.mariadb import MariaDB, install_server


def default_home() -> Path:
    """`$KDM_STACK_HOME`, else `~/.kdm/stack`."""
    env = os.environ.get("KDM_STACK_HOME")
    return Path(env) if env else Path.home() / ".kdm" / "stack"


@dataclass(frozen=True)
class Ports:
    """The loopback ports of one stack; defaults suit a single demo stack per machine."""

    kafka: int = 9092
    kafka_controller: int = 9093
    upstream: int = 3307
    downstream: int = 4000


@dataclass(frozen=True)
class Endpoints:
    """What clients need to reach a running stack."""

    home: str
    kafka_bootstrap: str
    upstream: dict[str, Any]
    downstream: dict[str, Any]

    def to_json(self) -> str:
        """The endpoints as indented JSON, as `stack up` and `stack status` print them."""
        return json.dumps(asdict(self), indent=2)


def _db_endpoint(port: int) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": port, "user": "root", "password": ""}


class LocalStack:
    """The three servers of one stack home."""

    def __init__(self, home: Path, ports: Ports | None = None) -> None:
        self.home = home.resolve()
        self.ports = ports or self._saved_ports() or Ports()
        self.kafka = KafkaBroker(home / "kafka", self.ports.kafka, self.ports.kafka_controller)
        self.upstream = MariaDB("upstream", home / "upstream", self.ports.upstream, 1, binlog=True)
        self.downstream = MariaDB("downstream", home / "downstream", self.ports.downstream, 2,
                                  binlog=False)

    @property
    def state_path(self) -> Path:
        return self.home / "stack.json"

    def endpoints(self) -> Endpoints:
        """The endpoints of this stack's servers."""
        return Endpoints(str(self.home), self.kafka.bootstrap,
                         _db_endpoint(self.ports.upstream), _db_endpoint(self.ports.downstream))

    def install(self, quiet: bool = False) -> None:
        """Install what the servers need (Kafka jars, mariadb-server); idempotent."""
        install_server(quiet)
        install_jars(quiet)

    def up(self) -> Endpoints:
        """Start every server that is not running; safe to call when all are up."""
        saved = self._saved_ports()
        running = [name for name, pid in self.status().items() if pid is not None]
        if running and saved is not None and saved != self.ports:
            raise ERR_STACK_PORTS_CHANGED(home=self.home, running=saved, asked=self.ports)
        self.home.mkdir(parents=True, exist_ok=True)
        self.state_path.write_text(json.dumps(asdict(self.ports)))
        self.install(quiet=True)
        for server in (self.upstream, self.downstream, self.kafka):
            server.start()
        return self.endpoints()

    def down(self) -> list[str]:
        """Stop exactly the processes this home started; the names of those stopped."""
        stopped = []
        for name, server in (("kafka", self.kafka), ("upstream", self.upstream),
                             ("downstream", self.downstream)):
            if server.stop():
                stopped.append(name)
        return stopped

    def status(self) -> dict[str, int | None]:
        """Each server's PID, or None when it is not running."""
        return {"kafka": self.kafka.running_pid(), "upstream": self.upstream.running_pid(),
                "downstream": self.downstream.running_pid()}

    def require_up(self) -> Endpoints:
        """The endpoints, or a coded error when any server is down."""
        if None in self.status().values():
            raise ERR_STACK_NOT_UP(home=self.home)
        return self.endpoints()

    def _saved_ports(self) -> Ports | None:
        try:
            return Ports(**json.loads(self.state_path.read_text()))
        except (OSError, ValueError, TypeError):
            return None
