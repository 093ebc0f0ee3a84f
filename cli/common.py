"""What every kdm verb shares: the kdm.yaml option and dmctl-shaped output."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click

from kdm.config.service import KafkaConfig, load_service
from kdm.position import Position
from kdm.relay_log import TopicReader, after_position

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


def start_offset(reader: TopicReader, offset: int | None = None, timestamp: str | None = None,
                 position: str | None = None, gtid: str | None = None) -> int:
    """The offset a verb's start option names: an offset, a time (ISO 8601 or epoch ms), just
    after a binlog file:pos, or just after a GTID set; the first offset without one."""
    if offset is not None:
        return offset
    if timestamp is not None:
        millis = int(timestamp) if timestamp.isdigit() else int(
            datetime.fromisoformat(timestamp).timestamp() * 1000)
        return reader.offset_for_time(millis)
    if position is not None:
        return reader.find(after_position(Position.parse(position), use_gtid=False))
    if gtid is not None:
        return reader.find(after_position(Position("", 0, gtid), use_gtid=True))
    return reader.bounds()[0]
