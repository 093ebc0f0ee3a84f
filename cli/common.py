"""What every kdm verb shares: the kdm.yaml option and dmctl-shaped output."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from kdm.config.service import KafkaConfig, load_service

F = TypeVar("F", bound=Callable[..., Any])


def config_option(func: F) -> F:
    """`--config kdm.yaml` (or $KDM_CONFIG): where Kafka is and the topic prefix."""
    return click.option("--config", "config_path", envvar="KDM_CONFIG",
                        type=click.Path(exists=True, dir_okay=False), default=None,
                        help="kdm.yaml (Kafka servers, topic prefix); $KDM_CONFIG.")(func)


def kafka_config(config_path: str | None) -> KafkaConfig:
    """The Kafka settings from kdm.yaml and the KDM_* environment."""
    return load_service(config_path).kafka


def emit(result: dict[str, Any]) -> None:
    """Print a dmctl-shaped JSON result (`result`, `msg`, ...)."""
    click.echo(json.dumps(result, indent=4))
