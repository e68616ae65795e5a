"""What the providers of broker servers (Redis, NATS, RabbitMQ, MQTT) share.

`RemoteProvider` holds the lifecycle (connect, pause, close), the checks every call makes and
publish retries; `RemoteSubscription` is one consumer: a task that runs its provider's
`consume` loop and, when the connection fails, waits with backoff and runs it again, so a
broker restart is a pause, not an outage. A message is acknowledged only after its handler
returned. A handler that raises gets the message again from the same consumer (`attempt + 1`,
after `nack_delay`), which keeps a topic's order; a consumer that dies never acknowledged its
message, so the broker delivers it again to another one (at least once).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from flownb.brokers.base import BrokerError, Message, MessageHandler, encode_payload
from flownb.brokers.options import Connection
from flownb.execution import new_id

if TYPE_CHECKING:
    from flownb.health import Check

log = logging.getLogger("flownb.brokers")

Ack = Callable[[], Awaitable[object]]
Touch = Callable[[], Awaitable[object]]

_MIN_BACKOFF = 0.05
_MAX_BACKOFF = 2.0


def missing_extra(provider: str, extra: str) -> BrokerError:
    """The error for a provider whose client library is not installed."""
    return BrokerError(
        f"the {provider} broker provider needs its client library: pip install 'flownb[{extra}]'"
    )


def safe_name(text: str, *, invalid: str = r"[^A-Za-z0-9_-]", max_len: int = 64) -> str:
    """`text` with characters a broker refuses in names replaced; a short hash of the
    original keeps two names that differ only in those characters apart."""
    cleaned = re.sub(invalid, "_", text)
    if cleaned == text and len(text) <= max_len:
        return text
    digest = hashlib.sha1(text.encode()).hexdigest()[:10]
    return f"{cleaned[: max_len - 11]}_{digest}"


class Backoff:
    """Waits that double from 50 ms to 2 s between attempts at a failing connection."""

    __slots__ = ("delay",)

    def __init__(self) -> None:
        self.delay = _MIN_BACKOFF

    async def wait(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, _MAX_BACKOFF)

    def reset(self) -> None:
        self.delay = _MIN_BACKOFF


class _Heartbeat:
    """Tells the broker every `interval` that a slow handler is still at work, so the message
    is not taken for abandoned and given to another consumer."""

    __slots__ = ("_handle", "_interval", "_loop", "_task", "_touch")

    def __init__(self, interval: float, touch: Touch) -> None:
        self._loop = asyncio.get_running_loop()
        self._interval = interval
        self._touch = touch
        self._task: asyncio.Task[None] | None = None
        self._handle = self._loop.call_later(interval, self._fire)

    def _fire(self) -> None:
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._beat())
        self._handle = self._loop.call_later(self._interval, self._fire)

    async def _beat(self) -> None:
        try:
            await self._touch()
        except Exception:
            log.debug("progress report to the broker failed", exc_info=True)

    def cancel(self) -> None:
        self._handle.cancel()
        if self._task is not None:
            self._task.cancel()


class RemoteSubscription(ABC):
    """One consumer of a group: `consume` takes messages and passes each to `deliver`."""

    cancel_idle: ClassVar[bool] = True
    """Whether stopping cancels an idle consumer at once. False where a wait for messages
    holds a request on the server (a NATS pull), which would take a message nobody handles:
    that consumer ends its wait and hands back what it got instead."""

    def __init__(
        self, provider: RemoteProvider, topic: str, group: str, handler: MessageHandler
    ) -> None:
        self.provider = provider
        self.topic = topic
        self.group = group
        self.handler = handler
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._busy = False
        self._stopping = False
        self._outage = False

    def stopping(self) -> bool:
        """Whether the consumer is told to stop (a method: its value changes across awaits)."""
        return self._stopping

    @abstractmethod
    async def consume(self) -> None:
        """Join the group, call `mark_ready`, then take and deliver messages until
        `stopping`; raise on connection trouble (the caller reconnects)."""

    async def release(self) -> None:  # noqa: B027 - optional hook, most providers need none
        """Free what `consume` held once the consumer stops for good (override if needed)."""

    async def halt(self) -> None:
        """Take no new messages (pause, cancel); override to tell the broker first."""
        self.stop_taking()

    def start(self) -> None:
        if self._task is None and not self._stopping:
            self._task = asyncio.create_task(
                self._run(), name=f"{self.provider.kind}-consumer {self.topic}/{self.group}"
            )
            self.provider._track(self._task)

    def stop_taking(self, *, force: bool = False) -> None:
        """Stop; an idle consumer at once, a busy one once its message is handled and acked."""
        self._stopping = True
        if self._task is not None and (force or (self.cancel_idle and not self._busy)):
            self._task.cancel()
        if not self._ready.done():
            self._ready.set_exception(BrokerError(f"the subscription to {self.topic!r} stopped"))
            self._ready.exception()  # retrieved here: nobody may be waiting for it

    async def wait_ready(self, timeout: float) -> None:
        """Until the group exists on the server: messages published from now on reach it."""
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._ready)
        except TimeoutError:
            raise BrokerError(
                f"cannot subscribe to {self.topic!r} (group {self.group!r}) on "
                f"{self.provider.where}: no answer within {timeout:g} s"
            ) from None

    def mark_ready(self) -> None:
        """Called by `consume` once subscribed; also ends an outage."""
        if not self._ready.done():
            self._ready.set_result(None)
        if self._outage:
            self._outage = False
            log.info(
                "consumer of %r (group %r) reconnected to %s",
                self.topic,
                self.group,
                self.provider.where,
            )

    async def cancel(self) -> None:
        await self.halt()
        self.provider._forget(self)

    async def deliver(self, message: Message, ack: Ack, touch: Touch | None = None) -> None:
        """Call the handler until it returns, then `ack`; raising is a nack: again after
        `nack_delay` with `attempt + 1`. If the consumer stops meanwhile the message is left
        unacknowledged, for the broker to deliver again."""
        self._busy = True
        beat = _Heartbeat(self.provider.heartbeat, touch) if touch is not None else None
        try:
            while True:
                try:
                    await self.handler(message)
                except Exception:
                    log.exception(
                        "handler of %r (group %r) failed on message %s (attempt %d)",
                        self.topic,
                        self.group,
                        message.id,
                        message.attempt,
                    )
                    if self._stopping:
                        log.warning(
                            "message %s on %r left unacknowledged: the consumer stopped; the "
                            "broker delivers it again",
                            message.id,
                            self.topic,
                        )
                        return
                    await asyncio.sleep(self.provider.connection.nack_delay)
                    message.attempt += 1
                else:
                    break
            if beat is not None:
                beat.cancel()
                beat = None
            await ack()
        finally:
            self._busy = False
            if beat is not None:
                beat.cancel()

    async def _run(self) -> None:
        backoff = Backoff()
        try:
            while not self.stopping():
                try:
                    await self.consume()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if self.stopping():
                        break
                    if not self._ready.done() and not self.provider.transient(exc):
                        self._ready.set_exception(self.provider.error("subscribe to", self, exc))
                        return
                    level = logging.DEBUG if self._outage else logging.WARNING
                    self._outage = True
                    log.log(
                        level,
                        "consumer of %r (group %r) lost %s, reconnecting: %s",
                        self.topic,
                        self.group,
                        self.provider.where,
                        self.provider.describe(exc),
                    )
                    await backoff.wait()
                else:
                    backoff.reset()
        finally:
            try:
                await self.release()
            except Exception:
                log.debug("releasing the consumer of %r failed", self.topic, exc_info=True)


class RemoteProvider(ABC):
    """The provider contract (`base.BrokerProvider`) over a broker server."""

    kind: ClassVar[str]
    """Provider name, as in config (`redis`, `nats`...)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._state: Literal["new", "running", "paused", "closed"] = "new"
        self._subscriptions: list[RemoteSubscription] = []
        self._tasks: set[asyncio.Task[None]] = set()

    # --- what a provider implements -----------------------------------------------------

    @abstractmethod
    async def _open(self) -> None:
        """Connect (and create what publishing needs); raise if the server cannot be used."""

    @abstractmethod
    async def _shutdown(self) -> None:
        """Close the connections; called once, after every consumer stopped."""

    @abstractmethod
    async def _send(
        self,
        topic: str,
        message_id: str,
        body: bytes,
        headers: Mapping[str, str],
        timestamp: float,
    ) -> None:
        """Hand one message to the server; return once the server has it."""

    @abstractmethod
    def _subscription(
        self, topic: str, group: str, handler: MessageHandler
    ) -> RemoteSubscription: ...

    @abstractmethod
    def transient(self, exc: BaseException) -> bool:
        """Whether `exc` is connection trouble that retrying may cure."""

    async def _ping(self) -> None:  # noqa: B027 - optional hook
        """Raise if the server does not answer now (for `health`)."""

    def check_topic(self, topic: str) -> None:  # noqa: B027 - optional hook
        """Raise `BrokerError` for a topic the server cannot carry (override per provider)."""

    @property
    def heartbeat(self) -> float:
        """Seconds between progress reports of a slow handler (providers with `touch`)."""
        return 10.0

    # --- shared ---------------------------------------------------------------------------

    @property
    def where(self) -> str:
        return f"{self.kind} at {self.connection.safe_url}"

    def describe(self, exc: BaseException) -> str:
        """An exception as text, with no password in it."""
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        for secret in (self.connection.password, _url_password(self.connection.url)):
            if secret:
                text = text.replace(secret, "***")
        return text

    def error(self, doing: str, sub: RemoteSubscription, exc: BaseException) -> BrokerError:
        return BrokerError(
            f"cannot {doing} {sub.topic!r} (group {sub.group!r}) on {self.where}: "
            f"{self.describe(exc)}"
        )

    async def health(self) -> Check:
        """Healthy when the server answers and every consumer is connected; degraded while
        it does not (messages wait on the server or in retrying publishers)."""
        from flownb.health import Check

        if self._state in ("new", "closed"):
            return Check.unhealthy(f"{self.where}: not connected ({self._state})")
        try:
            async with asyncio.timeout(self.connection.connect_timeout):
                await self._ping()
        except Exception as exc:
            return Check.degraded(f"{self.where} does not answer: {self.describe(exc)}")
        away = sum(1 for sub in self._subscriptions if sub._outage)
        if away:
            return Check.degraded(f"{self.where}: {away} consumer(s) reconnecting")
        return Check.healthy(self.where)

    async def connect(self) -> None:
        if self._state == "closed":
            raise BrokerError(f"the {self.kind} broker is closed; it cannot be reopened")
        if self._state != "new":
            return
        timeout = self.connection.connect_timeout
        try:
            async with asyncio.timeout(timeout):
                await self._open()
        except BrokerError:
            await self._shutdown_quietly()
            raise
        except Exception as exc:
            await self._shutdown_quietly()
            reason = f"no answer within {timeout:g} s" if isinstance(exc, TimeoutError) else ""
            raise BrokerError(
                f"cannot connect to {self.where}: {reason or self.describe(exc)}; check that "
                "the server runs and the url, username and password"
            ) from None
        self._state = "running"
        for sub in self._subscriptions:
            sub.start()
        for sub in list(self._subscriptions):
            await sub.wait_ready(timeout)

    async def close(self) -> None:
        if self._state == "closed":
            return
        opened = self._state != "new"
        self._state = "closed"
        subscriptions, self._subscriptions = self._subscriptions, []
        for sub in subscriptions:
            # Leave the group politely first (MQTT unsubscribes), then stop for good.
            try:
                async with asyncio.timeout(1.0):
                    await sub.halt()
            except Exception:
                log.debug("halting the consumer of %r failed", sub.topic, exc_info=True)
        # Every consumer task, also those of subscriptions cancelled earlier and still ending.
        await _finish(list(self._tasks))
        if opened:
            await self._shutdown_quietly()

    async def pause(self) -> None:
        if self._state == "running":
            self._state = "paused"
        for sub in list(self._subscriptions):
            try:
                await sub.halt()
            except Exception:
                log.warning("pausing the consumer of %r failed", sub.topic, exc_info=True)
                sub.stop_taking()

    async def publish(self, topic: str, payload: Any, headers: Mapping[str, str]) -> str:
        return await self.publish_raw(topic, encode_payload(topic, payload), headers)

    async def publish_raw(self, topic: str, body: bytes, headers: Mapping[str, str]) -> str:
        self._check_usable(topic, "publish to")
        self.check_topic(topic)
        message_id, timestamp = new_id(), time.time()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connection.publish_timeout
        backoff = Backoff()
        while True:
            try:
                async with asyncio.timeout(max(deadline - loop.time(), 0.001)):
                    await self._send(topic, message_id, body, headers, timestamp)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._state == "closed":
                    raise BrokerError(
                        f"cannot publish to {topic!r}: the broker is closed"
                    ) from None
                retry = self.transient(exc) or isinstance(exc, TimeoutError)
                if not retry or loop.time() + backoff.delay >= deadline:
                    raise BrokerError(
                        f"cannot publish to {topic!r} on {self.where}: {self.describe(exc)}"
                        + (f" (retried for {self.connection.publish_timeout:g} s)" if retry else "")
                    ) from None
                log.debug("publish to %r failed, retrying: %s", topic, self.describe(exc))
                await backoff.wait()
            else:
                return message_id

    async def subscribe(
        self, topic: str, group: str, handler: MessageHandler
    ) -> RemoteSubscription:
        if self._state == "closed":
            raise BrokerError(f"cannot subscribe to {topic!r}: the broker is closed")
        self.check_topic(topic)
        sub = self._subscription(topic, group, handler)
        self._subscriptions.append(sub)
        if self._state == "running":
            sub.start()
            try:
                await sub.wait_ready(self.connection.connect_timeout)
            except BaseException:
                sub.stop_taking(force=True)
                self._forget(sub)
                raise
        return sub

    def _check_usable(self, topic: str, doing: str) -> None:
        if self._state == "closed":
            raise BrokerError(f"cannot {doing} {topic!r}: the broker is closed")
        if self._state == "new":
            raise BrokerError(f"cannot {doing} {topic!r}: the broker is not started")

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _forget(self, sub: RemoteSubscription) -> None:
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)

    async def _shutdown_quietly(self) -> None:
        try:
            await self._shutdown()
        except Exception:
            log.debug("closing the %s connection failed", self.kind, exc_info=True)


def _url_password(url: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).password
    except ValueError:
        return None


async def _finish(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel `tasks` and wait for them. A client library may swallow a cancellation that
    lands while it connects (CPython 3.11's `wait_for`), so cancel again until they end."""
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _done, pending = await asyncio.wait(pending, timeout=0.05)
