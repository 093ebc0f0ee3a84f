"""Create kdm's topics with the right partitions, cleanup policy and retention, idempotently.

An existing topic whose partitions or cleanup policy differ from the spec is an error (kdm
will not repartition a relay log behind a user's back); a differing retention is brought to
the spec, since retention follows the source's purge policy, which a user may change.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

from kdm.config.service import KafkaConfig
from kdm.errors import ERR_KAFKA_ADMIN, ERR_KAFKA_TOPIC_MISMATCH
from kdm.topics import TopicSpec

TIMEOUT = 30.0


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
    return created


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
