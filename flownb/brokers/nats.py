"""The NATS JetStream provider: one stream holds every topic; a group is a durable consumer.

Topic T travels on subject `<subjectPrefix>T` of the stream `stream` (created if missing;
by default it keeps messages for `maxAge`, taken or not: NATS 2.9's interest retention lost
acknowledged-pending messages across a server restart in our fault tests, so it is an
option, not the default). A group is a durable pull consumer filtered on the subject,
starting at new messages; each subscription pulls `prefetch` messages at a time and
acknowledges each explicitly after its handler returned. A message not acknowledged within
`ackWait` (its consumer died) is delivered again; a slow handler reports progress so it
keeps its message. The message id travels as `Nats-Msg-Id`, so a publish retried after a
lost reply is stored once (within `duplicateWindow`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flownb.brokers.base import BrokerError, MessageHandler, decode_message
from flownb.brokers.options import Connection, NatsOptions
from flownb.brokers.remote import RemoteProvider, RemoteSubscription, missing_extra, safe_name

try:
    import nats
    import nats.errors
    import nats.js.errors
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext
    from nats.js.api import (
        AckPolicy,
        ConsumerConfig,
        DeliverPolicy,
        RetentionPolicy,
        StorageType,
        StreamConfig,
    )
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_extra("nats", "nats") from exc

log = logging.getLogger("flownb.brokers.nats")

_ID_HEADER = "Nats-Msg-Id"
_TS_HEADER = "Flownb-Ts"
_FETCH_WAIT = 0.5
_INVALID_TOKEN = (" ", "\t", "\r", "\n", "*", ">")
_TRANSIENT = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.errors.NoServersError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.ServerError,
    nats.js.errors.NoStreamResponseError,
    ConnectionError,
    OSError,
)


class NatsProvider(RemoteProvider):
    kind = "nats"

    def __init__(self, connection: Connection, options: NatsOptions) -> None:
        super().__init__(connection)
        self.options = options
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise BrokerError("the nats broker is not connected")
        return self._js

    @property
    def heartbeat(self) -> float:
        return max(float(self.options.ack_wait) / 3, 0.01)

    def subject(self, topic: str) -> str:
        return self.options.subject_prefix + topic

    def check_topic(self, topic: str) -> None:
        if not topic or any(c in topic for c in _INVALID_TOKEN) or "" in topic.split("."):
            raise BrokerError(
                f"topic {topic!r} cannot be a NATS subject: use words separated by single "
                "dots, without spaces, '*' or '>' (e.g. orders.created)"
            )

    async def _open(self) -> None:
        conn = self.connection

        async def on_error(exc: Exception) -> None:
            log.debug("nats: %s", self.describe(exc))

        async def on_disconnect() -> None:
            if self._state != "closed":
                log.warning("lost the connection to %s; reconnecting", self.where)

        async def on_reconnect() -> None:
            log.info("reconnected to %s", self.where)

        self._nc = await nats.connect(
            servers=[conn.url],
            user=conn.username,
            password=conn.password,
            token=self.options.token,
            connect_timeout=conn.connect_timeout,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.25,
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
            name="flownb",
        )
        self._js = self._nc.jetstream()
        await self._ensure_stream()

    async def _ensure_stream(self) -> None:
        options, js = self.options, self.js
        wanted = options.subject_prefix + ">"
        try:
            info = await js.stream_info(options.stream)
        except nats.js.errors.NotFoundError:
            await js.add_stream(
                StreamConfig(
                    name=options.stream,
                    subjects=[wanted],
                    retention=RetentionPolicy(options.retention),
                    storage=StorageType(options.storage),
                    max_age=float(options.max_age) if options.max_age else None,
                    duplicate_window=float(options.duplicate_window),
                )
            )
            return
        subjects = info.config.subjects or []
        if wanted not in subjects:
            raise BrokerError(
                f"the NATS stream {options.stream!r} exists with subjects {subjects} but not "
                f"{wanted!r}: set nats.subjectPrefix to match it, or nats.stream to another name"
            )

    async def _ping(self) -> None:
        if self._nc is None or not self._nc.is_connected:
            raise ConnectionError("reconnecting")
        await self._nc.flush(timeout=max(int(self.connection.connect_timeout), 1))

    async def _shutdown(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.close()

    async def _send(
        self,
        topic: str,
        message_id: str,
        body: bytes,
        headers: Mapping[str, str],
        timestamp: float,
    ) -> None:
        sent = {name: _one_line(value) for name, value in headers.items()}
        sent[_ID_HEADER] = message_id
        sent[_TS_HEADER] = repr(timestamp)
        await self.js.publish(self.subject(topic), body, headers=sent)

    def _subscription(self, topic: str, group: str, handler: MessageHandler) -> NatsSubscription:
        return NatsSubscription(self, topic, group, handler)

    def transient(self, exc: BaseException) -> bool:
        return isinstance(exc, _TRANSIENT)


def _one_line(value: str) -> str:
    """NATS headers are lines: a value cannot hold line breaks (an error text may)."""
    if "\n" in value or "\r" in value:
        return " ".join(value.splitlines())
    return value


class NatsSubscription(RemoteSubscription):
    provider: NatsProvider
    cancel_idle = False  # a pending pull would take a message: end it and hand that back

    def __init__(
        self, provider: NatsProvider, topic: str, group: str, handler: MessageHandler
    ) -> None:
        super().__init__(provider, topic, group, handler)
        self.subject = provider.subject(topic)
        # One durable per (group, topic) in the stream; the name says which, the hash keeps
        # it unique once cleaned.
        self.durable = safe_name(f"{group}__{topic}", max_len=100)
        self._pull: JetStreamContext.PullSubscription | None = None

    async def consume(self) -> None:
        provider = self.provider
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.NEW,
            ack_wait=float(provider.options.ack_wait),
            filter_subject=self.subject,
            max_deliver=-1,
        )
        pull = self._pull = await provider.js.pull_subscribe(
            self.subject, durable=self.durable, stream=provider.options.stream, config=config
        )
        try:
            self.mark_ready()
            batch = provider.connection.prefetch
            while not self.stopping():
                try:
                    msgs = await pull.fetch(batch, timeout=_FETCH_WAIT)
                except nats.errors.TimeoutError:
                    continue
                for index, msg in enumerate(msgs):
                    if self.stopping():
                        for left in msgs[index:]:
                            await left.nak()  # back to the group at once
                        return
                    await self._handle(msg)
        finally:
            self._pull = None
            await _quietly(pull.unsubscribe())

    async def _handle(self, msg: Msg) -> None:
        headers = msg.headers or {}
        meta = msg.metadata
        message = decode_message(
            headers.get(_ID_HEADER) or f"{meta.stream}:{meta.sequence.stream}",
            self.topic,
            msg.data,
            {k: v for k, v in headers.items() if not k.startswith(("Nats-", _TS_HEADER))},
            attempt=meta.num_delivered or 1,
            timestamp=_timestamp(headers.get(_TS_HEADER), meta),
        )
        await self.deliver(message, msg.ack, msg.in_progress)


def _timestamp(header: str | None, meta: Any) -> float | None:
    if header:
        try:
            return float(header)
        except ValueError:
            pass
    stamp = getattr(meta, "timestamp", None)
    return stamp.timestamp() if stamp is not None else None


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception:
        log.debug("nats clean-up step failed", exc_info=True)
