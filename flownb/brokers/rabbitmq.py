"""The RabbitMQ provider: a durable direct exchange routes topic T to one queue per group.

The queue of group G on topic T is `<queuePrefix>T.G`, durable (quorum by default), bound to
the exchange with routing key T; every subscription of the group consumes from it on a
channel of its own, with manual acknowledgement and at most `prefetch` unacknowledged
messages. Messages are persistent and published with publisher confirms, so `publish`
returns once RabbitMQ has them. When a connection or channel closes, RabbitMQ requeues what
it had not seen acknowledged; the consumer reconnects (flownb's own loop, as for every
provider, rather than aio-pika's robust connection, whose restored consumers would compete
with the reconnected ones). A quorum queue counts deliveries (`x-delivery-count`); a
classic one only says a message was delivered before (attempt 2).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from functools import partial
from typing import Any

from flownb.brokers.base import BrokerError, MessageHandler, decode_message
from flownb.brokers.options import Connection, RabbitmqOptions
from flownb.brokers.remote import RemoteProvider, RemoteSubscription, missing_extra, safe_name
from flownb.execution import new_id

try:
    import aio_pika
    import aiormq.exceptions as amqp_errors
    from aio_pika.abc import (
        AbstractChannel,
        AbstractConnection,
        AbstractExchange,
        AbstractIncomingMessage,
        AbstractQueue,
    )
    from yarl import URL
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_extra("rabbitmq", "rabbitmq") from exc

log = logging.getLogger("flownb.brokers.rabbitmq")

_DELIVERY_COUNT = "x-delivery-count"
_MAX_QUEUE_NAME = 200  # RabbitMQ allows 255 bytes


class RabbitmqProvider(RemoteProvider):
    kind = "rabbitmq"

    def __init__(self, connection: Connection, options: RabbitmqOptions) -> None:
        super().__init__(connection)
        self.options = options
        self.queues: set[str] = set()
        """Queues this provider declared (their groups persist on the server)."""
        self._connection: AbstractConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._publishing: AbstractChannel | None = None
        self._lost = False
        self._lock = asyncio.Lock()

    async def amqp(self) -> AbstractConnection:
        """The open connection, opened again (with the publishing channel) if it closed."""
        async with self._lock:
            conn = self._connection
            if conn is None or conn.is_closed or self._lost:
                if conn is not None:
                    await _quietly(conn.close())
                conn = self._connection = await aio_pika.connect(
                    self._url(),
                    timeout=self.connection.connect_timeout,
                    client_properties={"connection_name": "flownb"},
                )
                # A connection the server dropped does not say it is closed: remember it.
                self._lost = False
                conn.close_callbacks.add(self._on_lost)
                self._exchange = None
            exchange = self._exchange
            if exchange is None or self._publishing is None or self._publishing.is_closed:
                self._publishing = await conn.channel(publisher_confirms=True)
                self._exchange = await self.declare_exchange(self._publishing)
            return conn

    def _on_lost(self, *_: object) -> None:
        self._lost = True

    def _url(self) -> URL:
        conn, url = self.connection, URL(self.connection.url)
        if conn.username is not None:
            url = url.with_user(conn.username)
        if conn.password is not None:
            url = url.with_password(conn.password)
        return url

    def queue_name(self, topic: str, group: str) -> str:
        # AMQP 0-9-1 queue names: letters, digits, '-', '_', '.', ':' (pamqp checks).
        return safe_name(
            f"{self.options.queue_prefix}{topic}.{group}",
            invalid=r"[^A-Za-z0-9_.:-]",
            max_len=_MAX_QUEUE_NAME,
        )

    async def _open(self) -> None:
        await self.amqp()

    async def _ping(self) -> None:
        await self.amqp()

    async def declare_exchange(self, channel: AbstractChannel) -> AbstractExchange:
        return await channel.declare_exchange(
            self.options.exchange, aio_pika.ExchangeType.DIRECT, durable=True
        )

    async def _shutdown(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def _send(
        self,
        topic: str,
        message_id: str,
        body: bytes,
        headers: Mapping[str, str],
        timestamp: float,
    ) -> None:
        await self.amqp()
        if self._exchange is None:
            raise BrokerError("the rabbitmq broker is not connected")
        message = aio_pika.Message(
            body,
            headers=dict(headers),
            message_id=message_id,
            timestamp=timestamp,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        # Not mandatory: a topic no group listens to drops the message, as in every provider.
        await self._exchange.publish(message, routing_key=topic, mandatory=False)

    def _subscription(
        self, topic: str, group: str, handler: MessageHandler
    ) -> RabbitmqSubscription:
        return RabbitmqSubscription(self, topic, group, handler)

    def transient(self, exc: BaseException) -> bool:
        # aio-pika reports a closed connection or channel as RuntimeError (or aiormq's
        # ChannelInvalidStateError, one too); refusals and wrong declarations are final.
        if isinstance(exc, _FINAL):
            return False
        return isinstance(
            exc,
            amqp_errors.AMQPError | RuntimeError | ConnectionError | OSError | TimeoutError,
        )


_FINAL = (
    amqp_errors.ProbableAuthenticationError,
    amqp_errors.AuthenticationError,
    amqp_errors.ConnectionNotAllowed,
    amqp_errors.IncompatibleProtocolError,
    amqp_errors.ChannelAccessRefused,
    amqp_errors.ChannelNotFoundEntity,
    amqp_errors.ChannelPreconditionFailed,
    amqp_errors.DeliveryError,
)


class RabbitmqSubscription(RemoteSubscription):
    provider: RabbitmqProvider

    def __init__(
        self, provider: RabbitmqProvider, topic: str, group: str, handler: MessageHandler
    ) -> None:
        super().__init__(provider, topic, group, handler)
        self.queue_name = provider.queue_name(topic, group)
        self.quorum = provider.options.queue_type == "quorum"
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None

    async def consume(self) -> None:
        provider = self.provider
        conn = await provider.amqp()
        channel = self._channel = await conn.channel()
        inbox: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
        # A closed channel (or connection) wakes the loop, which then reconnects.
        channel.close_callbacks.add(lambda *_: inbox.put_nowait(None))
        try:
            await channel.set_qos(prefetch_count=provider.connection.prefetch)
            exchange = await provider.declare_exchange(channel)
            queue = self._queue = await channel.declare_queue(
                self.queue_name,
                durable=True,
                arguments={"x-queue-type": provider.options.queue_type},
            )
            provider.queues.add(self.queue_name)
            await queue.bind(exchange, routing_key=self.topic)
            self._tag = await queue.consume(inbox.put, no_ack=False)
            self.mark_ready()
            while not self.stopping():
                incoming = await inbox.get()
                if incoming is None:
                    raise ConnectionError("the channel closed")
                if self.stopping():
                    return  # unacknowledged: RabbitMQ requeues it when the channel closes
                await self._handle(incoming)
        finally:
            self._queue = self._tag = None
            await self.release()

    async def _handle(self, incoming: AbstractIncomingMessage) -> None:
        headers = incoming.headers or {}
        if self.quorum:
            attempt = _int(headers.get(_DELIVERY_COUNT)) + 1
        else:
            attempt = 2 if incoming.redelivered else 1
        stamp = incoming.timestamp
        message = decode_message(
            incoming.message_id or new_id(),
            self.topic,
            incoming.body,
            {k: _text(v) for k, v in headers.items() if k != _DELIVERY_COUNT},
            attempt=attempt,
            timestamp=stamp.timestamp() if stamp is not None else None,
        )
        await self.deliver(message, partial(_ack, incoming))

    async def halt(self) -> None:
        self.stop_taking()
        queue, tag = self._queue, self._tag
        if queue is not None and tag is not None and self._busy:
            # The busy consumer finishes its message; RabbitMQ sends it no new one.
            try:
                await queue.cancel(tag)
            except Exception:
                log.debug("cancelling consumer %s failed", tag, exc_info=True)

    async def release(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            try:
                await channel.close()
            except Exception:
                log.debug("closing the channel of %s failed", self.queue_name, exc_info=True)


async def _quietly(awaitable: Awaitable[object]) -> None:
    try:
        await awaitable
    except Exception:
        log.debug("rabbitmq clean-up step failed", exc_info=True)


async def _ack(incoming: AbstractIncomingMessage) -> None:
    """Acknowledge unless the channel is gone (then RabbitMQ delivers the message again)."""
    if incoming.channel.is_closed:
        return
    await incoming.ack()


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, str) else str(value)
