"""The in-memory broker provider: one process, no persistence; the default and the test double.

Per topic, per consumer group, one bounded `asyncio.Queue`; every subscription is a consumer
task on its group's queue, so subscriptions in one group compete and each group sees every
message. Publishing waits while a group's queue is full (backpressure). Payloads travel as
JSON bytes, as on a real broker: every consumer decodes its own copy, and what cannot be
encoded fails at publish. A message published to a topic nobody subscribes to is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any, Literal

from flownb.brokers.base import (
    BrokerError,
    Message,
    MessageHandler,
    decode_message,
    encode_payload,
)
from flownb.execution import new_id

log = logging.getLogger("flownb.brokers.memory")

_Item = tuple[str, bytes, Mapping[str, str], float]


class _Group:
    __slots__ = ("name", "queue", "subscriptions", "topic")

    def __init__(self, topic: str, name: str, max_queue: int) -> None:
        self.topic = topic
        self.name = name
        self.queue: asyncio.Queue[_Item] = asyncio.Queue(max_queue)
        self.subscriptions: list[MemorySubscription] = []


class MemorySubscription:
    """One consumer task on a group's queue."""

    def __init__(self, provider: MemoryProvider, group: _Group, handler: MessageHandler) -> None:
        self.topic = group.topic
        self.group = group.name
        self._provider = provider
        self._queue = group.queue
        self._handler = handler
        self._task: asyncio.Task[None] | None = None
        self._busy = False
        self._stopping = False

    def _start(self) -> None:
        if self._task is None and not self._stopping:
            self._task = asyncio.create_task(
                self._consume(), name=f"memory-consumer {self.topic}/{self.group}"
            )

    def _stop_taking(self) -> None:
        """Take no new message; an idle consumer stops now, a busy one after its message."""
        self._stopping = True
        if self._task is not None and not self._busy:
            self._task.cancel()

    async def cancel(self) -> None:
        self._stop_taking()
        self._provider._remove(self)

    async def _consume(self) -> None:
        queue, topic = self._queue, self.topic
        while not self._stopping:
            message_id, body, headers, timestamp = await queue.get()
            self._busy = True
            try:
                await self._deliver(
                    decode_message(message_id, topic, body, headers, timestamp=timestamp)
                )
            finally:
                self._busy = False
                queue.task_done()

    async def _deliver(self, message: Message) -> None:
        """Call the handler until it returns (ack); raising is a nack: deliver again."""
        while True:
            try:
                await self._handler(message)
                return
            except Exception:
                log.exception(
                    "handler of %r (group %r) failed on message %s (attempt %d)",
                    self.topic,
                    self.group,
                    message.id,
                    message.attempt,
                )
                if self._stopping:
                    log.error(
                        "message %s on %r is lost: the consumer stopped", message.id, self.topic
                    )
                    return
                await asyncio.sleep(self._provider.nack_delay)
                message.attempt += 1


class MemoryProvider:
    """In-process broker (see the module docstring). No I/O; `connect` starts the consumers."""

    def __init__(self, *, max_queue: int = 10_000, nack_delay: float = 0.1) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.max_queue = max_queue
        self.nack_delay = nack_delay
        self._topics: dict[str, dict[str, _Group]] = {}
        self._state: Literal["new", "running", "paused", "closed"] = "new"
        self._tasks: set[asyncio.Task[None]] = set()

    async def connect(self) -> None:
        if self._state == "closed":
            raise BrokerError("the memory broker is closed; it cannot be reopened")
        self._state = "running"
        for groups in self._topics.values():
            for group in groups.values():
                for sub in group.subscriptions:
                    self._run(sub)

    async def close(self) -> None:
        self._state = "closed"
        subs = [
            s for groups in self._topics.values() for g in groups.values() for s in g.subscriptions
        ]
        groups = [g for gs in self._topics.values() for g in gs.values()]
        self._topics.clear()
        for group in groups:
            _discard(group)
        for sub in subs:
            sub._stop_taking()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def pause(self) -> None:
        if self._state == "running":
            self._state = "paused"
        for groups in self._topics.values():
            for group in groups.values():
                for sub in group.subscriptions:
                    sub._stop_taking()

    async def publish(self, topic: str, payload: Any, headers: Mapping[str, str]) -> str:
        return await self.publish_raw(topic, encode_payload(topic, payload), headers)

    async def publish_raw(self, topic: str, body: bytes, headers: Mapping[str, str]) -> str:
        if self._state == "closed":
            raise BrokerError(f"cannot publish to {topic!r}: the broker is closed")
        message_id = new_id()
        groups = self._topics.get(topic)
        if groups:
            item: _Item = (message_id, body, headers, time.time())
            for group in list(groups.values()):
                queue = group.queue
                if queue.full():
                    await queue.put(item)
                else:
                    queue.put_nowait(item)
        return message_id

    async def subscribe(
        self, topic: str, group: str, handler: MessageHandler
    ) -> MemorySubscription:
        if self._state == "closed":
            raise BrokerError(f"cannot subscribe to {topic!r}: the broker is closed")
        groups = self._topics.setdefault(topic, {})
        found = groups.get(group)
        if found is None:
            found = groups[group] = _Group(topic, group, self.max_queue)
        sub = MemorySubscription(self, found, handler)
        found.subscriptions.append(sub)
        if self._state == "running":
            self._run(sub)
        return sub

    def pending(self, topic: str, group: str) -> int:
        """Messages waiting in a group's queue (0 if there is no such group)."""
        found = self._topics.get(topic, {}).get(group)
        return 0 if found is None else found.queue.qsize()

    def _run(self, sub: MemorySubscription) -> None:
        sub._start()
        task = sub._task
        if task is not None and task not in self._tasks:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _remove(self, sub: MemorySubscription) -> None:
        groups = self._topics.get(sub.topic)
        group = groups.get(sub.group) if groups else None
        if groups is None or group is None or sub not in group.subscriptions:
            return
        group.subscriptions.remove(sub)
        if not group.subscriptions:
            # Nobody will read this queue again; keeping it would block publishers once full.
            del groups[sub.group]
            if not groups:
                del self._topics[sub.topic]
            dropped = _discard(group)
            if dropped:
                log.warning(
                    "dropped %d undelivered message(s) of %r for group %r (last consumer left)",
                    dropped,
                    sub.topic,
                    sub.group,
                )


def _discard(group: _Group) -> int:
    """Empty a group's queue, which also frees any publisher waiting for room in it."""
    queue, dropped = group.queue, 0
    while not queue.empty():
        queue.get_nowait()
        queue.task_done()
        dropped += 1
    return dropped
