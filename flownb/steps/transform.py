"""`transform`: reshape the data with extract/map/filter/convert operations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, model_validator

from flownb.execution import ExecutionContext
from flownb.fields import Ref
from flownb.pipeline import StepFn, StepSpec
from flownb.transform import TransformOp, compile_ops

if TYPE_CHECKING:
    from flownb.engine import Engine


class TransformStep(StepSpec):
    type: Literal["transform"] = "transform"
    operations: list[TransformOp] | None = Field(None, description="inline operations")
    transformer: Annotated[str | None, Ref("transformer")] = Field(
        None, description="data.transformer module holding named pipelines"
    )
    pipeline: str | None = Field(None, description="pipeline name inside `transformer`")
    input: Any = Field("{{ data }}", description="value to transform (default: the data)")
    replace_data: bool = Field(True, description="the result becomes the pipeline's data")

    @model_validator(mode="after")
    def _one_source(self) -> TransformStep:
        if (self.operations is None) == (self.transformer is None):
            raise ValueError("give either operations or transformer + pipeline")
        if self.transformer is not None and not self.pipeline:
            raise ValueError("pipeline names the transformation inside the transformer module")
        return self

    def compile(self, engine: Engine) -> StepFn:
        if self.operations is not None:
            apply = compile_ops(self.operations, engine.templates)
        else:
            from flownb.modules.transformer import DataTransformer

            assert self.transformer is not None and self.pipeline is not None
            apply = engine.services.get(self.transformer, DataTransformer).pipeline(self.pipeline)
        value = engine.templates.value(self.input)
        replace = self.replace_data

        async def run(ctx: ExecutionContext) -> Any:
            result = apply(value(ctx.scope))
            if replace:
                ctx.set_data(result)
            return result

        return run
