"""check-task against the real upstream MariaDB: a ready task passes; a table without a
primary or unique key warns; shards with different columns fail; a user with SELECT only
fails the privilege items; an unreachable upstream is one failed item."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from coordinator.precheck import MSG_HEADER, PASS_MSG, check_task
from kdm.config.source import SourceConfig, parse_source
from kdm.config.task import TaskConfig, parse_task
from kdm.stack.stack import Endpoints
from tests.integration.relay_support import connect, source_config

pytestmark = pytest.mark.integration


def task_config(name: str, endpoints: Endpoints, body: str, instances: dict[str, str],
                mode: str = "all") -> TaskConfig:
    """A task for the test downstream; `instances` maps source-id to its extra keys."""
    down = endpoints.downstream
    lines = [f"name: {name}", f"task-mode: {mode}", "target-database:",
             f"  host: {down['host']}", f"  port: {down['port']}", "mysql-instances:"]
    for source_id, extra in instances.items():
        lines.append(f"  - source-id: {source_id}")
        lines.extend("    " + line for line in extra.splitlines() if line.strip())
    return parse_task("\n".join(lines) + "\n" + body)


def one_source(endpoints: Endpoints, unique: str,
               db: str) -> tuple[TaskConfig, dict[str, SourceConfig]]:
    """A task migrating `db` from one source, and its source config."""
    source_id = f"pc-{unique}"
    cfg = task_config(f"pc-{unique}", endpoints,
                      f"block-allow-list:\n  ba:\n    do-dbs: [{db}]\n",
                      {source_id: "block-allow-list: ba"})
    return cfg, {source_id: source_config(endpoints, source_id)}


def execute(endpoints: Endpoints, db: str, *statements: str) -> None:
    with connect(endpoints, db) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def results(answer: dict[str, Any]) -> list[dict[str, Any]]:
    msg = str(answer["msg"]).removeprefix(f"{MSG_HEADER}: no errors but some warnings\n detail: ")
    return list(json.loads(msg)["results"])


def test_a_ready_task_passes(endpoints: Endpoints, upstream_db: str, unique: str) -> None:
    execute(endpoints, upstream_db, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))",
            "CREATE TABLE u (k VARCHAR(10), UNIQUE KEY uk (k))")
    cfg, sources = one_source(endpoints, unique, upstream_db)
    assert check_task(cfg, sources) == {"result": True, "msg": PASS_MSG}


def test_a_table_without_keys_warns(endpoints: Endpoints, upstream_db: str,
                                    unique: str) -> None:
    execute(endpoints, upstream_db, "CREATE TABLE nokey (v INT)")
    cfg, sources = one_source(endpoints, unique, upstream_db)
    answer = check_task(cfg, sources)
    assert answer["result"] is True
    (found,) = results(answer)
    assert (found["name"], found["state"]) == ("table structure compatibility check", "warn")
    assert found["errors"] == [{"severity": "warn", "short_error":
                                f"table `{upstream_db}`.`nokey` primary/unique key does not "
                                "exist"}]


def test_shards_with_different_columns_fail(endpoints: Endpoints, upstream_db: str,
                                            unique: str) -> None:
    execute(endpoints, upstream_db, "CREATE TABLE t_1 (id INT PRIMARY KEY, v VARCHAR(10))",
            "CREATE TABLE t_2 (id INT PRIMARY KEY, v VARCHAR(10), w INT)")
    body = (f"shard-mode: pessimistic\nroutes:\n  r:\n    schema-pattern: {upstream_db}\n"
            f"    table-pattern: \"t_*\"\n    target-schema: {upstream_db}\n"
            "    target-table: t\nblock-allow-list:\n"
            + "".join(f"  b{i}:\n    do-tables:\n      - db-name: {upstream_db}\n"
                      f"        tbl-name: t_{i}\n" for i in (1, 2)))
    ids = [f"pc{i}-{unique}" for i in (1, 2)]
    cfg = task_config(f"pc-{unique}", endpoints, body,
                      {ids[0]: "route-rules: [r]\nblock-allow-list: b1",
                       ids[1]: "route-rules: [r]\nblock-allow-list: b2"})
    answer = check_task(cfg, {s: source_config(endpoints, s) for s in ids})
    assert answer["result"] is False
    (found,) = results(answer)
    assert found["name"] == f"sharding table `{upstream_db}`.`t` consistency checking"
    assert found["errors"][0]["short_error"] == "column length mismatch (self: 2 vs other: 3)"
    assert found["errors"][0]["other"] == f"sourceID {ids[1]} table `{upstream_db}`.`t_2` " \
                                          "columns [id v w]"


@pytest.fixture
def select_only_user(endpoints: Endpoints, unique: str) -> Iterator[str]:
    """A user that may only SELECT, dropped afterwards."""
    user = f"pc_{unique}"
    execute(endpoints, "mysql", f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'",
            f"GRANT SELECT ON *.* TO '{user}'@'%'")
    try:
        yield user
    finally:
        execute(endpoints, "mysql", f"DROP USER IF EXISTS '{user}'@'%'")


def test_a_user_lacking_privileges_fails(endpoints: Endpoints, upstream_db: str, unique: str,
                                         select_only_user: str) -> None:
    execute(endpoints, upstream_db, "CREATE TABLE t (id INT PRIMARY KEY)")
    cfg, sources = one_source(endpoints, unique, upstream_db)
    (source_id,) = sources
    up = endpoints.upstream
    sources[source_id] = parse_source(
        f"source-id: {source_id}\nfrom:\n  host: {up['host']}\n  port: {up['port']}\n"
        f"  user: {select_only_user}\n  password: pw\n")
    answer = check_task(cfg, sources)
    assert answer["result"] is False
    found = {r["name"]: r["errors"][0]["short_error"] for r in results(answer)}
    assert found == {
        "source db dump privilege checker": "lack of RELOAD privilege; ",
        "source db replication privilege checker":
            "lack of REPLICATION SLAVE privilege; lack of REPLICATION CLIENT privilege; "}


def test_an_unreachable_upstream_is_a_failed_item(endpoints: Endpoints, unique: str) -> None:
    cfg, sources = one_source(endpoints, unique, "nothing")
    (source_id,) = sources
    sources[source_id] = parse_source(f"source-id: {source_id}\nfrom:\n  host: 127.0.0.1\n"
                                      "  port: 1\n")
    answer = check_task(cfg, sources)
    assert answer["result"] is False
    (found,) = results(answer)
    assert found["name"] == "source db connection checker"
    assert found["errors"][0]["short_error"].startswith(
        "[code=26001:class=task-check:scope=upstream:level=high], Message: failed to open DSN "
        "root:***@127.0.0.1:1")
