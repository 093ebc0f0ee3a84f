"""Named fault-injection points, active only when `KDM_FAULTS` names them.

`KDM_FAULTS="relay.before_commit:3,relay.after_commit"` kills the process with SIGKILL the
3rd time it reaches `relay.before_commit`, and the first time it reaches
`relay.after_commit`. Tests use this to crash a component between two named steps; without
the variable every point is a dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_hits: dict[str, int] = {}


def _armed() -> dict[str, int]:
    armed = {}
    for item in filter(None, (part.strip() for part in os.environ.get("KDM_FAULTS", "")
                              .split(","))):
        name, _, count = item.partition(":")
        armed[name] = int(count or 1)
    return armed


_ARMED = _armed()


def point(name: str) -> None:
    """Die here (SIGKILL, no cleanup) if this point is armed and its count is reached."""
    if name not in _ARMED:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= _ARMED[name]:
        os.kill(os.getpid(), signal.SIGKILL)
