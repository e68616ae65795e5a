"""`call`: run a Python callable registered with the engine (or named `package.module:attr`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from flownb.execution import ExecutionContext
from flownb.pipeline import StepFn, StepSpec

if TYPE_CHECKING:
    from flownb.engine import Engine


class CallStep(StepSpec):
    type: Literal["call"] = "call"
    function: str = Field(description="registered function name, or 'package.module:attr'")
    input: Any = Field("{{ data }}", description="value or template passed as the argument")
    replace_data: bool = Field(False, description="the result becomes the pipeline's data")

    def compile(self, engine: Engine) -> StepFn:
        fn = engine.functions.resolve(self.function)
        arg = engine.templates.value(self.input)
        replace = self.replace_data

        async def run(ctx: ExecutionContext) -> Any:
            result = await fn(arg(ctx.scope), ctx)
            if replace:
                ctx.set_data(result)
            return result

        return run
