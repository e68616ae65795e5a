"""Pipelines: named, ordered lists of typed steps, compiled once and run per execution.

Each step type is a config model (in `flownb.steps`) whose `compile` returns an async
function of the execution context. The common fields (`if`, `skip_if`, `on_error`, `timeout`,
`output`) are handled here, once, so step types only implement what they do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from time import perf_counter_ns
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, model_validator

from flownb.errors import ExecutionError, StepError
from flownb.execution import ExecutionContext, trace_step
from flownb.fields import Duration, Name, Ref, Spec

if TYPE_CHECKING:
    from flownb.engine import Engine
    from flownb.template import Compiled

log = logging.getLogger("flownb.pipeline")

StepFn = Callable[[ExecutionContext], Awaitable[Any]]


class StopPipeline(Exception):
    """Raised by a step (respond) to end the pipeline successfully."""


class OnErrorPipeline(Spec):
    pipeline: Annotated[str, Ref("pipeline")] = Field(
        description="pipeline to run with `vars.error` set; it decides the reply"
    )


class StepSpec(Spec):
    """Fields every step has. Subclasses add `type: Literal[...]` and implement `compile`."""

    type: str
    name: Name | None = Field(None, description="label; the output is kept as steps.NAME")
    if_: str | bool | None = Field(None, alias="if", description="run only if this is true")
    skip_if: str | bool | None = Field(None, description="skip the step if this is true")
    on_error: Literal["fail", "continue"] | OnErrorPipeline = Field(
        "fail", description="fail the execution, continue with the next step, or run a pipeline"
    )
    timeout: Duration | None = Field(None, description="fail the step after this long")
    output: Name | None = Field(None, description="also store the step's result in vars.OUTPUT")

    @model_validator(mode="after")
    def _always_dump_type(self) -> StepSpec:
        self.model_fields_set.add("type")
        return self

    def compile(self, engine: Engine) -> StepFn:
        raise NotImplementedError(f"step type {self.type!r} does not implement compile()")


class CompiledStep:
    __slots__ = ("label", "on_error", "output", "run", "skip", "timeout")

    def __init__(self, spec: StepSpec, index: int, engine: Engine, prefix: str = "") -> None:
        self.label = spec.name or f"{prefix}{index}:{spec.type}"
        self.run = spec.compile(engine)
        self.output = spec.output
        self.timeout = float(spec.timeout) if spec.timeout is not None else None
        self.on_error = spec.on_error
        self.skip = _skip_check(spec, engine)


def _skip_check(spec: StepSpec, engine: Engine) -> Compiled | None:
    run_if = None if spec.if_ is None else engine.templates.condition(spec.if_)
    skip_if = None if spec.skip_if is None else engine.templates.condition(spec.skip_if)
    if run_if and skip_if:
        return lambda scope: not run_if(scope) or skip_if(scope)
    if run_if:
        return lambda scope: not run_if(scope)
    return skip_if


class Pipeline:
    """A compiled pipeline; also a `Handler`, so routes, hooks and triggers can run it."""

    def __init__(
        self, name: str, steps: list[StepSpec], engine: Engine, *, label_prefix: str = ""
    ) -> None:
        """`label_prefix` keeps the labels of unnamed steps in nested pipelines (branches)
        apart from those of the outer pipeline in `steps.<label>`."""
        self.name = name
        self.engine = engine
        self.steps = [CompiledStep(s, i, engine, label_prefix) for i, s in enumerate(steps)]

    async def handle(self, ctx: ExecutionContext, data: Any) -> Any:
        """Run the steps; the result is the `respond` reply if one ran, else the final data."""
        if data is not ctx.data:
            ctx.set_data(data)
        await self.run(ctx)
        return ctx.response if ctx.response is not None else ctx.data

    async def run(self, ctx: ExecutionContext) -> bool:
        """Run the steps; True if one ended the pipeline early (respond, or on_error pipeline).

        A caller running this as part of another pipeline (a conditional branch) must end
        that one too when True comes back.
        """
        observers = self.engine.observers
        per_step = observers.per_step  # someone is called after each step
        trace = ctx.trace  # someone reads the steps when the execution ends
        timed = per_step or trace is not None
        scope = ctx.scope
        # One clock reading per step: a step's end is the next one's start. It is read again
        # only after what is not a step's own time (a skip check, observers, a recovery).
        # Nanoseconds, as the trace keeps them; observers called per step get seconds.
        last = perf_counter_ns() if timed else 0
        for step in self.steps:
            if step.skip is not None and step.skip(scope):
                if timed:
                    last = perf_counter_ns()
                continue
            before = ctx.data
            try:
                if step.timeout is None:
                    out = await step.run(ctx)
                else:
                    async with asyncio.timeout(step.timeout):
                        out = await step.run(ctx)
            except StopPipeline:
                if timed:
                    self._ended(ctx, step.label, perf_counter_ns() - last, before, per_step)
                return True
            except Exception as exc:
                error = _as_step_error(step, exc)
                if timed:
                    observers.step(
                        ctx,
                        step.label,
                        "error",
                        (perf_counter_ns() - last) / 1e9,
                        error,
                        before=before,
                    )
                if step.on_error == "continue":
                    ctx.steps[step.label] = {"error": str(error)}
                    if timed:
                        last = perf_counter_ns()
                    continue
                if isinstance(step.on_error, OnErrorPipeline):
                    await self._recover(ctx, step.on_error.pipeline, error)
                    return True
                raise error from exc
            if timed:  # the common path, inlined: one append, no call unless someone listens
                now = perf_counter_ns()
                took = now - last
                last = now
                if trace is not None:  # trace_step, inlined
                    if before is ctx.traced:
                        trace.append((step.label, "ok", took, None))
                    else:
                        ctx.traced = before
                        trace.append((step.label, "ok", took, None, before))
                if per_step:
                    observers.notify(ctx, step.label, "ok", took / 1e9, None)
                    last = perf_counter_ns()
            ctx.steps[step.label] = out
            if step.output is not None:
                ctx.vars[step.output] = out
        return False

    def _ended(
        self, ctx: ExecutionContext, label: str, took: int, before: Any, per_step: bool
    ) -> None:
        """Trace (and tell) a step that ended the pipeline (`respond`), as the loop does."""
        trace_step(ctx, (label, "ok", took, None), before)
        if per_step:
            self.engine.observers.notify(ctx, label, "ok", took / 1e9, None)

    async def _recover(self, ctx: ExecutionContext, name: str, error: StepError) -> None:
        ctx.vars["error"] = {
            "message": str(error),
            "step": error.step,
            "status": error.status,
            "details": error.details,
        }
        await self.engine.pipeline(name).run(ctx)


def _as_step_error(step: CompiledStep, exc: Exception) -> StepError:
    if isinstance(exc, StepError):
        return exc
    if isinstance(exc, TimeoutError) and step.timeout is not None:
        return StepError(step.label, f"timed out after {step.timeout}s", status=504)
    if isinstance(exc, ExecutionError):
        return StepError(step.label, str(exc), status=exc.status, details=exc.details)
    log.debug("step %s raised", step.label, exc_info=exc)
    return StepError(step.label, f"{type(exc).__name__}: {exc}", status=500)
