"""The stage table is exactly the seeds' diagram; user verbs move only along their edges."""

from __future__ import annotations

import itertools

import pytest

from kdm.errors import ERR_SYNC_ILLEGAL_COMMAND, ERR_SYNC_STAGE, KdmError
from kdm.stages import TRANSITIONS, VERB_TARGET, Stage, command_transition, transition

N, R, P, S, F = Stage.NEW, Stage.RUNNING, Stage.PAUSED, Stage.STOPPED, Stage.FINISHED

# The diagram at the end of seeds 000 and 002, edge by edge.
DIAGRAM = {
    (N, R),  # the subtask starts without error
    (N, P),  # error occurs
    (R, P),  # error occurs, or pause-task
    (P, R),  # resume-task
    (R, S),  # stop task
    (P, S),  # stop task
    (S, R),  # start task
    (R, F),  # a full-mode task completes
}

# (verb, stage) → the stage the verb yields, or None when it is refused.
VERBS: dict[tuple[str, Stage], Stage | None] = {
    ("start-task", N): R, ("start-task", R): None, ("start-task", P): None,
    ("start-task", S): R, ("start-task", F): None,
    ("pause-task", N): None, ("pause-task", R): P, ("pause-task", P): P,
    ("pause-task", S): None, ("pause-task", F): None,
    ("resume-task", N): None, ("resume-task", R): R, ("resume-task", P): R,
    ("resume-task", S): None, ("resume-task", F): None,
    ("stop-task", N): None, ("stop-task", R): S, ("stop-task", P): S,
    ("stop-task", S): None, ("stop-task", F): None,
}


def test_the_table_is_the_diagram() -> None:
    edges = {(src, dst) for src, targets in TRANSITIONS.items() for dst in targets}
    assert edges == DIAGRAM
    assert set(TRANSITIONS) == set(Stage)


def test_new_cannot_be_stopped() -> None:
    assert S not in TRANSITIONS[N]


@pytest.mark.parametrize(("current", "wanted"), sorted(DIAGRAM, key=str), ids=str)
def test_every_legal_edge_is_taken(current: Stage, wanted: Stage) -> None:
    assert transition(current, wanted, ERR_SYNC_STAGE, task="t", source="s") is wanted


@pytest.mark.parametrize(("current", "wanted"), list(itertools.product(Stage, Stage)),
                         ids=lambda s: s.value)
def test_every_pair_against_the_diagram(current: Stage, wanted: Stage) -> None:
    if current == wanted or (current, wanted) in DIAGRAM:
        assert transition(current, wanted, ERR_SYNC_STAGE, task="t", source="s") is wanted
        return
    with pytest.raises(KdmError) as caught:
        transition(current, wanted, ERR_SYNC_STAGE, task="t", source="s")
    assert caught.value.spec is ERR_SYNC_STAGE
    assert f"from {current.value} to {wanted.value}" in caught.value.message


def test_verb_targets() -> None:
    assert VERB_TARGET == {"start-task": R, "pause-task": P, "resume-task": R,
                           "stop-task": S}


@pytest.mark.parametrize(("verb", "current"), list(VERBS), ids=lambda v: getattr(v, "value", v))
def test_every_verb_on_every_stage(verb: str, current: Stage) -> None:
    expected = VERBS[(verb, current)]
    if expected is not None:
        assert command_transition(current, verb) is expected
        return
    with pytest.raises(KdmError) as caught:
        command_transition(current, verb)
    assert caught.value.spec is ERR_SYNC_ILLEGAL_COMMAND
    wanted = VERB_TARGET[verb].value
    assert caught.value.message == f"{verb} cannot move a subtask from {current.value} to " \
        f"{wanted}"


def test_the_verb_table_covers_every_verb_and_stage() -> None:
    assert set(VERBS) == set(itertools.product(VERB_TARGET, Stage))


def test_a_verbs_real_move_is_a_table_edge() -> None:
    for (verb, current), result in VERBS.items():
        if result is not None and result != current:
            assert (current, result) in DIAGRAM, verb


def test_an_unknown_verb_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown verb"):
        command_transition(R, "restart-task")


@pytest.mark.parametrize(("verb", "stage"), [("pause-task", P), ("resume-task", R)])
def test_dms_no_ops_return_the_stage_unchanged(verb: str, stage: Stage) -> None:
    assert command_transition(stage, verb) is stage


def test_the_refusal_carries_the_subtask_as_context() -> None:
    with pytest.raises(KdmError) as caught:
        command_transition(S, "resume-task", task="t", source="s")
    assert caught.value.fields["task"] == "t" and caught.value.fields["source"] == "s"
    assert caught.value.code == 36011
