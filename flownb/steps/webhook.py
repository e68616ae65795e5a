"""`webhook`: deliver a payload through a `webhook.sender` module (retries, dead letters)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from flownb.execution import ExecutionContext
from flownb.fields import Ref
from flownb.pipeline import StepFn, StepSpec

if TYPE_CHECKING:
    from flownb.engine import Engine


class WebhookStep(StepSpec):
    """Result: `{id, status: queued, url, idempotencyKey}`, or with `wait`, `{id, status:
    delivered | dead, attempts, ...}` once the delivery landed or became a dead letter."""

    type: Literal["webhook"] = "webhook"
    sender: Annotated[str | None, Ref("webhook.sender", implicit=True)] = Field(
        None, description="webhook.sender module; optional when there is one"
    )
    payload: Any = Field("{{ data }}", description="what to send (value or template)")
    url: str | None = Field(None, description="target URL (template); default: the sender's")
    headers: dict[str, str] = Field(
        default_factory=dict, description="extra headers for this delivery (templates)"
    )
    idempotency_key: str | None = Field(
        None,
        alias="idempotencyKey",
        description="the delivery's key (template), e.g. order-{{ data.id }}; default: random",
    )
    wait: bool = Field(
        False, description="wait until delivered or dead-lettered (retries included)"
    )

    def compile(self, engine: Engine) -> StepFn:
        from flownb.modules.webhook import WebhookSender

        sender = engine.services.get(
            engine.resolve_ref("webhook.sender", self.sender), WebhookSender
        )
        templates = engine.templates
        payload = templates.value(self.payload)
        url = None if self.url is None else templates.value(self.url)
        headers = templates.value(self.headers)
        key = None if self.idempotency_key is None else templates.value(self.idempotency_key)
        wait = self.wait

        async def run(ctx: ExecutionContext) -> Any:
            scope = ctx.scope
            return await sender.send(
                payload(scope),
                url=None if url is None else str(url(scope)),
                headers={str(k): str(v) for k, v in headers(scope).items()},
                idempotency_key=None if key is None else str(key(scope)),
                wait=wait,
            )

        return run
