"""Which worker runs what, read from Kafka's group membership (no scheduler state of ours).

Workers of a role join the consumer group `<prefix>.workers.<role>` on a topic of many
partitions and run the units whose key hashes to a partition they own (`kdm.membership`).
The coordinator asks the broker for the group's members and their assignments, so the
`worker` of a source or subtask in query-status is the member that owns its slot now.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaException

from kdm.config.service import KafkaConfig
from kdm.errors import ERR_KAFKA_ADMIN
from kdm.kafka_admin import admin_client
from kdm.membership import slot_of
from kdm.topics import Topics


@dataclass(frozen=True)
class Placement:
    """The live members of one role's group and the partitions each owns."""

    partitions: int
    owners: dict[int, str]  # partition → member name (its client.id)

    @property
    def members(self) -> list[str]:
        """The live members, sorted."""
        return sorted(set(self.owners.values()))

    def worker_of(self, key: str) -> str:
        """The member running `key`'s unit, or "" when no live member owns its slot."""
        return self.owners.get(slot_of(key, self.partitions), "")


def placement(kafka: KafkaConfig, role: str, timeout: float = 10.0) -> Placement:
    """Ask the broker who is in the `role` workers' group and what each owns."""
    topics = Topics(kafka.topic_prefix)
    spec = topics.workers(role)
    return Placement(spec.partitions, _owners(kafka, topics.worker_group(role), spec.name,
                                              timeout))


def leader_name(kafka: KafkaConfig, timeout: float = 10.0) -> str:
    """The leading coordinator's name (its API address), "" while there is none."""
    topics = Topics(kafka.topic_prefix)
    return _owners(kafka, topics.leader_group(), topics.leader().name, timeout).get(0, "")


def _owners(kafka: KafkaConfig, group: str, topic: str, timeout: float) -> dict[int, str]:
    admin = admin_client(kafka)
    try:
        described = admin.describe_consumer_groups([group], request_timeout=timeout)[group]
        members = described.result(timeout).members
    except KafkaException as exc:
        raise ERR_KAFKA_ADMIN(exc, op="describe group", target=group) from exc
    owners = {}
    for member in members:
        for tp in member.assignment.topic_partitions if member.assignment else ():
            if tp.topic == topic:
                owners[tp.partition] = member.client_id
    return owners
