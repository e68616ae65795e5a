"""Dead letters: work that could not be delivered after every retry, kept to be replayed.

A webhook whose target kept failing, for example, ends here with its payload, headers and the
last error. The store contract is small so that the durable store of the execution history
(SQLite, PostgreSQL) can hold dead letters too; `MemoryDeadLetters` is the default.

Replaying: modules that produce dead letters register a replayer for their `kind` in the
engine's `Replayers` (`engine.replayers`) when they init; `replay_dead_letter(engine, id)` finds
the letter, hands it to the replayer of its kind and marks it replayed once that succeeded. The
management API, the CLI and notebooks replay through it without knowing any module.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from flownb.errors import ExecutionError, NotFoundError, UnknownNameError
from flownb.execution import new_id

if TYPE_CHECKING:
    from flownb.engine import Engine


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


# --- replaying ---------------------------------------------------------------------------------
Replayer = Callable[[DeadLetter], Awaitable[Any]]


class Replayers:
    """Replayers by dead-letter kind. A replayer sends the letter once more and raises an
    `ExecutionError` when that fails; what it returns is reported to the caller."""

    def __init__(self) -> None:
        self._items: dict[str, Replayer] = {}

    def register(self, kind: str, replayer: Replayer) -> None:
        """Add (or replace: every module of a kind registers the same one) a replayer."""
        self._items[kind] = replayer

    def get(self, kind: str) -> Replayer:
        try:
            return self._items[kind]
        except KeyError:
            raise UnknownNameError("dead-letter kind", kind, list(self._items)) from None

    def __contains__(self, kind: object) -> bool:
        return kind in self._items

    def kinds(self) -> list[str]:
        return sorted(self._items)


class AlreadyReplayed(ExecutionError):
    status = 409


async def replay(
    store: DeadLetterStore,
    replayers: Replayers,
    letter_id: str,
    *,
    force: bool = False,
    clock: Callable[[], float] = time.time,
) -> tuple[DeadLetter, Any]:
    """Replay one dead letter; returns it (marked replayed) and what its replayer returned.

    Raises `NotFoundError` (404) for an unknown id, `AlreadyReplayed` (409) for a letter
    replayed before unless `force`, `UnknownNameError` when no module of this config replays
    its kind, and the replayer's `ExecutionError` when the new attempt fails (the letter then
    stays as it was, to be replayed later).
    """
    letter = await store.get(letter_id)
    if letter is None:
        raise NotFoundError(f"no dead letter with id {letter_id!r}")
    if letter.replayed is not None and not force:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(letter.replayed))
        raise AlreadyReplayed(
            f"dead letter {letter_id} was already replayed at {at}; replay it again with force"
        )
    if letter.kind not in replayers:
        known = ", ".join(replayers.kinds()) or "none"
        raise ExecutionError(
            f"dead letter {letter_id} is a {letter.kind!r} letter from {letter.source!r}, and "
            f"no module of this config replays {letter.kind!r} letters (kinds: {known})",
            status=409,
        )
    outcome = await replayers.get(letter.kind)(letter)
    when = clock()
    await store.mark_replayed(letter.id, when)
    letter.replayed = when
    return letter, outcome


async def replay_dead_letter(
    engine: Engine, letter_id: str, *, force: bool = False
) -> tuple[DeadLetter, Any]:
    """`replay` with the engine's dead-letter store and replayers."""
    return await replay(
        engine.stores.dead_letters,
        engine.replayers,
        letter_id,
        force=force,
        clock=engine.clock.now,
    )
