"""`workflows.messaging`: topic subscriptions to handlers, and producers that forward results."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, model_validator

from flownb.brokers.base import REQUEST_ID_HEADER, Message, MessageHandler, Subscription
from flownb.errors import FlownbError
from flownb.execution import Response
from flownb.fields import Ref, Spec
from flownb.workflows.base import Workflow

if TYPE_CHECKING:
    from flownb.engine import Engine
    from flownb.module import Handler
    from flownb.modules.messaging import MessageBroker

log = logging.getLogger("flownb.workflows.messaging")

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


# --- runtime ---------------------------------------------------------------------------


class _Route:
    """A subscription, resolved: its broker, its handler and where its results go."""

    __slots__ = ("broker", "group", "handler", "targets", "topic")

    def __init__(
        self,
        topic: str,
        group: str,
        broker: MessageBroker,
        handler: Handler,
        targets: list[tuple[MessageBroker, list[str]]],
    ) -> None:
        self.topic = topic
        self.group = group
        self.broker = broker
        self.handler = handler
        self.targets = targets


class MessagingWorkflow(Workflow[MessagingWorkflowSpec]):
    """Runs a handler per delivered message (one execution each) and forwards its result.

    `trigger(topic, data)` publishes `data` to `topic`.
    """

    kind = "messaging"

    def __init__(self, engine: Engine, spec: MessagingWorkflowSpec) -> None:
        super().__init__(engine, spec)
        self._routes: list[_Route] = []
        self._subscriptions: list[Subscription] = []
        self._broker: MessageBroker | None = None

    def _broker_named(self, name: str | None) -> MessageBroker:
        from flownb.modules.messaging import MessageBroker

        engine = self.engine
        return engine.services.get(
            engine.resolve_ref("broker", name or self.spec.broker), MessageBroker
        )

    async def configure(self) -> None:
        spec, engine = self.spec, self.engine
        self._broker = self._broker_named(None)
        producers: dict[str, list[tuple[MessageBroker, list[str]]]] = {}
        for producer in spec.producers:
            target = (self._broker_named(producer.broker), producer.topics)
            producers.setdefault(producer.name, []).append(target)
        subscribed = {sub.handler for sub in spec.subscriptions}
        for name in producers.keys() - subscribed:
            log.warning(
                "messaging producer %r never sends: no subscription runs handler %r", name, name
            )
        for sub in spec.subscriptions:
            self._routes.append(
                _Route(
                    sub.topic,
                    sub.group or sub.handler,
                    self._broker_named(sub.broker),
                    engine.handler(sub.handler),
                    producers.get(sub.handler, []),
                )
            )

    async def start(self) -> None:
        for route in self._routes:
            subscription = await route.broker.subscribe(
                route.topic, self._consumer(route), group=route.group
            )
            self._subscriptions.append(subscription)

    async def stop(self) -> None:
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            await subscription.cancel()

    def _consumer(self, route: _Route) -> MessageHandler:
        engine, handler, topic, targets = self.engine, route.handler, route.topic, route.targets

        async def consume(message: Message) -> None:
            request_id = message.headers.get(REQUEST_ID_HEADER)
            ctx = await engine.run_handler(
                handler,
                message.payload,
                workflow="messaging",
                action=topic,
                request=message,
                request_id=request_id,
            )
            if targets:
                await _forward(ctx.result, targets, request_id)

        return consume

    async def trigger(self, action: str, data: Any, *, request_id: str | None = None) -> Any:
        """Publish `data` to topic `action`."""
        if self._broker is None:
            raise FlownbError("the messaging workflow is not configured")
        headers = {REQUEST_ID_HEADER: request_id} if request_id else {}
        message_id = await self._broker.publish(action, data, headers)
        return {"id": message_id, "topic": action}


async def _forward(
    result: Any, targets: list[tuple[MessageBroker, list[str]]], request_id: str | None
) -> None:
    """Publish a handler's result (a Response's body) to each producer topic."""
    body = result.body if isinstance(result, Response) else result
    if body is None:
        return
    headers = {REQUEST_ID_HEADER: request_id} if request_id else {}
    for broker, topics in targets:
        for topic in topics:
            await broker.publish(topic, body, headers)
