"""A DDL the downstream cannot run pauses the subtask with a coded error (query-status says
so); `handle-error skip` and `handle-error replace` resolve it and the subtask resumes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import main
from kdm.config.service import KafkaConfig
from kdm.stack.stack import Endpoints
from tests.integration.relay_support import gtid_now, wait_for
from tests.integration.sync_support import (
    execute,
    rows,
    running,
    same_tables,
    task_config,
    task_text,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("master_addr")]


def cli(kafka: KafkaConfig, *args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(main, list(args), env={
        "KDM_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KDM_TOPIC_PREFIX": kafka.topic_prefix})
    assert result.exit_code == code, result.output
    return json.loads(result.output) if result.output.strip().startswith("{") else None


def subtask(kafka: KafkaConfig, task: str) -> dict[str, Any]:
    out = cli(kafka, "query-status", task)
    status: dict[str, Any] = out["sources"][0]["subTaskStatus"][0]
    return status


def test_failed_ddl_pauses_then_skip_and_replace_resume(
        endpoints: Endpoints, kafka: KafkaConfig, upstream_db: str, downstream_db: str,
        unique: str) -> None:
    source, name = f"err-{unique}", f"err-{unique}"
    body = (f"routes:\n  r:\n    schema-pattern: {upstream_db}\n"
            f"    target-schema: {downstream_db}\n")
    task = task_config(task_text(name, endpoints, [source], body, "route-rules: [r]", 4))
    with running(endpoints, kafka, [source], gtid_now(endpoints), task):
        execute(endpoints, upstream_db, "CREATE TABLE t (id INT PRIMARY KEY, v INT)",
                "INSERT INTO t VALUES (1, 1), (2, 2)")
        wait_for(lambda: same_tables(endpoints, (upstream_db, "t"), (downstream_db, "t")),
                 60, "the table")
        execute(endpoints, downstream_db, "INSERT INTO t VALUES (100, 1)", side="down")
        execute(endpoints, upstream_db, "ALTER TABLE t ADD UNIQUE KEY uk (v)",
                "INSERT INTO t VALUES (3, 3)")
        wait_for(lambda: subtask(kafka, name)["stage"] == "Paused", 60, "the pause")
        status = subtask(kafka, name)
        assert [e["ErrCode"] for e in status["result"]["errors"]] == [36002]
        assert "ADD UNIQUE KEY" in status["result"]["errors"][0]["Message"]
        summary = cli(kafka, "query-status")
        mine = next(t for t in summary["tasks"] if t["taskName"] == name)
        assert mine["taskStatus"].startswith("Error - Some error occurred in subtask")
        assert mine["sources"] == [source]
        assert (3, ) not in [(int(r[0]),) for r in rows(endpoints, "down", downstream_db, "t")]

        cli(kafka, "handle-error", name, "skip", "-s", source)
        wait_for(lambda: any(r[0] == b"3" or r[0] == "3"
                             for r in rows(endpoints, "down", downstream_db, "t")), 60,
                 "the rows after the skipped DDL")
        assert subtask(kafka, name)["stage"] == "Running"

        execute(endpoints, upstream_db, "ALTER TABLE t ADD UNIQUE KEY uk2 (v)",
                "INSERT INTO t VALUES (4, 4)")
        wait_for(lambda: subtask(kafka, name)["stage"] == "Paused", 60, "the second pause")
        cli(kafka, "handle-error", name, "replace", "-s", source,
            f"ALTER TABLE `{downstream_db}`.`t` ADD KEY k2 (v)")
        wait_for(lambda: len(rows(endpoints, "down", downstream_db, "t")) == 5, 60,
                 "the rows after the replaced DDL")
        keys = rows(endpoints, "down", "information_schema", "STATISTICS")
        assert any(r[1] == downstream_db and r[2] == "t" and r[5] == "k2" for r in keys)


def test_operate_schema_get_set_remove_while_paused(
        endpoints: Endpoints, kafka: KafkaConfig, upstream_db: str, downstream_db: str,
        unique: str, tmp_path: Any) -> None:
    source, name = f"os-{unique}", f"os-{unique}"
    body = (f"routes:\n  r:\n    schema-pattern: {upstream_db}\n"
            f"    target-schema: {downstream_db}\n")
    text = task_text(name, endpoints, [source], body, "route-rules: [r]", 2)
    task_path = tmp_path / "task.yaml"
    task_path.write_text(text)
    with running(endpoints, kafka, [source], gtid_now(endpoints), task_config(text)):
        execute(endpoints, upstream_db, "CREATE TABLE t (id INT PRIMARY KEY, v INT)",
                "ALTER TABLE t ADD COLUMN extra VARCHAR(10) NOT NULL DEFAULT 'x'",
                "INSERT INTO t (id, v) VALUES (1, 1)")
        wait_for(lambda: same_tables(endpoints, (upstream_db, "t"), (downstream_db, "t")),
                 60, "the table")
        args = ["-s", source, "-d", upstream_db, "-t", "t"]
        refused = CliRunner().invoke(main, ["operate-schema", "remove", str(task_path), *args],
                                     env={"KDM_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
                                          "KDM_TOPIC_PREFIX": kafka.topic_prefix})
        assert refused.exit_code == 1 and "36006" in refused.output
        cli(kafka, "pause-task", name, "-s", source)
        wait_for(lambda: subtask(kafka, name)["stage"] == "Paused", 30, "Paused")
        got = cli(kafka, "operate-schema", "get", str(task_path), *args)
        create = got["sources"][0]["msg"]
        assert "`extra` varchar(10)" in create and "PRIMARY KEY (`id`)" in create
        schema_file = tmp_path / "t.sql"
        schema_file.write_text("CREATE TABLE t (id INT PRIMARY KEY, v BIGINT, extra TEXT)")
        cli(kafka, "operate-schema", "set", str(task_path), str(schema_file), *args)
        got = cli(kafka, "operate-schema", "get", str(task_path), *args)
        assert "`v` bigint" in got["sources"][0]["msg"]
        cli(kafka, "operate-schema", "remove", str(task_path), *args)
        cli(kafka, "operate-schema", "get", str(task_path), *args, code=1)
        cli(kafka, "resume-task", name, "-s", source)
        execute(endpoints, upstream_db, "INSERT INTO t (id, v) VALUES (2, 2)")
        wait_for(lambda: same_tables(endpoints, (upstream_db, "t"), (downstream_db, "t")),
                 60, "rows after resume")
