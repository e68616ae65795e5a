"""`conditional`: run the steps of the first case whose `when` holds, else the default."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, model_validator

from flownb.execution import ExecutionContext
from flownb.fields import Ref, Spec
from flownb.pipeline import StepFn, StepSpec, StopPipeline

if TYPE_CHECKING:
    from flownb.engine import Engine
    from flownb.steps import AnyStep


class Branch(Spec):
    steps: list[AnyStep] | None = Field(None, description="inline steps")
    pipeline: Annotated[str | None, Ref("pipeline")] = Field(None, description="or a pipeline")

    @model_validator(mode="after")
    def _one(self) -> Branch:
        if (self.steps is None) == (self.pipeline is None):
            raise ValueError("a branch has either steps or pipeline")
        return self


class Case(Branch):
    when: str = Field(description="condition; the first case that holds runs")


class ConditionalStep(StepSpec):
    type: Literal["conditional"] = "conditional"
    cases: list[Case] = Field(min_length=1)
    default: Branch | None = Field(None, description="runs when no case holds")

    def compile(self, engine: Engine) -> StepFn:
        from flownb.pipeline import Pipeline

        label = self.name or "conditional"

        def branch(b: Branch, n: str) -> Pipeline:
            if b.pipeline is not None:
                return engine.pipeline(b.pipeline)
            return Pipeline(
                f"{label}.{n}", list(b.steps or []), engine, label_prefix=f"{label}.{n}/"
            )

        cases = [
            (engine.templates.condition(c.when), branch(c, f"case{i}"))
            for i, c in enumerate(self.cases)
        ]
        default = branch(self.default, "default") if self.default else None

        async def run(ctx: ExecutionContext) -> Any:
            scope = ctx.scope
            for i, (cond, pipe) in enumerate(cases):
                if cond(scope):
                    if await pipe.run(ctx):
                        raise StopPipeline  # the branch replied: the whole pipeline ends
                    return {"case": i}
            if default is not None:
                if await default.run(ctx):
                    raise StopPipeline
                return {"case": "default"}
            return {"case": None}

        return run
