"""`kdm`: one click group for every service and verb.

Exit codes: 0 success; 1 a coded kdm error (printed in DM's `[code=...]` form); 2 usage.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from cli.common import emit
from cli.coordinator import coordinator
from cli.demo import demo
from cli.master import COMMANDS as MASTER_COMMANDS
from cli.relay import pause_relay, producer, read_topic, resume_relay
from cli.stack import stack
from cli.sync import consumer, handle_error, operate_schema, replay
from kdm.config import load_service, load_source, load_task
from kdm.config.secret import decrypt, encrypt
from kdm.errors import KdmError


class KdmGroup(click.Group):
    """A click group that turns coded errors into one clean line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KdmError as exc:
            click.echo(exc.render(), err=True)
            ctx.exit(1)


@click.group(cls=KdmGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kdm")
def main() -> None:
    """MySQL/MariaDB to TiDB migration on Kafka, with TiDB DM's verbs."""


@main.command("encrypt")
@click.argument("plaintext")
def encrypt_cmd(plaintext: str) -> None:
    """Encrypt a password for source.yaml / task.yaml (key: $KDM_SECRET_KEY)."""
    click.echo(encrypt(plaintext))


@main.command("decrypt")
@click.argument("ciphertext")
def decrypt_cmd(ciphertext: str) -> None:
    """Decrypt a password produced by `kdm encrypt`."""
    click.echo(decrypt(ciphertext))


LOADERS = {"source": load_source, "task": load_task, "kdm": load_service}


@main.command("check-config")
@click.option("--kind", type=click.Choice(sorted(LOADERS)), required=True,
              help="Which format the files are in.")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def check_config(kind: str, files: tuple[Path, ...]) -> None:
    """Load config files as kdm will, and report the first problem of each."""
    failures = []
    for path in files:
        try:
            LOADERS[kind](path)
        except KdmError as exc:
            failures.append({"file": str(path), "msg": exc.render()})
    emit({"result": not failures, "msg": "" if not failures else f"{len(failures)} invalid",
          "errors": failures})
    if failures:
        sys.exit(1)


for command in (stack, demo, coordinator, producer, pause_relay, resume_relay, read_topic, consumer,
                replay, handle_error, operate_schema, *MASTER_COMMANDS):
    main.add_command(command)
