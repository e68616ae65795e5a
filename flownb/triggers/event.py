"""`triggers.event`: broker messages (filtered on their type) that call `trigger_workflow`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from flownb.brokers.base import (
    REQUEST_ID_HEADER,
    Message,
    MessageHandler,
    RejectMessage,
    Subscription,
)
from flownb.fields import Ref, Spec
from flownb.triggers.base import Trigger
from flownb.workflows.kinds import WorkflowKind

if TYPE_CHECKING:
    from flownb.engine import Engine
    from flownb.modules.messaging import MessageBroker


class EventSubscription(Spec):
    topic: str = Field(min_length=1)
    event: str | None = Field(None, description="only messages whose type/eventType is this")
    workflow: WorkflowKind
    action: str
    params: dict[str, Any] = Field(default_factory=dict)
    broker: Annotated[str | None, Ref("broker", implicit=True)] = None


class EventTriggerSpec(Spec):
    subscriptions: list[EventSubscription] = Field(default_factory=list)


# --- runtime ---------------------------------------------------------------------------


class EventTrigger(Trigger[EventTriggerSpec]):
    """Starts `workflow`/`action` for each JSON-object message on a topic, filtered by type.

    The workflow gets the message's fields merged with `params`. A message that is not a
    JSON object is dead-lettered at once; a workflow that fails follows the broker's
    redelivery and dead-letter rules.
    """

    kind = "event"

    def __init__(self, engine: Engine, spec: EventTriggerSpec) -> None:
        super().__init__(engine, spec)
        self._routes: list[tuple[EventSubscription, MessageBroker]] = []
        self._subscriptions: list[Subscription] = []

    async def configure(self) -> None:
        from flownb.modules.messaging import MessageBroker

        engine = self.engine
        for sub in self.spec.subscriptions:
            broker = engine.services.get(engine.resolve_ref("broker", sub.broker), MessageBroker)
            self._routes.append((sub, broker))

    async def start(self) -> None:
        for index, (sub, broker) in enumerate(self._routes):
            subscription = await broker.subscribe(
                sub.topic, self._consumer(sub), group=f"triggers.event.{index}"
            )
            self._subscriptions.append(subscription)

    async def stop(self) -> None:
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            await subscription.cancel()

    def _consumer(self, sub: EventSubscription) -> MessageHandler:
        engine, wanted = self.engine, sub.event
        workflow, action, params = sub.workflow, sub.action, sub.params

        async def consume(message: Message) -> None:
            payload = message.payload
            if not isinstance(payload, dict):
                raise RejectMessage(
                    f"an event trigger expects a JSON object, got {type(payload).__name__}"
                )
            if wanted is not None and payload.get("type", payload.get("eventType")) != wanted:
                return
            await engine.trigger_workflow(
                workflow,
                action,
                {**payload, **params},
                request_id=message.headers.get(REQUEST_ID_HEADER),
            )

        return consume
