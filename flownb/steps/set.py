"""`set`: compute values from templates into `vars` (or merge them into `data`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from flownb.execution import ExecutionContext
from flownb.pipeline import StepFn, StepSpec

if TYPE_CHECKING:
    from flownb.engine import Engine


class SetStep(StepSpec):
    type: Literal["set"] = "set"
    values: dict[str, Any] = Field(description="name -> value or template")
    target: Literal["vars", "data"] = Field("vars", description="where the values go")

    def compile(self, engine: Engine) -> StepFn:
        items = [(k, engine.templates.value(v)) for k, v in self.values.items()]
        into_data = self.target == "data"

        async def run(ctx: ExecutionContext) -> dict[str, Any]:
            scope = ctx.scope
            out = {k: fn(scope) for k, fn in items}
            if into_data:
                base = ctx.data if isinstance(ctx.data, dict) else {}
                ctx.set_data({**base, **out})
            else:
                ctx.vars.update(out)
            return out

        return run
