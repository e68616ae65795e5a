"""End-to-end message throughput per broker provider: publish -> handler pipeline -> ack.

For each provider an engine is built from YAML: a `messaging.broker` on the local server
and a messaging workflow whose subscription runs a 3-step pipeline (validate, set, call).
32 publisher tasks send `--messages` messages (each publish waits for the server's
confirmation), keeping at most 500 published but not yet handled (Mosquitto drops QoS 1
messages beyond `max_queued_messages`, 1000 by default, queued for one session: the window
keeps every provider below that); the clock runs from the first publish to the last handled
message. Then 200
messages one at a time give the end-to-end latency (publish until the handler ran). Each
provider runs with `prefetch: 1` (the default) and `prefetch: 32`.

    python bench/brokers.py [--messages 5000] [--providers memory,redis,nats,rabbitmq,mqtt]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from typing import Any

from common import record

from flownb import Engine, parse_config
from flownb.execution import ExecutionContext
from flownb.modules.messaging import MessageBroker

PROVIDERS = ["memory", "redis", "nats", "rabbitmq", "mqtt"]
PUBLISHERS = 32
WINDOW = 500
LATENCY_SAMPLES = 200

CONFIG = """
modules:
  - name: bus
    type: messaging.broker
    config: {broker}
  - name: on-order
    type: messaging.handler
    config:
      steps:
        - type: validate
          schema:
            type: object
            required: [seq, qty]
            properties: {{seq: {{type: integer}}, qty: {{type: integer, minimum: 1}}}}
        - type: set
          values: {{total: "{{{{ data.qty * 3 }}}}"}}
        - {{type: call, function: done}}
workflows:
  messaging:
    subscriptions:
      - {{topic: bench.orders, handler: on-order}}
"""


def broker_settings(provider: str, prefetch: int) -> dict[str, Any]:
    run = os.urandom(5).hex()
    config: dict[str, Any] = {"provider": provider}
    if provider != "memory":
        config["prefetch"] = prefetch
    if provider == "redis":
        config["redis"] = {"keyPrefix": f"flownb-bench:{run}:"}
    elif provider == "nats":
        config["nats"] = {"stream": f"FLOWNB_BENCH_{run}", "subjectPrefix": f"flownbbench.{run}."}
    elif provider == "rabbitmq":
        config["rabbitmq"] = {"exchange": f"flownb-bench-{run}", "queuePrefix": f"bench-{run}."}
    elif provider == "mqtt":
        config["mqtt"] = {"topicPrefix": f"flownb-bench/{run}/"}
    return config


class Counter:
    """The last pipeline step: counts handled messages and wakes whoever waits for a count."""

    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.reached = asyncio.Event()
        self.progress = asyncio.Event()
        self.handled_at: dict[int, float] = {}

    async def __call__(self, data: Any, ctx: ExecutionContext) -> None:
        self.count += 1
        self.handled_at[data["seq"]] = time.perf_counter()
        self.progress.set()
        if self.count >= self.target:
            self.reached.set()

    async def below(self, published: int) -> None:
        """Wait until fewer than WINDOW of `published` messages are left to handle."""
        while published - self.count > WINDOW:
            self.progress.clear()
            await self.progress.wait()

    def expect(self, target: int) -> None:
        self.target = target
        self.reached.clear()
        if self.count >= target:
            self.reached.set()


async def measure(provider: str, prefetch: int, messages: int) -> dict[str, Any]:
    settings = broker_settings(provider, prefetch)
    counter = Counter()
    engine = Engine(
        parse_config(CONFIG.format(broker=json.dumps(settings))), functions={"done": counter}
    )
    await engine.start()
    bus = engine.services.get("bus", MessageBroker)
    try:
        publish = bus.publish
        # Warm-up: connections, the group, JIT-free but cache-warm paths.
        counter.expect(200)
        for seq in range(200):
            await publish("bench.orders", {"seq": -1 - seq, "qty": 2})
        await asyncio.wait_for(counter.reached.wait(), 60)

        counter.expect(200 + messages)
        started = time.perf_counter()

        async def publisher(first: int) -> None:
            for seq in range(first, messages, PUBLISHERS):
                await counter.below(200 + seq)
                await publish("bench.orders", {"seq": seq, "qty": 2})

        await asyncio.gather(*(publisher(i) for i in range(PUBLISHERS)))
        published = time.perf_counter() - started
        await asyncio.wait_for(counter.reached.wait(), 300)
        elapsed = time.perf_counter() - started

        latencies = []
        for i in range(LATENCY_SAMPLES):
            seq = messages + i
            counter.expect(200 + messages + i + 1)
            sent = time.perf_counter()
            await publish("bench.orders", {"seq": seq, "qty": 2})
            await asyncio.wait_for(counter.reached.wait(), 30)
            latencies.append((counter.handled_at[seq] - sent) * 1000)
        latencies.sort()
    finally:
        await engine.stop()
        await cleanup(settings, bus)
    return {
        "provider": provider,
        "prefetch": prefetch if provider != "memory" else None,
        "messages": messages,
        "messages_per_s": round(messages / elapsed),
        "publish_per_s": round(messages / published),
        "latency_p50_ms": round(statistics.median(latencies), 3),
        "latency_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 3),
    }


async def cleanup(settings: dict[str, Any], bus: MessageBroker) -> None:
    """Remove the streams, queues and exchange this run created on the shared servers."""
    provider = settings["provider"]
    if provider == "redis":
        import redis.asyncio as aioredis

        client = aioredis.Redis()
        keys = [k async for k in client.scan_iter(match=settings["redis"]["keyPrefix"] + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    elif provider == "nats":
        import nats

        nc = await nats.connect("nats://127.0.0.1:4222")
        await nc.jetstream().delete_stream(settings["nats"]["stream"])
        await nc.close()
    elif provider == "rabbitmq":
        import aio_pika

        queues = getattr(bus.provider, "queues", set())
        conn = await aio_pika.connect("amqp://guest:guest@127.0.0.1/")
        channel = await conn.channel()
        for name in queues:
            await channel.queue_delete(name)
        await channel.exchange_delete(settings["rabbitmq"]["exchange"])
        await conn.close()


async def main(messages: int, providers: list[str]) -> None:
    results = []
    for provider in providers:
        for prefetch in (1, 32) if provider != "memory" else (1,):
            count = messages * 4 if provider == "memory" else messages
            result = await measure(provider, prefetch, count)
            results.append(result)
            print(
                f"{provider:9} prefetch {result['prefetch'] or '-':>3}: "
                f"{result['messages_per_s']:>7,} msg/s end to end "
                f"(publish {result['publish_per_s']:>7,}/s), latency p50 "
                f"{result['latency_p50_ms']:.2f} ms, p99 {result['latency_p99_ms']:.2f} ms",
                flush=True,
            )
    path = record("brokers", {"publishers": PUBLISHERS, "results": results})
    print(f"written {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--providers", default=",".join(PROVIDERS))
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(args.messages, args.providers.split(",")))
    else:  # as `flownb run` does
        uvloop.run(main(args.messages, args.providers.split(",")))
