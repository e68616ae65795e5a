"""The delivery policy every provider shares: redelivery with backoff, then a dead letter.

Wrapped around each handler once, above the provider, so Redis, NATS or the memory broker
all behave alike: a handler that returns acks the message; one that raises gets it again
(`maxDeliveries` attempts in all, the wait doubling from `redeliveryDelay`); after the last
attempt, or at once for a malformed message, a `RejectMessage` or a payload that failed its
schema (`ValidationFailed`: retrying cannot fix it), the message goes to
`<topic><deadLetterSuffix>` with the reason in its headers, and is acked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flownb.brokers.base import (
    ATTEMPTS_HEADER,
    ERROR_HEADER,
    ORIGINAL_TOPIC_HEADER,
    Message,
    MessageHandler,
    RejectMessage,
)
from flownb.errors import ValidationFailed

log = logging.getLogger("flownb.brokers")

Publish = Callable[[str, Any, Mapping[str, str]], Awaitable[str]]

_MAX_ERROR_TEXT = 1000
_MAX_BACKOFF_FACTOR = 64


@dataclass(slots=True)
class DeliveryStats:
    """Counters of one broker (read by tests, health and metrics)."""

    delivered: int = 0
    redelivered: int = 0
    dead_lettered: int = 0


@dataclass(slots=True)
class DeliveryPolicy:
    max_deliveries: int = 3
    redelivery_delay: float = 0.1
    dead_letter_suffix: str = ".dlq"
    stats: DeliveryStats = field(default_factory=DeliveryStats)

    def dead_letter_topic(self, topic: str) -> str:
        return topic + self.dead_letter_suffix

    def wrap(self, handler: MessageHandler, publish: Publish) -> MessageHandler:
        """`handler` with this policy around it; what the provider actually calls."""

        async def deliver(message: Message) -> None:
            if message.malformed is not None:
                await self._dead_letter(publish, message, f"malformed message: {message.malformed}")
                return
            while True:
                try:
                    await handler(message)
                except RejectMessage as exc:
                    await self._dead_letter(publish, message, f"rejected: {exc}")
                    return
                except Exception as exc:
                    if _wrong_schema(exc):
                        await self._dead_letter(publish, message, f"wrong schema: {exc}")
                        return
                    reason = f"{type(exc).__name__}: {exc}"
                    if message.attempt >= self.max_deliveries:
                        await self._dead_letter(publish, message, reason)
                        return
                    log.warning(
                        "message %s on %r failed (attempt %d of %d), retrying: %s",
                        message.id,
                        message.topic,
                        message.attempt,
                        self.max_deliveries,
                        reason,
                    )
                    self.stats.redelivered += 1
                    factor = min(2 ** (message.attempt - 1), _MAX_BACKOFF_FACTOR)
                    await asyncio.sleep(self.redelivery_delay * factor)
                    message.attempt += 1
                else:
                    self.stats.delivered += 1
                    return

        return deliver

    async def _dead_letter(self, publish: Publish, message: Message, reason: str) -> None:
        topic = message.topic
        if topic.endswith(self.dead_letter_suffix):
            log.error(
                "dropping message %s from dead-letter topic %r: %s", message.id, topic, reason
            )
            return
        target = self.dead_letter_topic(topic)
        log.error(
            "message %s on %r dead-lettered to %r after %d attempt(s): %s",
            message.id,
            topic,
            target,
            message.attempt,
            reason,
        )
        headers = {
            **message.headers,
            ERROR_HEADER: reason[:_MAX_ERROR_TEXT],
            ORIGINAL_TOPIC_HEADER: topic,
            ATTEMPTS_HEADER: str(message.attempt),
        }
        await publish(target, message.payload, headers)
        self.stats.dead_lettered += 1


def _wrong_schema(exc: BaseException) -> bool:
    """A schema check failed, itself or as the cause of a step error (the validate step)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, ValidationFailed):
            return True
        seen = seen.__cause__
    return False
