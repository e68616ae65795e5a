"""`transition`: fire a state-machine transition on an instance (hooks run inside it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from flownb.execution import ExecutionContext
from flownb.fields import Ref
from flownb.pipeline import StepFn, StepSpec

if TYPE_CHECKING:
    from flownb.engine import Engine


class TransitionStep(StepSpec):
    type: Literal["transition"] = "transition"
    engine: Annotated[str | None, Ref("statemachine", implicit=True)] = Field(
        None, description="statemachine.engine; optional when there is one"
    )
    instance: str = Field("{{ data.id }}", description="instance id, or a template giving it")
    transition: str = Field(description="transition name, or a template giving it")
    data: Any = Field(None, description="value or template merged into the instance data")

    def compile(self, engine: Engine) -> StepFn:
        from flownb.modules.statemachine import StateMachineEngine

        machine = engine.services.get(
            engine.resolve_ref("statemachine", self.engine), StateMachineEngine
        )
        instance = engine.templates.value(self.instance)
        transition = engine.templates.value(self.transition)
        data = engine.templates.value(self.data)

        async def run(ctx: ExecutionContext) -> dict[str, Any]:
            scope = ctx.scope
            result = await machine.transition(
                str(instance(scope)), str(transition(scope)), data(scope) or {}, parent=ctx
            )
            return result.to_dict()

        return run
