"""Event modules: `event.processor` (complex-event patterns over time windows, the engine of
`workflows.event`) and `eventlogger` (a bounded record of events from an eventbus and topics).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from flownb.brokers.base import Message
from flownb.clock import Clock, SystemClock
from flownb.errors import FlownbError
from flownb.fields import Ref, Spec
from flownb.module import Module
from flownb.modules.eventbus import Event, EventBus, compile_pattern
from flownb.registry import ModuleType

if TYPE_CHECKING:
    from flownb.brokers.base import Subscription
    from flownb.engine import Engine
    from flownb.template import Compiled
    from flownb.workflows.event import PatternSpec

log = logging.getLogger("flownb.events")

# The longest and shortest pause between sweeps for expired events.
_MAX_PRUNE_INTERVAL = 60.0
_MIN_PRUNE_INTERVAL = 1.0


# --- event.processor ---------------------------------------------------------------------


class EventProcessorConfig(Spec):
    max_events_per_key: int = Field(
        1000,
        alias="maxEventsPerKey",
        ge=1,
        le=1_000_000,
        description="events kept per correlation key; the oldest go first",
    )
    max_keys: int = Field(
        10_000,
        alias="maxKeys",
        ge=1,
        le=10_000_000,
        description="correlation keys tracked at once; the least recently active go first",
    )


@dataclass(slots=True)
class PatternEvent:
    """An event as a pattern sees it."""

    seq: int
    type: str
    correlation_id: str
    source: str | None
    data: Any
    timestamp: float
    at: float  # the clock's monotonic time, for windows

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "correlationId": self.correlation_id,
            "source": self.source,
            "timestamp": self.timestamp,
            "data": self.data,
        }


@dataclass(slots=True)
class Match:
    pattern_id: str
    correlation_id: str
    events: list[PatternEvent]

    def to_dict(self) -> dict[str, Any]:
        return {
            "patternId": self.pattern_id,
            "correlationId": self.correlation_id,
            "events": [e.to_dict() for e in self.events],
        }


@dataclass(slots=True)
class _Pattern:
    id: str
    event_types: list[str]
    types: frozenset[str]
    window: float
    min_occurs: int
    max_occurs: int | None
    order_matters: bool
    condition: Compiled | None


@dataclass(slots=True)
class _KeyState:
    events: deque[PatternEvent]
    marks: dict[str, int] = field(default_factory=dict)  # pattern id -> last seq it consumed


def _in_order(events: list[PatternEvent], types: list[str]) -> bool:
    """True if `types` occur in this order among `events` (a subsequence, gaps allowed)."""
    i = 0
    for event in events:
        if event.type == types[i]:
            i += 1
            if i == len(types):
                return True
    return False


class EventProcessor(Module[EventProcessorConfig]):
    """Matches patterns of events per correlation key within time windows.

    A pattern matches when, among the events of its types seen for one key within its window
    (and since its last match for that key), there are between `minOccurs` and `maxOccurs`,
    in the listed order if `orderMatters`, and its `condition` holds. A match resets the
    pattern for that key, so one burst fires once. Memory is bounded by `maxEventsPerKey`
    and `maxKeys`; events older than the longest window are dropped.
    """

    def __init__(self, name: str, config: EventProcessorConfig) -> None:
        super().__init__(name, config)
        self._patterns: dict[str, _Pattern] = {}
        self._by_type: dict[str, list[_Pattern]] = {}
        self._keys: OrderedDict[str, _KeyState] = OrderedDict()
        self._seq = itertools.count(1)
        self._max_window = 0.0
        self._clock: Clock = SystemClock()
        self._engine: Engine | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def init(self, engine: Engine) -> None:
        self._engine = engine
        self._clock = engine.clock

    async def start(self) -> None:
        if self._patterns and self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep(), name=f"event.processor {self.name}")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        self._keys.clear()

    def add_pattern(self, spec: PatternSpec) -> None:
        """Register a pattern; its condition compiles now, so a bad one fails the build."""
        if spec.pattern_id in self._patterns:
            raise FlownbError(f"event pattern {spec.pattern_id!r} is defined twice")
        condition = None
        if spec.condition is not None:
            if self._engine is None:
                raise FlownbError(f"event processor {self.name!r} is used before init")
            condition = self._engine.templates.condition(spec.condition)
        pattern = _Pattern(
            spec.pattern_id,
            list(spec.event_types),
            frozenset(spec.event_types),
            float(spec.window_time),
            spec.min_occurs,
            spec.max_occurs,
            spec.order_matters,
            condition,
        )
        self._patterns[pattern.id] = pattern
        for event_type in pattern.types:
            self._by_type.setdefault(event_type, []).append(pattern)
        self._max_window = max(self._max_window, pattern.window)

    @property
    def pattern_ids(self) -> list[str]:
        return list(self._patterns)

    @property
    def key_count(self) -> int:
        return len(self._keys)

    def process(
        self,
        event_type: str,
        data: Any = None,
        *,
        correlation_id: str = "",
        source: str | None = None,
    ) -> list[Match]:
        """Feed one event; returns the patterns it completed (their state is reset)."""
        patterns = self._by_type.get(event_type)
        if not patterns:
            return []
        now = self._clock.monotonic()
        state = self._key(correlation_id)
        event = PatternEvent(
            next(self._seq),
            event_type,
            correlation_id,
            source,
            data,
            self._clock.now(),
            now,
        )
        events = state.events
        events.append(event)
        horizon = now - self._max_window
        while events and events[0].at < horizon:
            events.popleft()
        matches: list[Match] = []
        for pattern in patterns:
            found = self._check(pattern, state, event, now)
            if found is not None:
                state.marks[pattern.id] = event.seq
                matches.append(Match(pattern.id, correlation_id, found))
        return matches

    def _check(
        self, pattern: _Pattern, state: _KeyState, latest: PatternEvent, now: float
    ) -> list[PatternEvent] | None:
        mark = state.marks.get(pattern.id, 0)
        horizon = now - pattern.window
        types = pattern.types
        found = [e for e in state.events if e.seq > mark and e.at >= horizon and e.type in types]
        count = len(found)
        if count < pattern.min_occurs:
            return None
        if pattern.max_occurs is not None and count > pattern.max_occurs:
            return None
        if pattern.order_matters and not _in_order(found, pattern.event_types):
            return None
        if pattern.condition is not None:
            scope = {"events": [e.to_dict() for e in found], "event": latest.to_dict()}
            try:
                if not pattern.condition(scope):
                    return None
            except FlownbError as exc:
                log.warning("condition of event pattern %r failed: %s", pattern.id, exc)
                return None
        return found

    def _key(self, correlation_id: str) -> _KeyState:
        keys = self._keys
        state = keys.get(correlation_id)
        if state is None:
            state = keys[correlation_id] = _KeyState(deque(maxlen=self.config.max_events_per_key))
            if len(keys) > self.config.max_keys:
                evicted, _ = keys.popitem(last=False)
                log.debug("event processor %r: forgot key %r (maxKeys)", self.name, evicted)
        else:
            keys.move_to_end(correlation_id)
        return state

    def prune(self) -> int:
        """Drop events older than the longest window, and keys left empty; returns how many."""
        horizon = self._clock.monotonic() - self._max_window
        dropped = 0
        for key in list(self._keys):
            events = self._keys[key].events
            while events and events[0].at < horizon:
                events.popleft()
                dropped += 1
            if not events:
                del self._keys[key]
        return dropped

    async def _sweep(self) -> None:
        interval = min(max(self._max_window, _MIN_PRUNE_INTERVAL), _MAX_PRUNE_INTERVAL)
        while True:
            await self._clock.sleep_until(self._clock.now() + interval)
            self.prune()


# --- eventlogger ---------------------------------------------------------------------------


class EventLoggerConfig(Spec):
    eventbus: Annotated[str | None, Ref("eventbus")] = Field(
        None, description="eventbus to record; by default the config's only eventbus, if any"
    )
    events: list[str] = Field(
        ["*"],
        description="eventbus event types to record (globs such as 'order.*'); [] for none",
    )
    broker: Annotated[str | None, Ref("broker")] = Field(
        None, description="broker of `topics`; by default the config's only broker"
    )
    topics: list[str] = Field(default_factory=list, description="broker topics to record")
    max_events: int = Field(
        1000, alias="maxEvents", ge=1, le=1_000_000, description="events kept; the oldest go first"
    )
    log_level: Literal["debug", "info", "warning", "off"] = Field(
        "info", alias="logLevel", description="level of the Python log line per event"
    )


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_MAX_LOGGED_PAYLOAD = 500


class EventLogger(Module[EventLoggerConfig]):
    """Keeps the last `maxEvents` events (newest last) and writes each to the Python log."""

    def __init__(self, name: str, config: EventLoggerConfig) -> None:
        super().__init__(name, config)
        self._events: deque[dict[str, Any]] = deque(maxlen=config.max_events)
        self._level = _LEVELS.get(config.log_level)
        self._bus: EventBus | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._subscriptions: list[Subscription] = []
        self._engine: Engine | None = None

    async def init(self, engine: Engine) -> None:
        self._engine = engine
        bus_name = self.config.eventbus
        if bus_name is None and self.config.events:
            found = [
                m.name
                for m in engine.config.modules
                if "eventbus" in engine.registry.get(m.type).provides
            ]
            if len(found) > 1:
                raise FlownbError(
                    f"several eventbus modules ({', '.join(found)}): set 'eventbus' to the one "
                    "to record, or 'events: []' to record none"
                )
            bus_name = found[0] if found else None
        if bus_name is not None:
            self._bus = engine.services.get(bus_name, EventBus)

    async def start(self) -> None:
        if self._bus is not None:
            for pattern in self.config.events:
                self._unsubscribe.append(self._bus.subscribe(pattern, self._on_event))
        if self.config.topics and self._engine is not None:
            from flownb.modules.messaging import MessageBroker

            engine = self._engine
            broker = engine.services.get(
                engine.resolve_ref("broker", self.config.broker), MessageBroker
            )
            for topic in self.config.topics:
                sub = await broker.subscribe(
                    topic, self._on_message, group=f"eventlogger.{self.name}"
                )
                self._subscriptions.append(sub)

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        subscriptions, self._subscriptions = self._subscriptions, []
        for sub in subscriptions:
            await sub.cancel()

    def _on_event(self, event: Event) -> None:
        self.record(event.to_dict())

    async def _on_message(self, message: Message) -> None:
        payload = message.payload
        event_type = None
        if isinstance(payload, dict):
            event_type = payload.get("type") or payload.get("eventType")
        self.record(
            {
                "id": message.id,
                "type": event_type if isinstance(event_type, str) else message.topic,
                "source": message.headers.get("source"),
                "timestamp": message.timestamp,
                "payload": payload,
                "topic": message.topic,
            }
        )

    def record(self, entry: dict[str, Any]) -> None:
        """Keep one event (a dict with at least `type`)."""
        self._events.append(entry)
        if self._level is not None and log.isEnabledFor(self._level):
            text = repr(entry.get("payload"))
            if len(text) > _MAX_LOGGED_PAYLOAD:
                text = text[:_MAX_LOGGED_PAYLOAD] + "..."
            log.log(
                self._level,
                "event %s from %s: %s",
                entry.get("type"),
                entry.get("source") or entry.get("topic"),
                text,
            )

    def events(self, type: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The last `limit` events, oldest first; `type` filters by a glob like 'order.*'."""
        if limit <= 0:
            return []
        if type is None:
            items = list(self._events)
        else:
            match = compile_pattern(type)
            items = [e for e in self._events if match(str(e.get("type")))]
        return items[-limit:]

    def clear(self) -> None:
        self._events.clear()


TYPES: list[ModuleType] = [
    ModuleType(
        "event.processor",
        "Events",
        "Complex-event processor: matches patterns of events per correlation key within time "
        "windows (counts, order, conditions); used by the event workflow.",
        EventProcessorConfig,
        EventProcessor,
        provides=("event.processor",),
    ),
    ModuleType(
        "eventlogger",
        "Events",
        "Records events from an eventbus and broker topics into a bounded log you can query.",
        EventLoggerConfig,
        EventLogger,
        provides=("eventlogger",),
    ),
]
