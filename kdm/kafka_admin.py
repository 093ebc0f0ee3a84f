"""Create kdm's topics with the right partitions, cleanup policy and retention, idempotently.

An existing topic whose partitions or cleanup policy differ from the spec is an error (kdm
will not repartition a relay log behind a user's back); a differing retention is brought to
the spec, since retention follows the source's purge policy, which a user may change.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    OffsetSpec,
)

from kdm.config.service import KafkaConfig
from kdm.errors import ERR_KAFKA_ADMIN, ERR_KAFKA_TOPIC_MISMATCH
from kdm.topics import TopicSpec

TIMEOUT = 30.0
# what a partition created a moment ago answers until its leader serves it
_NOT_READY = (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.NOT_LEADER_FOR_PARTITION,
              KafkaError.LEADER_NOT_AVAILABLE, KafkaError._UNKNOWN_PARTITION, KafkaError._NOENT)


def admin_client(kafka: KafkaConfig) -> AdminClient:
    """An AdminClient for the configured cluster."""
    return AdminClient(kafka.client(log_level=3))


def ensure_topics(kafka: KafkaConfig, specs: Iterable[TopicSpec]) -> list[str]:
    """Create missing topics and reconcile existing ones; the names of those created."""
    admin = admin_client(kafka)
    specs = list(specs)
    new = [NewTopic(s.name, num_partitions=s.partitions,
                    replication_factor=kafka.replication_factor, config=s.configs())
           for s in specs]
    created = []
    for spec, future in zip(specs, admin.create_topics(new, request_timeout=TIMEOUT).values(),
                            strict=True):
        try:
            future.result()
            created.append(spec.name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise ERR_KAFKA_ADMIN(exc, op="create", target=spec.name) from exc
            _reconcile(admin, spec)
    _await_ready(admin, [s for s in specs if s.name in created])
    return created


def _await_ready(admin: AdminClient, specs: list[TopicSpec]) -> None:
    """Wait until every partition of topics created a moment ago answers an offsets request:
    a fresh broker can list a new partition's leader before that leader serves it, and a
    client asking meanwhile gets "unknown partition" or "not leader"."""
    waiting = [TopicPartition(s.name, p) for s in specs for p in range(s.partitions)]
    earliest = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
    deadline = time.monotonic() + TIMEOUT
    while waiting:
        asked = admin.list_offsets(dict.fromkeys(waiting, earliest), request_timeout=TIMEOUT)
        problems: list[tuple[TopicPartition, KafkaException]] = []
        for tp, future in asked.items():
            try:
                future.result()
            except KafkaException as failed:
                problems.append((tp, failed))
        waiting = [tp for tp, _ in problems]
        if not problems:
            return
        first, problem = problems[0]
        error = problem.args[0]
        ready_later = error.retriable() or error.code() in _NOT_READY
        if not ready_later or time.monotonic() >= deadline:
            raise ERR_KAFKA_ADMIN(problem, op="list-offsets", target=first.topic) from problem
        time.sleep(0.1)


def topic_configs(admin: AdminClient, name: str) -> dict[str, str]:
    """The topic's effective configs."""
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    try:
        entries = admin.describe_configs([resource], request_timeout=TIMEOUT)[resource].result()
    except KafkaException as exc:
        raise ERR_KAFKA_ADMIN(exc, op="describe-configs", target=name) from exc
    return {k: v.value for k, v in entries.items()}


def partition_count(admin: AdminClient, name: str) -> int:
    """How many partitions the topic has."""
    try:
        metadata = admin.list_topics(topic=name, timeout=TIMEOUT)
    except KafkaException as exc:
        raise ERR_KAFKA_ADMIN(exc, op="describe", target=name) from exc
    return len(metadata.topics[name].partitions)


def _reconcile(admin: AdminClient, spec: TopicSpec) -> None:
    partitions = partition_count(admin, spec.name)
    deadline = time.monotonic() + TIMEOUT
    while partitions == 0 and time.monotonic() < deadline:
        time.sleep(0.2)  # created a moment ago by another client: metadata is on its way
        partitions = partition_count(admin, spec.name)
    if partitions != spec.partitions:
        raise ERR_KAFKA_TOPIC_MISMATCH(topic=spec.name, problem=f"{partitions} partitions, "
                                       f"kdm needs {spec.partitions}")
    current = topic_configs(admin, spec.name)
    if current.get("cleanup.policy") != spec.cleanup_policy:
        raise ERR_KAFKA_TOPIC_MISMATCH(topic=spec.name, problem=f"cleanup.policy="
                                       f"{current.get('cleanup.policy')}, kdm needs "
                                       f"{spec.cleanup_policy}")
    wanted = spec.configs().get("retention.ms")
    if wanted is not None and current.get("retention.ms") != wanted:
        _set_config(admin, spec.name, "retention.ms", wanted)


def _set_config(admin: AdminClient, topic: str, name: str, value: str) -> None:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)])
    try:
        admin.incremental_alter_configs([resource], request_timeout=TIMEOUT)[resource].result()
    except KafkaException as exc:
        raise ERR_KAFKA_ADMIN(exc, op=f"set {name}", target=topic) from exc


def delete_topics(kafka: KafkaConfig, names: Iterable[str]) -> None:
    """Delete topics, ignoring ones that do not exist."""
    admin = admin_client(kafka)
    names = list(names)
    if not names:
        return
    for name, future in admin.delete_topics(names, request_timeout=TIMEOUT).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise ERR_KAFKA_ADMIN(exc, op="delete", target=name) from exc
