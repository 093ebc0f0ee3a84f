"""Shared fixtures: the real local stack once per run, and per-test names so tests never meet.

Set KDM_TEST_STACK_HOME to a running stack's home (`kdm stack up --home DIR`) to reuse it;
otherwise a fresh stack is started on free ports in a temporary directory and stopped,
by PID, when the run ends.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from kdm.config.service import KafkaConfig
from kdm.stack.process import free_ports
from kdm.stack.stack import Endpoints, LocalStack, Ports


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The running stack every integration test uses."""
    reuse = os.environ.get("KDM_TEST_STACK_HOME")
    if reuse:
        stack = LocalStack(Path(reuse))
        stack.require_up()
        yield stack
        return
    ports = Ports(*free_ports(4))
    stack = LocalStack(tmp_path_factory.mktemp("stack"), ports)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="session")
def endpoints(local_stack: LocalStack) -> Endpoints:
    """The session stack's endpoints."""
    return local_stack.endpoints()


@pytest.fixture
def unique() -> str:
    """A short random suffix for this test's topics, groups and databases."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def kafka(endpoints: Endpoints, unique: str) -> KafkaConfig:
    """Kafka settings whose topic prefix belongs to this test alone."""
    return KafkaConfig(bootstrap_servers=endpoints.kafka_bootstrap, topic_prefix=f"t{unique}")


def _database(stack_server_port: int, name: str) -> Iterator[str]:
    def run(sql: str) -> None:
        # a fresh connection each time: a test may restart the server in between
        conn = pymysql.connect(host="127.0.0.1", port=stack_server_port, user="root",
                               password="", autocommit=True)
        with conn, conn.cursor() as cur:
            cur.execute(sql)

    run(f"CREATE DATABASE `{name}`")
    try:
        yield name
    finally:
        run(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def upstream_db(endpoints: Endpoints, unique: str) -> Iterator[str]:
    """A database of this test's own on the upstream server."""
    yield from _database(endpoints.upstream["port"], f"up_{unique}")


@pytest.fixture
def downstream_db(endpoints: Endpoints, unique: str) -> Iterator[str]:
    """A database of this test's own on the downstream server."""
    yield from _database(endpoints.downstream["port"], f"down_{unique}")
