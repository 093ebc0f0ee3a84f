"""DM's auto-resume backoff: how long a unit paused by a resumable error waits before it is
resumed, from the source's `checker` settings.

The interval starts at backoff-min and each error multiplies it by backoff-factor, up to
backoff-max. Running without error shrinks it again: each whole backoff-rollback of healthy
running takes one step back, never below backoff-min. With backoff-jitter the wait is drawn
uniformly between backoff-min and the interval, so units paused together do not resume
together. Time spent paused waiting for the resume does not count as healthy.

Worked example, backoff-min 1s, factor 2, max 5s, rollback 60s, no jitter: errors in quick
succession wait 1, 2, 4, 5, 5 s (the step stops growing at the cap, step 3). After 130 s of
running without error two whole rollback periods have taken two steps back, so the next
error waits 2 s.

DM's checker also polls every check-interval; here the runner waits exactly the interval.
The class is pure: callers pass the time (`time.monotonic()` in production, a fake in tests).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from kdm.config.source import Checker


class Backoff:
    """The wait before each auto-resume, growing on errors and shrinking while healthy."""

    def __init__(self, checker: Checker, rand: Callable[[], float] = random.random) -> None:
        self.checker = checker
        self.step = 0
        self._rand = rand
        self._healthy_since: float | None = None

    def current(self) -> float:
        """The interval the next error waits (before jitter)."""
        low, high = self._bounds()
        return min(low * self.checker.backoff_factor ** self.step, high)

    def next(self, now: float) -> float:
        """An error paused the unit at `now`: the seconds to wait before resuming it."""
        self.succeeded(now)  # the healthy running up to this error still counts
        interval = self.current()
        if self.checker.backoff_jitter:
            low = self._bounds()[0]
            interval = low + self._rand() * (interval - low)
        if self.checker.backoff_factor > 1 and self.current() < self._bounds()[1]:
            self.step += 1
        self._healthy_since = None
        return interval

    def succeeded(self, now: float) -> None:
        """The unit runs without error at `now`: each whole backoff-rollback since it started
        doing so (or since the last step back) takes the interval one step back."""
        if self._healthy_since is None:
            self._healthy_since = now
            return
        rollback = float(self.checker.backoff_rollback)
        if rollback <= 0:
            self.step = 0
            return
        periods = int((now - self._healthy_since) // rollback)
        self.step -= min(periods, self.step)
        self._healthy_since += periods * rollback

    def _bounds(self) -> tuple[float, float]:
        low = float(self.checker.backoff_min)
        return low, max(low, float(self.checker.backoff_max))
