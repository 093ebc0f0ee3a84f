"""UnitHost: a worker runs the wanted units of the slots it owns, and never two copies."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from kdm import units
from kdm.log import Logger
from kdm.membership import slot_of
from kdm.units import UnitHost, Wanted

PARTITIONS = 24


class Probe:
    """A unit that runs until stopped (or, when `stuck`, ignores the stop until released)."""

    runs: ClassVar[list[str]] = []

    def __init__(self, key: str, stuck: threading.Event | None = None) -> None:
        self.key = key
        self.stuck = stuck

    def run(self, stop: threading.Event) -> None:
        Probe.runs.append(self.key)
        stop.wait()
        if self.stuck is not None:
            self.stuck.wait()


def wanted(revision: int = 1, stuck: threading.Event | None = None, **keys: Any
           ) -> dict[str, Wanted]:
    return {key: Wanted(revision, lambda key=key: Probe(key, stuck)) for key in keys}


def test_owned_units_start_and_the_others_stop() -> None:
    Probe.runs = []
    host = UnitHost(PARTITIONS, Logger("test"))
    a, b = "subtask/t/a", "subtask/t/b"
    assert slot_of(a, PARTITIONS) != slot_of(b, PARTITIONS)
    host.reconcile(wanted(**{a: 1, b: 1}), lambda: {slot_of(a, PARTITIONS)})
    assert set(host.running) == {a}
    host.reconcile(wanted(**{a: 1, b: 1}), lambda: {slot_of(b, PARTITIONS)})
    assert set(host.running) == {b}
    host.reconcile(wanted(2, **{b: 1}), lambda: {slot_of(b, PARTITIONS)})  # new revision
    assert set(host.running) == {b} and Probe.runs == [a, b, b]
    host.stop_all()
    assert host.running == {}


def test_a_unit_that_will_not_stop_is_never_run_twice(monkeypatch: Any) -> None:
    Probe.runs = []
    monkeypatch.setattr(units, "STOP_SECONDS", 0.2)
    release = threading.Event()
    host = UnitHost(PARTITIONS, Logger("test"))
    key = "relay/s1"
    mine = {slot_of(key, PARTITIONS)}
    host.reconcile(wanted(1, release, **{key: 1}), lambda: mine)
    host.reconcile(wanted(2, release, **{key: 1}), lambda: mine)  # restart: it hangs
    assert key in host.running and host.running[key].stop.is_set()
    host.reconcile(wanted(2, release, **{key: 1}), lambda: mine)
    assert Probe.runs == [key]  # no second copy while the first lives
    release.set()
    host.running[key].thread.join(5)
    host.reconcile(wanted(2, release, **{key: 1}), lambda: mine)
    assert Probe.runs == [key, key]
    host.stop_all()
