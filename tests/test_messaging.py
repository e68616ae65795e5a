"""Messaging modules and the messaging workflow, on the real engine built from YAML."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from flownb.brokers import MemoryProvider, Message
from flownb.engine import Engine
from flownb.errors import ConfigError, StepError
from flownb.execution import ExecutionContext, Response
from flownb.loader import parse_config
from flownb.modules.messaging import MessageBroker

TIMEOUT = 5.0


async def until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Wait for state that the code under test changes without signalling it."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - there is nothing to await on, so poll
            await asyncio.sleep(0.001)


class Sink:
    """A registered function that records its calls and lets a test wait for them."""

    def __init__(self, reply: Callable[[Any], Any] | None = None) -> None:
        self.calls: list[tuple[Any, ExecutionContext]] = []
        self.reply = reply
        self._changed = asyncio.Event()

    async def __call__(self, data: Any, ctx: ExecutionContext) -> Any:
        self.calls.append((data, ctx))
        self._changed.set()
        return self.reply(data) if self.reply else None

    @property
    def data(self) -> list[Any]:
        return [d for d, _ in self.calls]

    async def wait(self, count: int = 1) -> list[Any]:
        async with asyncio.timeout(TIMEOUT):
            while len(self.calls) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.data


@asynccontextmanager
async def running(yaml_text: str, **functions: Any) -> AsyncIterator[Engine]:
    engine = Engine(parse_config(yaml_text), functions=functions)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


async def test_pipeline_handler_runs_once_per_message_as_an_execution() -> None:
    sink = Sink()
    yaml_text = """
modules:
  - name: bus
    type: messaging.broker
  - name: on-order
    type: messaging.handler
    config: {pipeline: store-order}
pipelines:
  store-order:
    - type: set
      name: tagged
      values: {total: "{{ data.qty * data.price }}", topic: "{{ request.topic }}"}
    - type: call
      function: sink
      input: {order: "{{ data }}", tagged: "{{ steps.tagged }}"}
workflows:
  messaging:
    subscriptions:
      - topic: orders
        handler: on-order
"""
    async with running(yaml_text, sink=sink) as engine:
        reply = await engine.trigger_workflow(
            "messaging", "orders", {"qty": 2, "price": 5}, request_id="req-1"
        )
        assert reply["topic"] == "orders" and len(reply["id"]) == 32
        [data] = await sink.wait()
        ctx = sink.calls[0][1]
    assert data["order"] == {"qty": 2, "price": 5}
    assert data["tagged"] == {"total": 10, "topic": "orders"}
    assert (ctx.workflow, ctx.action, ctx.request_id) == ("messaging", "orders", "req-1")


async def test_function_handler_and_subscription_straight_to_a_pipeline() -> None:
    greeted, audited = Sink(lambda d: {"hello": d["name"]}), Sink()
    yaml_text = """
modules:
  - name: bus
    type: messaging.broker
  - name: greeter
    type: messaging.handler
    config: {function: greet}
pipelines:
  audit:
    - {type: call, function: audit}
workflows:
  messaging:
    subscriptions:
      - {topic: users, handler: greeter}
      - {topic: users, handler: audit}
"""
    async with running(yaml_text, greet=greeted, audit=audited) as engine:
        await engine.trigger_workflow("messaging", "users", {"name": "Ada"})
        await greeted.wait()
        await audited.wait()
    assert greeted.data == audited.data == [{"name": "Ada"}]
    assert greeted.calls[0][1].result == {"hello": "Ada"}
    assert isinstance(greeted.calls[0][1].request, Message)


async def test_producers_forward_results_to_topics_chat_fan_out() -> None:
    def route(data: dict[str, Any]) -> Any:
        if data.get("text") == "":
            return None  # nothing to forward
        if data.get("reply"):
            return Response(status=202, body={"from": data["user"], "text": data["text"].upper()})
        return {"from": data["user"], "text": data["text"]}

    router = Sink(route)
    room, log_, bot = Sink(), Sink(), Sink()
    yaml_text = """
modules:
  - name: bus
    type: messaging.broker
  - {name: router, type: messaging.handler, config: {function: router}}
  - {name: room, type: messaging.handler, config: {function: room}}
  - {name: chatlog, type: messaging.handler, config: {function: chatlog}}
  - {name: bot, type: messaging.handler, config: {function: bot}}
workflows:
  messaging:
    subscriptions:
      - {topic: chat.in, handler: router}
      - {topic: chat.room.general, handler: room}
      - {topic: chat.log, handler: chatlog}
      - {topic: chat.bot, handler: bot}
    producers:
      - name: router
        topic: chat.room.general
        forwardTo: [chat.log, chat.bot]
"""
    async with running(yaml_text, router=router, room=room, chatlog=log_, bot=bot) as engine:
        await engine.trigger_workflow("messaging", "chat.in", {"user": "ada", "text": "hi"})
        await engine.trigger_workflow(
            "messaging", "chat.in", {"user": "bob", "text": "yo", "reply": True}, request_id="r2"
        )
        await engine.trigger_workflow("messaging", "chat.in", {"user": "eve", "text": ""})
        await router.wait(3)
        for sink in (room, log_, bot):
            await sink.wait(2)
    expected = [{"from": "ada", "text": "hi"}, {"from": "bob", "text": "YO"}]
    assert room.data == log_.data == bot.data == expected
    # The request id travels with forwarded messages.
    assert [ctx.request_id for _, ctx in bot.calls] == [None, "r2"]


async def test_failing_handler_goes_to_the_dead_letter_topic_after_retries() -> None:
    attempts: list[int] = []

    def reserve(data: Any, ctx: ExecutionContext) -> None:
        attempts.append(ctx.request.attempt)
        raise ValueError(f"item {data['item']} is out of stock")

    dead = Sink(lambda d: None)
    yaml_text = """
modules:
  - name: bus
    type: messaging.broker
    config: {maxDeliveries: 2, redeliveryDelay: 1ms, deadLetterSuffix: .failed}
  - {name: reserve, type: messaging.handler, config: {function: reserve}}
  - {name: ops, type: messaging.handler, config: {function: ops}}
workflows:
  messaging:
    subscriptions:
      - {topic: orders, handler: reserve}
      - {topic: orders.failed, handler: ops}
"""
    async with running(yaml_text, reserve=reserve, ops=dead) as engine:
        await engine.trigger_workflow("messaging", "orders", {"item": 4})
        [letter] = await dead.wait()
        headers = dead.calls[0][1].request.headers
    assert letter == {"item": 4}
    assert attempts == [1, 2]
    assert headers["x-attempts"] == "2"
    assert headers["x-original-topic"] == "orders"
    assert "out of stock" in headers["x-error"]


async def test_publish_step_reaches_a_subscription_and_refuses_non_json() -> None:
    sink = Sink()
    yaml_text = """
modules:
  - {name: bus, type: messaging.broker}
  - {name: shipper, type: messaging.handler, config: {function: ship}}
pipelines:
  place-order:
    - type: publish
      topic: "orders.{{ data.region }}"
      message: {id: "{{ data.id }}", status: placed}
      headers: {priority: "{{ data.priority }}"}
  bad-publish:
    - type: publish
      topic: orders.eu
      message: "{{ range(3) }}"
workflows:
  messaging:
    subscriptions:
      - {topic: orders.eu, handler: shipper}
"""
    async with running(yaml_text, ship=sink) as engine:
        result = await engine.trigger_workflow(
            "pipeline", "place-order", {"id": 5, "region": "eu", "priority": 1}
        )
        assert result == {"id": 5, "region": "eu", "priority": 1}
        await sink.wait()
        assert sink.data == [{"id": 5, "status": "placed"}]
        assert sink.calls[0][1].request.headers["priority"] == "1"
        with pytest.raises(StepError, match="not JSON-compatible"):
            await engine.trigger_workflow("pipeline", "bad-publish", {"items": []})


async def test_handler_config_needs_exactly_one_source() -> None:
    yaml_text = """
modules:
  - {name: bus, type: messaging.broker}
  - name: h
    type: messaging.handler
    config: {function: f, pipeline: p}
  - name: empty
    type: messaging.handler
pipelines:
  p: []
"""
    with pytest.raises(ConfigError) as info:
        parse_config(yaml_text)
    text = str(info.value)
    assert "set exactly one of pipeline, function or steps (got pipeline, function)" in text
    assert "(got none)" in text


async def test_inline_steps_handler() -> None:
    sink = Sink()
    yaml_text = """
modules:
  - {name: bus, type: messaging.broker}
  - name: h
    type: messaging.handler
    config:
      steps:
        - {type: set, name: t, values: {n: "{{ data.n + 1 }}"}}
        - {type: call, function: sink, input: "{{ steps.t }}"}
workflows:
  messaging:
    subscriptions: [{topic: t, handler: h}]
"""
    config = parse_config(yaml_text)
    engine = Engine(config, functions={"sink": sink})
    async with engine:
        await engine.trigger_workflow("messaging", "t", {"n": 1})
        await sink.wait()
    assert sink.data[0]["n"] == 2


async def test_same_handler_twice_competes_unless_groups_differ() -> None:
    shared, split = Sink(), Sink()
    yaml_text = """
modules:
  - {name: bus, type: messaging.broker}
  - {name: shared, type: messaging.handler, config: {function: shared}}
  - {name: split, type: messaging.handler, config: {function: split}}
workflows:
  messaging:
    subscriptions:
      - {topic: jobs, handler: shared}
      - {topic: jobs, handler: shared}
      - {topic: jobs, handler: split, group: a}
      - {topic: jobs, handler: split, group: b}
"""
    async with running(yaml_text, shared=shared, split=split) as engine:
        for i in range(4):
            await engine.trigger_workflow("messaging", "jobs", i)
        await split.wait(8)
        await shared.wait(4)
    assert sorted(split.data) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert sorted(shared.data) == [0, 1, 2, 3]


async def test_engine_stop_drains_the_message_in_flight() -> None:
    gate, started, finished = asyncio.Event(), asyncio.Event(), []

    async def slow(data: Any) -> None:
        started.set()
        await gate.wait()
        finished.append(data)

    yaml_text = """
modules:
  - {name: bus, type: messaging.broker}
  - {name: slow, type: messaging.handler, config: {function: slow}}
workflows:
  messaging:
    subscriptions: [{topic: work, handler: slow}]
"""
    engine = Engine(parse_config(yaml_text), functions={"slow": slow})
    await engine.start()
    await engine.trigger_workflow("messaging", "work", "job-1")
    async with asyncio.timeout(TIMEOUT):
        await started.wait()
    stopping = asyncio.create_task(engine.stop(timeout=TIMEOUT))
    await asyncio.sleep(0)
    assert not stopping.done()
    gate.set()
    assert await stopping is True
    assert finished == ["job-1"]


async def test_concurrency_runs_messages_of_a_subscription_side_by_side() -> None:
    gate, running_now = asyncio.Event(), []
    both = asyncio.Event()

    async def work(data: Any) -> None:
        running_now.append(data)
        if len(running_now) == 2:
            both.set()
        await gate.wait()

    yaml_text = """
modules:
  - {name: bus, type: messaging.broker, config: {concurrency: 2}}
  - {name: work, type: messaging.handler, config: {function: work}}
workflows:
  messaging:
    subscriptions: [{topic: work, handler: work}]
"""
    async with running(yaml_text, work=work) as engine:
        await engine.trigger_workflow("messaging", "work", 1)
        await engine.trigger_workflow("messaging", "work", 2)
        async with asyncio.timeout(TIMEOUT):
            await both.wait()
        gate.set()
    assert sorted(running_now) == [1, 2]


async def test_memory_provider_applies_backpressure_when_a_queue_is_full() -> None:
    provider = MemoryProvider(max_queue=2)
    gate = asyncio.Event()
    seen: list[Any] = []

    async def blocked(message: Message) -> None:
        seen.append(message.payload)
        await gate.wait()

    await provider.connect()
    try:
        await provider.subscribe("t", "g", blocked)
        await provider.publish("t", 0, {})  # taken by the consumer, which then blocks
        await until(lambda: bool(seen))
        await provider.publish("t", 1, {})
        await provider.publish("t", 2, {})
        assert provider.pending("t", "g") == 2
        third = asyncio.create_task(provider.publish("t", 3, {}))
        await asyncio.sleep(0.01)
        assert not third.done()  # waiting for room
        gate.set()
        await asyncio.wait_for(third, TIMEOUT)
        await until(lambda: len(seen) == 4)
        assert seen == [0, 1, 2, 3]
    finally:
        await provider.close()


async def test_broker_module_lookup_and_headers_are_text() -> None:
    yaml_text = """
modules:
  - {name: bus, type: messaging.broker}
"""
    async with running(yaml_text) as engine:
        broker = engine.services.get("bus", MessageBroker)
        got: list[Message] = []
        done = asyncio.Event()

        async def handler(message: Message) -> None:
            got.append(message)
            done.set()

        await broker.subscribe("t", handler, group="g")
        await broker.publish("t", {"a": 1}, {"n": 1, "skip": None})
        async with asyncio.timeout(TIMEOUT):
            await done.wait()
    assert got[0].headers == {"n": "1"}
