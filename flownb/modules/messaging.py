"""Messaging modules: `messaging.broker` (publish/subscribe over a provider) and
`messaging.handler` (what runs for a message: a pipeline, a Python function or inline steps;
the same as `http.handler`, see `flownb.handlers`).

The broker puts the shared delivery policy (`flownb.brokers.delivery`) around every
subscription, so retries and dead letters behave the same whichever provider is configured:
memory, or a server (Redis Streams, NATS JetStream, RabbitMQ, MQTT 5; docs/brokers.md), whose
client library is imported only when a config names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from flownb.brokers.base import (
    BrokerError,
    BrokerProvider,
    MessageHandler,
    Subscription,
    clean_headers,
)
from flownb.brokers.delivery import DeliveryPolicy, DeliveryStats
from flownb.brokers.options import (
    DEFAULT_URLS,
    Connection,
    MqttOptions,
    NatsOptions,
    ProviderName,
    RabbitmqOptions,
    RedisOptions,
)
from flownb.execution import new_id
from flownb.fields import Duration, Spec
from flownb.handlers import ConfiguredHandler, HandlerConfig
from flownb.module import Module
from flownb.registry import ModuleType

if TYPE_CHECKING:
    from flownb.health import Check

_SECTIONS = ("redis", "nats", "rabbitmq", "mqtt")


class BrokerConfig(Spec):
    provider: ProviderName = Field(
        "memory",
        description="where messages travel; memory: in this process, not persisted; redis "
        "(Streams), nats (JetStream), rabbitmq, mqtt (MQTT 5): a server, set by `url`",
    )
    max_deliveries: int = Field(
        3,
        alias="maxDeliveries",
        ge=1,
        le=1000,
        description="attempts per message before it goes to the dead-letter topic",
    )
    redelivery_delay: Duration = Field(
        Duration("100ms"),
        alias="redeliveryDelay",
        description="wait before the first redelivery; it doubles with each further attempt",
    )
    dead_letter_suffix: str = Field(
        ".dlq",
        alias="deadLetterSuffix",
        min_length=1,
        description="failed messages of topic T go to T + this suffix, e.g. orders.dlq",
    )
    max_queue: int = Field(
        10_000,
        alias="maxQueue",
        ge=1,
        description="memory provider: messages held per topic and group; publishing waits "
        "when full",
    )
    concurrency: int = Field(
        1,
        ge=1,
        le=1000,
        description="consumers per subscription; above 1, messages of a topic may be handled "
        "out of order",
    )
    url: str | None = Field(
        None,
        description="server URL; default: the provider's on this machine "
        "(redis://127.0.0.1:6379/0, nats://127.0.0.1:4222, amqp://127.0.0.1:5672/, "
        "mqtt://127.0.0.1:1883); credentials in it are best written as ${VAR}",
    )
    username: str | None = Field(None, description="user name (overrides the URL's)")
    password: str | None = Field(
        None, description="password (overrides the URL's); write it as ${VAR}"
    )
    prefetch: int = Field(
        1,
        ge=1,
        le=10_000,
        description="messages a consumer takes from the server ahead of handling them; 1 "
        "keeps a busy consumer from holding messages an idle one of its group could take",
    )
    connect_timeout: Duration = Field(
        Duration("5s"),
        alias="connectTimeout",
        description="how long connecting or subscribing may take before it fails",
    )
    publish_timeout: Duration = Field(
        Duration("10s"),
        alias="publishTimeout",
        description="how long a publish keeps retrying while the server is unreachable",
    )
    redis: RedisOptions | None = Field(None, description="settings of the redis provider")
    nats: NatsOptions | None = Field(None, description="settings of the nats provider")
    rabbitmq: RabbitmqOptions | None = Field(None, description="settings of the rabbitmq provider")
    mqtt: MqttOptions | None = Field(None, description="settings of the mqtt provider")

    @model_validator(mode="after")
    def _one_provider(self) -> BrokerConfig:
        stray = [s for s in _SECTIONS if s != self.provider and getattr(self, s) is not None]
        if stray:
            raise ValueError(
                f"'{stray[0]}' settings are given but the provider is '{self.provider}': "
                f"set provider: {stray[0]}, or remove the '{stray[0]}' section"
            )
        if self.provider == "memory" and (self.url or self.username or self.password):
            raise ValueError(
                "the memory provider connects to nothing: remove url/username/password, or "
                "choose a provider (redis, nats, rabbitmq, mqtt)"
            )
        return self

    def connection(self) -> Connection:
        """The connection settings of a remote provider."""
        return Connection(
            url=self.url or DEFAULT_URLS[self.provider],
            username=self.username,
            password=self.password,
            prefetch=self.prefetch,
            connect_timeout=float(self.connect_timeout),
            publish_timeout=float(self.publish_timeout),
            nack_delay=float(self.redelivery_delay),
        )


def _open_provider(config: BrokerConfig) -> BrokerProvider:
    """The configured provider; constructing one does no I/O (`connect` does)."""
    provider = config.provider
    if provider == "memory":
        from flownb.brokers.memory import MemoryProvider

        return MemoryProvider(max_queue=config.max_queue)
    if provider == "redis":
        from flownb.brokers.redis import RedisProvider

        return RedisProvider(config.connection(), config.redis or RedisOptions())
    if provider == "nats":
        from flownb.brokers.nats import NatsProvider

        return NatsProvider(config.connection(), config.nats or NatsOptions())
    if provider == "rabbitmq":
        from flownb.brokers.rabbitmq import RabbitmqProvider

        return RabbitmqProvider(config.connection(), config.rabbitmq or RabbitmqOptions())
    if provider == "mqtt":
        from flownb.brokers.mqtt import MqttProvider

        return MqttProvider(config.connection(), config.mqtt or MqttOptions())
    raise BrokerError(f"unknown broker provider {provider!r}")  # pragma: no cover


def _default_group(handler: MessageHandler) -> str:
    """The handler's name; a lambda has none worth sharing, so it gets a group of its own."""
    name = getattr(handler, "__qualname__", None)
    if not isinstance(name, str) or "<lambda>" in name:
        return f"subscriber-{new_id()[:12]}"
    return name


class _Subscriptions:
    """Several competing consumers (`concurrency` > 1) cancelled as one."""

    def __init__(self, items: list[Subscription]) -> None:
        self.items = items
        self.topic = items[0].topic
        self.group = items[0].group

    async def cancel(self) -> None:
        for item in self.items:
            await item.cancel()


class MessageBroker(Module[BrokerConfig]):
    """Publish JSON messages to topics; subscribe handlers with retries and dead letters."""

    def __init__(self, name: str, config: BrokerConfig) -> None:
        super().__init__(name, config)
        self.provider = _open_provider(config)
        self.policy = DeliveryPolicy(
            max_deliveries=config.max_deliveries,
            redelivery_delay=float(config.redelivery_delay),
            dead_letter_suffix=config.dead_letter_suffix,
        )

    @property
    def stats(self) -> DeliveryStats:
        return self.policy.stats

    async def start(self) -> None:
        await self.provider.connect()

    async def drain(self) -> None:
        await self.provider.pause()

    async def stop(self) -> None:
        await self.provider.close()

    async def health(self) -> Check | None:
        """The provider's own check when it has one (`async health() -> Check`), else
        healthy once connected."""
        from flownb.health import Check

        check = getattr(self.provider, "health", None)
        if callable(check):
            result: Check | None = await check()
            return result
        return Check.healthy(f"{self.config.provider} provider")

    async def publish(
        self, topic: str, payload: Any, headers: Mapping[str, Any] | None = None
    ) -> str:
        """Send `payload` (JSON-compatible) to `topic`; returns the message id."""
        if not isinstance(topic, str) or not topic:
            raise BrokerError(f"broker {self.name!r}: a topic must be a non-empty string")
        return await self.provider.publish(topic, payload, clean_headers(headers))

    async def subscribe(
        self, topic: str, handler: MessageHandler, *, group: str | None = None
    ) -> Subscription:
        """Deliver every message of `topic` to `handler`, at least once.

        Subscriptions sharing a `group` compete for messages; each group gets them all. The
        group defaults to the handler's name.
        """
        if not topic:
            raise BrokerError(f"broker {self.name!r}: a subscription needs a topic")
        group = group or _default_group(handler)
        deliver = self.policy.wrap(handler, self.provider.publish)
        subs = [
            await self.provider.subscribe(topic, group, deliver)
            for _ in range(self.config.concurrency)
        ]
        return subs[0] if len(subs) == 1 else _Subscriptions(subs)


class MessagingHandlerConfig(HandlerConfig):
    """Exactly one of `pipeline`, `function` or `steps` says what runs for a message."""


class MessagingHandler(ConfiguredHandler[MessagingHandlerConfig]):
    """Handles a message (its payload is the data; `request` is the `Message`)."""


TYPES: list[ModuleType] = [
    ModuleType(
        "messaging.broker",
        "Messaging",
        "Publish/subscribe message broker: topics, consumer groups, at-least-once delivery "
        "with redelivery and dead-letter topics.",
        BrokerConfig,
        MessageBroker,
        provides=("broker",),
    ),
    ModuleType(
        "messaging.handler",
        "Messaging",
        "Handles a message by running a pipeline, a Python function or inline steps.",
        MessagingHandlerConfig,
        MessagingHandler,
        provides=("handler",),
    ),
]
