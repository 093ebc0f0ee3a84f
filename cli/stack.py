"""`kdm stack install|up|down|status|smoke`: the embedded local stack."""

from __future__ import annotations

from pathlib import Path

import click

from kdm.stack import smoke
from kdm.stack.stack import LocalStack, Ports, default_home

home_option = click.option("--home", type=click.Path(path_type=Path), default=None,
                           help="Stack directory (default $KDM_STACK_HOME or ~/.kdm/stack).")


def _stack(home: Path | None, ports: Ports | None = None) -> LocalStack:
    return LocalStack(home or default_home(), ports)


@click.group()
def stack() -> None:
    """The local stack: a KRaft Kafka broker and two MariaDB servers on loopback."""


@stack.command()
@click.option("--quiet", is_flag=True, help="Print nothing when all is installed.")
def install(quiet: bool) -> None:
    """Install mariadb-server (Debian) and the Kafka jars (Maven Central); idempotent."""
    LocalStack(default_home()).install(quiet=quiet)


@stack.command()
@home_option
@click.option("--kafka-port", type=int, default=None, help="Kafka listener (default 9092).")
@click.option("--controller-port", type=int, default=None, help="KRaft controller (9093).")
@click.option("--upstream-port", type=int, default=None, help="Upstream MariaDB (3307).")
@click.option("--downstream-port", type=int, default=None, help="Downstream MariaDB (4000).")
def up(home: Path | None, kafka_port: int | None, controller_port: int | None,
       upstream_port: int | None, downstream_port: int | None) -> None:
    """Start every server that is not running and print the endpoints."""
    given = {"kafka": kafka_port, "kafka_controller": controller_port,
             "upstream": upstream_port, "downstream": downstream_port}
    base = _stack(home)
    ports = Ports(**{**base.ports.__dict__, **{k: v for k, v in given.items() if v}})
    click.echo("starting the local stack (first start installs and formats; ~30s)...", err=True)
    click.echo(_stack(home, ports).up().to_json())


@stack.command()
@home_option
def down(home: Path | None) -> None:
    """Stop exactly the processes this stack started (by PID)."""
    stopped = _stack(home).down()
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@stack.command()
@home_option
def status(home: Path | None) -> None:
    """Show each server's PID (or 'down') and the endpoints."""
    local = _stack(home)
    for name, pid in local.status().items():
        click.echo(f"{name:<11} {'down' if pid is None else f'running (pid {pid})'}")
    click.echo(local.endpoints().to_json())


@stack.command("smoke")
@home_option
def smoke_cmd(home: Path | None) -> None:
    """Produce and consume one Avro record; write and read one row on each database."""
    smoke.run(_stack(home), click.echo)
    click.echo("smoke check passed")
