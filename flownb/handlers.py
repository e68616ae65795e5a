"""Configured handlers: a module that runs a named pipeline, a Python function or inline steps.

`http.handler` and `messaging.handler` are both this, under their family's name: one config
model (`HandlerConfig`) and one runtime (`ConfiguredHandler`), so a handler written for a
route also works for a topic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from pydantic import Field, model_validator

from flownb.errors import FlownbError
from flownb.execution import ExecutionContext
from flownb.fields import Ref, Spec
from flownb.module import Module
from flownb.steps import AnyStep

if TYPE_CHECKING:
    from flownb.engine import Engine
    from flownb.functions import AsyncFn
    from flownb.pipeline import Pipeline


class HandlerConfig(Spec):
    """Exactly one of `pipeline`, `function` or `steps` says what runs."""

    pipeline: Annotated[str | None, Ref("pipeline")] = Field(
        None, description="named pipeline to run"
    )
    function: str | None = Field(
        None, description="registered Python function, or 'package.module:attr'"
    )
    steps: list[AnyStep] | None = Field(None, description="inline pipeline steps")

    @model_validator(mode="after")
    def _exactly_one(self) -> HandlerConfig:
        given = [k for k in ("pipeline", "function", "steps") if getattr(self, k) is not None]
        if len(given) != 1:
            found = f"got {', '.join(given)}" if given else "got none"
            raise ValueError(f"set exactly one of pipeline, function or steps ({found})")
        return self


C = TypeVar("C", bound=HandlerConfig)


class ConfiguredHandler(Module[C]):
    """Runs its pipeline, function or inline steps for each input (a `Handler`)."""

    _pipeline: Pipeline | None = None
    _function: AsyncFn | None = None

    async def init(self, engine: Engine) -> None:
        config = self.config
        if config.pipeline is not None:
            self._pipeline = engine.pipeline(config.pipeline)
        elif config.function is not None:
            self._function = engine.functions.resolve(config.function)
        else:
            from flownb.pipeline import Pipeline

            self._pipeline = Pipeline(self.name, list(config.steps or ()), engine)

    async def handle(self, ctx: ExecutionContext, data: Any) -> Any:
        if self._pipeline is not None:
            return await self._pipeline.handle(ctx, data)
        if self._function is None:
            raise FlownbError(f"handler {self.name!r} was used before the engine built it")
        return await self._function(data, ctx)
