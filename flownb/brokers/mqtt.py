"""The MQTT provider (MQTT 5, QoS 1): a group is a shared subscription `$share/<group>/<topic>`.

Topic T travels as MQTT topic `<topicPrefix>T`. Each subscription is its own client session
(`sessionExpiry` long, at most `prefetch` unacknowledged messages: MQTT's receive maximum)
that acknowledges a message (PUBACK) only after its handler returned; the server shares a
group's messages among its member sessions. A client that loses its connection resumes its
session, and the server sends again what it had not acknowledged.

What MQTT cannot do as the other providers do, and what this provider does instead:
- a group exists while a member is subscribed: messages published while a group has no
  member are not kept for it (there is no consumer group object on an MQTT server);
- a member's share of the messages is its own: Mosquitto hands messages round-robin to the
  group's sessions, also to one whose client is gone, and keeps them in that session until it
  resumes or expires (`sessionExpiry`); a member that leaves with `close` unsubscribes first;
- the server does not count deliveries (MQTT has a DUP flag only, which aiomqtt does not
  pass on): `attempt` starts at 1 on a message sent again after a reconnect;
- a session holds at most the server's `max_queued_messages` (Mosquitto: 1000) unacknowledged
  and queued messages: a burst beyond that, for a slow group member, is dropped by the server;
- a server restart: Mosquitto 2.0.11 here writes its persistence file but restores no session
  from it, so consumers subscribe again by themselves and what was published in between, or
  unacknowledged, is lost (the fault tests show it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import ssl
from collections.abc import Mapping
from itertools import count
from urllib.parse import urlsplit

from flownb.brokers.base import BrokerError, Message, MessageHandler, decode_message
from flownb.brokers.options import Connection, MqttOptions
from flownb.brokers.remote import RemoteProvider, RemoteSubscription, missing_extra, safe_name
from flownb.execution import new_id

try:
    import aiomqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_extra("mqtt", "mqtt") from exc

log = logging.getLogger("flownb.brokers.mqtt")

_ID_PROPERTY = "flownb-id"
_TS_PROPERTY = "flownb-ts"
_REFUSED = (133, 134, 135, 138, 140)  # bad client id, bad credentials, not authorised, banned
_QOS = 1


class MqttProvider(RemoteProvider):
    kind = "mqtt"

    def __init__(self, connection: Connection, options: MqttOptions) -> None:
        super().__init__(connection)
        self.options = options
        parts = urlsplit(connection.url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise BrokerError(
                f"mqtt url {connection.safe_url!r}: use mqtt://host:port (or mqtts:// for TLS)"
            )
        self.tls = parts.scheme in ("mqtts", "ssl")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (8883 if self.tls else 1883)
        self.username = connection.username or parts.username
        self.password = connection.password or parts.password
        self.client_id = options.client_id or f"flownb-{new_id()[:10]}"
        self._numbers = count(1)
        self._publisher: aiomqtt.Client | None = None
        self._publisher_broken = False
        self._publisher_lock = asyncio.Lock()

    def mqtt_topic(self, topic: str) -> str:
        return self.options.topic_prefix + topic

    def check_topic(self, topic: str) -> None:
        full = self.mqtt_topic(topic)
        if not topic or "+" in full or "#" in full or "\0" in full or full.startswith("$"):
            raise BrokerError(
                f"topic {topic!r} cannot be an MQTT topic: leave out '+', '#' and NUL, and do "
                "not start it with '$'"
            )

    def client(
        self, identifier: str, *, clean_start: bool, receive_maximum: int | None = None
    ) -> aiomqtt.Client:
        """A new client session (not connected yet)."""
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = int(float(self.options.session_expiry))
        if receive_maximum is not None:
            properties.ReceiveMaximum = min(receive_maximum, 65535)
        client = aiomqtt.Client(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            identifier=identifier,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=clean_start,
            properties=properties,
            timeout=self.connection.connect_timeout,
            keepalive=max(int(float(self.options.keepalive)), 1),
            tls_context=ssl.create_default_context() if self.tls else None,
        )
        # Publishing many messages at once is normal here, not a warning sign.
        client.pending_calls_threshold = 1 << 30
        return client

    async def _open(self) -> None:
        await self._connected_publisher()

    async def _connected_publisher(self) -> aiomqtt.Client:
        async with self._publisher_lock:
            publisher = self._publisher
            usable = publisher is not None and not publisher._disconnected.done()
            if publisher is not None and usable and not self._publisher_broken:
                return publisher
            old, self._publisher = self._publisher, None
            if old is not None:
                await _disconnect(old)
            client = self.client(f"{self.client_id}-pub", clean_start=True)
            await client.__aenter__()
            self._publisher, self._publisher_broken = client, False
            return client

    async def _ping(self) -> None:
        await self._connected_publisher()

    async def _shutdown(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            await _disconnect(publisher)

    async def _send(
        self,
        topic: str,
        message_id: str,
        body: bytes,
        headers: Mapping[str, str],
        timestamp: float,
    ) -> None:
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.UserProperty = [
            *headers.items(),
            (_ID_PROPERTY, message_id),
            (_TS_PROPERTY, repr(timestamp)),
        ]
        client = await self._connected_publisher()
        try:
            await client.publish(self.mqtt_topic(topic), body, qos=_QOS, properties=properties)
        except aiomqtt.MqttError:
            if client is self._publisher:
                self._publisher_broken = True
            raise

    def _subscription(self, topic: str, group: str, handler: MessageHandler) -> MqttSubscription:
        return MqttSubscription(self, topic, group, handler, next(self._numbers))

    def transient(self, exc: BaseException) -> bool:
        if isinstance(exc, aiomqtt.MqttCodeError):
            code = getattr(exc.rc, "value", exc.rc)
            return code not in _REFUSED
        return isinstance(exc, aiomqtt.MqttError | ConnectionError | OSError)


class MqttSubscription(RemoteSubscription):
    provider: MqttProvider

    def __init__(
        self,
        provider: MqttProvider,
        topic: str,
        group: str,
        handler: MessageHandler,
        number: int,
    ) -> None:
        super().__init__(provider, topic, group, handler)
        share = safe_name(group, invalid=r"[^A-Za-z0-9_.:-]")
        self.filter = f"$share/{share}/{provider.mqtt_topic(topic)}"
        digest = hashlib.sha1(f"{topic}\0{group}".encode()).hexdigest()[:8]
        self.identifier = f"{provider.client_id}-{digest}-{number}"
        self._client: aiomqtt.Client | None = None
        self._subscribed = False
        # A configured client id is meant to outlive this process: take over its session
        # (subscription and unacknowledged messages). A random one starts clean.
        self._resume = provider.options.client_id is not None

    async def consume(self) -> None:
        provider = self.provider
        client = provider.client(
            self.identifier,
            clean_start=not self._resume,
            receive_maximum=provider.connection.prefetch,
        )
        # aiomqtt has no manual acknowledgement; its paho client does: without it a message
        # would be acknowledged on arrival, before its handler ran.
        client._client.manual_ack_set(True)
        await client.__aenter__()
        self._client = client
        try:
            self._resume = True
            codes = await client.subscribe(self.filter, qos=_QOS)
            failed = [c for c in codes if getattr(c, "is_failure", False)]
            if failed:
                raise BrokerError(
                    f"the server refused the subscription {self.filter!r}: {failed[0]}"
                )
            self._subscribed = True
            self.mark_ready()
            paho = client._client
            async for incoming in client.messages:
                if self.stopping():
                    return  # unacknowledged: the server keeps it in this session
                message = _decode(self.topic, incoming)
                mid, qos = incoming.mid, incoming.qos

                async def ack(mid: int = mid, qos: int = qos) -> None:
                    paho.ack(mid, qos)

                await self.deliver(message, ack)
                if self.stopping():
                    return
        finally:
            self._subscribed = False
            self._client = None
            await _disconnect(client)

    async def halt(self) -> None:
        """Unsubscribe first, so the server hands this member no more of the group's share."""
        self._stopping = True
        client = self._client
        if client is not None and self._subscribed:
            self._subscribed = False
            try:
                async with asyncio.timeout(self.provider.connection.connect_timeout):
                    await client.unsubscribe(self.filter)
            except Exception:
                log.debug("unsubscribing %s failed", self.filter, exc_info=True)
        self.stop_taking()


def _decode(topic: str, incoming: aiomqtt.Message) -> Message:
    pairs = getattr(incoming.properties, "UserProperty", None) or []
    headers = {}
    message_id, timestamp = "", None
    for name, value in pairs:
        if name == _ID_PROPERTY:
            message_id = value
        elif name == _TS_PROPERTY:
            with contextlib.suppress(ValueError):
                timestamp = float(value)
        else:
            headers[name] = value
    return decode_message(
        message_id or new_id(), topic, incoming.payload, headers, timestamp=timestamp
    )


async def _disconnect(client: aiomqtt.Client) -> None:
    lost = client._disconnected  # aiomqtt keeps a lost connection's error here
    if lost.done() and not lost.cancelled():
        lost.exception()  # seen: it was reported already, as the error that brought us here
    try:
        async with asyncio.timeout(2.0):
            await client.__aexit__(None, None, None)
    except Exception:
        log.debug("mqtt disconnect failed", exc_info=True)
