"""Integration fixtures beyond the stack: a coordinator in this process for CLI verbs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from coordinator.service import Coordinator
from kdm.config.service import KafkaConfig
from tests.integration.relay_support import wait_for


@pytest.fixture
def master_addr(kafka: KafkaConfig, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A coordinator for this test's topics on a free port; $DM_MASTER_ADDR points at it."""
    coordinator = Coordinator(kafka, "127.0.0.1", 0).start()
    try:
        wait_for(coordinator.is_leader, 30, "the coordinator to lead")
        monkeypatch.setenv("DM_MASTER_ADDR", coordinator.name)
        yield coordinator.name
    finally:
        coordinator.close()
