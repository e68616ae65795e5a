"""`flownb deadletters list | replay ID [--config CONFIG] [--history URL] [--data-dir DIR]`.

Dead letters live in the history database (`flownb.historydb`: `--history URL`, else
`$FLOWNB_HISTORY_DB`, else `.flownb/history.db` in the data directory), where `flownb run`
writes them. A replay builds the engine of CONFIG without starting it (no port is bound,
nothing is consumed) for the modules that replay letters: a webhook.sender re-sends with its
current headers and credentials. Without a config, letters can be listed, not replayed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from flownb.deadletters import DeadLetter, replay_dead_letter
from flownb.errors import FlownbError

if TYPE_CHECKING:
    from flownb.engine import Engine
    from flownb.stores import Stores

T = TypeVar("T")


@dataclass(frozen=True)
class Where:
    """Which config and which dead-letter store a command works on."""

    config: str | None = None
    history: str | None = None  # the history database URL
    data_dir: str | None = None
    stores: Stores | None = None  # given directly (tests, embedding): history is not opened


async def _with_engine(where: Where, fn: Callable[[Engine], Awaitable[T]]) -> T:
    from flownb.engine import Engine
    from flownb.loader import config_from_dict, load_config
    from flownb.stores import Stores

    config = load_config(where.config) if where.config else config_from_dict({})
    history = None
    stores = where.stores
    if stores is None:
        from flownb.historydb import open_history

        history = open_history(where.history, data_dir=where.data_dir)
        stores = Stores(dead_letters=history.dead_letters)
    engine = Engine(config, stores=stores)
    try:
        await engine.build()
        return await fn(engine)
    finally:
        await engine.stop()
        if history is not None:
            await history.aclose()


def _row(letter: DeadLetter) -> str:
    created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(letter.created))
    error = letter.error if len(letter.error) <= 60 else letter.error[:57] + "..."
    replayed = " (replayed)" if letter.replayed is not None else ""
    return (
        f"{letter.id}  {created}  {letter.kind}/{letter.source}  {letter.attempts}x  "
        f"{letter.target}  {error}{replayed}"
    )


def list_command(
    where: Where,
    *,
    kind: str | None = None,
    source: str | None = None,
    include_replayed: bool = False,
    limit: int = 100,
    as_json: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    """Print the dead letters, newest first; exit 0."""

    async def run(engine: Engine) -> list[DeadLetter]:
        return await engine.stores.dead_letters.list(
            kind=kind, source=source, include_replayed=include_replayed, limit=limit
        )

    letters = asyncio.run(_with_engine(where, run))
    if as_json:
        print(json.dumps([letter.to_dict() for letter in letters], indent=2), file=out)
    elif not letters:
        print("no dead letters", file=out)
    else:
        for letter in letters:
            print(_row(letter), file=out)
    return 0


def replay_command(
    where: Where, letter_id: str, *, force: bool = False, out: TextIO = sys.stdout
) -> int:
    """Replay one dead letter; exit 0 once delivered (failures raise, exit 1 in the CLI)."""

    if where.config is None and where.stores is None:
        raise FlownbError(
            "replaying needs the config of the module that sent the letter: "
            f"flownb deadletters replay {letter_id} --config CONFIG"
        )

    async def run(engine: Engine) -> tuple[DeadLetter, Any]:
        return await replay_dead_letter(engine, letter_id, force=force)

    letter, outcome = asyncio.run(_with_engine(where, run))
    detail = ""
    if isinstance(outcome, dict) and "statusCode" in outcome:
        detail = f" ({outcome['statusCode']})"
    print(f"replayed {letter.id} to {letter.target}{detail}", file=out)
    return 0
