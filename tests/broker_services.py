"""Per-test names on the broker servers, and clean-up of what a test created there.

Every test gets names of its own (key prefix, stream, exchange, topic prefix) and `cleanup`
removes what it created, because other test runs may use the same servers at the same time.
Reaching, starting and restarting the servers is `realservices`.
"""

from __future__ import annotations

from typing import Any

from flownb.execution import new_id
from flownb.modules.messaging import MessageBroker

REMOTE = ("redis", "nats", "rabbitmq", "mqtt")


def settings(provider: str, **extra: Any) -> dict[str, Any]:
    """A broker config with names no other test (or test run) uses."""
    run = new_id()[:10]
    base: dict[str, Any] = {"provider": provider}
    if provider == "redis":
        base["redis"] = {"keyPrefix": f"flownb-test:{run}:", "claimIdle": "2s"}
    elif provider == "nats":
        base["nats"] = {"stream": f"FLOWNB_TEST_{run}", "subjectPrefix": f"flownbtest.{run}."}
    elif provider == "rabbitmq":
        base["rabbitmq"] = {
            "exchange": f"flownb-test-{run}",
            "queuePrefix": f"flownb-test-{run}.",
        }
    elif provider == "mqtt":
        base["mqtt"] = {"topicPrefix": f"flownb-test/{run}/", "sessionExpiry": "30s"}
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base


async def cleanup(config: dict[str, Any], brokers: list[MessageBroker]) -> None:
    """Remove what a test created on the server (streams, queues, exchange)."""
    provider = config["provider"]
    if provider == "redis":
        import redis.asyncio as aioredis

        client = aioredis.Redis()
        try:
            keys = [k async for k in client.scan_iter(match=config["redis"]["keyPrefix"] + "*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()
    elif provider == "nats":
        import nats
        from nats.js.errors import NotFoundError

        nc = await nats.connect("nats://127.0.0.1:4222")
        try:
            await nc.jetstream().delete_stream(config["nats"]["stream"])
        except NotFoundError:
            pass
        finally:
            await nc.close()
    elif provider == "rabbitmq":
        import aio_pika

        from flownb.brokers.rabbitmq import RabbitmqProvider

        names = set()
        for broker in brokers:
            assert isinstance(broker.provider, RabbitmqProvider)
            names |= broker.provider.queues
        conn = await aio_pika.connect("amqp://guest:guest@127.0.0.1/")
        try:
            channel = await conn.channel()
            for name in names:
                await channel.queue_delete(name)
            await channel.exchange_delete(config["rabbitmq"]["exchange"])
        finally:
            await conn.close()
