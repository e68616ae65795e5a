"""`triggers.event`: broker messages, filtered by type, that start workflows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from flownb.brokers import Message
from flownb.engine import Engine
from flownb.execution import ExecutionContext
from flownb.loader import parse_config
from flownb.modules.messaging import MessageBroker

TIMEOUT = 5.0


async def until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Wait for state that the code under test changes without signalling it."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - there is nothing to await on, so poll
            await asyncio.sleep(0.001)


class Calls:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[Any, ExecutionContext]] = []
        self.fail = fail
        self._changed = asyncio.Event()

    async def __call__(self, data: Any, ctx: ExecutionContext) -> Any:
        self.calls.append((data, ctx))
        self._changed.set()
        if self.fail:
            raise RuntimeError(f"cannot ship order {data.get('id')}")
        return data

    @property
    def data(self) -> list[Any]:
        return [d for d, _ in self.calls]

    async def wait(self, count: int = 1) -> list[Any]:
        async with asyncio.timeout(TIMEOUT):
            while len(self.calls) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.data


class DeadLetters:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)

    async def wait(self, count: int) -> list[Message]:
        await until(lambda: len(self.messages) >= count)
        return self.messages


YAML = """
modules:
  - name: bus
    type: messaging.broker
    config: {maxDeliveries: 2, redeliveryDelay: 1ms}
pipelines:
  ship:
    - {type: call, function: ship}
  audit:
    - {type: call, function: audit}
triggers:
  event:
    subscriptions:
      - topic: orders
        event: order.created
        workflow: pipeline
        action: ship
        params: {via: trigger}
      - topic: orders
        workflow: pipeline
        action: audit
"""


@asynccontextmanager
async def running(yaml_text: str, **functions: Any) -> AsyncIterator[tuple[Engine, MessageBroker]]:
    engine = Engine(parse_config(yaml_text), functions=functions)
    await engine.start()
    try:
        yield engine, engine.services.get("bus", MessageBroker)
    finally:
        await engine.stop()


async def test_messages_of_the_chosen_type_call_the_pipeline_with_params() -> None:
    ship, audit = Calls(), Calls()
    async with running(YAML, ship=ship, audit=audit) as (_, bus):
        await bus.publish("orders", {"type": "order.cancelled", "id": 1})
        await bus.publish("orders", {"type": "order.created", "id": 2, "via": "web"})
        await bus.publish("orders", {"eventType": "order.created", "id": 3}, {"request-id": "r3"})
        await ship.wait(2)
        await audit.wait(3)
    assert ship.data == [
        {"type": "order.created", "id": 2, "via": "trigger"},  # params win over the message
        {"eventType": "order.created", "id": 3, "via": "trigger"},
    ]
    assert [ctx.request_id for _, ctx in ship.calls] == [None, "r3"]
    assert [ctx.action for _, ctx in ship.calls] == ["ship", "ship"]
    # Without `event`, every message triggers.
    assert [d["id"] for d in audit.data] == [1, 2, 3]


async def test_malformed_messages_are_dead_lettered_and_the_consumer_goes_on() -> None:
    ship, audit = Calls(), Calls()
    async with running(YAML, ship=ship, audit=audit) as (_, bus):
        dead = DeadLetters()
        await bus.subscribe("orders.dlq", dead, group="ops")
        await bus.publish("orders", "just text")
        await bus.publish("orders", [1, 2])
        await bus.provider.publish_raw("orders", b"\xff\xfe not json", {})
        await bus.publish("orders", {"type": "order.created", "id": 9})
        await ship.wait(1)
        await audit.wait(1)
        # Two subscriptions (two groups) on the topic: each dead-letters each bad message.
        letters = await dead.wait(6)
    assert ship.data == [{"type": "order.created", "id": 9, "via": "trigger"}]
    errors = sorted(m.headers["x-error"] for m in letters)
    assert sum("got str" in e for e in errors) == 2
    assert sum("got list" in e for e in errors) == 2
    assert sum(e.startswith("malformed message") for e in errors) == 2
    assert all(m.headers["x-attempts"] == "1" for m in letters)


async def test_a_failing_workflow_is_retried_then_dead_lettered() -> None:
    ship, audit = Calls(fail=True), Calls()
    async with running(YAML, ship=ship, audit=audit) as (_, bus):
        dead = DeadLetters()
        await bus.subscribe("orders.dlq", dead, group="ops")
        await bus.publish("orders", {"type": "order.created", "id": 4})
        [letter] = await dead.wait(1)
        await audit.wait(1)
    assert len(ship.calls) == 2  # maxDeliveries
    assert letter.payload == {"type": "order.created", "id": 4}
    assert letter.headers["x-attempts"] == "2"
    assert "cannot ship order 4" in letter.headers["x-error"]
    assert audit.data == [{"type": "order.created", "id": 4}]  # the other group was unaffected


async def test_trigger_into_an_event_workflow() -> None:
    alerts = Calls()
    yaml_text = """
modules:
  - {name: bus, type: messaging.broker}
  - {name: cep, type: event.processor}
  - {name: alert, type: messaging.handler, config: {function: alert}}
workflows:
  event:
    patterns:
      - {patternId: lockout, eventTypes: [login.failed], minOccurs: 2}
    handlers:
      - {patternId: lockout, handler: alert}
triggers:
  event:
    subscriptions:
      - {topic: auth, event: login.failed, workflow: event, action: login.failed}
"""
    async with running(yaml_text, alert=alerts) as (_, bus):
        for user in ("ada", "bob", "ada"):
            await bus.publish("auth", {"type": "login.failed", "correlationId": user})
        await bus.publish("auth", {"type": "login.ok", "correlationId": "bob"})
        [data] = await alerts.wait(1)
    assert data["patternId"] == "lockout"
    assert data["correlationId"] == "ada"
