"""The contract every broker provider honours, run against each one.

A provider joins by adding its name to `PROVIDERS` (and its per-test names to
`broker_services.settings`). Providers of a server run against the real one on this machine;
a server that is down is started, and the test fails if it cannot be. Tests go through
`MessageBroker`, so the shared delivery policy (retries, dead letters) is checked on top of
each provider; `broker.provider` is the raw provider.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from broker_services import REMOTE, cleanup, settings
from realservices import require

from flownb.brokers import BrokerError, Message, PayloadError, RejectMessage
from flownb.errors import ValidationFailed
from flownb.execution import new_id
from flownb.modules.messaging import BrokerConfig, MessageBroker

PROVIDERS = ["memory", "redis", "nats", "rabbitmq", "mqtt"]

# Whether a group keeps what is published while none of its consumers is subscribed.
KEEPS_MESSAGES_WHILE_AWAY = {
    "memory": False,  # in-process queues: a group goes with its last consumer
    "redis": True,  # the consumer group stays on the stream
    "nats": True,  # the durable consumer stays on the stream
    "rabbitmq": True,  # the durable queue stays bound
    # MQTT has no group object: a shared subscription lives while a member session holds it.
    "mqtt": False,
}

TIMEOUT = 5.0


async def until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Wait for state that the code under test changes without signalling it."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - there is nothing to await on, so poll
            await asyncio.sleep(0.001)


class Inbox:
    """An async handler that keeps what it receives and lets a test wait for it."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._changed = asyncio.Event()

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)
        self._changed.set()

    @property
    def payloads(self) -> list[Any]:
        return [m.payload for m in self.messages]

    async def wait(self, count: int, timeout: float = TIMEOUT) -> list[Message]:
        async with asyncio.timeout(timeout):
            while len(self.messages) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.messages


def make(provider: str) -> tuple[dict[str, Any], MessageBroker]:
    if provider in REMOTE:
        require(provider)
    config = settings(provider, maxDeliveries=3, redeliveryDelay="5ms")
    return config, MessageBroker("bus", BrokerConfig.model_validate(config))


@pytest.fixture(params=PROVIDERS)
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[MessageBroker]:
    config, instance = make(request.param)
    try:
        await instance.start()
        yield instance
    finally:
        await instance.stop()
        await cleanup(config, [instance])


@pytest.fixture
def topic() -> str:
    """A fresh topic per test, so a provider with durable streams starts clean."""
    return f"contract.{new_id()[:10]}"


async def test_publish_then_subscribe_delivers_payload_headers_and_id(
    broker: MessageBroker, topic: str
) -> None:
    inbox = Inbox()
    await broker.subscribe(topic, inbox, group="g")
    payload = {"order": 7, "items": [1, 2], "note": "é", "ok": True, "none": None}
    message_id = await broker.publish(topic, payload, {"request-id": "r1", "n": 3})
    [message] = await inbox.wait(1)
    assert message.id == message_id
    assert message.topic == topic
    assert message.payload == payload
    assert message.headers["request-id"] == "r1"
    assert message.headers["n"] == "3"  # header values travel as text
    assert message.attempt == 1
    assert message.malformed is None
    assert message.timestamp > 0


async def test_each_group_gets_every_message(broker: MessageBroker, topic: str) -> None:
    first, second = Inbox(), Inbox()
    await broker.subscribe(topic, first, group="audit")
    await broker.subscribe(topic, second, group="billing")
    for i in range(5):
        await broker.publish(topic, i)
    await first.wait(5)
    await second.wait(5)
    assert first.payloads == second.payloads == [0, 1, 2, 3, 4]


async def test_consumers_in_one_group_compete(broker: MessageBroker, topic: str) -> None:
    gate = asyncio.Event()
    started: list[tuple[str, Any]] = []
    both_busy = asyncio.Event()

    def consumer(name: str) -> Any:
        async def handle(message: Message) -> None:
            started.append((name, message.payload))
            if len(started) == 2:
                both_busy.set()
            await gate.wait()

        return handle

    await broker.subscribe(topic, consumer("a"), group="workers")
    await broker.subscribe(topic, consumer("b"), group="workers")
    await broker.publish(topic, 1)
    await broker.publish(topic, 2)
    # The first consumer is blocked on message 1, so message 2 must go to the other one.
    async with asyncio.timeout(TIMEOUT):
        await both_busy.wait()
    gate.set()
    assert {name for name, _ in started} == {"a", "b"}
    assert sorted(p for _, p in started) == [1, 2]


async def test_messages_of_a_topic_arrive_in_order(broker: MessageBroker, topic: str) -> None:
    inbox = Inbox()
    await broker.subscribe(topic, inbox, group="g")
    for i in range(50):
        await broker.publish(topic, {"seq": i})
    await inbox.wait(50)
    assert [p["seq"] for p in inbox.payloads] == list(range(50))


async def test_failing_handler_is_retried_then_dead_lettered(
    broker: MessageBroker, topic: str
) -> None:
    attempts: list[int] = []

    async def always_fails(message: Message) -> None:
        attempts.append(message.attempt)
        raise ValueError("no stock for item 9")

    dead = Inbox()
    await broker.subscribe(topic + ".dlq", dead, group="ops")
    await broker.subscribe(topic, always_fails, group="orders")
    await broker.publish(topic, {"item": 9}, {"request-id": "r9"})
    [letter] = await dead.wait(1)
    assert attempts == [1, 2, 3]
    assert letter.payload == {"item": 9}
    assert letter.headers["x-original-topic"] == topic
    assert letter.headers["x-attempts"] == "3"
    assert "ValueError: no stock for item 9" in letter.headers["x-error"]
    assert letter.headers["request-id"] == "r9"
    # The count follows the server's confirmation, which may come after the delivery.
    await until(lambda: broker.stats.dead_lettered == 1)
    assert broker.stats.redelivered == 2


async def test_handler_that_recovers_is_not_dead_lettered(
    broker: MessageBroker, topic: str
) -> None:
    attempts: list[int] = []
    done = asyncio.Event()

    async def flaky(message: Message) -> None:
        attempts.append(message.attempt)
        if message.attempt == 1:
            raise ConnectionError("database blinked")
        done.set()

    await broker.subscribe(topic, flaky, group="g")
    await broker.publish(topic, "x")
    async with asyncio.timeout(TIMEOUT):
        await done.wait()
    assert attempts == [1, 2]
    assert broker.stats.dead_lettered == 0


async def test_reject_dead_letters_at_once(broker: MessageBroker, topic: str) -> None:
    attempts: list[int] = []

    async def rejects(message: Message) -> None:
        attempts.append(message.attempt)
        raise RejectMessage("unknown schema version")

    dead = Inbox()
    await broker.subscribe(topic + ".dlq", dead, group="ops")
    await broker.subscribe(topic, rejects, group="g")
    await broker.publish(topic, {"v": 99})
    [letter] = await dead.wait(1)
    assert attempts == [1]
    assert "unknown schema version" in letter.headers["x-error"]
    assert letter.headers["x-attempts"] == "1"


async def test_non_json_payload_is_refused_at_publish(broker: MessageBroker, topic: str) -> None:
    inbox = Inbox()
    await broker.subscribe(topic, inbox, group="g")
    for bad in ({1, 2}, object(), {1: "int key"}, {"when": dt.date(2024, 1, 2)}):
        with pytest.raises(PayloadError) as info:
            await broker.publish(topic, bad)
        assert topic in str(info.value)
        assert "JSON" in str(info.value)
    await broker.publish(topic, "fine")
    await inbox.wait(1)
    assert inbox.payloads == ["fine"]


async def test_malformed_message_is_dead_lettered_and_consumer_goes_on(
    broker: MessageBroker, topic: str
) -> None:
    inbox, dead = Inbox(), Inbox()
    await broker.subscribe(topic + ".dlq", dead, group="ops")
    await broker.subscribe(topic, inbox, group="g")
    await broker.provider.publish_raw(topic, b"{not json", {"source": "legacy"})
    await broker.publish(topic, {"ok": 1})
    [letter] = await dead.wait(1)
    await inbox.wait(1)
    assert inbox.payloads == [{"ok": 1}]
    assert letter.payload == "{not json"
    assert letter.headers["x-error"].startswith("malformed message")
    assert letter.headers["source"] == "legacy"


async def test_provider_redelivers_a_nacked_message(broker: MessageBroker, topic: str) -> None:
    """Below the shared policy: a raw handler that raises gets the message again."""
    attempts: list[int] = []
    done = asyncio.Event()

    async def raw(message: Message) -> None:
        attempts.append(message.attempt)
        if len(attempts) == 1:
            raise RuntimeError("nack")
        done.set()

    await broker.provider.subscribe(topic, "raw", raw)
    await broker.provider.publish(topic, "m", {})
    async with asyncio.timeout(TIMEOUT):
        await done.wait()
    assert attempts == [1, 2]


async def test_cancelled_subscription_gets_nothing_more(broker: MessageBroker, topic: str) -> None:
    leaving, staying = Inbox(), Inbox()
    sub = await broker.subscribe(topic, leaving, group="a")
    await broker.subscribe(topic, staying, group="b")
    await broker.publish(topic, 1)
    await leaving.wait(1)
    await staying.wait(1)
    await sub.cancel()
    await broker.publish(topic, 2)
    await staying.wait(2)
    assert leaving.payloads == [1]


async def test_pause_lets_the_current_message_finish_and_takes_no_more(
    broker: MessageBroker, topic: str
) -> None:
    gate = asyncio.Event()
    started, finished = asyncio.Event(), []

    async def slow(message: Message) -> None:
        started.set()
        await gate.wait()
        finished.append(message.payload)

    idle = Inbox()
    await broker.subscribe(topic, slow, group="busy")
    await broker.subscribe(topic, idle, group="idle")
    await broker.publish(topic, "in flight")
    await idle.wait(1)
    async with asyncio.timeout(TIMEOUT):
        await started.wait()
    await broker.drain()  # one consumer is busy, the other idle
    await broker.publish(topic, "after drain")  # publishing still works while draining
    gate.set()
    await until(lambda: bool(finished))
    # A message taken after drain would show up here; give it a moment to (not) arrive.
    await asyncio.sleep(0.05)
    assert finished == ["in flight"]
    assert idle.payloads == ["in flight"]


async def test_closed_broker_refuses_publish_and_subscribe(topic: str) -> None:
    for provider in PROVIDERS:
        config, instance = make(provider)
        await instance.start()
        await instance.stop()
        await cleanup(config, [instance])
        with pytest.raises(BrokerError, match="closed"):
            await instance.publish(topic, 1)
        with pytest.raises(BrokerError, match="closed"):
            await instance.subscribe(topic, Inbox(), group="g")


async def test_default_group_is_the_handler_name(broker: MessageBroker, topic: str) -> None:
    seen: list[str] = []

    async def audit(message: Message) -> None:
        seen.append(message.payload)

    first = await broker.subscribe(topic, audit)
    second = await broker.subscribe(topic, audit)
    assert first.group == second.group
    assert first.group.endswith("audit")
    await broker.publish(topic, "once")
    await broker.publish(topic, "twice")
    await until(lambda: len(seen) >= 2)
    # Two subscriptions in one group share the messages; as two groups each would get "once".
    # Competing consumers promise no order between them, only that each message comes once.
    assert sorted(seen) == ["once", "twice"]


async def test_wrong_schema_is_dead_lettered_at_once_and_the_consumer_goes_on(
    broker: MessageBroker, topic: str
) -> None:
    handled: list[Any] = []

    async def strict(message: Message) -> None:
        handled.append(message.payload)
        if "order" not in message.payload:
            raise ValidationFailed("input is invalid: $: 'order' is a required property")

    dead = Inbox()
    await broker.subscribe(topic + ".dlq", dead, group="ops")
    await broker.subscribe(topic, strict, group="g")
    await broker.publish(topic, {"item": 1})
    await broker.publish(topic, {"order": 2})
    [letter] = await dead.wait(1)
    await until(lambda: len(handled) == 2)
    assert handled == [{"item": 1}, {"order": 2}]  # once each: retrying cannot fix a schema
    assert letter.payload == {"item": 1}
    assert letter.headers["x-error"].startswith("wrong schema: input is invalid")
    assert letter.headers["x-attempts"] == "1"


async def test_a_retried_message_keeps_its_place_in_the_topic(
    broker: MessageBroker, topic: str
) -> None:
    """The consumer retries a failing message itself, so later messages wait behind it."""
    seen: list[tuple[Any, int]] = []

    async def flaky(message: Message) -> None:
        seen.append((message.payload, message.attempt))
        if message.payload == 0 and message.attempt < 3:
            raise ConnectionError("database blinked")

    await broker.subscribe(topic, flaky, group="g")
    for i in range(3):
        await broker.publish(topic, i)
    await until(lambda: len(seen) == 5)
    assert seen == [(0, 1), (0, 2), (0, 3), (1, 1), (2, 1)]


async def test_a_group_keeps_messages_only_where_the_broker_can(
    broker: MessageBroker, topic: str
) -> None:
    """Durable providers keep a group's messages while its consumers are away; memory and MQTT
    cannot (see KEEPS_MESSAGES_WHILE_AWAY for why), so there the group starts afresh."""
    first, second = Inbox(), Inbox()
    sub = await broker.subscribe(topic, first, group="g")
    await broker.publish(topic, 1)
    await first.wait(1)
    await sub.cancel()
    await broker.publish(topic, 2)  # nobody of group g is subscribed now
    await broker.subscribe(topic, second, group="g")
    await broker.publish(topic, 3)
    expected = [2, 3] if KEEPS_MESSAGES_WHILE_AWAY[broker.config.provider] else [3]
    await second.wait(len(expected))
    await until(lambda: 3 in second.payloads)
    assert second.payloads == expected
    assert first.payloads == [1]
