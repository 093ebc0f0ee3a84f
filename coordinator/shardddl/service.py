"""The leading coordinator's shard-DDL loop (DM-master's pessimist and optimist over Kafka).

`ShardDDLService` runs only while its coordinator leads (the coordinator starts and stops it
as `is_leader()` turns). One thread does everything, so messages and `unlock-ddl-lock`
requests are handled one at a time, in order:

1. Open a link (`KafkaLink`: fence the previous leader, assign the ddl topic at the
   committed offset, read the locks topic). Rebuild both keepers from the stored locks and,
   in one transaction, send again the operations every synced pessimistic lock needs now
   (a leader may have died between committing them and the subtasks reading them).
2. Loop: take a queued unlock request (when none is in progress), poll the ddl topic, feed
   the message to the `ShardDDLCore`, and commit the step (changed locks, operations, the
   consumed offset) in one transaction. A record that is not a valid message is logged
   with its code and committed past.
3. Any Kafka or transaction error (38013) ends the session: its state is dropped and step 1
   runs again, from what was committed. A request in progress is answered with the error.

`unlock-ddl-lock` is two transactions around a wait. The first forces the lock synced and
sends the owner's `exec`; the loop then keeps handling messages until the owner's `done`
has arrived (through the ddl topic, like any other) or `unlock_timeout` has passed; the
second sends the skips and tombstones the lock (or, without the owner's done and without
--force-remove, puts the lock back to waiting and answers 38005). A leader that dies in
between leaves the forced lock on the locks topic: the next one re-sends its `exec`, and the
owner's done resolves it as usual.

Reads: `show-ddl-locks` is answered by the leader alone (the API sends a standby's caller to
the leader, HTTP 503), from the locks as last committed: what a standby would read from the
locks topic, without a second follower of it in every coordinator.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

from prometheus_client import Counter, Gauge

from coordinator.shardddl.core import Operation, ShardDDLCore, Step, lock_from_dict, operation_kind
from coordinator.shardddl.link import Delivery
from coordinator.shardddl.show import show_ddl_locks, unlock_ddl_lock_result
from kdm.errors import ERR_SHARD_SERVICE_DOWN, KdmError
from kdm.log import Logger
from kdm.shard_ddl import OPTIMISTIC, PESSIMISTIC, PessimisticOperation

Result = dict[str, Any]
POLL_SECONDS = 0.2
RESTART_SECONDS = 1.0
START_GRACE = 2.0

LOCKS = Gauge("kdm_coordinator_shardddl_locks", "Shard-DDL locks the leading coordinator "
              "holds, by mode (optimistic ones stay after they resolve).", ["mode"])
OPERATIONS = Counter("kdm_coordinator_shardddl_operations_total", "Shard-DDL operations sent "
                     "to subtasks, by mode and kind (exec, skip, error; ddls, none, "
                     "conflict).", ["mode", "kind"])
FAILURES = Counter("kdm_coordinator_shardddl_failures_total", "Shard-DDL sessions ended by a "
                   "Kafka or transaction error (the locks are rebuilt). Alert when it grows "
                   "for minutes: no shard DDL is coordinated meanwhile.")


class Link(Protocol):
    """What the loop needs from Kafka (`KafkaLink`; an in-memory fake in unit tests)."""

    def read_locks(self) -> dict[str, dict[str, Any]]:
        """Every stored lock, by ID."""

    def poll(self, timeout: float) -> Delivery | None:
        """The next record of the ddl topic."""

    def commit(self, writes: Sequence[tuple[str, dict[str, Any] | None]],
               operations: Sequence[Operation], consumed: Delivery | None) -> None:
        """One transaction; raises a coded error (aborted) when it fails."""

    def close(self) -> None:
        """Leave."""


@dataclass
class UnlockRequest:
    """An `unlock-ddl-lock` call waiting for the loop's answer."""

    lock_id: str
    owner: str = ""
    force_remove: bool = False
    answered: threading.Event = field(default_factory=threading.Event)
    result: Result = field(default_factory=dict)

    def answer(self, error: KdmError | None) -> None:
        """unlock-ddl-lock's result; wakes the caller."""
        if not self.answered.is_set():
            self.result = unlock_ddl_lock_result(error)
            self.answered.set()


@dataclass
class PendingUnlock:
    """An unlock whose first half is committed: waiting for the owner's done."""

    request: UnlockRequest
    deadline: float
    sent: list[Operation] = field(default_factory=list)


class ShardDDLService:
    """The shard-DDL loop of the leading coordinator (see the module docstring)."""

    def __init__(self, open_link: Callable[[], Link],
                 leading: Callable[[], bool] = lambda: True,
                 unlock_timeout: float = 60.0, ready_timeout: float = 10.0) -> None:
        self.open_link = open_link
        self.leading = leading
        self.unlock_timeout = unlock_timeout
        self.ready_timeout = ready_timeout
        self.ready = threading.Event()
        self.log = Logger("coordinator").bind(component="shardddl")
        self._requests: queue.Queue[UnlockRequest] = queue.Queue()
        self._pending: PendingUnlock | None = None
        self._stored: dict[str, dict[str, Any]] = {}  # the locks as last committed
        self._stored_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Self:
        """Run the loop in a thread (again after `stop`)."""
        if self.running():
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="shardddl", daemon=True)
        self._thread.start()
        self.log.info("shard ddl coordination starting")
        return self

    def running(self) -> bool:
        """Whether the loop thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 60.0) -> None:
        """End the loop (the transaction in flight finishes or aborts); answer waiting
        requests with 38012."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._drain("the coordinator stopped leading")

    # -- the API's side ---------------------------------------------------------------------

    def show(self, task: str | None, sources: Sequence[str]) -> Result:
        """show-ddl-locks from the locks as last committed."""
        if not self._loaded():
            return _refused(ERR_SHARD_SERVICE_DOWN(problem="the locks are not loaded"))
        with self._stored_lock:
            stored = list(self._stored.values())
        return show_ddl_locks([lock_from_dict(lock) for lock in stored], task, sources)

    def unlock(self, lock_id: str, owner: str = "", force_remove: bool = False) -> Result:
        """unlock-ddl-lock: queue the request for the loop and wait for its answer."""
        if not self._loaded():
            return unlock_ddl_lock_result(ERR_SHARD_SERVICE_DOWN(
                problem="the locks are not loaded"))
        request = UnlockRequest(lock_id, owner, force_remove)
        self._requests.put(request)
        deadline = time.monotonic() + self.unlock_timeout + 60.0
        while not request.answered.wait(0.5):
            if not self.running():
                self._drain("the coordinator stopped leading")
            elif time.monotonic() > deadline:  # the loop skips an answered request
                request.answer(ERR_SHARD_SERVICE_DOWN(problem="the request was not answered"))
        return request.result

    def _loaded(self) -> bool:
        """Wait until the locks are loaded: up to `ready_timeout` while the loop runs, up to
        START_GRACE while it has not started (the coordinator starts it soon after it
        becomes the leader)."""
        start = time.monotonic()
        while not self.ready.wait(0.1):
            waited = time.monotonic() - start
            if waited > self.ready_timeout or (not self.running() and waited > START_GRACE):
                return False
        return True

    def _drain(self, why: str) -> None:
        """Answer what a stopped loop left: the unlock in progress and queued requests."""
        if self.running():
            return
        error = ERR_SHARD_SERVICE_DOWN(problem=why)
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.request.answer(error)
        while True:
            try:
                self._requests.get_nowait().answer(error)
            except queue.Empty:
                return

    # -- the loop -----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.leading():  # never fence a newer leader from a stale process
                self._stop.wait(RESTART_SECONDS)
                continue
            try:
                self._session()
            except KdmError as err:
                self._session_failed(err)
            except Exception as exc:  # a bug must not end coordination: log, start over
                self.log.error("shard ddl session crashed", exc)
                self._session_failed(ERR_SHARD_SERVICE_DOWN(exc, problem=repr(exc)))
        self._end_session(ERR_SHARD_SERVICE_DOWN(problem="the coordinator stopped leading"))

    def _session_failed(self, err: KdmError) -> None:
        FAILURES.inc()
        self.log.error("shard ddl session failed", code=err.code, error=err.render())
        self._end_session(err)
        self._stop.wait(RESTART_SECONDS)

    def _end_session(self, error: KdmError) -> None:
        self.ready.clear()
        if self._pending is not None:
            self._pending.request.answer(error)
            self._pending = None
        for mode in (PESSIMISTIC, OPTIMISTIC):
            LOCKS.labels(mode=mode).set(0)

    def _session(self) -> None:
        link = self.open_link()
        try:
            core = self._rebuild(link)
            self.ready.set()
            self.log.info("shard ddl coordination running", locks=core.counts())
            while not self._stop.is_set():
                self._turn(link, core)
        finally:
            link.close()

    def _rebuild(self, link: Link) -> ShardDDLCore:
        core, problems = ShardDDLCore.rebuild(link.read_locks())
        for problem in problems:
            self.log.error("stored lock skipped", code=problem.code, error=problem.render())
        self._publish(core.records())
        resend = core.outstanding()
        if resend:
            self._commit(link, core, Step(operations=list(resend)), None)
        self._count(core)
        return core

    def _turn(self, link: Link, core: ShardDDLCore) -> None:
        """One request (if any may start), one message (if any), then a due unlock's end."""
        if self._pending is None:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                request = None
            if request is not None and not request.answered.is_set():
                self._start_unlock(link, core, request)
        delivery = link.poll(POLL_SECONDS)
        step = Step() if delivery is None else self._handle(core, delivery)
        step, finished = self._finish_due(core, step)
        if delivery is not None or not step.empty():
            self._commit(link, core, step, delivery)
        if finished is not None:
            self._pending = None
            finished.request.answer(step.error)

    def _handle(self, core: ShardDDLCore, delivery: Delivery) -> Step:
        if delivery.message is None:
            return Step(problems=[delivery.problem] if delivery.problem else [])
        return core.handle(delivery.message, delivery.where)

    def _start_unlock(self, link: Link, core: ShardDDLCore, request: UnlockRequest) -> None:
        self.log.info("unlock ddl lock", lock=request.lock_id, owner=request.owner,
                      force_remove=request.force_remove)
        pending = self._pending = PendingUnlock(request,
                                                time.monotonic() + self.unlock_timeout)
        step = core.unlock(request.lock_id, request.owner, request.force_remove)
        self._commit(link, core, step, None)
        if step.error is not None:
            self._pending = None
            pending.request.answer(step.error)

    def _finish_due(self, core: ShardDDLCore, step: Step) -> tuple[Step, PendingUnlock | None]:
        """`step` with the pending unlock's second half when its wait is over."""
        pending = self._pending
        if pending is None or not (core.unlock_due(pending.request.lock_id)
                                   or time.monotonic() >= pending.deadline):
            return step, None
        finish = core.finish_unlock(pending.request.lock_id)
        finish.operations = [op for op in finish.operations if op not in pending.sent]
        merged = step.merge(finish)
        merged.error = finish.error
        return merged, pending

    def _commit(self, link: Link, core: ShardDDLCore, step: Step,
                consumed: Delivery | None) -> None:
        with self._stored_lock:
            stored = dict(self._stored)
        writes = [(key, core.record(key)) for key in sorted(step.touched)]
        writes = [(key, lock) for key, lock in writes if lock != stored.get(key)]
        if writes or step.operations or consumed is not None:
            link.commit(writes, step.operations, consumed)
        for key, lock in writes:
            if lock is None:
                stored.pop(key, None)
            else:
                stored[key] = lock
        self._publish(stored)
        self._after_commit(core, step)

    def _after_commit(self, core: ShardDDLCore, step: Step) -> None:
        for problem in step.problems:
            self.log.error("shard ddl message refused", code=problem.code,
                           error=problem.render())
        for op in step.operations:
            mode = PESSIMISTIC if isinstance(op, PessimisticOperation) else OPTIMISTIC
            OPERATIONS.labels(mode=mode, kind=operation_kind(op)).inc()
            self.log.info("shard ddl operation sent", lock=op.lock_id, task=op.task,
                          source=op.source, kind=operation_kind(op))
        if self._pending is not None:
            self._pending.sent += step.operations
        self._count(core)

    def _publish(self, stored: dict[str, dict[str, Any]]) -> None:
        with self._stored_lock:
            self._stored = stored

    def _count(self, core: ShardDDLCore) -> None:
        for mode, count in core.counts().items():
            LOCKS.labels(mode=mode).set(count)


def _refused(error: KdmError) -> Result:
    return {"result": False, "msg": error.render(), "locks": []}
