"""kdm.yaml: what every kdm process needs that DM's files do not carry (Kafka's whereabouts).

Each key can be overridden by an environment variable, as containers prefer:
KDM_KAFKA_BOOTSTRAP_SERVERS, KDM_TOPIC_PREFIX, KDM_SCHEMA_REGISTRY_URL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kdm.config.decode import decode_document, key, read_text

ENV_OVERRIDES = {
    "KDM_KAFKA_BOOTSTRAP_SERVERS": "bootstrap_servers",
    "KDM_TOPIC_PREFIX": "topic_prefix",
    "KDM_SCHEMA_REGISTRY_URL": "schema_registry_url",
}


@dataclass(frozen=True)
class KafkaConfig:
    """How to reach Kafka and how kdm names its topics there."""

    bootstrap_servers: str = key("bootstrap-servers", "Comma-separated host:port list.",
                                 default="127.0.0.1:9092")
    topic_prefix: str = key("topic-prefix", "Prefix of every kdm topic and consumer group.",
                            default="dm")
    schema_registry_url: str = key("schema-registry-url", "Confluent-compatible registry; "
                                   "empty = ids from the repository's schema files.",
                                   default="")
    replication_factor: int = key("replication-factor", "Replication of created topics; -1 = "
                                  "the broker's default.", default=-1)
    client_config: dict[str, str] = key("client-config", "Extra librdkafka properties (TLS, "
                                        "SASL) for every client.", factory=dict)

    def client(self, **extra: Any) -> dict[str, Any]:
        """A librdkafka configuration for this cluster with `extra` settings on top."""
        return {"bootstrap.servers": self.bootstrap_servers, **self.client_config, **extra}


@dataclass(frozen=True)
class ServiceConfig:
    """The whole kdm.yaml."""

    kafka: KafkaConfig = key("kafka", "Kafka connection and naming.", factory=KafkaConfig)


def with_env(cfg: ServiceConfig, env: dict[str, str] | None = None) -> ServiceConfig:
    """`cfg` with the KDM_* environment overrides applied."""
    env = dict(os.environ) if env is None else env
    changes: dict[str, Any] = {field: env[var] for var, field in ENV_OVERRIDES.items()
                               if env.get(var)}
    return replace(cfg, kafka=replace(cfg.kafka, **changes)) if changes else cfg


def parse_service(text: str, path: str = "<kdm.yaml>") -> ServiceConfig:
    """Parse a kdm.yaml text (no environment overrides)."""
    cfg, _ = decode_document(ServiceConfig, text, path)
    return cfg


def load_service(path: str | Path | None = None) -> ServiceConfig:
    """kdm.yaml from `path` (or defaults when None), then environment overrides."""
    if path is None:
        return with_env(ServiceConfig())
    return with_env(parse_service(read_text(path), str(path)))
