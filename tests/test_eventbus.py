"""The eventbus module and the eventlogger that records events from it and from topics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from flownb.engine import Engine
from flownb.errors import BuildError, FlownbError
from flownb.loader import parse_config
from flownb.modules.eventbus import Event, EventBus, EventBusConfig
from flownb.modules.events import EventLogger
from flownb.modules.messaging import MessageBroker

TIMEOUT = 5.0


async def until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Wait for state that the code under test changes without signalling it."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - there is nothing to await on, so poll
            await asyncio.sleep(0.001)


def make_bus(**config: Any) -> EventBus:
    return EventBus("bus", EventBusConfig.model_validate(config))


async def test_wildcard_and_exact_subscriptions() -> None:
    bus = make_bus()
    seen: dict[str, list[str]] = {"orders": [], "created": [], "all": [], "async": []}
    bus.subscribe("order.*", lambda e: seen["orders"].append(e.type))
    bus.subscribe("order.created", lambda e: seen["created"].append(e.type))
    bus.subscribe("*", lambda e: seen["all"].append(e.type))

    async def on_shipped(event: Event) -> None:
        await asyncio.sleep(0)
        seen["async"].append(event.payload["id"])

    bus.subscribe("order.shipped", on_shipped)
    for event_type in ("order.created", "order.shipped", "order.item.added", "user.login"):
        await bus.publish(event_type, {"id": event_type}, source="test")
    assert seen["orders"] == ["order.created", "order.shipped", "order.item.added"]
    assert seen["created"] == ["order.created"]
    assert seen["all"] == ["order.created", "order.shipped", "order.item.added", "user.login"]
    assert seen["async"] == ["order.shipped"]


async def test_publish_returns_the_event_and_unsubscribe_stops_delivery() -> None:
    bus = make_bus()
    got: list[Event] = []
    unsubscribe = bus.subscribe("ping", got.append)
    event = await bus.publish("ping", [1], source="tester")
    assert got == [event]
    assert (event.type, event.payload, event.source) == ("ping", [1], "tester")
    assert len(event.id) == 32 and event.timestamp > 0
    unsubscribe()
    unsubscribe()  # twice is harmless
    await bus.publish("ping")
    assert got == [event]


async def test_a_failing_subscriber_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = make_bus()
    got: list[str] = []

    def broken(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe("x.*", broken)
    bus.subscribe("x.*", lambda e: got.append(e.type))
    with caplog.at_level(logging.ERROR, logger="flownb.eventbus"):
        await bus.publish("x.y")
    assert got == ["x.y"]
    assert "subscriber of 'x.*' failed on x.y" in caplog.text


async def test_subscriber_limit_catches_leaks() -> None:
    bus = make_bus(maxSubscribers=2)
    bus.subscribe("a", print)
    bus.subscribe("b", print)
    with pytest.raises(FlownbError, match="maxSubscribers"):
        bus.subscribe("c", print)
    with pytest.raises(FlownbError, match="pattern"):
        make_bus().subscribe("", print)


async def test_eventlogger_records_eventbus_events(caplog: pytest.LogCaptureFixture) -> None:
    yaml_text = """
modules:
  - {name: events, type: eventbus}
  - name: journal
    type: eventlogger
    config: {maxEvents: 3, events: ["order.*"]}
"""
    async with Engine(parse_config(yaml_text)) as engine:
        bus = engine.services.get("events", EventBus)
        journal = engine.services.get("journal", EventLogger)
        with caplog.at_level(logging.INFO, logger="flownb.events"):
            for i in range(4):
                await bus.publish("order.created", {"n": i}, source="shop")
            await bus.publish("user.login", {"n": 99})
            await bus.publish("order.paid", {"n": 4})
        recorded = journal.events()
        assert [e["payload"]["n"] for e in recorded] == [2, 3, 4]  # the oldest went first
        assert recorded[0]["type"] == "order.created" and recorded[0]["source"] == "shop"
        assert [e["payload"]["n"] for e in journal.events(type="order.paid")] == [4]
        assert [e["payload"]["n"] for e in journal.events(limit=1)] == [4]
        assert journal.events(limit=0) == []
        assert "event order.paid from None: {'n': 4}" in caplog.text
    # After stop the logger no longer listens.
    await bus.publish("order.created", {"n": 5})
    assert len(journal.events()) == 3


async def test_eventlogger_records_broker_topics_without_an_eventbus() -> None:
    yaml_text = """
modules:
  - {name: broker, type: messaging.broker}
  - name: journal
    type: eventlogger
    config: {topics: [orders, payments], logLevel: "off"}
"""
    async with Engine(parse_config(yaml_text)) as engine:
        broker = engine.services.get("broker", MessageBroker)
        journal = engine.services.get("journal", EventLogger)
        await broker.publish("orders", {"type": "order.created", "id": 1}, {"source": "web"})
        await broker.publish("payments", [1, 2])
        await until(lambda: len(journal.events()) >= 2)
        first, second = sorted(journal.events(), key=lambda e: e["topic"])
    assert (first["type"], first["topic"], first["source"]) == ("order.created", "orders", "web")
    assert first["payload"] == {"type": "order.created", "id": 1}
    assert (second["type"], second["payload"]) == ("payments", [1, 2])


async def test_eventlogger_with_several_eventbuses_must_name_one() -> None:
    yaml_text = """
modules:
  - {name: a, type: eventbus}
  - {name: b, type: eventbus}
  - {name: journal, type: eventlogger}
"""
    engine = Engine(parse_config(yaml_text))
    with pytest.raises(BuildError, match="several eventbus modules"):
        await engine.start()
    named = Engine(
        parse_config(
            yaml_text.replace("type: eventlogger", "type: eventlogger, config: {eventbus: b}")
        )
    )
    async with named:
        await named.services.get("a", EventBus).publish("x")
        await named.services.get("b", EventBus).publish("y")
        assert [e["type"] for e in named.services.get("journal", EventLogger).events()] == ["y"]
