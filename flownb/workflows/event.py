"""`workflows.event`: complex-event patterns over a time window, fed by broker adapters."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from flownb.fields import Duration, Name, Ref, Spec


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
