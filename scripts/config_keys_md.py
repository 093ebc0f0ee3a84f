#!/usr/bin/env python3
"""Print the README's configuration key tables from the config models' field metadata."""

from __future__ import annotations

import dataclasses
from typing import Any

from kdm.config.decode import key_paths
from kdm.config.service import ServiceConfig
from kdm.config.source import SourceConfig
from kdm.config.task import TaskConfig

NOOP = ("without effect", "always on", "relay is a Kafka topic", "only recorded")
TABLES = (("source.yaml", SourceConfig), ("task.yaml", TaskConfig),
          ("kdm.yaml, kdm's own", ServiceConfig))


def status(spec: dataclasses.Field[Any]) -> str:
    """yes, no-op or refused, from the field's metadata."""
    if spec.metadata["refused"]:
        return f"refused ({spec.metadata['refused']})"
    return "no-op" if any(word in spec.metadata["doc"] for word in NOOP) else "yes"


def default(spec: dataclasses.Field[Any]) -> str:
    """The default as the table shows it."""
    if spec.metadata["required"]:
        return "required"
    value = spec.default
    if value is dataclasses.MISSING or dataclasses.is_dataclass(value) or value in ((), None):
        return ""
    return f'`"{value}"`' if isinstance(value, str) else f"`{value!r}`"


def rows(cls: type[Any]) -> list[str]:
    """One table row per key of `cls`, nested keys after their parent."""
    return [f"| `{path}` | {default(spec)} | {status(spec)} | {spec.metadata['doc']} |"
            for path, spec in key_paths(cls)]


def main() -> None:
    """Print the three tables."""
    for title, cls in TABLES:
        print(f"\n#### {title}\n\n| key | default | kdm | meaning |\n|---|---|---|---|")
        print("\n".join(rows(cls)))


if __name__ == "__main__":
    main()
