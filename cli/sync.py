"""Sync verbs: run consumers, pause/resume subtasks, replay a subtask from a point."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click
from confluent_kafka import Consumer, TopicPartition

from cli.common import config_option, emit, kafka_config, start_offset
from kdm import log
from kdm.config import load_task
from kdm.errors import ERR_KAFKA_ADMIN
from kdm.position import Position
from kdm.relay_log import TopicReader, open_consumer
from kdm.stages import Stage, request
from kdm.topics import Topics


@click.group("consumer")
def consumer() -> None:
    """The sync consumer service (DM-worker's sync unit)."""


@consumer.command("run")
@click.option("--task", "task_path", required=True,
              type=click.Path(exists=True, dir_okay=False), help="task.yaml")
@click.option("-s", "--source", "sources", multiple=True,
              help="Run only these sources' subtasks (default: all of the task).")
@config_option
@click.option("--metrics-port", type=int, default=0, help="Serve Prometheus metrics here.")
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning"]))
def consumer_run(task_path: str, sources: tuple[str, ...], config_path: str | None,
                 metrics_port: int, log_level: str) -> None:
    """Apply each subtask's relay topic to the downstream until SIGTERM/SIGINT."""
    from consumers.runner import SubtaskRunner

    log.setup(log_level)
    kafka = kafka_config(config_path)
    task = load_task(task_path)
    chosen = sources or tuple(inst.source_id for inst in task.mysql_instances)
    runners = [SubtaskRunner(task, source, kafka) for source in chosen]
    if metrics_port:
        from prometheus_client import start_http_server
        start_http_server(metrics_port)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    threads = [threading.Thread(target=r.run, args=(stop,), name=r.key) for r in runners]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        stop.wait(0.5)


def _subtask_verb(stage: Stage, verb: str, task: str, sources: tuple[str, ...],
                  config_path: str | None) -> None:
    from consumers.runner import subtask_key

    kafka = kafka_config(config_path)
    results = []
    for source in sources:
        request(kafka, subtask_key(task, source), stage, verb)
        results.append({"result": True, "msg": "", "source": source, "worker": ""})
    emit({"op": verb.replace("-", "_").title().replace("_", ""), "result": True, "msg": "",
          "sources": results})


@click.command("pause-task")
@click.argument("task")
@click.option("-s", "--source", "sources", multiple=True, required=True, help="Source id.")
@config_option
def pause_task(task: str, sources: tuple[str, ...], config_path: str | None) -> None:
    """Pause a task's subtasks on the given sources (the round in flight finishes)."""
    _subtask_verb(Stage.PAUSED, "pause-task", task, sources, config_path)


@click.command("resume-task")
@click.argument("task")
@click.option("-s", "--source", "sources", multiple=True, required=True, help="Source id.")
@config_option
def resume_task(task: str, sources: tuple[str, ...], config_path: str | None) -> None:
    """Resume a task's paused subtasks (also after an error)."""
    _subtask_verb(Stage.RUNNING, "resume-task", task, sources, config_path)


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

    from consumers.runner import subtask_key
    from kdm.stages import write

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
