"""The lock table both keepers share: locks by ID, rebuilt from persisted locks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar


class Identified(Protocol):
    """A lock: anything with an ID and a task."""

    @property
    def id(self) -> str:
        """The lock ID."""

    @property
    def task(self) -> str:
        """The task the lock belongs to."""


L = TypeVar("L", bound=Identified)


class LockTable(Generic[L]):
    """Locks by ID."""

    def __init__(self, locks: Iterable[L] = ()) -> None:
        self._locks = {lock.id: lock for lock in locks}

    def __contains__(self, lock_id: object) -> bool:
        return lock_id in self._locks

    def get(self, lock_id: str) -> L | None:
        """The lock of that ID, or None."""
        return self._locks.get(lock_id)

    def locks(self) -> list[L]:
        """Every lock, by ID."""
        return [self._locks[k] for k in sorted(self._locks)]

    def remove_task(self, task: str) -> list[str]:
        """Drop every lock of a task (stop-task --remove-meta); the removed IDs."""
        gone = [key for key, lock in self._locks.items() if lock.task == task]
        for key in gone:
            del self._locks[key]
        return gone
