"""Broker providers under faults: a server restart mid-stream, a consumer killed mid-message,
lost connections, vanished streams, unreachable servers and wrong passwords.

The restart tests stop and start the shared server on this machine (the commands of the
machine notes, in `realservices`) and always leave it running. Redis runs here without
persistence, so a Redis restart loses its streams by configuration: Redis is tested with
killed connections instead, which it survives without loss.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from broker_services import REMOTE, cleanup, settings
from realservices import require, stop

from flownb.brokers import BrokerError, Message
from flownb.errors import ConfigError
from flownb.execution import new_id
from flownb.loader import parse_config
from flownb.modules.messaging import BrokerConfig, MessageBroker

TIMEOUT = 10.0
CHILD = Path(__file__).with_name("broker_child.py")

# A consumer that dies holding a message: how the group gets it back, per provider.
TAKEN_OVER_AFTER = {
    "redis": {"redis": {"claimIdle": "500ms"}},  # XAUTOCLAIM by another consumer
    "nats": {"nats": {"ackWait": "1s"}},  # redelivered once the ack wait is over
    "rabbitmq": {},  # requeued as soon as the dead consumer's connection closes
}


async def until_true(predicate: Any, timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - nothing to await on, so poll
            await asyncio.sleep(0.005)


class Ledger:
    """A handler that dedupes by message id, as an at-least-once consumer should."""

    def __init__(self) -> None:
        self.by_id: dict[str, int] = {}
        self.deliveries = Counter[str]()

    async def __call__(self, message: Message) -> None:
        self.deliveries[message.id] += 1
        self.by_id.setdefault(message.id, message.payload["seq"])
        await asyncio.sleep(0.001)  # a little work, so a backlog builds up on the server

    @property
    def duplicates(self) -> int:
        return sum(self.deliveries.values()) - len(self.deliveries)


@asynccontextmanager
async def running(config: dict[str, Any]) -> AsyncIterator[MessageBroker]:
    broker = MessageBroker("bus", BrokerConfig.model_validate(config))
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()
        await cleanup(config, [broker])


async def stream_through(broker: MessageBroker, topic: str, fault: Any) -> list[int]:
    """Publish a steady stream; `fault()` runs once 40 are out, and 40 more follow it."""
    published: list[int] = []
    seq, after = 0, None
    task: asyncio.Task[Any] | None = None
    while after is None or seq < after + 40:
        await broker.publish(topic, {"seq": seq})
        published.append(seq)
        seq += 1
        if seq == 40:
            task = asyncio.create_task(fault())
        if task is not None and task.done() and after is None:
            task.result()
            after = seq
        await asyncio.sleep(0.002)  # a stream, not a burst: publishing spans the fault
    return published


@pytest.mark.slow
@pytest.mark.parametrize("provider", ["nats", "rabbitmq"])
async def test_server_restart_mid_stream_loses_nothing(provider: str) -> None:
    """NATS (file storage) and RabbitMQ (durable queues, persistent messages) keep every
    message across a restart; consumers reconnect by themselves; duplicates carry the id of
    the first delivery, so a handler dedupes."""
    require(provider)
    extra: dict[str, Any] = {"nats": {"ackWait": "2s"}} if provider == "nats" else {}
    config = settings(provider, prefetch=10, publishTimeout="90s", **extra)
    topic, ledger = f"faults.{new_id()[:8]}", Ledger()
    health: list[str] = []
    try:
        async with running(config) as broker:

            async def restart() -> None:
                await asyncio.to_thread(stop, provider)
                health.append((await broker.health()).status)  # type: ignore[union-attr]
                await asyncio.to_thread(require, provider)

            await broker.subscribe(topic, ledger, group="g")
            published = await stream_through(broker, topic, restart)
            try:
                await until_true(lambda: len(ledger.by_id) >= len(published), timeout=30)
            except TimeoutError:
                missing = sorted(set(published) - set(ledger.by_id.values()))
                pytest.fail(f"{provider}: lost {missing} of {len(published)}", pytrace=False)
            assert sorted(ledger.by_id.values()) == published  # none lost, none invented
            assert len(set(ledger.by_id.values())) == len(ledger.by_id)  # one id per message
            health.append((await broker.health()).status)  # type: ignore[union-attr]
            assert health == ["degraded", "healthy"]  # while the server was down, then back
            print(f"{provider}: {len(published)} messages, {ledger.duplicates} duplicates")
    finally:
        await asyncio.to_thread(require, provider)  # whatever happened, leave it running


async def test_mqtt_consumers_subscribe_again_after_a_server_restart() -> None:
    """Mosquitto here writes its persistence file but brings back no session after a restart
    (2.0.11: neither the subscriptions nor the messages queued for them), so MQTT is not
    durable across a restart: what is published before the consumers have subscribed again,
    or was unacknowledged, is lost. Consumers do reconnect and subscribe by themselves."""
    require("mqtt")
    config = settings("mqtt")
    topic, ledger = f"faults.{new_id()[:8]}", Ledger()
    try:
        async with running(config) as broker:
            await broker.subscribe(topic, ledger, group="g")
            for seq in range(20):
                await broker.publish(topic, {"seq": seq})
            await until_true(lambda: len(ledger.by_id) == 20)
            await asyncio.to_thread(stop, "mqtt")
            assert (await broker.health()).status == "degraded"  # type: ignore[union-attr]
            await asyncio.to_thread(require, "mqtt")
            async with asyncio.timeout(TIMEOUT):
                # The consumer's reconnection is not signalled, so poll its health.
                while (await broker.health()).status != "healthy":  # type: ignore[union-attr]  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            for seq in range(20, 40):
                await broker.publish(topic, {"seq": seq})
            await until_true(lambda: len(ledger.by_id) == 40)
            assert sorted(ledger.by_id.values()) == list(range(40))
    finally:
        await asyncio.to_thread(require, "mqtt")


async def kill_connections(client_name: str) -> int:
    """Kill the Redis connections of one broker (by its client name); returns how many."""
    import redis.asyncio as aioredis

    admin = aioredis.Redis()
    try:
        clients = await admin.client_list()
        ids = [c["id"] for c in clients if c.get("name") == client_name]
        for client_id in ids:
            await admin.execute_command("CLIENT", "KILL", "ID", client_id)
        return len(ids)
    finally:
        await admin.aclose()


async def test_redis_consumer_survives_killed_connections_without_loss() -> None:
    require("redis")
    config = settings("redis", prefetch=10)
    topic, ledger = f"faults.{new_id()[:8]}", Ledger()
    async with running(config) as broker:
        await broker.subscribe(topic, ledger, group="g")
        name = f"flownb-broker-{broker.provider.instance}"  # type: ignore[attr-defined]

        async def fault() -> None:
            assert await kill_connections(name) >= 1

        published = await stream_through(broker, topic, fault)
        await until_true(lambda: len(ledger.by_id) >= len(published))
        assert sorted(ledger.by_id.values()) == published


async def test_redis_group_that_vanished_is_recreated() -> None:
    """What a Redis restart without persistence does to a stream, without the restart."""
    import redis.asyncio as aioredis

    require("redis")
    config = settings("redis")
    topic, got = f"faults.{new_id()[:8]}", asyncio.Queue[Any]()

    async def take(message: Message) -> None:
        got.put_nowait(message.payload)

    async with running(config) as broker:
        await broker.subscribe(topic, take, group="g")
        await broker.publish(topic, "before")
        assert await asyncio.wait_for(got.get(), TIMEOUT) == "before"
        admin = aioredis.Redis()
        await admin.delete(config["redis"]["keyPrefix"] + topic)
        await admin.aclose()
        # The consumer finds its group gone, recreates it, and takes what comes next.
        async with asyncio.timeout(TIMEOUT):
            while got.empty():
                await broker.publish(topic, "after")
                await asyncio.sleep(0.05)
        assert await got.get() == "after"


@asynccontextmanager
async def child_consumer(config: dict[str, Any], topic: str) -> AsyncIterator[Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        json.dumps(config),
        topic,
        "workers",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line == b"ready\n", line
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def taken_by_child(process: Any) -> tuple[str, int]:
    line = (await asyncio.wait_for(process.stdout.readline(), TIMEOUT)).decode().split()
    assert line[0] == "got", line
    return line[1], int(line[2])


@pytest.mark.parametrize("provider", ["redis", "nats", "rabbitmq"])
async def test_message_of_a_killed_consumer_goes_to_another_of_its_group(provider: str) -> None:
    require(provider)
    config = settings(provider, **TAKEN_OVER_AFTER[provider])
    topic, got = f"faults.{new_id()[:8]}", asyncio.Queue[Message]()

    async def survivor(message: Message) -> None:
        got.put_nowait(message)

    async with running(config) as broker:
        async with child_consumer(config, topic) as child:
            message_id = await broker.publish(topic, {"order": 1})
            assert await taken_by_child(child) == (message_id, 1)
            # Only now does a second consumer join the group; then the first one dies.
            await broker.subscribe(topic, survivor, group="workers")
            child.kill()
        message = await asyncio.wait_for(got.get(), TIMEOUT)
    assert message.id == message_id
    assert message.payload == {"order": 1}
    assert message.attempt == 2  # the server counted the delivery to the dead consumer


async def test_mqtt_message_of_a_killed_consumer_waits_in_its_session() -> None:
    """MQTT deviation: the server keeps a dead member's share in that member's session, not
    in the group. Another member does not get it; a process that resumes the session (same
    client id) does, with attempt 1 (MQTT does not count deliveries)."""
    require("mqtt")
    client_id = f"flownb-test-{new_id()[:8]}"
    config = settings("mqtt", mqtt={"clientId": client_id, "sessionExpiry": "60s"})
    peer = settings("mqtt", mqtt={"topicPrefix": config["mqtt"]["topicPrefix"]})
    topic, got = f"faults.{new_id()[:8]}", list[Message]()

    async def take(message: Message) -> None:
        got.append(message)

    async with running(peer) as other:
        async with child_consumer(config, topic) as child:
            message_id = await other.publish(topic, {"order": 1})
            assert await taken_by_child(child) == (message_id, 1)
            await other.subscribe(topic, take, group="workers")
            child.kill()
        # The group goes on; the server still shares messages with the dead member's session.
        for order in (2, 3):
            await other.publish(topic, {"order": order})
        await until_true(lambda: len(got) >= 1)
        assert all(m.id != message_id for m in got)
        async with running(config) as heir:
            await heir.subscribe(topic, take, group="workers")
            await until_true(lambda: {m.payload["order"] for m in got} == {1, 2, 3})
    [first] = [m for m in got if m.id == message_id]
    assert first.attempt == 1
    assert len(got) == 3


@pytest.mark.parametrize("provider", REMOTE)
async def test_unreachable_server_fails_at_start_with_a_clear_error(provider: str) -> None:
    url = {
        "redis": "redis://:s3cret@127.0.0.1:1/0",
        "nats": "nats://user:s3cret@127.0.0.1:1",
        "rabbitmq": "amqp://guest:s3cret@127.0.0.1:1/",
        "mqtt": "mqtt://user:s3cret@127.0.0.1:1",
    }[provider]
    broker = MessageBroker(
        "bus", BrokerConfig.model_validate(settings(provider, url=url, connectTimeout="2s"))
    )
    with pytest.raises(BrokerError) as info:
        await broker.start()
    await broker.stop()
    text = str(info.value)
    assert f"cannot connect to {provider} at" in text
    assert "127.0.0.1:1" in text
    assert "s3cret" not in text  # the password never shows
    assert "check that the server runs" in text


async def test_wrong_password_is_refused_clearly() -> None:
    require("rabbitmq")
    broker = MessageBroker(
        "bus",
        BrokerConfig.model_validate(settings("rabbitmq", username="guest", password="wrong")),
    )
    with pytest.raises(BrokerError) as info:
        await broker.start()
    await broker.stop()
    assert "cannot connect to rabbitmq" in str(info.value)
    assert "wrong" not in str(info.value)


def test_settings_of_another_provider_are_refused() -> None:
    text = """
modules:
  - name: bus
    type: messaging.broker
    config: {provider: redis, nats: {stream: ORDERS}}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert "'nats' settings are given but the provider is 'redis'" in str(info.value)
    with pytest.raises(ConfigError, match="the memory provider connects to nothing"):
        parse_config(text.replace("provider: redis, nats: {stream: ORDERS}", "url: redis://x"))


@pytest.mark.parametrize(
    ("provider", "topic"),
    [("nats", "orders created"), ("nats", "orders.*"), ("nats", "a..b"), ("mqtt", "orders/#")],
)
async def test_a_topic_the_server_cannot_carry_is_refused(provider: str, topic: str) -> None:
    require(provider)
    async with running(settings(provider)) as broker:
        with pytest.raises(BrokerError, match=f"topic {re.escape(repr(topic))} cannot be"):
            await broker.publish(topic, 1)
        with pytest.raises(BrokerError, match="cannot be"):
            await broker.subscribe(topic, Ledger(), group="g")


@pytest.mark.parametrize(
    ("provider", "library"),
    [("redis", "redis"), ("nats", "nats"), ("rabbitmq", "aio_pika"), ("mqtt", "aiomqtt")],
)
def test_a_missing_client_library_names_the_extra(
    provider: str, library: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, library, None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, f"flownb.brokers.{provider}", raising=False)
    with pytest.raises(BrokerError) as info:
        MessageBroker("bus", BrokerConfig.model_validate({"provider": provider}))
    assert f"pip install 'flownb[{provider}]'" in str(info.value)
