"""Scheduling and leader election by Kafka group membership (DESIGN.md §1).

Workers of one role join one consumer group subscribed to a topic with many partitions
(`Topics.workers(role)`); each partition is a scheduling slot, and a worker runs the
sources/subtasks whose key hashes (`slot_of`) to a slot it owns. Kafka's group coordinator
is the scheduler: a member that leaves (`stop`), dies (no heartbeat for
`session.timeout.ms`) or hangs (its polling thread silent for `max.poll.interval.ms`) is
removed and its slots move to the survivors. The coordinator runs active/standby the same
way on a one-partition topic (`Leadership`): whoever owns partition 0 leads. Nothing is
ever written to these topics; the members poll only to take part in the group protocol.

Assignment strategy: `cooperative-sticky`, on the classic group protocol.

- Sticky: a rebalance moves only the slots that must move (a joining worker takes a fair
  share, a dead worker's share is spread over the survivors); the others keep running
  without interruption. With `range`/`roundrobin` and eager rebalancing every member drops
  every slot at every membership change and restarts them, which for a worker means
  stopping and resuming every subtask it runs.
- Cooperative: librdkafka (>= 1.6, here 2.x) delivers the callbacks as deltas, and the
  Python client performs the incremental assign itself after `on_assign` returns. The
  bookkeeping below is a set union on assign and a set difference on revoke/lost, which is
  also correct for eager protocols (their revoke always carries the whole assignment
  before the next assign), so it cannot drift whichever protocol is in force.
- Classic group protocol (not KIP-848's `consumer`): there the session timeout is a
  broker-wide setting (45 s by default) rather than the member's own 6 s.

Reconciling. Callers either poll (`owned()`, `generation`, `wait_changed`) from their own
thread, or pass `on_change`, which runs on the polling thread inside the rebalance
callback after each change of the owned set. Kafka hands a revoked slot to its next owner
only after the revoke callback returns, so a hook that stops the slot's work there never
overlaps its successor. The price: librdkafka counts time spent in a callback as time
inside poll() and does not enforce max.poll.interval.ms there, so the hook must be bounded
(join with a timeout). A hook that hangs keeps the slots it was given, with a healthy
heartbeat, until the next rebalance evicts it after the rebalance timeout
(= max.poll.interval.ms). A hook that raises ends the membership (see Failure).
Outside the hook, the polling thread runs only poll and the bookkeeping, so it stalls only
when the whole interpreter does (a long C call holding the GIL, a deadlock). librdkafka's
heartbeat thread keeps the session alive even then, so it is max.poll.interval.ms that
removes such a member.

The fence has limits. A member cut off from the cluster drops its slots itself
(librdkafka's session-timeout check, reported as `on_lost`) at about the same time as the
coordinator reassigns them, and that window is not fenced. Work that must never run twice
carries its own fence as well (the sync consumer's own group on the relay topic, a
transactional producer id, the downstream checkpoint row).

Failure: a fatal client error or an exception on the polling thread ends the membership;
from then on `owned()` raises ERR_MEMBERSHIP_FAILED, so the process stops rather than
silently owning nothing.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterable
from typing import Self

from confluent_kafka import Consumer, KafkaError, TopicPartition

from kdm.config.service import KafkaConfig
from kdm.errors import ERR_MEMBERSHIP_FAILED, KdmError
from kdm.kafka_admin import ensure_topics
from kdm.log import Logger
from kdm.topics import Topics, TopicSpec

POLL_SECONDS = 0.2
# The thread does nothing but poll, so this only trips when the interpreter is wedged. It is
# also the classic protocol's rebalance timeout: how long a rebalance waits for a member
# that is alive but slow to rejoin (e.g. an `on_change` hook still stopping work).
MIN_MAX_POLL_INTERVAL_MS = 10_000


def slot_of(key: str, partitions: int) -> int:
    """The slot (partition) of `key`: crc32 of its UTF-8 bytes modulo `partitions`.

    Stable across processes, hosts and Python versions (unlike `hash()`), so every member
    agrees on which slot a source or subtask belongs to.
    """
    return zlib.crc32(key.encode("utf-8")) % partitions


ChangeHook = Callable[["Membership"], None]


class Membership:
    """Joins `group` subscribed to `topic`; tracks the partitions this member owns."""

    def __init__(self, kafka: KafkaConfig, spec: TopicSpec, group: str, member: str,
                 session_timeout_ms: int = 6000, on_change: ChangeHook | None = None) -> None:
        self.kafka = kafka
        self.spec = spec
        self.group = group
        self.member = member
        self.session_timeout_ms = session_timeout_ms
        self.on_change = on_change
        self.log = Logger("membership").bind(group=group, member=member)
        self._owned: frozenset[int] = frozenset()
        self._generation = 0
        self._failure: KdmError | None = None
        self._changed = threading.Condition()
        self._assigned = threading.Event()
        self._stopping = threading.Event()
        self._consumer: Consumer | None = None
        self._thread: threading.Thread | None = None

    @property
    def topic(self) -> str:
        """The membership topic."""
        return self.spec.name

    @property
    def partitions(self) -> int:
        """How many slots the topic has."""
        return self.spec.partitions

    @property
    def generation(self) -> int:
        """Bumps at every change of the owned set; reconcile when it moves."""
        with self._changed:
            return self._generation

    def consumer_config(self) -> dict[str, object]:
        """The librdkafka settings of the member (see the module docstring for the choices)."""
        return self.kafka.client(**{
            "group.id": self.group, "client.id": self.member, "group.protocol": "classic",
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": self.session_timeout_ms,
            # a short heartbeat is how survivors learn of a rebalance, so failover is quick
            "heartbeat.interval.ms": max(100, self.session_timeout_ms // 6),
            "max.poll.interval.ms": max(MIN_MAX_POLL_INTERVAL_MS, 2 * self.session_timeout_ms),
            "enable.auto.commit": False, "enable.auto.offset.store": False,
            "auto.offset.reset": "latest", "log_level": 3, "error_cb": self._client_error})

    def start(self) -> Self:
        """Ensure the topic, join the group and keep polling on a daemon thread."""
        if self._thread is not None:
            raise RuntimeError(f"membership {self.member} in {self.group} already started")
        ensure_topics(self.kafka, [self.spec])
        consumer = Consumer(self.consumer_config())
        consumer.subscribe([self.topic], on_assign=self._on_assign,
                           on_revoke=self._on_revoke, on_lost=self._on_lost)
        self._consumer = consumer
        self._thread = threading.Thread(target=self._run, name=f"membership-{self.member}",
                                        daemon=True)
        self._thread.start()
        self.log.info("joining group", topic=self.topic, partitions=self.partitions)
        return self

    def stop(self) -> None:
        """Leave the group cleanly, so the others rebalance at once instead of after the
        session timeout."""
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()  # (from the hook, the thread leaves once the hook returns)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def owned(self) -> frozenset[int]:
        """The partitions this member owns now."""
        with self._changed:
            if self._failure is not None:
                raise self._failure
            return self._owned

    def owns(self, key: str) -> bool:
        """Whether `key`'s slot is one this member owns."""
        return slot_of(key, self.partitions) in self.owned()

    def wait_assigned(self, timeout: float) -> bool:
        """True once a first assignment arrived (possibly empty), False after `timeout`."""
        arrived = self._assigned.wait(timeout)
        self.owned()  # raise the failure rather than report a half-truth
        return arrived

    def wait_changed(self, since: int, timeout: float) -> int:
        """The generation once it differs from `since`, or the same one after `timeout`."""
        with self._changed:
            self._changed.wait_for(lambda: self._generation != since, timeout)
            return self._generation

    # -- bookkeeping: pure given the callback arguments, so unit tests drive it directly --

    def assign(self, partitions: Iterable[TopicPartition]) -> frozenset[int]:
        """Record an assignment (the delta under cooperative protocols); the owned set."""
        self._assigned.set()
        return self._update(self._owned | self._ours(partitions))

    def revoke(self, partitions: Iterable[TopicPartition]) -> frozenset[int]:
        """Record a revocation or a loss; the owned set."""
        return self._update(self._owned - self._ours(partitions))

    def fail(self, problem: BaseException | str) -> None:
        """End the membership: own nothing, and make `owned()` raise from now on."""
        failure = ERR_MEMBERSHIP_FAILED(problem, member=self.member, group=self.group,
                                        problem=str(problem))
        with self._changed:  # no `on_change` here: the hook may be what failed
            self._failure = failure
            self._owned = frozenset()
            self._generation += 1
            self._changed.notify_all()
        self._assigned.set()
        self._stopping.set()
        self.log.error("membership failed", failure)

    def _ours(self, partitions: Iterable[TopicPartition]) -> frozenset[int]:
        return frozenset(p.partition for p in partitions if p.topic == self.topic)

    def _update(self, owned: frozenset[int]) -> frozenset[int]:
        with self._changed:
            if owned == self._owned:
                return owned
            self._owned = owned
            self._generation += 1
            self._changed.notify_all()
        self.log.info("assignment changed", owned=sorted(owned), generation=self.generation)
        if self.on_change is not None:
            self.on_change(self)
        return owned

    # -- the polling thread and the client's callbacks -------------------------------------

    def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        try:
            while not self._stopping.is_set():
                msg = consumer.poll(POLL_SECONDS)
                error = msg.error() if msg is not None else None
                if error is not None:
                    self._client_error(error)
        except Exception as exc:  # the hook or the client broke: stop owning anything
            self.fail(exc)
        finally:
            self._leave(consumer)

    def _leave(self, consumer: Consumer) -> None:
        try:
            consumer.close()  # revokes through the callbacks, then sends LeaveGroup
        except Exception as exc:
            self.log.warning("leaving the group failed", error=str(exc))
        self._update(frozenset())
        self.log.info("left group")

    def _client_error(self, error: KafkaError) -> None:
        if error.fatal():
            self.fail(str(error))
        else:
            self.log.warning("group client error", error=str(error), code=error.code())

    def _on_assign(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        self.assign(partitions)

    def _on_revoke(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        self.revoke(partitions)

    def _on_lost(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        self.log.warning("assignment lost", partitions=sorted(p.partition for p in partitions))
        self.revoke(partitions)


def worker_membership(kafka: KafkaConfig, role: str, member: str,
                      session_timeout_ms: int = 6000,
                      on_change: ChangeHook | None = None) -> Membership:
    """The membership of one worker of `role` in that role's group (not yet started)."""
    topics = Topics(kafka.topic_prefix)
    return Membership(kafka, topics.workers(role), topics.worker_group(role), member,
                      session_timeout_ms, on_change)


class Leadership(Membership):
    """Active/standby among coordinator candidates: the owner of the one partition leads."""

    def __init__(self, kafka: KafkaConfig, member: str, session_timeout_ms: int = 6000,
                 on_change: ChangeHook | None = None) -> None:
        topics = Topics(kafka.topic_prefix)
        super().__init__(kafka, topics.leader(), topics.leader_group(), member,
                         session_timeout_ms, on_change)

    def is_leader(self) -> bool:
        """Whether this candidate leads now."""
        return 0 in self.owned()
