"""Scheduling and leadership by group membership against the real broker: members split the
slots, and a member that leaves, or is SIGKILLed in a child process, hands its slots over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kdm.config.service import KafkaConfig
from kdm.membership import Leadership, Membership, worker_membership

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SESSION_MS = 6000
ALL = frozenset(range(24))

# A member in its own process; prints its owned partitions (JSON) at every change. With
# `wedge`, once it owns something it holds the GIL in one long C call, so its polling thread
# stalls while librdkafka's heartbeat thread keeps the session alive.
CHILD = """
import json, sys
from kdm.config.service import KafkaConfig
from kdm.membership import Leadership, worker_membership
bootstrap, prefix, role, name, wedge = sys.argv[1:6]
kafka = KafkaConfig(bootstrap_servers=bootstrap, topic_prefix=prefix)
m = Leadership(kafka, name) if role == "leader" else worker_membership(kafka, role, name)
m.start()
generation = 0
while True:
    generation = m.wait_changed(generation, 1.0)
    print(json.dumps(sorted(m.owned())), flush=True)
    if wedge == "wedge" and m.owned():
        3 ** 10 ** 8  # about a minute inside long_pow, never releasing the GIL
"""


class Child:
    """A member running in a child process, its reports collected by a reader thread."""

    def __init__(self, kafka: KafkaConfig, role: str, name: str, wedge: bool = False) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, kafka.bootstrap_servers, kafka.topic_prefix, role,
             name, "wedge" if wedge else "-"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        self.reports: list[frozenset[int]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.reports.append(frozenset(json.loads(line)))

    def owned(self) -> frozenset[int]:
        """What the child last reported owning."""
        return self.reports[-1] if self.reports else frozenset()

    def kill(self) -> None:
        """SIGKILL by PID: the member vanishes without leaving the group."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture
def members() -> Iterator[list[Membership]]:
    """Memberships to stop at the end of the test."""
    started: list[Membership] = []
    yield started
    for m in started:
        m.stop()


@pytest.fixture
def children() -> Iterator[list[Child]]:
    """Child processes to kill at the end of the test."""
    started: list[Child] = []
    yield started
    for child in started:
        child.kill()


def eventually(check: Callable[[], bool], timeout: float) -> float:
    """Seconds until `check()` held; fails after `timeout`."""
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < timeout, "condition not reached in time"
        time.sleep(0.05)
    return time.monotonic() - began


def split(a: frozenset[int], b: frozenset[int]) -> bool:
    """Both own some slots, none twice, and together all of them."""
    return bool(a) and bool(b) and not a & b and a | b == ALL


def test_two_members_split_then_one_takes_all_on_stop(
        kafka: KafkaConfig, members: list[Membership]) -> None:
    w1 = worker_membership(kafka, "sync", "w1").start()
    members.append(w1)
    assert w1.wait_assigned(20)
    eventually(lambda: w1.owned() == ALL, 10)
    w2 = worker_membership(kafka, "sync", "w2").start()
    members.append(w2)
    eventually(lambda: split(w1.owned(), w2.owned()), 15)
    assert len(w1.owned()) == len(w2.owned()) == 12
    key = next(k for k in (f"task/source{i}" for i in range(100)) if w2.owns(k))
    assert not w1.owns(key)
    generation = w1.generation
    w2.stop()
    assert w2.generation > 0
    took = eventually(lambda: w1.owned() == ALL, 5)
    assert w1.generation > generation and w1.owns(key)
    print(f"hand-over after a clean stop: {took:.2f}s")


def test_a_killed_member_loses_its_slots_after_the_session_timeout(
        kafka: KafkaConfig, members: list[Membership], children: list[Child]) -> None:
    survivor = worker_membership(kafka, "sync", "survivor", SESSION_MS).start()
    members.append(survivor)
    assert survivor.wait_assigned(20)
    child = Child(kafka, "sync", "doomed")
    children.append(child)
    eventually(lambda: split(survivor.owned(), child.owned()), 20)
    child.kill()
    took = eventually(lambda: survivor.owned() == ALL, SESSION_MS / 1000 + 6)
    assert took > 1  # not a clean leave: the broker waited for the session to expire
    print(f"failover after SIGKILL: {took:.2f}s (session timeout {SESSION_MS} ms)")


def test_exactly_one_leader_and_failover_on_kill(
        kafka: KafkaConfig, members: list[Membership], children: list[Child]) -> None:
    first = Child(kafka, "leader", "c1")
    children.append(first)
    eventually(lambda: first.owned() == {0}, 20)
    standby = Leadership(kafka, "c2", SESSION_MS).start()
    members.append(standby)
    assert standby.wait_assigned(20)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:  # the sticky assignor keeps the sitting leader
        assert first.owned() == {0} and not standby.is_leader()
        time.sleep(0.1)
    first.kill()
    took = eventually(standby.is_leader, SESSION_MS / 1000 + 6)
    print(f"leader failover after SIGKILL: {took:.2f}s")
    third = Leadership(kafka, "c3", SESSION_MS).start()
    members.append(third)
    assert third.wait_assigned(20)
    time.sleep(1)
    assert standby.is_leader() and not third.is_leader()
    standby.stop()
    took = eventually(third.is_leader, 5)
    print(f"leader hand-over after a clean stop: {took:.2f}s")



def test_a_wedged_member_is_removed_after_max_poll_interval(
        kafka: KafkaConfig, members: list[Membership], children: list[Child]) -> None:
    survivor = worker_membership(kafka, "sync", "survivor", SESSION_MS).start()
    members.append(survivor)
    eventually(lambda: survivor.owned() == ALL, 20)
    wedged = Child(kafka, "sync", "wedged", wedge=True)
    children.append(wedged)
    eventually(lambda: split(survivor.owned(), wedged.owned()), 20)
    limit = int(str(survivor.consumer_config()["max.poll.interval.ms"])) / 1000
    took = eventually(lambda: survivor.owned() == ALL, limit + 6)
    assert took > SESSION_MS / 1000  # its heartbeats went on: the poll interval removed it
    assert wedged.proc.poll() is None
    print(f"wedged member removed after: {took:.2f}s (max.poll.interval {limit:.0f}s)")


def test_a_revoked_slot_moves_only_after_the_hook_returns(
        kafka: KafkaConfig, members: list[Membership]) -> None:
    returned: list[float] = []  # when w1's hook came back from giving slots up
    received: list[float] = []  # when w2 first owned something

    def w1_changed(m: Membership) -> None:
        if m.owned() != ALL and m.owned():
            time.sleep(2)  # stopping the units of the revoked slots
            returned.append(time.monotonic())

    def w2_changed(m: Membership) -> None:
        if m.owned():
            received.append(time.monotonic())

    w1 = worker_membership(kafka, "sync", "w1", on_change=w1_changed).start()
    members.append(w1)
    eventually(lambda: w1.owned() == ALL, 20)
    w2 = worker_membership(kafka, "sync", "w2", on_change=w2_changed).start()
    members.append(w2)
    eventually(lambda: split(w1.owned(), w2.owned()) and bool(returned), 20)
    assert received[0] >= returned[0]
