"""A consumer in a process of its own, for tests that kill it: `python broker_child.py CONFIG
TOPIC GROUP`. It prints `ready`, then `got <id> <attempt>` for the first message, which it
never finishes: the test kills the process while the message is unacknowledged."""

from __future__ import annotations

import asyncio
import json
import sys

from flownb.brokers import Message
from flownb.modules.messaging import BrokerConfig, MessageBroker


async def main(config: str, topic: str, group: str) -> None:
    broker = MessageBroker("child", BrokerConfig.model_validate(json.loads(config)))
    await broker.start()
    hang = asyncio.Event()

    async def take(message: Message) -> None:
        print(f"got {message.id} {message.attempt}", flush=True)
        await hang.wait()

    await broker.subscribe(topic, take, group=group)
    print("ready", flush=True)
    await hang.wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
