"""`workflows.event`: complex-event patterns over a time window, fed by broker adapters."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, model_validator

from flownb.brokers.base import (
    REQUEST_ID_HEADER,
    Message,
    MessageHandler,
    RejectMessage,
    Subscription,
)
from flownb.errors import FlownbError
from flownb.fields import Duration, Name, Ref, Spec
from flownb.workflows.base import Workflow

if TYPE_CHECKING:
    from flownb.engine import Engine
    from flownb.module import Handler
    from flownb.modules.events import EventProcessor, Match
    from flownb.modules.messaging import MessageBroker

log = logging.getLogger("flownb.workflows.event")


class PatternSpec(Spec):
    pattern_id: Name = Field(alias="patternId")
    event_types: list[str] = Field(alias="eventTypes", min_length=1)
    window_time: Duration = Field(Duration("1m"), alias="windowTime")
    condition: str | None = Field(None, description="expression over `events`, `event`")
    min_occurs: int = Field(1, alias="minOccurs", ge=1)
    max_occurs: int | None = Field(None, alias="maxOccurs", ge=1)
    order_matters: bool = Field(False, alias="orderMatters")

    @model_validator(mode="after")
    def _bounds(self) -> PatternSpec:
        if self.max_occurs is not None and self.max_occurs < self.min_occurs:
            raise ValueError("maxOccurs must be >= minOccurs")
        return self


class EventHandlerSpec(Spec):
    pattern_id: str = Field(alias="patternId")
    handler: Annotated[str, Ref("handler")]


class AdapterSpec(Spec):
    broker: Annotated[str | None, Ref("broker", implicit=True)] = None
    topics: list[str] = Field(min_length=1)
    event_type: str | None = Field(
        None, alias="eventType", description="fixed type; else read from the message's type"
    )
    source_id_key: str = Field("source", alias="sourceIdKey")
    correl_id_key: str = Field("correlationId", alias="correlIdKey")


class EventWorkflowSpec(Spec):
    processor: Annotated[str | None, Ref("event.processor", implicit=True)] = None
    patterns: list[PatternSpec] = Field(default_factory=list)
    handlers: list[EventHandlerSpec] = Field(default_factory=list)
    adapters: list[AdapterSpec] = Field(default_factory=list)


# --- runtime ---------------------------------------------------------------------------


class EventWorkflow(Workflow[EventWorkflowSpec]):
    """Feeds events to the processor (from adapters and `trigger`) and runs pattern handlers.

    Each handler of a matched pattern runs as one execution (workflow "event", action = the
    pattern id) with `{"patternId", "correlationId", "events"}`. `trigger(type, data)` feeds
    one event and returns the ids of the patterns it completed.
    """

    kind = "event"

    def __init__(self, engine: Engine, spec: EventWorkflowSpec) -> None:
        super().__init__(engine, spec)
        self._handlers: dict[str, list[Handler]] = {}
        self._adapters: list[tuple[AdapterSpec, MessageBroker]] = []
        self._subscriptions: list[Subscription] = []
        self._processor: EventProcessor | None = None

    @property
    def processor(self) -> EventProcessor:
        if self._processor is None:
            raise FlownbError("the event workflow is not configured")
        return self._processor

    async def configure(self) -> None:
        from flownb.modules.events import EventProcessor
        from flownb.modules.messaging import MessageBroker

        engine, spec = self.engine, self.spec
        self._processor = engine.services.get(
            engine.resolve_ref("event.processor", spec.processor), EventProcessor
        )
        for pattern in spec.patterns:
            self._processor.add_pattern(pattern)
        for item in spec.handlers:
            self._handlers.setdefault(item.pattern_id, []).append(engine.handler(item.handler))
        for adapter in spec.adapters:
            broker = engine.services.get(
                engine.resolve_ref("broker", adapter.broker), MessageBroker
            )
            self._adapters.append((adapter, broker))

    async def start(self) -> None:
        for index, (adapter, broker) in enumerate(self._adapters):
            for topic in adapter.topics:
                sub = await broker.subscribe(
                    topic,
                    self._adapter_consumer(adapter),
                    group=f"workflows.event.adapters.{index}",
                )
                self._subscriptions.append(sub)

    async def stop(self) -> None:
        subscriptions, self._subscriptions = self._subscriptions, []
        for sub in subscriptions:
            await sub.cancel()

    async def trigger(self, action: str, data: Any, *, request_id: str | None = None) -> Any:
        """Feed event `action` with `data`; returns the ids of the patterns it completed."""
        correlation, source = "", None
        if isinstance(data, dict):
            correlation = _text(data.get("correlationId")) or _text(data.get("source"))
            source = _text(data.get("source")) or None
        return await self.feed(
            action, data, correlation_id=correlation, source=source, request_id=request_id
        )

    async def feed(
        self,
        event_type: str,
        data: Any,
        *,
        correlation_id: str = "",
        source: str | None = None,
        request_id: str | None = None,
    ) -> list[str]:
        """Process one event and run the handlers of every pattern it completes."""
        matches = self.processor.process(
            event_type, data, correlation_id=correlation_id, source=source
        )
        for match in matches:
            await self._run_handlers(match, request_id)
        return [m.pattern_id for m in matches]

    async def _run_handlers(self, match: Match, request_id: str | None) -> None:
        """Run the pattern's handlers; a failure is logged (the match is already consumed)."""
        handlers = self._handlers.get(match.pattern_id)
        if not handlers:
            return
        data = match.to_dict()
        for handler in handlers:
            try:
                await self.engine.run_handler(
                    handler, data, workflow="event", action=match.pattern_id, request_id=request_id
                )
            except Exception:
                log.exception(
                    "handler of event pattern %r failed (key %r)",
                    match.pattern_id,
                    match.correlation_id,
                )

    def _adapter_consumer(self, adapter: AdapterSpec) -> MessageHandler:
        async def consume(message: Message) -> None:
            payload = message.payload
            if not isinstance(payload, dict):
                raise RejectMessage(
                    f"an event adapter expects a JSON object, got {type(payload).__name__}"
                )
            event_type = adapter.event_type or payload.get("type") or payload.get("eventType")
            if not isinstance(event_type, str) or not event_type:
                raise RejectMessage(
                    "the message has no event type: send a 'type' (or 'eventType') field, "
                    "or set the adapter's eventType"
                )
            source = _text(payload.get(adapter.source_id_key)) or None
            correlation = _text(payload.get(adapter.correl_id_key)) or (source or "")
            await self.feed(
                event_type,
                payload,
                correlation_id=correlation,
                source=source,
                request_id=message.headers.get(REQUEST_ID_HEADER),
            )

        return consume


def _text(value: Any) -> str:
    """A key value as text ("" when absent); numbers are fine as correlation ids."""
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value)
