"""What every kdm verb shares: the kdm.yaml option and dmctl-shaped output."""

from __future__ import annotations

import json
import signal
import threading
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


def serve_metrics(port: int) -> None:
    """Serve Prometheus metrics on `port` (0: not at all)."""
    if port:
        from prometheus_client import start_http_server
        start_http_server(port)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT: services finish their work in flight and exit."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def run_threads(targets: list[tuple[Callable[[threading.Event], None], str]],
                stop: threading.Event) -> None:
    """Run each `target(stop)` in a named thread until all have returned."""
    threads = [threading.Thread(target=target, args=(stop,), name=name)
               for target, name in targets]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        stop.wait(0.5)
    for thread in threads:
        thread.join()
