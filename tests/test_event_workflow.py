"""Event-pattern workflows: counts, windows, order, conditions, correlation keys, adapters.

Windows follow the engine's clock, so most tests drive a `ManualClock` instead of waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from flownb.brokers import Message
from flownb.clock import ManualClock
from flownb.engine import Engine
from flownb.errors import FlownbError
from flownb.execution import ExecutionContext
from flownb.loader import parse_config
from flownb.modules.events import EventProcessor
from flownb.modules.messaging import MessageBroker

TIMEOUT = 5.0


async def until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Wait for state that the code under test changes without signalling it."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - there is nothing to await on, so poll
            await asyncio.sleep(0.001)


BASE = """
modules:
  - {name: cep, type: event.processor, config: {maxKeys: 100}}
  - {name: alert, type: messaging.handler, config: {function: alert}}
"""


class Alerts:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ExecutionContext]] = []
        self._changed = asyncio.Event()

    async def __call__(self, data: Any, ctx: ExecutionContext) -> None:
        self.calls.append((data, ctx))
        self._changed.set()

    async def wait(self, count: int = 1) -> list[Any]:
        async with asyncio.timeout(TIMEOUT):
            while len(self.calls) < count:
                self._changed.clear()
                await self._changed.wait()
        return [d for d, _ in self.calls]


@asynccontextmanager
async def running(
    workflow: str, *, modules: str = BASE, clock: ManualClock | None = None, **functions: Any
) -> AsyncIterator[Engine]:
    engine = Engine(parse_config(modules + workflow), functions=functions, clock=clock)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


async def send(engine: Engine, event_type: str, **data: Any) -> list[str]:
    result: list[str] = await engine.trigger_workflow("event", event_type, data)
    return result


async def test_min_occurrences_fire_once_per_burst() -> None:
    alerts = Alerts()
    workflow = """
workflows:
  event:
    patterns:
      - {patternId: brute-force, eventTypes: [login.failed], minOccurs: 3, windowTime: 1m}
    handlers:
      - {patternId: brute-force, handler: alert}
"""
    async with running(workflow, alert=alerts) as engine:
        assert await send(engine, "login.failed", correlationId="ada", ip="1") == []
        assert await send(engine, "login.failed", correlationId="ada", ip="2") == []
        assert await send(engine, "login.failed", correlationId="ada", ip="3") == ["brute-force"]
        # The match reset the pattern for this key: the next failure starts a new count.
        assert await send(engine, "login.failed", correlationId="ada", ip="4") == []
        [data] = await alerts.wait()
        ctx = alerts.calls[0][1]
    assert (ctx.workflow, ctx.action) == ("event", "brute-force")
    assert data["patternId"] == "brute-force" and data["correlationId"] == "ada"
    assert [e["data"]["ip"] for e in data["events"]] == ["1", "2", "3"]
    assert {e["type"] for e in data["events"]} == {"login.failed"}


async def test_max_occurrences_bound_the_count() -> None:
    workflow = """
workflows:
  event:
    patterns:
      - {patternId: bounded, eventTypes: [a, b], orderMatters: true, maxOccurs: 2}
      - {patternId: unbounded, eventTypes: [a, b], orderMatters: true}
"""
    async with running(workflow, alert=Alerts()) as engine:
        assert await send(engine, "b", correlationId="k") == []
        assert await send(engine, "b", correlationId="k") == []
        assert await send(engine, "a", correlationId="k") == []
        # a then b is there now, but "bounded" has seen 4 events of its types (> maxOccurs).
        assert await send(engine, "b", correlationId="k") == ["unbounded"]


async def test_events_outside_the_window_do_not_count() -> None:
    clock = ManualClock(1_000.0)
    workflow = """
workflows:
  event:
    patterns:
      - {patternId: burst, eventTypes: [error], minOccurs: 3, windowTime: 10s}
"""
    async with running(workflow, clock=clock, alert=Alerts()) as engine:
        processor = engine.services.get("cep", EventProcessor)
        await send(engine, "error", correlationId="svc")
        await send(engine, "error", correlationId="svc")
        clock.advance(11)
        assert await send(engine, "error", correlationId="svc") == []  # the first two expired
        clock.advance(5)
        assert await send(engine, "error", correlationId="svc") == []
        assert await send(engine, "error", correlationId="svc") == ["burst"]
        clock.advance(11)
        assert processor.key_count == 1
        assert processor.prune() == 3
        assert processor.key_count == 0


async def test_expired_keys_are_swept_in_the_background() -> None:
    clock = ManualClock(0.0)
    workflow = """
workflows:
  event:
    patterns:
      - {patternId: p, eventTypes: [e], minOccurs: 2, windowTime: 2s}
"""
    async with running(workflow, clock=clock, alert=Alerts()) as engine:
        processor = engine.services.get("cep", EventProcessor)
        for key in ("a", "b", "c"):
            await send(engine, "e", correlationId=key)
        assert processor.key_count == 3
        await clock.settle()  # the sweeper is waiting for its next round
        clock.advance(3)
        await clock.settle()  # it has run and gone back to sleep
        assert processor.key_count == 0


async def test_real_clock_window_expiry() -> None:
    workflow = """
workflows:
  event:
    patterns:
      - {patternId: pair, eventTypes: [tick], minOccurs: 2, windowTime: 200ms}
"""
    async with running(workflow, alert=Alerts()) as engine:
        assert await send(engine, "tick") == []
        await asyncio.sleep(0.25)  # real time is what this test is about: let the tick expire
        assert await send(engine, "tick") == []
        assert await send(engine, "tick") == ["pair"]


async def test_order_matters_true_versus_false() -> None:
    workflow = """
workflows:
  event:
    patterns:
      - {patternId: any-order, eventTypes: [cart.add, checkout], minOccurs: 2}
      - {patternId: in-order, eventTypes: [cart.add, checkout], minOccurs: 2, orderMatters: true}
"""
    async with running(workflow, alert=Alerts()) as engine:
        assert await send(engine, "checkout", correlationId="s1") == []
        assert await send(engine, "cart.add", correlationId="s1") == ["any-order"]
        # For in-order, [checkout, cart.add] holds no cart.add -> checkout; one more checkout does.
        assert await send(engine, "checkout", correlationId="s1") == ["in-order"]


async def test_condition_over_the_matched_events() -> None:
    alerts = Alerts()
    workflow = """
workflows:
  event:
    patterns:
      - patternId: big-spender
        eventTypes: [payment]
        minOccurs: 2
        condition: "(events | map(attribute='data.amount') | sum) > 100 and event.data.amount > 10"
    handlers:
      - {patternId: big-spender, handler: alert}
"""
    async with running(workflow, alert=alerts) as engine:
        assert await send(engine, "payment", correlationId="c", amount=50) == []
        assert await send(engine, "payment", correlationId="c", amount=5) == []  # 55
        assert await send(engine, "payment", correlationId="c", amount=60) == ["big-spender"]
        [data] = await alerts.wait()
    assert [e["data"]["amount"] for e in data["events"]] == [50, 5, 60]


async def test_correlation_keys_are_kept_apart() -> None:
    alerts = Alerts()
    workflow = """
workflows:
  event:
    patterns:
      - {patternId: paid, eventTypes: [order.placed, order.paid], minOccurs: 2, orderMatters: true}
    handlers:
      - {patternId: paid, handler: alert}
"""
    async with running(workflow, alert=alerts) as engine:
        assert await send(engine, "order.placed", correlationId="o-1") == []
        assert await send(engine, "order.paid", correlationId="o-2") == []
        assert await send(engine, "order.placed", source="o-2") == []  # source as the key
        assert await send(engine, "order.paid", correlationId="o-1") == ["paid"]
        assert await send(engine, "order.paid", correlationId="o-2") == ["paid"]
        await alerts.wait(2)
    keys = [d["correlationId"] for d, _ in alerts.calls]
    assert keys == ["o-1", "o-2"]
    assert all(
        {e["correlationId"] for e in d["events"]} == {d["correlationId"]} for d, _ in alerts.calls
    )


async def test_handlers_can_be_pipelines_and_a_failing_one_does_not_stop_the_rest() -> None:
    seen: list[Any] = []

    def broken(data: Any) -> None:
        raise RuntimeError("handler bug")

    workflow = """
  - {name: broken, type: messaging.handler, config: {function: broken}}
pipelines:
  record:
    - {type: call, function: record, input: "{{ data.patternId }}:{{ data.events | length }}"}
workflows:
  event:
    patterns:
      - {patternId: p, eventTypes: [e]}
    handlers:
      - {patternId: p, handler: broken}
      - {patternId: p, handler: record}
"""
    async with running(workflow, alert=Alerts(), broken=broken, record=seen.append) as engine:
        assert await send(engine, "e") == ["p"]
    assert seen == ["p:1"]


async def test_adapters_feed_broker_messages_in_as_events() -> None:
    alerts = Alerts()
    modules = (
        BASE
        + """
  - {name: bus, type: messaging.broker, config: {redeliveryDelay: 1ms}}
"""
    )
    workflow = """
workflows:
  event:
    adapters:
      - {topics: [orders], correlIdKey: orderId}
      - {topics: [payments], eventType: order.paid, correlIdKey: order, sourceIdKey: psp}
    patterns:
      - {patternId: paid, eventTypes: [order.placed, order.paid], minOccurs: 2, orderMatters: true}
    handlers:
      - {patternId: paid, handler: alert}
"""
    async with running(workflow, modules=modules, alert=alerts) as engine:
        broker = engine.services.get("bus", MessageBroker)
        dead: list[Message] = []

        async def on_dead(message: Message) -> None:
            dead.append(message)

        await broker.subscribe("orders.dlq", on_dead, group="ops")
        await broker.publish("orders", [1, 2, 3])  # not an object: dead-lettered
        await broker.publish("orders", {"orderId": 9})  # no type: dead-lettered
        await broker.publish("orders", {"type": "order.placed", "orderId": 7})
        await broker.publish("orders", {"eventType": "order.placed", "orderId": 8})
        await broker.publish("payments", {"order": 7, "psp": "stripe", "amount": 10})
        [data] = await alerts.wait()
        await until(lambda: len(dead) >= 2)
    assert data["correlationId"] == "7"
    assert [e["type"] for e in data["events"]] == ["order.placed", "order.paid"]
    assert data["events"][1]["source"] == "stripe"
    errors = [m.headers["x-error"] for m in dead]
    assert "expects a JSON object, got list" in errors[0]
    assert "no event type" in errors[1]


async def test_memory_is_bounded_per_key_and_in_keys() -> None:
    modules = """
modules:
  - {name: cep, type: event.processor, config: {maxKeys: 2, maxEventsPerKey: 3}}
"""
    workflow = """
workflows:
  event:
    patterns:
      - {patternId: many, eventTypes: [e], minOccurs: 5}
"""
    async with running(workflow, modules=modules) as engine:
        processor = engine.services.get("cep", EventProcessor)
        for key in ("a", "b", "c"):
            await send(engine, "e", correlationId=key)
        assert processor.key_count == 2
        # Only 3 events are kept per key, so 5 can never be reached.
        for _ in range(6):
            assert await send(engine, "e", correlationId="z") == []
        assert await send(engine, "unrelated", correlationId="q") == []
        assert processor.key_count == 2


async def test_a_bad_condition_fails_the_build() -> None:
    workflow = """
workflows:
  event:
    patterns:
      - {patternId: p, eventTypes: [e], condition: "events |"}
"""
    engine = Engine(parse_config(BASE + workflow), functions={"alert": Alerts()})
    with pytest.raises(FlownbError, match="invalid expression"):
        await engine.start()
