"""The broker provider contract: what every message broker (memory, Redis, NATS...) offers.

A provider moves messages; it does not decide what a failure means. Retries, backoff and
dead letters are one shared policy (`flownb.brokers.delivery`) wrapped around every handler,
so each provider only has to honour this small contract:

- `publish` encodes the payload as JSON (`encode_payload`) and returns the message id;
- `subscribe(topic, group, handler)`: consumers in one group compete for messages, each group
  gets every message; the handler returning is an ack, raising is a nack (the provider
  delivers the message again with `attempt + 1`);
- a body that does not decode is still delivered, as a `Message` whose `malformed` says why,
  so the shared policy can dead-letter it; a consumer never dies of a bad message;
- `pause` stops taking new messages (engine drain), `close` releases everything.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from flownb.errors import FlownbError

# Headers set on a dead-lettered message.
ERROR_HEADER = "x-error"
ORIGINAL_TOPIC_HEADER = "x-original-topic"
ATTEMPTS_HEADER = "x-attempts"
REQUEST_ID_HEADER = "request-id"


class BrokerError(FlownbError):
    """A broker cannot do what was asked (not started, closed, connection lost)."""


class PayloadError(BrokerError):
    """A payload that cannot travel as JSON."""


class RejectMessage(FlownbError):
    """Raise from a handler to dead-letter a message at once: retrying cannot help."""


@dataclass(slots=True)
class Message:
    """One delivery of a message to a handler."""

    id: str
    topic: str
    payload: Any
    headers: dict[str, str] = field(default_factory=dict)
    attempt: int = 1
    timestamp: float = field(default_factory=time.time)
    malformed: str | None = None
    """Why the body could not be decoded (then `payload` holds the raw text); None if fine."""


MessageHandler = Callable[[Message], Awaitable[None]]


class Subscription(Protocol):
    topic: str
    group: str

    async def cancel(self) -> None:
        """Take no new messages; a message being handled is left to finish."""
        ...


class BrokerProvider(Protocol):
    """What a broker provider implements. See the module docstring for the semantics."""

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, topic: str, payload: Any, headers: Mapping[str, str]) -> str: ...

    async def publish_raw(self, topic: str, body: bytes, headers: Mapping[str, str]) -> str:
        """Send bytes as they are, as a producer outside flownb would."""
        ...

    async def subscribe(self, topic: str, group: str, handler: MessageHandler) -> Subscription: ...

    async def pause(self) -> None:
        """Stop taking new messages on every subscription (drain); publishing still works."""
        ...


def encode_payload(topic: str, payload: Any) -> bytes:
    """The payload as JSON bytes; a clear error naming the topic when it is not JSON."""
    try:
        return orjson.dumps(
            payload, option=orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
        )
    except TypeError as exc:
        raise PayloadError(
            f"cannot publish to {topic!r}: the payload is not JSON-compatible ({exc}); "
            "send dicts with string keys, lists, strings, numbers, booleans or null"
        ) from None


def decode_message(
    message_id: str,
    topic: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    attempt: int = 1,
    timestamp: float | None = None,
) -> Message:
    """A `Message` from a body off the wire; an undecodable body gives a malformed message."""
    malformed = None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        payload = body.decode("utf-8", errors="replace")
        malformed = f"body is not JSON: {exc}"
    return Message(
        message_id,
        topic,
        payload,
        dict(headers),
        attempt,
        time.time() if timestamp is None else timestamp,
        malformed,
    )


def clean_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """Headers as str -> str (templates may give numbers); None values are left out."""
    if not headers:
        return {}
    return {
        str(k): v if isinstance(v, str) else str(v) for k, v in headers.items() if v is not None
    }
