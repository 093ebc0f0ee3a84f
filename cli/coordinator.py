"""The coordinator service (DM-master): `kdm coordinator run`."""

from __future__ import annotations

import click

from cli.common import config_option, kafka_config, stop_on_signals
from kdm import log


@click.group("coordinator")
def coordinator() -> None:
    """The coordinator service (DM-master): registry, stages, status, HTTP API."""


@coordinator.command("run")
@click.option("--addr", default="127.0.0.1:8261", show_default=True,
              help="host:port the HTTP API listens on (port 0: any free port).")
@click.option("--advertise-addr", default="",
              help="The address clients reach this coordinator at (default: --addr).")
@config_option
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning"]))
def coordinator_run(addr: str, advertise_addr: str, config_path: str | None,
                    log_level: str) -> None:
    """Serve the API (and /metrics) until SIGTERM/SIGINT; leads or stands by."""
    from coordinator.service import Coordinator

    log.setup(log_level)
    host, _, port = addr.rpartition(":")
    stop = stop_on_signals()
    Coordinator(kafka_config(config_path), host or "127.0.0.1", int(port),
                advertise_addr).run(stop)
