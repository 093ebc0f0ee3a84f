"""kdm's topic and consumer-group names, and the settings each topic is created with.

Every name takes the configured prefix (default `dm`); see DESIGN.md §2 for who writes and
reads each topic.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TopicSpec:
    """A topic as kdm needs it: partitions, cleanup policy and retention."""

    name: str
    partitions: int = 1
    cleanup_policy: str = "delete"
    retention_ms: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def configs(self) -> dict[str, str]:
        """The topic-level configs to create it with."""
        configs = {"cleanup.policy": self.cleanup_policy, **self.extra}
        if self.retention_ms is not None:
            configs["retention.ms"] = str(self.retention_ms)
        return configs


@dataclass(frozen=True)
class Topics:
    """Names under one prefix."""

    prefix: str = "dm"

    def relay(self, source_id: str, retention_ms: int = -1) -> TopicSpec:
        """The source's relay log: one partition, so the binlog order is the topic order."""
        return TopicSpec(f"{self.prefix}.relay.{source_id}", 1, "delete", retention_ms)

    def ddl(self) -> TopicSpec:
        """Shard-DDL infos and done notices from sync consumers to the coordinator."""
        return TopicSpec(f"{self.prefix}.ddl", 1, "delete", 7 * 24 * 3_600_000)

    def ddl_ops(self) -> TopicSpec:
        """The coordinator's execute/skip operations to sync consumers."""
        return TopicSpec(f"{self.prefix}.ddl-ops", 1, "delete", 7 * 24 * 3_600_000)

    def compacted(self, name: str) -> TopicSpec:
        """A compacted state topic: `sources`, `tasks`, `stages`, `status` or `locks`."""
        # small segments so compaction keeps these topics (read whole at start-up) short
        return TopicSpec(f"{self.prefix}.{name}", 1, "compact", extra={
            "segment.ms": "600000", "min.cleanable.dirty.ratio": "0.1"})

    def control(self) -> list[TopicSpec]:
        """Every topic the control plane needs, created at coordinator start."""
        return [self.ddl(), self.ddl_ops(), *(self.compacted(name) for name in
                                              ("sources", "tasks", "stages", "status",
                                                              "locks"))]

    def workers(self, role: str) -> TopicSpec:
        """The membership topic of one worker role: its partitions are the scheduling slots
        (see kdm/membership.py); nothing is ever written to it."""
        return TopicSpec(f"{self.prefix}.workers.{role}", 24, "delete", 3_600_000)

    def leader(self) -> TopicSpec:
        """The coordinator's membership topic: whoever owns its one partition leads."""
        return TopicSpec(f"{self.prefix}.coordinator", 1, "delete", 3_600_000)

    def worker_group(self, role: str) -> str:
        """The consumer group the workers of one role join on `workers(role)`."""
        return f"{self.prefix}.workers.{role}"

    def leader_group(self) -> str:
        """The consumer group coordinator candidates join on `leader()`."""
        return f"{self.prefix}.coordinator"

    def shard_ddl_group(self) -> str:
        """The consumer group whose committed offset is how far the leading coordinator has
        handled the ddl topic (committed inside its shard-DDL transactions)."""
        return f"{self.prefix}.coordinator.ddl"

    def shard_ddl_transactional_id(self) -> str:
        """The leading coordinator's transactional.id: a new leader fences the old one."""
        return f"{self.prefix}.coordinator.shardddl"

    def sync_group(self, task: str, source_id: str) -> str:
        """The consumer group whose committed offsets are a subtask's sync checkpoint."""
        return f"{self.prefix}.sync.{task}.{source_id}"
