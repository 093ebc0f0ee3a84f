"""The auto-resume backoff under a fake clock: growth, cap, rollback and jitter."""

from __future__ import annotations

import pytest

from kdm.backoff import Backoff
from kdm.config.decode import Duration
from kdm.config.source import Checker


def checker(jitter: bool = False, low: float = 1, high: float = 5, rollback: float = 60,
            factor: float = 2.0) -> Checker:
    """A checker with the given backoff settings."""
    return Checker(backoff_min=Duration(low), backoff_max=Duration(high),
                   backoff_rollback=Duration(rollback), backoff_jitter=jitter,
                   backoff_factor=factor)


def test_it_starts_at_min_and_grows_by_factor_up_to_max() -> None:
    backoff = Backoff(checker())
    waits = [backoff.next(now=float(t)) for t in range(6)]
    assert waits == [1, 2, 4, 5, 5, 5]
    assert backoff.step == 3


def test_dm_defaults() -> None:
    backoff = Backoff(Checker(backoff_jitter=False))
    waits = [backoff.next(now=0.0) for _ in range(10)]
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]


def test_each_whole_rollback_of_healthy_running_takes_one_step_back() -> None:
    backoff = Backoff(checker())
    for t in range(4):
        backoff.next(now=float(t))
    backoff.succeeded(now=10.0)  # resumed: healthy from here
    backoff.succeeded(now=69.0)
    assert backoff.step == 3
    backoff.succeeded(now=70.0)
    assert backoff.step == 2
    backoff.succeeded(now=140.0)  # one more whole period since the last step back
    assert backoff.step == 1
    assert backoff.next(now=141.0) == 2


def test_an_error_after_long_healthy_running_applies_the_rollback_first() -> None:
    backoff = Backoff(checker())
    for t in range(4):
        backoff.next(now=float(t))
    backoff.succeeded(now=10.0)
    assert backoff.next(now=140.0) == 2  # two periods: step 3 → 1


def test_rollback_never_goes_below_min() -> None:
    backoff = Backoff(checker())
    backoff.next(now=0.0)
    backoff.succeeded(now=1.0)
    backoff.succeeded(now=10_000.0)
    assert backoff.step == 0
    assert backoff.next(now=10_001.0) == 1


def test_time_paused_does_not_count_as_healthy() -> None:
    backoff = Backoff(checker(rollback=10))
    backoff.next(now=0.0)
    backoff.next(now=0.5)
    assert backoff.step == 2
    # paused for 100 s waiting, resumed at 100, failed again at once
    backoff.succeeded(now=100.0)
    assert backoff.next(now=100.1) == 4


def test_jitter_lies_between_min_and_the_interval() -> None:
    draws = iter([0.0, 0.5, 1.0])
    backoff = Backoff(checker(jitter=True, low=2, high=100), rand=lambda: next(draws))
    assert backoff.next(now=0.0) == 2  # interval 2: nothing to spread
    assert backoff.next(now=0.0) == 3  # interval 4, half way from 2
    assert backoff.next(now=0.0) == 8  # interval 8, the top


@pytest.mark.parametrize("factor", [1.0, 0.5])
def test_a_factor_of_one_or_less_never_grows(factor: float) -> None:
    backoff = Backoff(checker(factor=factor))
    assert [backoff.next(now=0.0) for _ in range(3)] == [1, 1, 1]


def test_a_min_above_max_waits_min() -> None:
    backoff = Backoff(checker(low=10, high=5))
    assert [backoff.next(now=0.0) for _ in range(2)] == [10, 10]


def test_a_zero_rollback_resets_as_soon_as_it_runs() -> None:
    backoff = Backoff(checker(rollback=0))
    backoff.next(now=0.0)
    backoff.next(now=0.0)
    backoff.succeeded(now=5.0)
    backoff.succeeded(now=5.0)
    assert backoff.step == 0
