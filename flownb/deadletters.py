"""Dead letters: work that could not be delivered after every retry, kept to be replayed.

A webhook whose target kept failing, for example, ends here with its payload, headers and the
last error. The store contract is small so that the durable store of the execution history
(SQLite, PostgreSQL) can hold dead letters too; `MemoryDeadLetters` is the default.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from flownb.execution import new_id


@dataclass
class DeadLetter:
    kind: str  # what produced it, e.g. "webhook"
    source: str  # the module that gave up, e.g. "notify-partner"
    target: str  # where it was going, e.g. the URL
    payload: Any
    error: str
    attempts: int
    headers: dict[str, str] = field(default_factory=dict)
    id: str = field(default_factory=new_id)
    created: float = field(default_factory=time.time)
    replayed: float | None = None  # when a replay delivered it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DeadLetterStore(Protocol):
    async def add(self, letter: DeadLetter) -> None: ...

    async def get(self, letter_id: str) -> DeadLetter | None: ...

    async def list(
        self,
        *,
        kind: str | None = None,
        source: str | None = None,
        include_replayed: bool = False,
        limit: int = 100,
    ) -> list[DeadLetter]:
        """Newest first."""
        ...

    async def mark_replayed(self, letter_id: str, when: float) -> None: ...

    async def delete(self, letter_id: str) -> bool: ...


class MemoryDeadLetters:
    """Dead letters in memory (lost on restart; use the history database to keep them)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._items: dict[str, DeadLetter] = {}
        self._capacity = capacity

    async def add(self, letter: DeadLetter) -> None:
        self._items[letter.id] = letter
        while len(self._items) > self._capacity:
            del self._items[next(iter(self._items))]

    async def get(self, letter_id: str) -> DeadLetter | None:
        return self._items.get(letter_id)

    async def list(
        self,
        *,
        kind: str | None = None,
        source: str | None = None,
        include_replayed: bool = False,
        limit: int = 100,
    ) -> list[DeadLetter]:
        found = [
            letter
            for letter in reversed(self._items.values())
            if (kind is None or letter.kind == kind)
            and (source is None or letter.source == source)
            and (include_replayed or letter.replayed is None)
        ]
        return found[:limit]

    async def mark_replayed(self, letter_id: str, when: float) -> None:
        letter = self._items.get(letter_id)
        if letter is not None:
            letter.replayed = when

    async def delete(self, letter_id: str) -> bool:
        return self._items.pop(letter_id, None) is not None
