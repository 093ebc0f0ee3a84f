"""The relay topic holds every binlog row change exactly once, in binlog order, whatever
happens to the producer (SIGKILL at random points and at named steps), the broker or the
upstream in between."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kdm.config.service import KafkaConfig
from kdm.kafka_admin import delete_topics
from kdm.position import Position
from kdm.stack.stack import Endpoints, LocalStack
from kdm.topics import Topics
from tests.integration.relay_support import (
    ProducerProcess,
    Workload,
    changes_of,
    gtid_now,
    relay_records,
    source_text,
    wait_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def relay_setup(endpoints: Endpoints, kafka: KafkaConfig, upstream_db: str, unique: str,
                tmp_path: Path) -> Iterator[tuple[ProducerProcess, str]]:
    """A producer process for a source that starts at the upstream's current GTID."""
    source_id = f"eo-{unique}"
    path = tmp_path / "source.yaml"
    path.write_text(source_text(endpoints, source_id, gtid=gtid_now(endpoints)))
    producer = ProducerProcess(path, kafka, tmp_path / "producer.log")
    yield producer, source_id
    producer.kill()
    topics = Topics(kafka.topic_prefix)
    delete_topics(kafka, [topics.relay(source_id).name, topics.compacted("stages").name,
                          topics.compacted("status").name])


def _caught_up(kafka: KafkaConfig, source_id: str, db: str, expected: int) -> bool:
    return len(changes_of(relay_records(kafka, source_id), db)) >= expected


def _assert_exactly_once(records: list[dict[str, Any]], db: str,
                         expected: list[tuple[str, int]]) -> None:
    got = changes_of(records, db)
    assert len(got) == len(expected), f"{len(got)} row records for {len(expected)} changes"
    assert got == expected
    keys = [_order_key(r) for r in records if r["kind"] != "HEARTBEAT"]
    assert keys == sorted(keys), "relay records are not in binlog order"
    assert len(set(keys)) == len(keys), "a binlog event appears twice"


def _order_key(record: dict[str, Any]) -> tuple[Any, ...]:
    file_number, stem, pos, event, row = Position.from_dict(record["position"]).sort_key()
    return (file_number, stem, pos, record["kind"] in ("BEGIN", "ROW"), event, row)


def test_sigkill_at_random_points_during_writes_loses_and_repeats_nothing(
        relay_setup: tuple[ProducerProcess, str], endpoints: Endpoints, kafka: KafkaConfig,
        upstream_db: str) -> None:
    producer, source_id = relay_setup
    workload = Workload(endpoints, upstream_db).start()
    producer.start()
    rng = random.Random(7)
    for _ in range(6):
        time.sleep(rng.uniform(1.0, 3.0))
        producer.kill()
        time.sleep(rng.uniform(0.0, 0.5))
        producer.start()
    expected = workload.finish()
    wait_for(lambda: _caught_up(kafka, source_id, upstream_db, len(expected)), 60,
             "the relay to catch up")
    assert producer.stop() == 0
    assert len(expected) > 1000, "the workload was too small to test anything"
    _assert_exactly_once(relay_records(kafka, source_id), upstream_db, expected)


@pytest.mark.parametrize("fault", ["relay.after_produce:350", "relay.before_commit:4",
                                   "relay.after_commit:3"])
def test_crash_at_each_named_step_then_restart(
        relay_setup: tuple[ProducerProcess, str], endpoints: Endpoints, kafka: KafkaConfig,
        upstream_db: str, fault: str) -> None:
    producer, source_id = relay_setup
    workload = Workload(endpoints, upstream_db, big_every=2).start()
    producer.start(KDM_FAULTS=fault)
    wait_for(lambda: producer.exited() is not None, 60, f"the fault {fault} to fire")
    assert producer.exited() == -9
    producer.start()
    time.sleep(1.0)
    expected = workload.finish()
    wait_for(lambda: _caught_up(kafka, source_id, upstream_db, len(expected)), 60,
             "the relay to catch up")
    assert producer.stop() == 0
    _assert_exactly_once(relay_records(kafka, source_id), upstream_db, expected)


def test_broker_restart_during_writes(
        relay_setup: tuple[ProducerProcess, str], endpoints: Endpoints, kafka: KafkaConfig,
        upstream_db: str, local_stack: LocalStack) -> None:
    producer, source_id = relay_setup
    workload = Workload(endpoints, upstream_db).start()
    producer.start()
    time.sleep(2.0)
    local_stack.kafka.stop()
    time.sleep(2.0)
    local_stack.kafka.start()
    time.sleep(2.0)
    expected = workload.finish()
    wait_for(lambda: _caught_up(kafka, source_id, upstream_db, len(expected)), 90,
             "the relay to catch up after the broker restart")
    assert producer.exited() is None, "the producer died with the broker"
    assert producer.stop() == 0
    _assert_exactly_once(relay_records(kafka, source_id), upstream_db, expected)


def test_upstream_restart_reconnects_without_gap(
        relay_setup: tuple[ProducerProcess, str], endpoints: Endpoints, kafka: KafkaConfig,
        upstream_db: str, local_stack: LocalStack) -> None:
    producer, source_id = relay_setup
    producer.start()
    first = Workload(endpoints, upstream_db).start()
    time.sleep(2.0)
    expected = first.finish()
    local_stack.upstream.stop()
    time.sleep(1.0)
    local_stack.upstream.start()
    more = _write_more(endpoints, upstream_db, start=10_000_000, count=300)
    wait_for(lambda: _caught_up(kafka, source_id, upstream_db, len(expected) + len(more)), 90,
             "the relay to catch up after the upstream restart")
    assert producer.exited() is None, "the producer died with the upstream"
    assert producer.stop() == 0
    _assert_exactly_once(relay_records(kafka, source_id), upstream_db, expected + more)


def _write_more(endpoints: Endpoints, db: str, start: int, count: int) -> list[tuple[str, int]]:
    from tests.integration.relay_support import connect

    with connect(endpoints, db) as conn, conn.cursor() as cur:
        for i in range(start, start + count):
            cur.execute("INSERT INTO t (id, v, pad) VALUES (%s, 0, 'after restart')", [i])
    return [("INSERT", i) for i in range(start, start + count)]
