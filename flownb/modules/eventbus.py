"""`eventbus`: in-process publish/subscribe of named events, for modules to announce things.

Unlike a broker there are no topics to configure, no groups and no retries: `publish` calls
every callback whose pattern matches the event type, in subscription order, and a failing
callback is logged without stopping the others. Patterns are globs: `order.created` exactly,
`order.*` every type starting with `order.` (dots included), `*` everything.
"""

from __future__ import annotations

import fnmatch
import inspect
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from flownb.errors import FlownbError
from flownb.execution import new_id
from flownb.fields import Spec
from flownb.module import Module
from flownb.registry import ModuleType

log = logging.getLogger("flownb.eventbus")

# Event types seen, each with its matching listeners; cleared when full (types may carry ids).
_MAX_CACHED_TYPES = 4096


@dataclass(slots=True, frozen=True)
class Event:
    type: str
    payload: Any = None
    source: str | None = None
    id: str = field(default_factory=new_id)
    timestamp: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "timestamp": self.timestamp,
            "payload": self.payload,
        }


Callback = Callable[[Event], Awaitable[None] | None]
Unsubscribe = Callable[[], None]


class _Listener:
    __slots__ = ("callback", "is_async", "match", "pattern")

    def __init__(self, pattern: str, callback: Callback) -> None:
        self.pattern = pattern
        self.callback = callback
        self.is_async = inspect.iscoroutinefunction(callback)
        self.match = compile_pattern(pattern)


def compile_pattern(pattern: str) -> Callable[[str], bool]:
    """A glob over event types as a fast predicate (exact names skip the regex)."""
    if not any(c in pattern for c in "*?["):
        return pattern.__eq__
    return re.compile(fnmatch.translate(pattern)).match  # type: ignore[return-value]


class EventBusConfig(Spec):
    max_subscribers: int = Field(
        10_000,
        alias="maxSubscribers",
        ge=1,
        description="subscriptions allowed at once; more means a leak (subscribe without "
        "unsubscribe)",
    )


class EventBus(Module[EventBusConfig]):
    """Named in-process events: `publish(type, payload)`, `subscribe(pattern, callback)`."""

    def __init__(self, name: str, config: EventBusConfig) -> None:
        super().__init__(name, config)
        self._listeners: list[_Listener] = []
        self._by_type: dict[str, tuple[_Listener, ...]] = {}

    def subscribe(self, pattern: str, callback: Callback) -> Unsubscribe:
        """Call `callback(event)` (sync or async) for every event whose type matches."""
        if not pattern:
            raise FlownbError(f"eventbus {self.name!r}: subscribe needs a pattern, e.g. 'order.*'")
        if len(self._listeners) >= self.config.max_subscribers:
            raise FlownbError(
                f"eventbus {self.name!r} has {len(self._listeners)} subscribers, its "
                "maxSubscribers; unsubscribe what is no longer needed or raise the limit"
            )
        listener = _Listener(pattern, callback)
        self._listeners.append(listener)
        self._by_type.clear()

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)
                self._by_type.clear()

        return unsubscribe

    async def publish(
        self, event_type: str, payload: Any = None, *, source: str | None = None
    ) -> Event:
        """Deliver an event to the matching callbacks; returns it. Callback errors are logged."""
        event = Event(event_type, payload, source)
        listeners = self._by_type.get(event_type)
        if listeners is None:
            listeners = tuple(item for item in self._listeners if item.match(event_type))
            if len(self._by_type) >= _MAX_CACHED_TYPES:
                self._by_type.clear()
            self._by_type[event_type] = listeners
        for listener in listeners:
            try:
                if listener.is_async:
                    await listener.callback(event)  # type: ignore[misc]
                else:
                    result = listener.callback(event)
                    if inspect.isawaitable(result):
                        await result
            except Exception:
                log.exception(
                    "eventbus %r: subscriber of %r failed on %s",
                    self.name,
                    listener.pattern,
                    event_type,
                )
        return event

    async def stop(self) -> None:
        self._listeners.clear()
        self._by_type.clear()


TYPES: list[ModuleType] = [
    ModuleType(
        "eventbus",
        "Infrastructure",
        "In-process publish/subscribe of named events with wildcard subscriptions; modules "
        "announce things on it (e.g. state transitions).",
        EventBusConfig,
        EventBus,
        provides=("eventbus",),
    ),
]
