"""`webhook.sender` against a real local HTTP server that fails, hangs, then succeeds.

Backoff waits run on a `ManualClock`: the test sees each planned wake-up (`clock.sleepers`)
and moves time on, so the retry schedule is checked exactly, without sleeping.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from httptarget import Target, serve

from flownb.clock import ManualClock
from flownb.deadletters import AlreadyReplayed, replay_dead_letter
from flownb.engine import Engine
from flownb.errors import ConfigError, ExecutionError, NotFoundError
from flownb.loader import parse_config
from flownb.modules.webhook import WebhookSender

T0 = 1_000_000.0


def config(url: str, **extra: Any) -> str:
    options = {
        "url": url + "/hooks/{{ data.customer }}",
        "maxRetries": 3,
        "initialBackoff": "1s",
        "maxBackoff": "10s",
        "jitter": 0,
        "timeout": "300ms",
        "headers": {"Authorization": "Bearer partner-token", "X-Source": "flownb"},
        **extra,
    }
    return f"""
modules:
  - name: notify
    type: webhook.sender
    config: {orjson.dumps(options).decode()}
pipelines:
  order_placed:
    steps:
      - type: webhook
        name: sent
        payload: {{order: "{{{{ data.order }}}}", customer: "{{{{ data.customer }}}}"}}
        idempotencyKey: "order-{{{{ data.order }}}}"
        wait: true
"""


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    async with serve(Target()) as t:
        yield t


async def started(target: Target, clock: ManualClock | None = None, **extra: Any) -> Engine:
    engine = Engine(parse_config(config(target.url, **extra)), clock=clock or ManualClock(T0))
    await engine.start()
    return engine


def sender(engine: Engine) -> WebhookSender:
    return engine.services.get("notify", WebhookSender)


async def test_retries_follow_the_backoff_schedule_then_deliver(target: Target) -> None:
    target.script = [500, 503, 200]
    clock = ManualClock(T0)
    engine = await started(target, clock)
    try:
        queued = await sender(engine).send({"customer": "acme", "n": 1}, idempotency_key="k-1")
        assert queued["status"] == "queued" and queued["url"] == target.url + "/hooks/acme"
        await clock.settle()
        assert clock.sleepers == [T0 + 1]  # first retry after initialBackoff
        clock.advance(1)
        await clock.settle()
        assert clock.sleepers == [T0 + 1 + 2]  # then twice as long
        clock.advance(2)
        await sender(engine).wait_idle()
        assert [s.path for s in target.seen] == ["/hooks/acme"] * 3
        keys = {s.headers["Idempotency-Key"] for s in target.seen}
        assert keys == {"k-1"}
        assert orjson.loads(target.seen[-1].body) == {"customer": "acme", "n": 1}
        assert target.seen[-1].headers["Authorization"] == "Bearer partner-token"
        assert sender(engine).stats == {"delivered": 1, "retried": 2, "dead": 0}
        assert await engine.stores.dead_letters.list() == []
    finally:
        await engine.stop()


async def test_jitter_spreads_retries_below_the_planned_wait(target: Target) -> None:
    target.default = 500
    clock = ManualClock(T0)
    engine = await started(target, clock, jitter=0.5, maxRetries=6)
    try:
        await sender(engine).send({"customer": "a"})
        planned = [1, 2, 4, 8, 10, 10]
        for base in planned:
            await clock.settle()
            (wake,) = clock.sleepers
            waited = wake - clock.now()
            assert base * 0.5 <= waited <= base, (base, waited)
            clock.set(wake)
        await sender(engine).wait_idle()
        assert len(target.seen) == 7
    finally:
        await engine.stop()


async def run_pipeline_driving_clock(
    engine: Engine, clock: ManualClock, data: dict[str, Any]
) -> Any:
    """Run `order_placed` (wait: true) while moving the clock past each backoff wait."""
    import asyncio

    task = asyncio.create_task(
        engine.run_handler(
            engine.pipeline("order_placed"), data, workflow="pipeline", action="order_placed"
        )
    )
    while not task.done():
        settled = asyncio.create_task(clock.settle())
        done, _ = await asyncio.wait({task, settled}, return_when=asyncio.FIRST_COMPLETED)
        if settled in done:
            settled.result()
            clock.set(clock.sleepers[0])
        else:
            settled.cancel()
    return (await task).steps["sent"]


async def test_dead_letter_then_replay(target: Target) -> None:
    target.default = 500
    clock = ManualClock(T0)
    engine = await started(target, clock)
    try:
        sent = await run_pipeline_driving_clock(engine, clock, {"order": 7, "customer": "acme"})
        assert sent["status"] == "dead" and sent["attempts"] == 4
        assert sent["error"].startswith("replied 500")
        assert clock.now() == T0 + 1 + 2 + 4  # three retries: 1s, 2s, 4s
        (letter,) = await engine.stores.dead_letters.list()
        assert letter.id == sent["deadLetter"]
        assert letter.kind == "webhook" and letter.source == "notify"
        assert letter.target == target.url + "/hooks/acme"
        assert letter.payload == {"order": 7, "customer": "acme"}
        assert letter.attempts == 4 and letter.error.startswith("replied 500")
        # the idempotency key is kept; the configured credentials are not
        assert letter.headers == {"Idempotency-Key": "order-7"}
        # the target comes back: a replay delivers it, with the same key and fresh credentials
        target.default = 200
        replayed, outcome = await replay_dead_letter(engine, letter.id)
        assert outcome == {"id": letter.id, "status": "delivered", "statusCode": 200}
        assert replayed.replayed == clock.now()
        last = target.seen[-1]
        assert last.headers["Idempotency-Key"] == "order-7"
        assert last.headers["Authorization"] == "Bearer partner-token"
        assert orjson.loads(last.body) == {"order": 7, "customer": "acme"}
        assert await engine.stores.dead_letters.list() == []  # replayed ones are hidden
        with pytest.raises(AlreadyReplayed):
            await replay_dead_letter(engine, letter.id)
        await replay_dead_letter(engine, letter.id, force=True)
        assert len(target.seen) == 6
        with pytest.raises(NotFoundError):
            await replay_dead_letter(engine, "no-such-id")
    finally:
        await engine.stop()


async def test_a_failed_replay_leaves_the_letter_to_replay_later(target: Target) -> None:
    target.default = 502
    clock = ManualClock(T0)
    engine = await started(target, clock, maxRetries=0)
    try:
        sent = await run_pipeline_driving_clock(engine, clock, {"order": 1, "customer": "x"})
        assert sent["status"] == "dead" and sent["attempts"] == 1
        with pytest.raises(ExecutionError) as caught:
            await replay_dead_letter(engine, sent["deadLetter"])
        assert caught.value.status == 502 and "replied 502" in str(caught.value)
        (letter,) = await engine.stores.dead_letters.list()
        assert letter.replayed is None
    finally:
        await engine.stop()


async def test_timeouts_are_retried_then_dead_lettered(target: Target) -> None:
    target.script = ["hang", "hang"]
    target.default = "hang"
    clock = ManualClock(T0)
    engine = await started(target, clock, maxRetries=1)
    try:
        sent = await run_pipeline_driving_clock(engine, clock, {"order": 2, "customer": "slow"})
        assert sent["status"] == "dead" and sent["attempts"] == 2
        assert sent["error"] == "no reply within 0.3s"
    finally:
        await engine.stop()


async def test_a_4xx_is_not_retried(target: Target) -> None:
    target.default = 422
    engine = await started(target)
    try:
        out = await sender(engine).send({"customer": "c"}, wait=True)
        assert out["status"] == "dead" and out["attempts"] == 1
        assert "replied 422" in out["error"]
    finally:
        await engine.stop()


async def test_retry_after_is_honoured_up_to_max_backoff(target: Target) -> None:
    target.script = [(429, {"Retry-After": "5"}), (503, {"Retry-After": "3600"}), 200]
    clock = ManualClock(T0)
    engine = await started(target, clock)
    try:
        await sender(engine).send({"customer": "c"})
        await clock.settle()
        assert clock.sleepers == [T0 + 5]  # asked for 5s, more than the 1s planned
        clock.advance(5)
        await clock.settle()
        assert clock.sleepers == [T0 + 5 + 10]  # asked for an hour: capped at maxBackoff
        clock.advance(10)
        await sender(engine).wait_idle()
        assert sender(engine).stats["delivered"] == 1
    finally:
        await engine.stop()


async def test_unreachable_target_is_retried_and_dead_lettered() -> None:
    async with serve(Target()) as gone:
        url = gone.url
    clock = ManualClock(T0)
    engine = Engine(parse_config(config(url, maxRetries=1)), clock=clock)
    await engine.start()
    try:
        sent = await run_pipeline_driving_clock(engine, clock, {"order": 3, "customer": "x"})
        assert sent["status"] == "dead" and sent["attempts"] == 2
        assert "ConnectError" in sent["error"]
    finally:
        await engine.stop()


async def test_pending_deliveries_become_dead_letters_when_the_engine_stops(
    target: Target,
) -> None:
    target.default = 500
    clock = ManualClock(T0)
    engine = await started(target, clock)
    await sender(engine).send({"customer": "late"}, idempotency_key="late-1")
    await clock.settle()  # first try failed; waiting to retry
    await engine.stop()
    (letter,) = await engine.stores.dead_letters.list()
    assert letter.attempts == 1
    assert letter.error == "not delivered before the engine stopped (replied 500: " + (
        '{"status": 500, "path": "/hooks/late"})'
    )
    assert letter.headers == {"Idempotency-Key": "late-1"}


async def test_the_body_is_signed_when_a_secret_is_set(target: Target) -> None:
    engine = await started(target, signingSecret="s3cret")
    try:
        await sender(engine).send({"customer": "c", "total": 9.5}, wait=True)
        seen = target.seen[0]
        digest = hmac.new(b"s3cret", seen.body, hashlib.sha256).hexdigest()
        assert seen.headers["X-Webhook-Signature"] == f"sha256={digest}"
    finally:
        await engine.stop()


async def test_the_sender_is_a_handler_for_routes() -> None:
    async with serve(Target()) as target:
        yaml = f"""
modules:
  - name: server
    type: http.server
    config: {{address: "127.0.0.1:0"}}
  - name: router
    type: http.router
  - name: notify
    type: webhook.sender
    config: {{url: "{target.url}/in"}}
workflows:
  http:
    routes:
      - {{method: POST, path: /relay, handler: notify}}
"""
        from flownb.testing import run_engine

        async with run_engine(yaml) as running:
            reply = await running.client.post("/relay", json={"hello": "world"})
            assert reply.status_code == 200 and reply.json()["status"] == "queued"
            await target.wait_for(1)
            assert orjson.loads(target.seen[0].body) == {"hello": "world"}


def test_bad_sender_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("modules: [{name: n, type: webhook.sender, config: {maxRetries: -1}}]\n")
    assert "maxRetries" in caught.value.render()


async def test_a_send_without_any_url_fails_clearly() -> None:
    engine = Engine(parse_config("modules: [{name: notify, type: webhook.sender}]\n"))
    await engine.start()
    try:
        with pytest.raises(ExecutionError) as caught:
            await sender(engine).send({"a": 1})
        assert caught.value.status == 400 and "has no url" in str(caught.value)
    finally:
        await engine.stop()
