"""`publish`: send a message to a broker topic."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from flownb.execution import ExecutionContext
from flownb.fields import Ref
from flownb.pipeline import StepFn, StepSpec

if TYPE_CHECKING:
    from flownb.engine import Engine


class PublishStep(StepSpec):
    type: Literal["publish"] = "publish"
    broker: Annotated[str | None, Ref("broker", implicit=True)] = Field(
        None, description="messaging.broker; optional when there is one"
    )
    topic: str = Field(description="topic, or a template giving one")
    message: Any = Field("{{ data }}", description="value or template to send")
    headers: dict[str, str] = Field(default_factory=dict)

    def compile(self, engine: Engine) -> StepFn:
        from flownb.modules.messaging import MessageBroker

        broker = engine.services.get(engine.resolve_ref("broker", self.broker), MessageBroker)
        topic = engine.templates.value(self.topic)
        message = engine.templates.value(self.message)
        headers = engine.templates.value(self.headers)

        async def run(ctx: ExecutionContext) -> dict[str, Any]:
            scope = ctx.scope
            hdrs = headers(scope)
            if ctx.request_id and "request-id" not in hdrs:
                hdrs["request-id"] = ctx.request_id
            message_id = await broker.publish(str(topic(scope)), message(scope), hdrs)
            return {"id": message_id}

        return run
