"""The task status fold: one test per row of seed 002's "Task status" table, then order."""

from __future__ import annotations

from typing import Any

import pytest

from kdm.task_status import task_status

HINT = ". Please run `query-status <task>` to get more details."
ERROR = {"ErrCode": 36002, "Message": "the downstream refused a row change"}


def sub(source: str, stage: str, errors: bool = False, unit: str = "Sync") -> dict[str, Any]:
    """A subtask status record with the fields the fold reads."""
    return {"source": source, "stage": stage, "unit": unit,
            "errors": [ERROR] if errors else []}


def relay(stage: str, errors: bool = False) -> dict[str, Any]:
    """A relay status record with the fields the fold reads."""
    return {"stage": stage, "errors": [ERROR] if errors else []}


# -- the rows of the table --------------------------------------------------------------

def test_a_paused_subtask_with_errors_is_an_error() -> None:
    subs = [sub("a", "Running"), sub("b", "Paused", errors=True)]
    assert task_status(subs, {}) == "Error - Some error occurred in subtask" + HINT


def test_a_running_sync_subtask_whose_relay_has_errors() -> None:
    subs = [sub("a", "Running")]
    assert task_status(subs, {"a": relay("Paused", errors=True)}) == \
        "Error - Relay status is Error" + HINT


def test_a_running_sync_subtask_whose_relay_is_paused() -> None:
    assert task_status([sub("a", "Running")], {"a": relay("Paused")}) == \
        "Error - Relay status is Paused" + HINT


def test_a_running_sync_subtask_whose_relay_is_stopped() -> None:
    assert task_status([sub("a", "Running")], {"a": relay("Stopped")}) == \
        "Error - Relay status is Stopped" + HINT


def test_a_paused_subtask_without_errors_is_paused() -> None:
    subs = [sub("a", "Running"), sub("b", "Paused"), sub("c", "New")]
    assert task_status(subs, {}) == "Paused"


def test_all_new_is_new() -> None:
    assert task_status([sub("a", "New"), sub("b", "New")], {}) == "New"


def test_all_finished_is_finished() -> None:
    assert task_status([sub("a", "Finished"), sub("b", "Finished")], {}) == "Finished"


def test_all_stopped_is_stopped() -> None:
    assert task_status([sub("a", "Stopped"), sub("b", "Stopped")], {}) == "Stopped"


@pytest.mark.parametrize("stages", [
    ["Running", "Running"], ["New", "Running"], ["Running", "Finished"],
    ["Stopped", "Running"], ["New", "Finished", "Stopped"]], ids="-".join)
def test_anything_else_is_running(stages: list[str]) -> None:
    subs = [sub(str(i), stage) for i, stage in enumerate(stages)]
    assert task_status(subs, {}) == "Running"


# -- order and details ------------------------------------------------------------------

@pytest.mark.parametrize("where", [0, 1, 2])
def test_an_error_anywhere_wins(where: int) -> None:
    subs = [sub("a", "Paused"), sub("b", "Running"), sub("c", "New")]
    subs[where] = sub(subs[where]["source"], "Paused", errors=True)
    assert task_status(subs, {}).startswith("Error - Some error occurred in subtask")


def test_the_first_error_is_kept() -> None:
    subs = [sub("a", "Running"), sub("b", "Paused", errors=True)]
    assert task_status(subs, {"a": relay("Stopped")}) == "Error - Relay status is Stopped" + HINT
    subs.reverse()
    assert task_status(subs, {"a": relay("Stopped")}) == \
        "Error - Some error occurred in subtask" + HINT


def test_paused_sticks_over_later_stages() -> None:
    subs = [sub("a", "Paused"), sub("b", "Running"), sub("c", "Finished")]
    assert task_status(subs, {}) == "Paused"


def test_the_hint_is_added_once_and_only_to_errors() -> None:
    status = task_status([sub("a", "Paused", errors=True), sub("b", "Paused", errors=True)], {})
    assert status.count(HINT) == 1 and status.endswith(HINT)
    assert HINT not in task_status([sub("a", "Paused")], {})


@pytest.mark.parametrize(("subtask", "source_relay"), [
    (sub("a", "Running", unit="Load"), relay("Stopped")),
    (sub("a", "Paused"), relay("Stopped")),
    (sub("a", "Running"), relay("Running", errors=True)),
    (sub("a", "Running"), None)], ids=["not-sync", "not-running", "relay-running", "no-relay"])
def test_the_relay_counts_only_for_a_running_sync_subtask(
        subtask: dict[str, Any], source_relay: dict[str, Any] | None) -> None:
    relays = {"a": source_relay} if source_relay is not None else {}
    assert not task_status([subtask], relays).startswith("Error")


def test_a_relay_of_another_source_does_not_count() -> None:
    assert task_status([sub("a", "Running")], {"b": relay("Stopped")}) == "Running"


def test_no_subtasks_has_no_status() -> None:
    assert task_status([], {}) == ""
