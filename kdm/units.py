"""The unit protocol of a worker: run, in threads, the units whose slots this worker owns.

A unit is a relay (producer workers) or a subtask (consumer workers): anything with
`run(stop)` that returns soon after `stop` is set, having finished its work in flight. The
worker says which units exist (`wanted`: key → revision and a factory); `UnitHost` starts
those whose key hashes to a partition this member owns and stops the rest. A new revision
(the task or source was submitted again) restarts the unit with the new configuration.

`run_worker` reconciles whenever the registry, the stage requests or the assignment change
(and every few seconds). An assignment change reconciles inside the group's revoke
callback, so the units of slots taken away have stopped *before* the rebalance completes
and the next owner never runs a unit while this one still does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from kdm.config.service import KafkaConfig
from kdm.log import Logger
from kdm.membership import Membership, slot_of, worker_membership

STOP_SECONDS = 60.0  # a unit finishing its batch in flight
RECHECK_SECONDS = 5  # reconcile at least this often (restarts a unit whose thread ended)


class Unit(Protocol):
    """What a worker runs."""

    def run(self, stop: threading.Event) -> None:
        """Work until `stop` is set."""


@dataclass(frozen=True)
class Wanted:
    """A unit that should exist: its configuration revision and how to build it."""

    revision: int
    make: Callable[[], Unit]


@dataclass
class _Running:
    revision: int
    stop: threading.Event
    thread: threading.Thread


class UnitHost:
    """The units of one worker, in threads."""

    def __init__(self, partitions: int, log: Logger) -> None:
        self.partitions = partitions
        self.log = log
        self.running: dict[str, _Running] = {}
        self._lock = threading.Lock()

    def reconcile(self, wanted: Mapping[str, Wanted],
                  owned: Callable[[], Collection[int]]) -> None:
        """Start the wanted units this worker owns; stop the others (and restart units
        whose revision changed or whose thread ended). `owned` is read under the lock, so
        a reconcile racing a revoke never acts on the assignment from before it."""
        with self._lock:
            slots = owned()
            mine = {k: w for k, w in wanted.items() if slot_of(k, self.partitions) in slots}
            stale = [k for k, r in self.running.items()
                     if not r.thread.is_alive() or (not r.stop.is_set() and (
                         k not in mine or mine[k].revision != r.revision))]
            self._stop(stale)
            for key, want in mine.items():
                if key not in self.running:
                    self._start(key, want)

    def stop_all(self) -> None:
        """Stop every unit and wait for them."""
        with self._lock:
            self._stop(list(self.running))

    def _start(self, key: str, want: Wanted) -> None:
        stop = threading.Event()
        unit = want.make()
        thread = threading.Thread(target=self._guarded, args=(key, unit, stop), name=key,
                                  daemon=True)
        self.running[key] = _Running(want.revision, stop, thread)
        thread.start()
        self.log.info("unit started", unit=key)

    def _guarded(self, key: str, unit: Unit, stop: threading.Event) -> None:
        try:
            unit.run(stop)
        except Exception as exc:  # reconcile restarts it; the log says why it ended
            self.log.error("unit ended on an error", exc, unit=key)

    def _stop(self, keys: list[str]) -> None:
        """Stop units and wait for them; a unit still running after STOP_SECONDS stays
        listed (asked to stop), so no second copy of it starts while it lives."""
        for key in keys:
            self.running[key].stop.set()
        for key in keys:
            thread = self.running[key].thread
            thread.join(STOP_SECONDS)
            if thread.is_alive():
                self.log.error("unit did not stop in time; not restarting it while it runs",
                               unit=key, seconds=STOP_SECONDS)
                continue
            del self.running[key]
            self.log.info("unit stopped", unit=key)


def run_worker(kafka: KafkaConfig, role: str, name: str,
               wanted: Callable[[], Mapping[str, Wanted]], version: Callable[[], int],
               stop: threading.Event, log: Logger) -> None:
    """Join the `role` workers' group as `name` and run the owned units until `stop`."""
    host: UnitHost | None = None

    def changed(membership: Membership) -> None:
        if host is not None:
            host.reconcile(wanted(), membership.owned)
    membership = worker_membership(kafka, role, name, on_change=changed)
    host = UnitHost(membership.partitions, log)
    membership.start()
    seen: tuple[int, int] | None = None
    checked = 0.0
    try:
        while not stop.is_set():
            now = (version(), membership.generation)
            if now != seen or time.monotonic() - checked >= RECHECK_SECONDS:
                host.reconcile(wanted(), membership.owned)
                seen, checked = now, time.monotonic()
            stop.wait(0.5)
    finally:
        host.stop_all()
        membership.stop()
