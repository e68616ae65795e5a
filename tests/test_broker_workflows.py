"""Workflows over every broker provider, through a real engine built from YAML.

One config per provider (its connection read from `${VAR}`s) runs a messaging subscription
whose handler validates a schema, the event trigger, and an event workflow fed by a broker
adapter; the same messages must give the same results on every provider.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from broker_services import REMOTE, cleanup, settings
from realservices import require

from flownb.brokers import Message
from flownb.engine import Engine
from flownb.execution import ExecutionContext
from flownb.loader import parse_config
from flownb.modules.messaging import MessageBroker

TIMEOUT = 10.0

URLS = {
    "redis": "redis://127.0.0.1:6379/0",
    "nats": "nats://127.0.0.1:4222",
    "rabbitmq": "amqp://127.0.0.1:5672/",
    "mqtt": "mqtt://127.0.0.1:1883",
}

YAML = """
modules:
  - name: bus
    type: messaging.broker
    config: {broker}
  - {{name: cep, type: event.processor}}
  - {{name: alert, type: messaging.handler, config: {{function: alert}}}}
  - name: take-order
    type: messaging.handler
    config:
      steps:
        - type: validate
          schema:
            type: object
            required: [id, qty]
            properties: {{qty: {{type: integer, minimum: 1}}}}
        - {{type: call, function: take}}
pipelines:
  ship:
    - {{type: call, function: ship}}
workflows:
  messaging:
    subscriptions:
      - {{topic: orders.new, handler: take-order}}
  event:
    patterns:
      - {{patternId: lockout, eventTypes: [login.failed], minOccurs: 2, windowTime: 1m}}
    handlers:
      - {{patternId: lockout, handler: alert}}
    adapters:
      - {{topics: [auth], sourceIdKey: user}}
triggers:
  event:
    subscriptions:
      - topic: orders.paid
        event: order.paid
        workflow: pipeline
        action: ship
        params: {{via: trigger}}
"""


class Calls:
    def __init__(self) -> None:
        self.data: list[Any] = []
        self._changed = asyncio.Event()

    async def __call__(self, data: Any, ctx: ExecutionContext) -> Any:
        self.data.append(data)
        self._changed.set()
        return data

    async def wait(self, count: int) -> list[Any]:
        async with asyncio.timeout(TIMEOUT):
            while len(self.data) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.data


def broker_config(provider: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Names of this test's own; the URL (and RabbitMQ's password) as `${VAR}`s."""
    config = settings(provider, maxDeliveries=2, redeliveryDelay="1ms")
    if provider in REMOTE:
        require(provider)
        monkeypatch.setenv("FLOWNB_TEST_BROKER_URL", URLS[provider])
        config["url"] = "${FLOWNB_TEST_BROKER_URL}"
    if provider == "rabbitmq":
        monkeypatch.setenv("FLOWNB_TEST_BROKER_PASSWORD", "guest")
        config["username"] = "guest"
        config["password"] = "${FLOWNB_TEST_BROKER_PASSWORD}"
    return config


@pytest.mark.parametrize("provider", ["memory", *REMOTE])
async def test_workflows_and_triggers_run_over_the_provider(
    provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = broker_config(provider, monkeypatch)
    alert, take, ship = Calls(), Calls(), Calls()
    engine = Engine(
        parse_config(YAML.format(broker=json.dumps(config))),
        functions={"alert": alert, "take": take, "ship": ship},
    )
    await engine.start()
    bus = engine.services.get("bus", MessageBroker)
    letters = asyncio.Queue[Message]()

    async def dead(message: Message) -> None:
        letters.put_nowait(message)

    try:
        assert bus.config.provider == provider
        assert bus.config.url in (None, URLS.get(provider))  # the ${VAR} was expanded
        await bus.subscribe("orders.new.dlq", dead, group="ops")
        # Event workflow: the adapter feeds the pattern processor from the broker.
        for user in ("ada", "bob", "ada"):
            await bus.publish("auth", {"type": "login.failed", "user": user})
        # Event trigger: only order.paid starts the pipeline.
        await bus.publish("orders.paid", {"type": "order.refunded", "id": 8})
        await bus.publish("orders.paid", {"type": "order.paid", "id": 7})
        # Messaging workflow: a payload of the wrong schema is dead-lettered, the next handled.
        await bus.publish("orders.new", {"id": 1, "qty": 0})
        await bus.publish("orders.new", {"id": 2, "qty": 3})
        [match] = await alert.wait(1)
        await ship.wait(1)
        await take.wait(1)
        letter = await asyncio.wait_for(letters.get(), TIMEOUT)
    finally:
        await engine.stop()
        await cleanup(config, [bus])
    assert match["patternId"] == "lockout"
    assert match["correlationId"] == "ada"
    assert [e["data"]["user"] for e in match["events"]] == ["ada", "ada"]
    assert ship.data == [{"type": "order.paid", "id": 7, "via": "trigger"}]
    assert take.data == [{"id": 2, "qty": 3}]
    assert letter.payload == {"id": 1, "qty": 0}
    assert letter.headers["x-error"].startswith("wrong schema: step '0:validate'")
    assert "/qty: 0 is less than the minimum of 1" in letter.headers["x-error"]
    assert letter.headers["x-attempts"] == "1"
