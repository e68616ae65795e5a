"""The Redis Streams provider: topic T is the stream `<keyPrefix>T`, a group a consumer group.

Each subscription is a consumer of its group (`XREADGROUP ... >`, `prefetch` entries at a
time) and acknowledges with `XACK` after its handler returned. Entries left pending by a
consumer that died are taken over by another one of the group with `XAUTOCLAIM` once idle
for `claimIdle`; a consumer keeps the entry it is working on fresh (`XCLAIM ... JUSTID`), so
a slow handler is not mistaken for a dead one. A group starts at the newest entry (`$`).

An entry holds the fields `id` (flownb's message id), `ts`, `body` (the JSON bytes) and one
`h:<name>` field per header. Redis keeps streams only as long as its persistence allows: a
server running without persistence (as in the tests here) loses them on restart; consumers
then recreate their group and go on with new messages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flownb.brokers.base import BrokerError, Message, MessageHandler, decode_message
from flownb.brokers.options import Connection, RedisOptions
from flownb.brokers.remote import RemoteProvider, RemoteSubscription, missing_extra
from flownb.execution import new_id

try:
    import redis.asyncio as aioredis
    from redis import exceptions as redis_errors
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_extra("redis", "redis") from exc

if TYPE_CHECKING:
    Client = aioredis.Redis

log = logging.getLogger("flownb.brokers.redis")

_HEADER_PREFIX = b"h:"
_MAX_BLOCK = 1.0


class RedisProvider(RemoteProvider):
    kind = "redis"

    def __init__(self, connection: Connection, options: RedisOptions) -> None:
        super().__init__(connection)
        self.options = options
        self.instance = new_id()[:8]
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            raise BrokerError("the redis broker is not connected")
        return self._client

    @property
    def heartbeat(self) -> float:
        return max(float(self.options.claim_idle) / 3, 0.01)

    def stream(self, topic: str) -> str:
        return self.options.key_prefix + topic

    async def _open(self) -> None:
        conn = self.connection
        self._client = aioredis.Redis.from_url(
            conn.url,
            username=conn.username,
            password=conn.password,
            socket_connect_timeout=conn.connect_timeout,
            socket_keepalive=True,
            client_name=f"flownb-broker-{self.instance}",
        )
        await self._client.ping()

    async def _ping(self) -> None:
        await self.client.ping()

    async def _shutdown(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def _send(
        self,
        topic: str,
        message_id: str,
        body: bytes,
        headers: Mapping[str, str],
        timestamp: float,
    ) -> None:
        fields: dict[str | bytes, str | bytes] = {"id": message_id, "ts": repr(timestamp)}
        fields["body"] = body
        for name, value in headers.items():
            fields[_HEADER_PREFIX + name.encode()] = value
        max_len = self.options.max_len or None
        await self.client.xadd(self.stream(topic), fields, maxlen=max_len, approximate=True)  # type: ignore[arg-type]

    def _subscription(self, topic: str, group: str, handler: MessageHandler) -> RedisSubscription:
        return RedisSubscription(self, topic, group, handler)

    def transient(self, exc: BaseException) -> bool:
        return isinstance(
            exc, redis_errors.ConnectionError | redis_errors.TimeoutError | OSError
        ) or _no_group(exc)


def _no_group(exc: BaseException) -> bool:
    """The stream or its group vanished (server restarted without persistence, key deleted)."""
    return isinstance(exc, redis_errors.ResponseError) and str(exc).startswith("NOGROUP")


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class RedisSubscription(RemoteSubscription):
    provider: RedisProvider

    def __init__(
        self, provider: RedisProvider, topic: str, group: str, handler: MessageHandler
    ) -> None:
        super().__init__(provider, topic, group, handler)
        self.key = provider.stream(topic)
        self.consumer = f"{provider.instance}-{new_id()[:8]}"
        self._claim_idle_ms = max(int(float(provider.options.claim_idle) * 1000), 1)
        self._claim_every = max(float(provider.options.claim_idle) / 2, 0.01)
        self._block_ms = int(min(self._claim_every, _MAX_BLOCK) * 1000) or 1

    async def consume(self) -> None:
        client = self.provider.client
        await self._join()
        self.mark_ready()
        await self._replay_own()
        prefetch = self.provider.connection.prefetch
        loop = asyncio.get_running_loop()
        next_claim = loop.time() + self._claim_every
        while not self.stopping():
            if loop.time() >= next_claim:
                claimed = await self._reclaim()
                next_claim = loop.time() + (0 if claimed >= prefetch else self._claim_every)
                continue
            try:
                reply: Any = await client.xreadgroup(
                    self.group, self.consumer, {self.key: ">"}, count=prefetch, block=self._block_ms
                )
            except redis_errors.ResponseError as exc:
                if not _no_group(exc):
                    raise
                log.warning(
                    "group %r of stream %r vanished (server restarted without persistence?); "
                    "recreating it: messages published meanwhile are lost",
                    self.group,
                    self.key,
                )
                await self._join()
                continue
            for _key, entries in reply or ():
                for entry_id, fields in entries:
                    if self.stopping():
                        return  # left pending: another consumer claims it
                    await self._handle(entry_id, fields, 1)

    async def _join(self) -> None:
        try:
            await self.provider.client.xgroup_create(self.key, self.group, id="$", mkstream=True)
        except redis_errors.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _replay_own(self) -> None:
        """Deliver again what this consumer took but did not acknowledge before it lost its
        connection (its own pending entries), before taking new ones."""
        client, last = self.provider.client, "0"
        while not self.stopping():
            reply: Any = await client.xreadgroup(
                self.group, self.consumer, {self.key: last}, count=self.provider.connection.prefetch
            )
            entries = [e for _key, batch in reply or () for e in batch]
            if not entries:
                return
            for entry_id, fields in entries:
                last = _text(entry_id)
                if fields and not self.stopping():
                    # Delivered before: at least the second attempt, whether or not Redis
                    # counted this read of its history.
                    await self._handle(entry_id, fields, max(await self._attempt(entry_id), 2))

    async def _attempt(self, entry_id: bytes) -> int:
        """The server's delivery count of a pending entry (2 if it cannot say)."""
        pending: Any = await self.provider.client.xpending_range(
            self.key, self.group, entry_id, entry_id, 1, self.consumer
        )
        return int(pending[0]["times_delivered"]) if pending else 2

    async def _reclaim(self) -> int:
        """Take over entries idle for `claimIdle` (their consumer died); returns how many."""
        client = self.provider.client
        reply: Any = await client.xautoclaim(
            self.key,
            self.group,
            self.consumer,
            self._claim_idle_ms,
            start_id="0-0",
            count=self.provider.connection.prefetch,
        )
        entries = [e for e in reply[1] if e[1]]  # deleted (trimmed) entries come without fields
        for entry_id, fields in entries:
            if self.stopping():
                break
            attempt = await self._attempt(entry_id)
            log.warning(
                "took over message %s of %r (group %r) from a consumer that stopped (attempt %d)",
                _text(entry_id),
                self.topic,
                self.group,
                attempt,
            )
            await self._handle(entry_id, fields, attempt)
        return len(reply[1])

    async def _handle(self, entry_id: bytes, fields: dict[bytes, bytes], attempt: int) -> None:
        client, key, group = self.provider.client, self.key, self.group
        message = _decode(self.topic, entry_id, fields, attempt)

        async def ack() -> None:
            await client.xack(key, group, entry_id)

        async def touch() -> None:
            await client.xclaim(key, group, self.consumer, 0, [entry_id], justid=True)

        await self.deliver(message, ack, touch)

    async def release(self) -> None:
        """Leave the group if nothing is pending for this consumer (else others claim it)."""
        client = self.provider._client
        if client is None:
            return
        try:
            pending: Any = await client.xpending_range(
                self.key, self.group, "-", "+", 1, self.consumer
            )
            if not pending:
                await client.xgroup_delconsumer(self.key, self.group, self.consumer)
        except Exception:
            log.debug("could not remove consumer %s", self.consumer, exc_info=True)


def _decode(topic: str, entry_id: bytes, fields: dict[bytes, bytes], attempt: int) -> Message:
    headers = {
        name[len(_HEADER_PREFIX) :].decode(errors="replace"): value.decode(errors="replace")
        for name, value in fields.items()
        if name.startswith(_HEADER_PREFIX)
    }
    message_id = _text(fields.get(b"id") or entry_id)
    try:
        timestamp = float(fields[b"ts"])
    except (KeyError, ValueError):
        timestamp = time.time()
    body = fields.get(b"body")
    if body is None:
        return Message(
            message_id,
            topic,
            {_text(k): _text(v) for k, v in fields.items()},
            headers,
            attempt,
            timestamp,
            "the stream entry has no 'body' field",
        )
    return decode_message(message_id, topic, body, headers, attempt=attempt, timestamp=timestamp)
