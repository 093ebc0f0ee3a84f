"""Slot hashing and the owned-set bookkeeping, driven by callback sequences without Kafka."""

from __future__ import annotations

import threading
import zlib
from collections import Counter

import pytest
from confluent_kafka import TopicPartition

from kdm.config.service import KafkaConfig
from kdm.errors import ERR_MEMBERSHIP_FAILED, KdmError
from kdm.membership import ChangeHook, Leadership, Membership, slot_of, worker_membership
from kdm.topics import Topics, TopicSpec

TOPIC = "dm.workers.sync"


def tps(*partitions: int, topic: str = TOPIC) -> list[TopicPartition]:
    """TopicPartitions as a rebalance callback receives them."""
    return [TopicPartition(topic, p) for p in partitions]


def member(on_change: ChangeHook | None = None) -> Membership:
    """A membership that is never started: only its bookkeeping runs."""
    return Membership(KafkaConfig(), TopicSpec(TOPIC, 24), "dm.workers.sync", "worker1",
                      on_change=on_change)


def test_slot_of_is_crc32_mod_partitions() -> None:
    assert slot_of("task1/source1", 24) == zlib.crc32(b"task1/source1") % 24
    assert slot_of("mysql-replica-01", 1) == 0
    # frozen: a change would move every subtask to another worker during a rolling upgrade
    assert [slot_of(k, 24) for k in ("a", "source1", "t/s")] == [
        zlib.crc32(k.encode()) % 24 for k in ("a", "source1", "t/s")]
    assert slot_of("数据源", 24) == zlib.crc32("数据源".encode()) % 24


def test_slot_of_spreads_keys_over_slots() -> None:
    counts = Counter(slot_of(f"task{t}/source{s}", 24) for t in range(40) for s in range(30))
    assert set(counts) == set(range(24))
    assert max(counts.values()) < 2 * min(counts.values())


def test_cooperative_deltas_accumulate() -> None:
    m = member()
    assert m.generation == 0
    assert m.assign(tps(0, 1, 2, 3)) == {0, 1, 2, 3}
    assert m.revoke(tps(2, 3)) == {0, 1}        # a newcomer takes a share
    assert m.assign(tps()) == {0, 1}            # the follow-up rebalance adds nothing
    assert m.assign(tps(5, 6)) == {0, 1, 5, 6}  # a dead member's share arrives
    assert m.owned() == {0, 1, 5, 6}
    assert m.generation == 3                    # the empty delta did not bump it


def test_eager_full_sets_give_the_same_result() -> None:
    m = member()
    m.assign(tps(0, 1, 2, 3))
    m.revoke(tps(0, 1, 2, 3))
    m.assign(tps(1, 3))
    assert m.owned() == {1, 3}


def test_lost_and_foreign_topics() -> None:
    m = member()
    m.assign([*tps(4, 7), *tps(9, topic="other")])
    assert m.owned() == {4, 7}
    m.revoke(tps(4, 7))  # what on_lost reports
    assert m.owned() == frozenset()


def test_first_assignment_may_be_empty() -> None:
    m = member()
    assert not m.wait_assigned(0)
    m.assign(tps())
    assert m.wait_assigned(0)
    assert m.generation == 0
    assert not m.owns("anything")


def test_owns_hashes_the_key() -> None:
    m = member()
    m.assign(tps(slot_of("task1/source1", 24)))
    assert m.owns("task1/source1")
    other = next(k for k in (f"k{i}" for i in range(100))
                 if slot_of(k, 24) != slot_of("task1/source1", 24))
    assert not m.owns(other)


def test_on_change_sees_each_new_set() -> None:
    seen: list[frozenset[int]] = []
    m = member(on_change=lambda ms: seen.append(ms.owned()))
    m.assign(tps(1))
    m.assign(tps(1))
    m.revoke(tps(1))
    m.fail("broken")  # the hook may be what failed: it is not called again
    assert seen == [frozenset({1}), frozenset()]


def test_wait_changed_wakes_on_a_change() -> None:
    m = member()
    timer = threading.Timer(0.05, m.assign, args=(tps(3),))
    timer.start()
    assert m.wait_changed(0, timeout=5) == 1
    assert m.wait_changed(1, timeout=0.01) == 1


def test_failure_makes_owned_raise() -> None:
    m = member()
    m.assign(tps(0, 1))
    generation = m.generation
    m.fail("Fatal error: fenced")
    assert m.generation == generation + 1
    with pytest.raises(KdmError) as info:
        m.owned()
    assert info.value.code == ERR_MEMBERSHIP_FAILED.code
    with pytest.raises(KdmError):
        m.wait_assigned(0)


def test_config_and_names() -> None:
    kafka = KafkaConfig(topic_prefix="p")
    w = worker_membership(kafka, "sync", "host:1")
    assert (w.topic, w.group, w.partitions, w.member) == (
        "p.workers.sync", "p.workers.sync", 24, "host:1")
    config = w.consumer_config()
    assert config["partition.assignment.strategy"] == "cooperative-sticky"
    assert config["client.id"] == "host:1"
    assert "group.instance.id" not in config
    assert config["enable.auto.commit"] is False
    assert int(str(config["max.poll.interval.ms"])) >= int(str(config["session.timeout.ms"]))
    leader = Leadership(kafka, "c1")
    assert (leader.topic, leader.group, leader.partitions) == ("p.coordinator",
                                                              "p.coordinator", 1)
    assert not leader.is_leader()
    leader.assign([TopicPartition("p.coordinator", 0)])
    assert leader.is_leader()
    topics = Topics("p")
    assert topics.workers("sync").cleanup_policy == "delete"
    assert topics.leader().partitions == 1
