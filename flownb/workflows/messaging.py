"""`workflows.messaging`: topic subscriptions to handlers, and producers that forward results."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from flownb.fields import Ref, Spec

BrokerRef = Annotated[str | None, Ref("broker", implicit=True)]


class SubscriptionSpec(Spec):
    topic: str = Field(min_length=1)
    handler: Annotated[str, Ref("handler")]
    broker: BrokerRef = Field(None, description="defaults to the workflow's broker")
    group: str | None = Field(None, description="consumer group; defaults to the handler name")


class ProducerSpec(Spec):
    """After handler `name` succeeds, its result is published to `topic` and `forwardTo`."""

    name: Annotated[str, Ref("handler")] = Field(description="handler whose results are sent on")
    topic: str | None = None
    forward_to: list[str] = Field(default_factory=list, alias="forwardTo")
    broker: BrokerRef = Field(None, description="defaults to the workflow's broker")

    @model_validator(mode="after")
    def _has_target(self) -> ProducerSpec:
        if not self.topic and not self.forward_to:
            raise ValueError("a producer needs a topic or forwardTo")
        return self

    @property
    def topics(self) -> list[str]:
        return [t for t in (self.topic, *self.forward_to) if t]


class MessagingWorkflowSpec(Spec):
    broker: BrokerRef = Field(None, description="messaging.broker; optional when there is one")
    subscriptions: list[SubscriptionSpec] = Field(default_factory=list)
    producers: list[ProducerSpec] = Field(default_factory=list)
