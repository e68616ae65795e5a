"""Settings of the providers that talk to a broker server, one model per provider.

`messaging.broker` carries them as `redis:`, `nats:`, `rabbitmq:` and `mqtt:` sections next
to the settings every remote provider shares (`url`, `username`, `password`, `prefetch`,
timeouts), gathered into a `Connection` when the provider is built. The models live here, not
in the provider files, so the config schema never imports a broker's client library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field

from flownb.fields import Duration, Spec

DEFAULT_URLS = {
    "redis": "redis://127.0.0.1:6379/0",
    "nats": "nats://127.0.0.1:4222",
    "rabbitmq": "amqp://127.0.0.1:5672/",
    "mqtt": "mqtt://127.0.0.1:1883",
}


class RedisOptions(Spec):
    """Redis Streams: one stream per topic, one consumer group per group."""

    key_prefix: str = Field(
        "flownb:",
        alias="keyPrefix",
        description="the stream of topic T is the key <keyPrefix>T",
    )
    max_len: int = Field(
        100_000,
        alias="maxLen",
        ge=0,
        description="entries kept per stream (approximate trim at publish; 0 keeps all); "
        "a consumer lagging further behind loses the oldest",
    )
    claim_idle: Duration = Field(
        Duration("30s"),
        alias="claimIdle",
        description="a message left unacknowledged this long (its consumer died) is taken "
        "over by another consumer of the group; live consumers keep theirs fresh",
    )


class NatsOptions(Spec):
    """NATS JetStream: one stream holds every topic as a subject; a group is a durable
    consumer. The stream's settings apply when flownb creates it; an existing one is used
    as it is."""

    stream: str = Field(
        "FLOWNB",
        pattern=r"^[A-Za-z0-9_-]+$",
        description="JetStream stream created (if missing) to hold the topics",
    )
    subject_prefix: str = Field(
        "flownb.",
        alias="subjectPrefix",
        pattern=r"^([A-Za-z0-9_-]+\.)+$",
        description="topic T travels on subject <subjectPrefix>T; the stream takes "
        "<subjectPrefix>>",
    )
    storage: Literal["file", "memory"] = Field(
        "file", description="file: messages survive a server restart; memory: faster, not"
    )
    retention: Literal["limits", "interest"] = Field(
        "limits",
        description="limits: the stream keeps messages for maxAge whether groups took them or "
        "not; interest: until every group acknowledged them (NATS 2.9 lost such messages "
        "across a server restart in our fault tests)",
    )
    ack_wait: Duration = Field(
        Duration("30s"),
        alias="ackWait",
        description="a message unacknowledged this long (its consumer died) is delivered "
        "again; live consumers report progress on long handlers",
    )
    max_age: Duration | None = Field(
        Duration("24h"),
        alias="maxAge",
        description="drop messages older than this, taken or not (null: keep them all)",
    )
    duplicate_window: Duration = Field(
        Duration("2m"),
        alias="duplicateWindow",
        description="a publish retried within this window (same message id) is stored once",
    )
    token: str | None = Field(None, description="auth token (write it as ${VAR})")


class RabbitmqOptions(Spec):
    """RabbitMQ: a direct exchange routes topic T to one durable queue per group."""

    exchange: str = Field(
        "flownb",
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="durable direct exchange used",
    )
    queue_prefix: str = Field(
        "flownb.",
        alias="queuePrefix",
        pattern=r"^[A-Za-z0-9_.:-]*$",
        description="the queue of group G on topic T is <queuePrefix>T.G (characters other "
        "than letters, digits, '-', '_', '.', ':' become '_')",
    )
    queue_type: Literal["quorum", "classic"] = Field(
        "quorum",
        alias="queueType",
        description="quorum: replicated, counts deliveries exactly; classic: lighter, only "
        "knows whether a message was delivered before",
    )


class MqttOptions(Spec):
    """MQTT 5 at QoS 1: a group is a shared subscription `$share/<group>/<topic>`."""

    topic_prefix: str = Field(
        "flownb/",
        alias="topicPrefix",
        description="topic T travels as MQTT topic <topicPrefix>T",
    )
    client_id: str | None = Field(
        None,
        alias="clientId",
        max_length=100,
        description="prefix of this broker's MQTT client ids; default: random per run",
    )
    session_expiry: Duration = Field(
        Duration("60s"),
        alias="sessionExpiry",
        description="how long the server keeps a disconnected consumer's session (its "
        "queued messages) for it to resume",
    )
    keepalive: Duration = Field(Duration("30s"), description="MQTT keep-alive interval")


ProviderName = Literal["memory", "redis", "nats", "rabbitmq", "mqtt"]


@dataclass(frozen=True, slots=True)
class Connection:
    """What every remote provider needs, from the broker's config."""

    url: str
    username: str | None = None
    password: str | None = None
    prefetch: int = 1
    connect_timeout: float = 5.0
    publish_timeout: float = 10.0
    nack_delay: float = 0.1

    @property
    def safe_url(self) -> str:
        """The URL without its password, for messages and logs."""
        return redact(self.url)


def redact(url: str) -> str:
    """`url` with any password replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
