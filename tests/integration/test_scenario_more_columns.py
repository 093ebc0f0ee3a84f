"""Scenario: the downstream table has more columns than the upstream one (manual §15.4).
Every extra column has a default or allows NULL; inserts, updates and deletes name the
upstream columns only, so the downstream rows are the upstream rows with the extra columns
at their defaults.

* Incremental only (manual §15.3): `messages` exists upstream with rows before the task
  starts; the user creates the downstream table by hand, with extra columns (one in the
  middle). Rows from before the start point are not migrated.
* A table already being migrated gets extra columns downstream mid-way; migration goes on.
"""

from __future__ import annotations

from typing import Any

import pytest

from kdm.config.service import KafkaConfig
from kdm.stack.stack import Endpoints
from tests.integration.relay_support import gtid_now
from tests.integration.scenario_support import barrier, databases
from tests.integration.sync_support import execute, rows, running, task_config, task_text

pytestmark = pytest.mark.integration

Row = tuple[Any, ...]


def _task(endpoints: Endpoints, unique: str, up: str, down: str) -> Any:
    source = f"wide-{unique}"
    body = (f"routes:\n  r: {{schema-pattern: {up}, target-schema: {down}}}\n"
            f"block-allow-list:\n  ba: {{do-dbs: [{up}]}}\n")
    return task_config(task_text(f"wide-{unique}", endpoints, [source], body,
                                 "route-rules: [r]\nblock-allow-list: ba",
                                 meta_schema=f"{down}_meta"))


def _changes(endpoints: Endpoints, db: str, first: int) -> None:
    """Inserts, updates (also of the key) and deletes on `messages`, ids from `first`."""
    execute(endpoints, db,
            "INSERT INTO messages VALUES " + ", ".join(f"({i}, 'msg{i}')"
                                                       for i in range(first, first + 50)),
            f"UPDATE messages SET message = CONCAT(message, '!') WHERE id >= {first} "
            "AND id % 3 = 0",
            f"UPDATE messages SET id = id + 1000 WHERE id >= {first} AND id % 7 = 0",
            f"DELETE FROM messages WHERE id >= {first} AND id % 5 = 0")


def test_incremental_into_a_wider_table_made_by_hand(
        endpoints: Endpoints, kafka: KafkaConfig, upstream_db: str, downstream_db: str,
        unique: str) -> None:
    up, down = upstream_db, downstream_db
    execute(endpoints, up, "CREATE TABLE messages (id INT PRIMARY KEY, message VARCHAR(255))",
            "INSERT INTO messages VALUES (1, 'msg1'), (2, 'msg2'), (3, 'msg3')")
    execute(endpoints, down, "CREATE TABLE messages (id INT NOT NULL, "
            "origin VARCHAR(20) NOT NULL DEFAULT 'upstream', message VARCHAR(255), "
            "noted_at DATETIME NULL, score INT DEFAULT 0, PRIMARY KEY (id))", side="down")
    task = _task(endpoints, unique, up, down)
    with databases(endpoints, drop_down=(f"{down}_meta",)), \
            running(endpoints, kafka, [f"wide-{unique}"], gtid_now(endpoints), task):
        _changes(endpoints, up, 4)
        barrier(endpoints, up, down)

        upstream = rows(endpoints, "up", up, "messages")
        assert rows(endpoints, "down", down, "messages") == [
            (row[0], "upstream", row[1], None, "0") for row in upstream if int(row[0]) > 3]


def test_columns_added_downstream_while_migrating(
        endpoints: Endpoints, kafka: KafkaConfig, upstream_db: str, downstream_db: str,
        unique: str) -> None:
    up, down = upstream_db, downstream_db
    task = _task(endpoints, unique, up, down)
    with databases(endpoints, drop_down=(f"{down}_meta",)), \
            running(endpoints, kafka, [f"wide-{unique}"], gtid_now(endpoints), task):
        execute(endpoints, up,
                "CREATE TABLE messages (id INT PRIMARY KEY, message VARCHAR(255))")
        _changes(endpoints, up, 1)
        barrier(endpoints, up, down, "zz_barrier_1")
        assert rows(endpoints, "down", down, "messages") == rows(endpoints, "up", up,
                                                                 "messages")
        execute(endpoints, down, "ALTER TABLE messages ADD COLUMN origin VARCHAR(20) NOT NULL "
                "DEFAULT 'upstream', ADD COLUMN noted_at DATETIME NULL", side="down")
        _changes(endpoints, up, 100)
        barrier(endpoints, up, down, "zz_barrier_2")

        assert rows(endpoints, "down", down, "messages") == [
            (*row, "upstream", None) for row in rows(endpoints, "up", up, "messages")]
