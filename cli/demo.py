"""`kdm demo`: a migration a new user can watch, on the embedded local stack.

It starts the three services as child processes (a coordinator, a producer worker, a
consumer worker), registers a source and starts a task with the dmctl verbs (printing each
command as a user would type it), writes a steady workload to the upstream `demo` schema
while printing query-status facts every second, then compares upstream and downstream with
CHECKSUM TABLE and stops every process it started, by PID. Each run uses its own topic
prefix, so runs never meet.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
import pymysql

from cli.master import call
from kdm.errors import KdmError
from kdm.stack.process import free_ports
from kdm.stack.stack import Endpoints, LocalStack, default_home

KDM = str(Path(sys.executable).parent / "kdm")
TABLE = ("CREATE TABLE orders (id INT PRIMARY KEY, customer VARCHAR(40), amount "
         "DECIMAL(10,2), status VARCHAR(12), updated TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP(3))")


def _sql(server: dict[str, Any], *statements: str, database: str | None = None) -> Any:
    conn = pymysql.connect(host=server["host"], port=server["port"], user=server["user"],
                           password=server["password"], database=database, autocommit=True)
    with conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
        return cur.fetchall()


def _files(home: Path, ends: Endpoints, run: str) -> tuple[Path, Path]:
    up, down = ends.upstream, ends.downstream
    gtid = _sql(up, "SELECT @@GLOBAL.gtid_binlog_pos")[0][0]
    source = home / "source.yaml"
    source.write_text(f"source-id: demo-source\nenable-gtid: true\nrelay-binlog-gtid: "
                      f"\"{gtid}\"\nfrom:\n  host: {up['host']}\n  port: {up['port']}\n"
                      f"  user: {up['user']}\n  password: \"{up['password']}\"\n")
    task = home / "task.yaml"
    task.write_text(f"name: demo\ntask-mode: incremental\nmeta-schema: demo_meta_{run}\n"
                    f"target-database:\n  host: {down['host']}\n  port: {down['port']}\n"
                    f"  user: {down['user']}\n  password: \"{down['password']}\"\n"
                    "mysql-instances:\n  - source-id: demo-source\n"
                    "    block-allow-list: demo-only\n"
                    "block-allow-list:\n  demo-only:\n    do-dbs: [demo]\n")
    return source, task


class Services:
    """The demo's child processes, stopped by PID."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> None:
        with (self.home / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen([KDM, *args], stdout=log,
                                                stderr=subprocess.STDOUT, env=self.env)
        click.echo(f"  started {name} (pid {self.procs[name].pid}): kdm {' '.join(args)}")

    def stop(self) -> None:
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
            click.echo(f"  stopped {name} (pid {proc.pid}, exit {proc.returncode})")


def _workload(up: dict[str, Any], stop: threading.Event) -> None:
    rng = random.Random(1)
    next_id = 1
    while not stop.is_set():
        values = ", ".join(f"({i}, 'customer-{rng.randrange(500)}', {rng.randrange(100, 99999)}"
                           f"/100, 'new', DEFAULT)" for i in range(next_id, next_id + 20))
        _sql(up, f"INSERT INTO orders VALUES {values}",
             f"UPDATE orders SET status = 'paid' WHERE id % 7 = {rng.randrange(7)} "
             "AND status = 'new'",
             f"DELETE FROM orders WHERE id % 50 = {rng.randrange(50)} AND status = 'paid'",
             database="demo")
        next_id += 20
        stop.wait(0.1)


def _line(addr: str) -> str:
    status = call(addr, "GET", "/api/v1/status", query={"task": "demo"})
    sources = status.get("sources") or [{}]
    sub = (sources[0].get("subTaskStatus") or [{}])[0]
    sync = sub.get("sync") or {}
    return (f"  stage={sub.get('stage', '-')} unit={sub.get('unit', '-')} "
            f"worker={sub.get('worker', '-')} syncerBinlog={sync.get('syncerBinlog', '-')} "
            f"rows={sync.get('totalRows', '-')} lag={sync.get('consumerLag', '-')} "
            f"synced={sync.get('synced', '-')}")


def _checksums(ends: Endpoints) -> tuple[int, int]:
    up = _sql(ends.upstream, "CHECKSUM TABLE demo.orders")[0][1]
    down = _sql(ends.downstream, "CHECKSUM TABLE demo.orders")[0][1]
    return int(up or 0), int(down or 0)


@click.command("demo")
@click.option("--seconds", type=float, default=20.0, show_default=True,
              help="How long the workload runs.")
def demo(seconds: float) -> None:
    """Watch a migration: services, operate-source, start-task, live query-status."""
    ends = LocalStack(default_home()).require_up()
    run = time.strftime("%Y%m%d%H%M%S")
    home = default_home() / "demo" / run
    home.mkdir(parents=True)
    addr = f"127.0.0.1:{free_ports(1)[0]}"
    env = {**os.environ, "KDM_KAFKA_BOOTSTRAP_SERVERS": ends.kafka_bootstrap,
           "KDM_TOPIC_PREFIX": f"demo{run}", "DM_MASTER_ADDR": addr}
    for server in (ends.upstream, ends.downstream):
        _sql(server, "DROP DATABASE IF EXISTS demo", "CREATE DATABASE demo",
             "USE demo", TABLE)
    source, task = _files(home, ends, run)
    services = Services(home, env)
    stop = threading.Event()
    try:
        click.echo(f"demo {run}: topics demo{run}.*, files and logs in {home}")
        services.start("coordinator", "coordinator", "run", "--addr", addr)
        services.start("producer", "producer", "run", "--name", "producer-1",
                       "--commit-interval", "0.1")
        services.start("consumer", "consumer", "run", "--name", "consumer-1")
        _wait(lambda: bool(_leader(addr)), 60, "the coordinator")
        _verb(addr, f"kdm operate-source create {source}", "POST", "/api/v1/sources",
              {"configs": [source.read_text()]})
        _verb(addr, f"kdm start-task {task}", "POST", "/api/v1/tasks",
              {"config": task.read_text(), "remove_meta": False, "sources": []})
        click.echo(f"writing to the upstream demo.orders for {seconds:.0f}s "
                   "(kdm query-status demo, every second):")
        writer = threading.Thread(target=_workload, args=(ends.upstream, stop), daemon=True)
        writer.start()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            click.echo(_line(addr))
            time.sleep(1)
        stop.set()
        writer.join(30)
        click.echo("workload stopped; waiting for the downstream to catch up:")
        _wait(lambda: _same(ends), 120, "the downstream to equal the upstream")
        click.echo(_line(addr))
        up, down = _checksums(ends)
        click.echo(f"CHECKSUM TABLE demo.orders: upstream {up}, downstream {down}: "
                   + ("equal" if up == down else "DIFFERENT"))
        click.echo(f"browse the relay log: KDM_TOPIC_PREFIX=demo{run} kdm read-topic "
                   "-s demo-source")
    finally:
        stop.set()
        services.stop()


def _same(ends: Endpoints) -> bool:
    up, down = _checksums(ends)
    return up == down


def _leader(addr: str) -> bool:
    try:
        return bool(call(addr, "GET", "/api/v1/leader").get("isLeader"))
    except KdmError:  # not answering yet
        return False


def _verb(addr: str, shown: str, method: str, path: str, body: dict[str, Any]) -> None:
    click.echo(f"$ {shown}")
    result = call(addr, method, path, body)
    click.echo(json.dumps(result, indent=2))
    if not result.get("result"):
        raise click.ClickException(f"{shown} failed")


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise click.ClickException(f"timed out waiting for {what}")
        time.sleep(0.5)
