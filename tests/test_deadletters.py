"""Dead letters listed and replayed from the CLI (a real `flownb` process on a SQLite history
database) and from a notebook `Workflow`, against a real local HTTP target."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from httptarget import Target, serve

from flownb.deadletters import DeadLetter, MemoryDeadLetters, Replayers, replay
from flownb.errors import ExecutionError, NotFoundError, UnknownNameError
from flownb.historydb import SqlHistory
from flownb.modules.webhook import WebhookSender
from flownb.workflow import Workflow


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    async with serve(Target()) as t:
        yield t


def sender_yaml(url: str) -> str:
    return f"""
modules:
  - name: notify
    type: webhook.sender
    config:
      url: "{url}/hooks"
      maxRetries: 0
      headers: {{Authorization: "Bearer live-token"}}
"""


def letter(target: Target, **extra: object) -> DeadLetter:
    fields: dict[str, object] = {
        "kind": "webhook",
        "source": "notify",
        "target": target.url + "/hooks",
        "payload": {"order": 7},
        "error": "replied 500",
        "attempts": 6,
        "headers": {"Idempotency-Key": "order-7"},
        **extra,
    }
    return DeadLetter(**fields)  # type: ignore[arg-type]


async def flownb(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flownb",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_lists_and_replays_from_the_history_database(
    target: Target, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    history = SqlHistory(url)
    dead = letter(target)
    other = letter(target, kind="other", source="elsewhere")
    try:
        await history.dead_letters.add(dead)
        await history.dead_letters.add(other)
    finally:
        await history.aclose()
    config = tmp_path / "flow.yaml"
    config.write_text(sender_yaml(target.url))

    replay = ("deadletters", "replay", dead.id, "--history", url)
    listed, by_kind, no_config = await asyncio.gather(
        flownb("deadletters", "list", "--history", url),
        flownb("deadletters", "list", "--history", url, "--kind", "webhook", "--json"),
        flownb(*replay),
    )
    assert listed[0] == 0 and dead.id in listed[1] and other.id in listed[1]
    assert [item["id"] for item in json.loads(by_kind[1])] == [dead.id]
    assert json.loads(by_kind[1])[0]["payload"] == {"order": 7}
    assert no_config[0] == 1 and "--config CONFIG" in no_config[2]

    target.script = [500]
    code, _, err = await flownb(*replay, "--config", str(config))
    assert code == 1 and "replied 500" in err  # the target still fails: the letter stays

    code, out, err = await flownb(*replay, "--config", str(config))
    assert code == 0, err
    assert f"replayed {dead.id}" in out and "(200)" in out
    delivered = target.seen[-1]
    assert orjson.loads(delivered.body) == {"order": 7}
    assert delivered.headers["Idempotency-Key"] == "order-7"
    assert delivered.headers["Authorization"] == "Bearer live-token"  # from today's config

    pending, everything, again = await asyncio.gather(
        flownb("deadletters", "list", "--history", url, "--json"),
        flownb("deadletters", "list", "--history", url, "--all", "--json"),
        flownb(*replay, "--config", str(config)),
    )
    assert [item["id"] for item in json.loads(pending[1])] == [other.id]
    replayed = {item["id"]: item["replayed"] for item in json.loads(everything[1])}
    assert replayed[dead.id] is not None and replayed[other.id] is None
    assert again[0] == 1 and "already replayed" in again[2]


async def test_notebook_lists_and_replays(target: Target) -> None:
    target.script = [500]
    wf = Workflow(sender_yaml(target.url), name="hooks")
    await wf.start()
    try:
        assert wf.engine is not None
        sender = wf.engine.services.get("notify", WebhookSender)
        sent = await sender.send({"order": 9}, idempotency_key="order-9", wait=True)
        assert sent["status"] == "dead"
        (found,) = await wf.dead_letters()
        assert found["id"] == sent["deadLetter"] and found["payload"] == {"order": 9}
        assert await wf.replay(found["id"]) == {
            "id": found["id"],
            "status": "delivered",
            "statusCode": 200,
        }
        assert await wf.dead_letters() == []
        assert len(await wf.dead_letters(include_replayed=True)) == 1
    finally:
        await wf.stop()


async def test_replay_through_the_registry_by_kind() -> None:
    store = MemoryDeadLetters()
    replayers = Replayers()
    sent: list[str] = []

    async def resend(letter: DeadLetter) -> str:
        if letter.payload == "broken":
            raise ExecutionError("still failing", status=502)
        sent.append(letter.id)
        return "ok"

    good = DeadLetter("queue", "q1", "t", "fine", "boom", 3)
    bad = DeadLetter("queue", "q1", "t", "broken", "boom", 3)
    orphan = DeadLetter("nobody", "x", "t", 1, "boom", 1)
    for item in (good, bad, orphan):
        await store.add(item)
    replayers.register("queue", resend)
    done, outcome = await replay(store, replayers, good.id, clock=lambda: 42.0)
    assert outcome == "ok" and done.replayed == 42.0 and sent == [good.id]
    with pytest.raises(ExecutionError, match="still failing"):
        await replay(store, replayers, bad.id)
    assert (await store.get(bad.id)).replayed is None  # type: ignore[union-attr]
    with pytest.raises(ExecutionError) as caught:
        await replay(store, replayers, orphan.id)
    assert caught.value.status == 409 and "kinds: queue" in str(caught.value)
    with pytest.raises(NotFoundError):
        await replay(store, replayers, "missing")
    with pytest.raises(UnknownNameError):
        replayers.get("nobody")
