"""The lock table both keepers share: locks by ID, rebuilt from persisted locks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar


class Identified(Protocol):
    """A lock: anything with an ID."""

    @property
    def id(self) -> str:
        """The lock ID."""


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
