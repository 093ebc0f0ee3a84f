"""Sync verbs: run consumers, pause/resume subtasks, replay a subtask from a point."""

from __future__ import annotations

from pathlib import Path

import click
from confluent_kafka import Consumer, TopicPartition

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
from kdm.config import load_task
from kdm.errors import ERR_KAFKA_ADMIN
from kdm.position import Position
from kdm.relay_log import TopicReader, open_consumer
from kdm.stages import Stage, host_id, request
from kdm.topics import Topics


@click.group("consumer")
def consumer() -> None:
    """The sync consumer service (DM-worker's sync unit)."""


@consumer.command("run")
@click.option("--task", "task_path", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Run this task.yaml's subtasks here, outside the control plane. Without "
              "it, run as a worker: the subtasks start-task registered, by group membership.")
@click.option("-s", "--source", "sources", multiple=True,
              help="With --task: only these sources' subtasks (default: all of the task).")
@click.option("--name", default="", help="Worker name in query-status (default host:pid).")
@config_option
@click.option("--metrics-port", type=int, default=0, help="Serve Prometheus metrics here.")
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning"]))
def consumer_run(task_path: str | None, sources: tuple[str, ...], name: str,
                 config_path: str | None, metrics_port: int, log_level: str) -> None:
    """Apply subtasks' relay topics to the downstream until SIGTERM/SIGINT."""
    from consumers.runner import SubtaskRunner
    from consumers.worker import ConsumerWorker

    log.setup(log_level)
    kafka = kafka_config(config_path)
    serve_metrics(metrics_port)
    stop = stop_on_signals()
    if task_path is None:
        ConsumerWorker(kafka, name or host_id()).run(stop)
        return
    task = load_task(task_path)
    chosen = sources or tuple(inst.source_id for inst in task.mysql_instances)
    run_threads([(SubtaskRunner(task, source, kafka).run, f"subtask/{source}")
                 for source in chosen], stop)


@click.command("replay")
@click.argument("task")
@click.option("-s", "--source", required=True, help="Source id.")
@click.option("--offset", type=int, help="Replay from this relay offset.")
@click.option("--timestamp", help="... from this time (ISO 8601 or epoch ms).")
@click.option("--position", help="... from just after this binlog position file:pos[@gtid].")
@config_option
def replay(task: str, source: str, offset: int | None, timestamp: str | None,
           position: str | None, config_path: str | None) -> None:
    """Move a subtask's checkpoint (its consumer group's offset) so it replays from there.

    The subtask notices within seconds and replays in safe mode until it is past what it
    had applied, so the downstream ends as it was, with everything after applied."""
    if sum(x is not None for x in (offset, timestamp, position)) != 1:
        raise click.UsageError("give exactly one of --offset, --timestamp, --position")
    kafka = kafka_config(config_path)
    topics = Topics(kafka.topic_prefix)
    topic = topics.relay(source).name
    with TopicReader(kafka, topic) as reader:
        target = Position.parse(position) if position is not None else None
        if target is not None and target.gtid:  # a GTID set says more than file:pos
            offset = start_offset(reader, gtid=target.gtid)
        else:
            offset = start_offset(reader, offset, timestamp, position)
    group: Consumer = open_consumer(kafka, **{"group.id": topics.sync_group(task, source)})
    try:
        result = group.commit(offsets=[TopicPartition(topic, 0, int(offset or 0),
                                                      metadata="replay")], asynchronous=False)
        if result and result[0].error:
            raise ERR_KAFKA_ADMIN(op="commit", target=topics.sync_group(task, source))
    finally:
        group.close()
    emit({"result": True, "msg": "", "task": task, "source": source, "offset": offset})


@click.command("handle-error")
@click.argument("task")
@click.argument("op", type=click.Choice(["skip", "replace", "revert"]))
@click.argument("sqls", nargs=-1)
@click.option("-s", "--source", "sources", multiple=True, required=True, help="Source id.")
@click.option("-b", "--binlog-pos", default="", help="file:pos of the DDL (default: the DDL "
              "that paused the subtask).")
@config_option
def handle_error(task: str, op: str, sqls: tuple[str, ...], sources: tuple[str, ...],
                 binlog_pos: str, config_path: str | None) -> None:
    """Skip or replace the DDL a subtask paused on (DM's handle-error), then resume it.

    `replace` takes the statements to run instead, e.g.
    `kdm handle-error t replace -s s1 "ALTER TABLE db.t ADD c INT"`."""
    import time

    from kdm.stages import subtask_key, write

    if op == "replace" and not sqls:
        raise click.UsageError("replace needs the statements to run instead")
    kafka = kafka_config(config_path)
    results = []
    for source in sources:
        key = f"handle-error/{task}/{source}"
        now = time.time_ns()
        write(kafka, key, "io.kdm.control.ErrorOperation", {
            "key": key, "op": op, "binlog_pos": binlog_pos, "sqls": list(sqls),
            "revision": now, "updated_ms": now // 1_000_000})
        if op != "revert":
            request(kafka, subtask_key(task, source), Stage.RUNNING, "handle-error")
        results.append({"result": True, "msg": "", "source": source, "worker": ""})
    emit({"result": True, "msg": "", "sources": results})


@click.command("operate-schema")
@click.argument("op", type=click.Choice(["get", "set", "remove"]))
@click.argument("task_path", metavar="TASK_YAML", type=click.Path(exists=True, dir_okay=False))
@click.argument("schema_file", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("-s", "--source", required=True, help="Source id.")
@click.option("-d", "--database", required=True, help="Upstream database.")
@click.option("-t", "--table", required=True, help="Upstream table.")
@config_option
def operate_schema(op: str, task_path: str, schema_file: str | None, source: str,
                   database: str, table: str, config_path: str | None) -> None:
    """Get, set or remove the structure a subtask tracks for an upstream table (DM's
    operate-schema). `set` takes a file with a CREATE TABLE; set and remove need the
    subtask Paused, and take effect when it resumes."""
    from consumers.schema_admin import operate

    if op == "set" and schema_file is None:
        raise click.UsageError("set needs a file with the CREATE TABLE statement")
    text = Path(schema_file).read_text(encoding="utf8") if schema_file else ""
    result = operate(kafka_config(config_path), load_task(task_path), source, op, database,
                     table, text)
    emit({"result": True, "msg": "", "sources": [{"result": True, "msg": result,
                                                    "source": source, "worker": ""}]})
