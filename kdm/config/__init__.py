"""DM's source.yaml and task.yaml, and kdm's own kdm.yaml, as typed frozen models."""

from kdm.config.service import KafkaConfig, ServiceConfig, load_service, parse_service
from kdm.config.source import SourceConfig, load_source, parse_source
from kdm.config.task import TaskConfig, load_task, parse_task, resolve_units

__all__ = [
    "KafkaConfig", "ServiceConfig", "SourceConfig", "TaskConfig", "load_service", "load_source",
    "load_task", "parse_service", "parse_source", "parse_task", "resolve_units",
]
