"""`respond`: set the reply (status, headers, body) and end the pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from flownb.errors import StepError
from flownb.execution import ExecutionContext, Response
from flownb.pipeline import StepFn, StepSpec, StopPipeline

if TYPE_CHECKING:
    from flownb.engine import Engine


class RespondStep(StepSpec):
    type: Literal["respond"] = "respond"
    status: int | str = Field(200, description="HTTP status, or a template giving one")
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = Field("{{ data }}", description="value or template; JSON-encoded unless a string")

    def compile(self, engine: Engine) -> StepFn:
        status = engine.templates.value(self.status)
        headers = engine.templates.value(self.headers)
        body = engine.templates.value(self.body)
        label = self.name or "respond"

        async def run(ctx: ExecutionContext) -> Any:
            scope = ctx.scope
            code = status(scope)
            try:
                code = int(code)
            except (TypeError, ValueError):
                raise StepError(label, f"status {code!r} is not a number") from None
            if not 100 <= code <= 599:
                raise StepError(label, f"status {code} is not an HTTP status")
            ctx.response = Response(code, body(scope), headers(scope))
            raise StopPipeline

        return run
