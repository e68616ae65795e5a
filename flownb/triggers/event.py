"""`triggers.event`: broker messages (filtered on their type) that call `trigger_workflow`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from flownb.fields import Ref, Spec
from flownb.workflows.kinds import WorkflowKind


class EventSubscription(Spec):
    topic: str = Field(min_length=1)
    event: str | None = Field(None, description="only messages whose type/eventType is this")
    workflow: WorkflowKind
    action: str
    params: dict[str, Any] = Field(default_factory=dict)
    broker: Annotated[str | None, Ref("broker", implicit=True)] = None


class EventTriggerSpec(Spec):
    subscriptions: list[EventSubscription] = Field(default_factory=list)
