"""Relay verbs: run producers, pause/resume relays, read a topic as JSON lines."""

from __future__ import annotations

import json
from typing import Any

import click

from cli.common import (
    config_option,
    emit,
    kafka_config,
    run_threads,
    serve_metrics,
    start_offset,
    stop_on_signals,
)
from kdm import log
from kdm.config import load_source
from kdm.relay_log import TopicReader
from kdm.stages import Stage, host_id, relay_key, request
from kdm.topics import Topics
from producers.settings import RelaySettings


@click.group("producer")
def producer() -> None:
    """The relay producer service (DM-worker's relay unit)."""


@producer.command("run")
@click.option("-s", "--source", "sources", multiple=True,
              type=click.Path(exists=True, dir_okay=False),
              help="Relay this source.yaml here, outside the control plane (repeatable). "
              "Without it, run as a worker: the sources operate-source registered.")
@click.option("--name", default="", help="Worker name in query-status (default host:pid).")
@config_option
@click.option("--metrics-port", type=int, default=0, help="Serve Prometheus metrics here.")
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning"]))
@click.option("--batch-records", type=int, default=RelaySettings.batch_records,
              show_default=True, help="Commit a Kafka transaction after this many records.")
@click.option("--commit-interval", type=float, default=RelaySettings.commit_seconds,
              show_default=True, help="... or after this many seconds.")
def producer_run(sources: tuple[str, ...], name: str, config_path: str | None,
                 metrics_port: int, log_level: str, batch_records: int,
                 commit_interval: float) -> None:
    """Relay sources' binlogs into their relay topics until SIGTERM/SIGINT."""
    from producers.relay import Relay
    from producers.worker import ProducerWorker

    log.setup(log_level)
    kafka = kafka_config(config_path)
    settings = RelaySettings(batch_records=batch_records, commit_seconds=commit_interval)
    serve_metrics(metrics_port)
    stop = stop_on_signals()
    if not sources:
        ProducerWorker(kafka, name or host_id(), settings).run(stop)
        return
    relays = [Relay(load_source(path), kafka, settings) for path in sources]
    run_threads([(relay.run, relay.source.source_id) for relay in relays], stop)


def _stage_verb(stage: Stage, verb: str, sources: tuple[str, ...],
                config_path: str | None) -> None:
    kafka = kafka_config(config_path)
    results = []
    for source in sources:
        request(kafka, relay_key(source), stage, verb)
        results.append({"result": True, "msg": "", "source": source, "worker": ""})
    emit({"result": True, "msg": "", "sources": results})


@click.command("pause-relay")
@click.option("-s", "--source", "sources", multiple=True, required=True, help="Source id.")
@config_option
def pause_relay(sources: tuple[str, ...], config_path: str | None) -> None:
    """Pause the relay of the given sources (it commits and stops reading)."""
    _stage_verb(Stage.PAUSED, "pause-relay", sources, config_path)


@click.command("resume-relay")
@click.option("-s", "--source", "sources", multiple=True, required=True, help="Source id.")
@config_option
def resume_relay(sources: tuple[str, ...], config_path: str | None) -> None:
    """Resume the relay of the given sources (also after it paused on an error)."""
    _stage_verb(Stage.RUNNING, "resume-relay", sources, config_path)


@click.command("read-topic")
@click.argument("topic", required=False)
@click.option("-s", "--source", help="Read this source's relay topic.")
@click.option("--offset", type=int, help="Start at this offset.")
@click.option("--timestamp", help="Start at this time (ISO 8601, or epoch milliseconds).")
@click.option("--position", help="Start after this binlog position: file:pos[@gtid].")
@click.option("--gtid", help="Start after this GTID set (relay topics).")
@click.option("--partition", type=int, default=0, show_default=True)
@click.option("-n", "--limit", type=int, default=0, help="Stop after this many records.")
@click.option("-f", "--follow", is_flag=True, help="Keep waiting for new records.")
@config_option
def read_topic(topic: str | None, source: str | None, offset: int | None,
               timestamp: str | None, position: str | None, gtid: str | None, partition: int,
               limit: int, follow: bool, config_path: str | None) -> None:
    """Print a kdm topic's committed records decoded as JSON lines.

    Without a start option, reading starts at the first record. Binary values print as
    {"hex": "..."}.
    """
    kafka = kafka_config(config_path)
    if (topic is None) == (source is None):
        raise click.UsageError("give a TOPIC or -s SOURCE (not both)")
    if sum(x is not None for x in (offset, timestamp, position, gtid)) > 1:
        raise click.UsageError("give at most one of --offset, --timestamp, --position, --gtid")
    name = topic or Topics(kafka.topic_prefix).relay(str(source)).name
    with TopicReader(kafka, name, partition) as reader:
        start = start_offset(reader, offset, timestamp, position, gtid)
        for count, message in enumerate(reader.read(start, follow=follow), 1):
            click.echo(json.dumps({
                "topic": message.topic, "partition": message.partition,
                "offset": message.offset, "timestamp": message.timestamp_ms,
                "key": message.key, "schema": message.schema, "value": message.value},
                default=_json_default, ensure_ascii=False))
            if limit and count >= limit:
                return


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    raise TypeError(f"cannot print {type(value).__name__}")


__all__ = ["pause_relay", "producer", "read_topic", "resume_relay"]
