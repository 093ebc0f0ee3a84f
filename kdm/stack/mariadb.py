"""Our own MariaDB instances (not the system service): an upstream with a ROW/GTID binlog and
a downstream standing in for TiDB, each with all its files under one directory."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql

from kdm.errors import ERR_STACK_INSTALL, ERR_STACK_PORT_TAKEN, ERR_STACK_START
from kdm.stack import process

READY_SECONDS = 60
_SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])

BINLOG_OPTIONS = (
    "--log-bin=mysql-bin",
    "--binlog-format=ROW",
    "--binlog-row-image=FULL",
    "--binlog-row-metadata=FULL",
    "--gtid-strict-mode=ON",
    "--log-slave-updates=ON",
)


def find_binary(name: str) -> str | None:
    """Locate a MariaDB program, looking in sbin directories too."""
    return shutil.which(name, path=_SBIN_PATH)


def install_server(quiet: bool = False) -> None:
    """Install MariaDB from Debian's packages unless `mariadbd` is already present."""
    if find_binary("mariadbd") and find_binary("mariadb-install-db"):
        return
    if os.geteuid() != 0:
        raise ERR_STACK_INSTALL(component="mariadb-server",
                                problem="not installed, and installing it needs root")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-qq"],
                 ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                  "mariadb-server", "mariadb-client"]):
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise ERR_STACK_INSTALL(done.stderr[-2000:], component="mariadb-server",
                                    problem=f"{' '.join(argv[:2])} exited with {done.returncode}")
    if not quiet:
        print("mariadb-server installed from Debian's packages")


@dataclass(frozen=True)
class MariaDB:
    """One mariadbd on 127.0.0.1:`port` with datadir, socket, log and PID under `home`."""

    name: str
    home: Path
    port: int
    server_id: int
    binlog: bool

    @property
    def socket(self) -> Path:
        return self.home / "mysqld.sock"

    @property
    def pid_path(self) -> Path:
        return self.home / "mariadbd.pid"

    @property
    def log_path(self) -> Path:
        return self.home / "mariadbd.log"

    @property
    def datadir(self) -> Path:
        return self.home / "data"

    def running_pid(self) -> int | None:
        """The server's PID if it is running from this home."""
        return process.running_pid(self.pid_path, str(self.socket))

    def start(self) -> None:
        """Initialise the datadir on first start, start the server, wait, grant TCP root."""
        if self.running_pid() is not None:
            return
        if process.port_open("127.0.0.1", self.port):
            raise ERR_STACK_PORT_TAKEN(component=f"mariadb {self.name}", port=self.port)
        install_server(quiet=True)
        self._init_datadir()
        process.spawn(self._command(), self.log_path, self.pid_path)
        if not process.wait_until(self._ready, READY_SECONDS, interval=0.3):
            raise ERR_STACK_START(component=f"mariadb {self.name}", seconds=READY_SECONDS,
                                  log=self.log_path)
        self._grant_tcp_root()

    def stop(self) -> bool:
        """Stop the server this home started; True if one was running."""
        return process.stop(self.pid_path, str(self.socket), timeout=60)

    def connect(self, database: str | None = None) -> pymysql.connections.Connection[Any]:
        """A TCP connection as root, the way every kdm component connects."""
        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="",
                               database=database, autocommit=True, charset="utf8mb4")

    def _run_as_root_args(self) -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    def _init_datadir(self) -> None:
        if (self.datadir / "mysql").is_dir():
            return
        self.datadir.mkdir(parents=True, exist_ok=True)
        argv = [find_binary("mariadb-install-db") or "mariadb-install-db", "--no-defaults",
                f"--datadir={self.datadir}", "--auth-root-authentication-method=normal",
                "--skip-test-db", *self._run_as_root_args()]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            shutil.rmtree(self.datadir, ignore_errors=True)
            raise ERR_STACK_INSTALL(done.stdout[-2000:] + done.stderr[-2000:],
                                    component=f"mariadb {self.name} datadir",
                                    problem="mariadb-install-db failed")

    def _command(self) -> list[str]:
        argv = [
            find_binary("mariadbd") or "mariadbd", "--no-defaults", f"--datadir={self.datadir}",
            f"--port={self.port}", "--bind-address=127.0.0.1", f"--socket={self.socket}",
            f"--pid-file={self.home / 'mariadbd.server.pid'}", f"--log-error={self.log_path}",
            f"--server-id={self.server_id}", "--skip-name-resolve",
            "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
            "--innodb-buffer-pool-size=256M", "--max-connections=500",
            *self._run_as_root_args(),
        ]
        return argv + list(BINLOG_OPTIONS) if self.binlog else argv

    def _ready(self) -> bool:
        if process.exited(self.pid_path, str(self.socket)):
            raise ERR_STACK_START(component=f"mariadb {self.name} (process exited)", seconds=0,
                                  log=self.log_path)
        if not self.socket.exists():
            return False
        try:
            pymysql.connect(unix_socket=str(self.socket), user="root", password="").close()
        except pymysql.MySQLError:
            return False
        return True

    def _grant_tcp_root(self) -> None:
        conn = pymysql.connect(unix_socket=str(self.socket), user="root", password="",
                               autocommit=True)
        with conn, conn.cursor() as cur:
            cur.execute("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'")
            cur.execute("GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION")
