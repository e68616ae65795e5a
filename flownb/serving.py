"""Keeping a notebook's workflow running for a while: `await wf.serve(...)`.

A notebook run headless (papermill, `flownb notebook run`, a scheduled `notebook.job`) goes
through its cells top to bottom and would stop the workflow as soon as the last cell ended.
`serve` is the cell that keeps it running: it starts the workflow if needed, lets it work
until a limit is reached, then drains and stops it so later cells can show what happened.

Limits (any combination; the first one reached ends the serve; none means until the kernel
is interrupted):
- `seconds`: a duration;
- `executions`: a number of finished executions, counted from the start of the serve;
- `until`: a condition, checked after each execution: a Python callable taking the
  `ServeProgress`, or an expression in the pipelines' syntax over `executions`, `errors`,
  `elapsed` and `last` (the last execution: `workflow`, `action`, `status`, `error`,
  `result`), e.g. `last.status == 'error'` or `executions >= 10 and errors == 0`.

The notebook's own arguments are defaults: whoever runs it headless replaces them with
`flownb notebook run --serve 30 --until-executions 5 --until EXPR`, which reach the kernel
as the `FLOWNB_SERVE` environment variable (JSON).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from flownb.errors import FlownbError
from flownb.fields import parse_duration

if TYPE_CHECKING:
    from flownb.engine import Engine
    from flownb.execution import ExecutionContext

ENV = "FLOWNB_SERVE"
Until = str | Callable[["ServeProgress"], object]


@dataclass(frozen=True)
class ServeLimits:
    """When a serve ends. Serialisable (`to_env` / `from_env`) when `until` is text."""

    seconds: float | None = None
    executions: int | None = None
    until: Until | None = None

    @classmethod
    def of(
        cls,
        seconds: float | str | None = None,
        executions: int | None = None,
        until: Until | None = None,
    ) -> ServeLimits:
        """Limits from user input: `seconds` may be a duration text such as "30s" or "5m"."""
        if isinstance(seconds, str):
            try:
                seconds = parse_duration(seconds.strip())
            except ValueError as exc:
                raise FlownbError(f"serve: {exc}") from None
        return cls(seconds, executions, until)

    def __post_init__(self) -> None:
        if self.seconds is not None and not self.seconds > 0:
            raise FlownbError(f"serve: seconds must be more than 0, not {self.seconds!r}")
        if self.executions is not None and (
            isinstance(self.executions, bool)
            or not isinstance(self.executions, int)
            or self.executions < 1
        ):
            raise FlownbError(
                f"serve: executions must be a whole number >= 1, not {self.executions!r}"
            )
        if self.until is not None and not (isinstance(self.until, str) or callable(self.until)):
            raise FlownbError(f"serve: until is an expression or a callable, not {self.until!r}")

    @property
    def empty(self) -> bool:
        return self.seconds is None and self.executions is None and self.until is None

    def to_env(self) -> str:
        if self.until is not None and not isinstance(self.until, str):
            raise FlownbError("serve limits passed to a kernel need `until` as an expression")
        data = {k: v for k, v in asdict(self).items() if v is not None}
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_env(cls, text: str) -> ServeLimits:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FlownbError(f"{ENV} is not JSON ({exc.msg}): {text!r}") from None
        if not isinstance(data, dict) or set(data) - {"seconds", "executions", "until"}:
            raise FlownbError(
                f"{ENV} is a JSON object with seconds, executions and until, e.g. "
                f'{{"seconds": 30}}; got {text!r}'
            )
        return cls(
            seconds=data.get("seconds"), executions=data.get("executions"), until=data.get("until")
        )

    def describe(self) -> str:
        parts = []
        if self.seconds is not None:
            parts.append(f"{self.seconds:g} s")
        if self.executions is not None:
            parts.append(f"{self.executions} execution{'' if self.executions == 1 else 's'}")
        if self.until is not None:
            parts.append(f"until {self.until}" if isinstance(self.until, str) else "until(...)")
        return ", ".join(parts) or "until interrupted"


def effective_limits(limits: ServeLimits, environ: Mapping[str, str] | None = None) -> ServeLimits:
    """`limits`, replaced whole by `FLOWNB_SERVE` when the runner set it."""
    text = (os.environ if environ is None else environ).get(ENV, "").strip()
    return ServeLimits.from_env(text) if text else limits


@dataclass
class ServeProgress:
    """What a serve has seen so far; `until` conditions read it."""

    executions: int = 0
    errors: int = 0
    started: float = field(default_factory=time.monotonic)
    last: dict[str, Any] | None = None

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def scope(self) -> dict[str, Any]:
        return {
            "executions": self.executions,
            "errors": self.errors,
            "elapsed": self.elapsed,
            "last": self.last or {},
        }


@dataclass(frozen=True)
class ServeResult:
    """How a serve went: what ran and why it stopped."""

    workflow: str
    executions: int
    errors: int
    seconds: float
    reason: str

    def __str__(self) -> str:
        runs = f"{self.executions} execution{'' if self.executions == 1 else 's'}"
        return (
            f"{self.workflow}: served {self.seconds:.1f} s, {runs} ({self.errors} failed); "
            f"stopped: {self.reason}"
        )

    def __repr__(self) -> str:
        return f"<ServeResult {self}>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Watch:
    """An execution observer counting what finishes during a serve and checking `until`."""

    steps = False  # looks at no step: not called after each one (flownb.execution)
    starts = False  # not called when an execution starts

    def __init__(self, limits: ServeLimits) -> None:
        self.limits = limits
        self.progress = ServeProgress()
        self.done = asyncio.Event()
        self.reason = ""
        self.error: FlownbError | None = None
        self._until = _compile(limits.until)

    def execution_started(self, ctx: ExecutionContext) -> None:
        pass

    def step_finished(
        self, ctx: ExecutionContext, step: str, status: str, duration: float, error: Any
    ) -> None:
        pass

    def execution_finished(self, ctx: ExecutionContext) -> None:
        if self.done.is_set():
            return
        progress = self.progress
        progress.executions += 1
        if ctx.status != "ok":
            progress.errors += 1
        progress.last = {
            "workflow": ctx.workflow,
            "action": ctx.action,
            "status": ctx.status,
            "error": None if ctx.error is None else f"{type(ctx.error).__name__}: {ctx.error}",
            "result": ctx.result,
        }
        limits = self.limits
        if limits.executions is not None and progress.executions >= limits.executions:
            self.finish(f"{limits.executions} execution{'' if limits.executions == 1 else 's'}")
        elif self._until is not None:
            try:
                met = self._until(progress)
            except FlownbError as exc:
                self.error = FlownbError(f"serve: the until condition failed: {exc}")
                self.finish("the until condition failed")
                return
            if met:
                self.finish(f"until {limits.until}" if isinstance(limits.until, str) else "until")

    def finish(self, reason: str) -> None:
        if not self.done.is_set():
            self.reason = reason
            self.done.set()


def _compile(until: Until | None) -> Callable[[ServeProgress], bool] | None:
    if until is None:
        return None
    if not isinstance(until, str):
        check = until

        def call(progress: ServeProgress) -> bool:
            try:
                return bool(check(progress))
            except Exception as exc:
                raise FlownbError(f"{type(exc).__name__}: {exc}") from exc

        return call
    from flownb.template import Templates

    condition = Templates().condition(until)  # a syntax error is raised here, before serving
    return lambda progress: bool(condition(progress.scope()))


async def watch(engine: Engine, name: str, limits: ServeLimits) -> ServeResult:
    """Wait on `engine`'s loop until a limit is reached (or the engine stops by itself)."""
    state = _Watch(limits)
    engine.observers.add(state)
    stopped = asyncio.ensure_future(engine.wait_stopped())
    try:
        async with asyncio.timeout(limits.seconds):
            done = asyncio.ensure_future(state.done.wait())
            try:
                await asyncio.wait([done, stopped], return_when=asyncio.FIRST_COMPLETED)
            finally:
                done.cancel()
        if not state.done.is_set():
            state.finish("the workflow stopped")
    except TimeoutError:
        state.finish(f"{limits.seconds:g} s")
    except asyncio.CancelledError:
        state.finish("interrupted")
        raise
    finally:
        stopped.cancel()
        engine.observers.remove(state)
    if state.error is not None:
        raise state.error
    progress = state.progress
    return ServeResult(name, progress.executions, progress.errors, progress.elapsed, state.reason)
