"""One execution of a workflow: its id, input, working variables and outcome.

Every trigger, route and subscription ends in an `ExecutionContext`; observers (history,
metrics, the canvas' live view) hear about its start, each step, and its end. The context is
created per execution, so it is kept lean (slots, no copies of the input).
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from flownb.engine import Engine


log = logging.getLogger("flownb.execution")

# Our own generator (seeded from os.urandom), so user code calling random.seed() cannot make
# ids repeat; seeded again in a forked child, which would otherwise repeat the parent's ids.
_random = random.Random()
_bits = _random.getrandbits
os.register_at_fork(after_in_child=_random.seed)


def new_id() -> str:
    """A random 128-bit id as 32 hex digits (same shape as uuid4().hex, cheaper); from the
    OS, so ids users see (resources, instances, messages) cannot be guessed."""
    return os.urandom(16).hex()


def execution_id() -> str:
    """An id for an execution or a request, as 32 hex digits, that sorts by creation time:
    48 bits of milliseconds since the epoch, then 80 random bits (a UUIDv7's layout).

    Ids that grow over time are appended at the end of the history's primary-key index
    instead of landing at random places in it: about 3x cheaper to insert in SQLite. The
    random part needs no system call (these ids only name what ran; they guard nothing),
    which on a busy server would hand the GIL to another thread at every request.
    """
    return f"{time.time_ns() // 1_000_000:012x}{_bits(80):020x}"


@dataclass(slots=True)
class Response:
    """An HTTP-style reply: what a `respond` step sets and what a Python handler may return."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class ExecutionContext:
    """State of one execution; `scope` is what templates and expressions see."""

    __slots__ = (
        "action",
        "data",
        "engine",
        "error",
        "id",
        "input",
        "node",
        "request",
        "request_id",
        "response",
        "result",
        "scope",
        "started",
        "status",
        "steps",
        "trace",
        "traced",
        "vars",
        "workflow",
    )

    def __init__(
        self,
        engine: Engine | None,
        workflow: str,
        action: str,
        data: Any,
        *,
        request: Any = None,
        request_id: str | None = None,
        node: str | None = None,
    ) -> None:
        self.id = execution_id()
        self.node = node  # the handler (module or pipeline) running it, for live views
        self.engine = engine
        self.workflow = workflow
        self.action = action
        self.data = data
        self.input = data  # what the execution was started with (`data` may be replaced)
        self.request = request
        self.request_id = request_id
        self.vars: dict[str, Any] = {}
        self.steps: dict[str, Any] = {}
        self.response: Response | None = None
        self.result: Any = None
        self.status = "running"
        self.error: BaseException | None = None
        self.started = time.perf_counter()
        self.trace: list[StepTrace] | None = None  # set by the engine when an observer reads it
        self.traced: Any = data  # the data before the last step in `trace` (see StepTrace)
        self.scope: dict[str, Any] = {
            "data": data,
            "vars": self.vars,
            "steps": self.steps,
            "request": request,
            "execution": {"id": self.id, "workflow": workflow, "action": action},
        }

    def set_data(self, data: Any) -> None:
        """Replace the payload flowing through the pipeline (transform steps do this)."""
        self.data = data
        self.scope["data"] = data

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def __repr__(self) -> str:
        return f"<ExecutionContext {self.id} {self.workflow}:{self.action} status={self.status}>"


# One finished step as `ExecutionContext.trace` keeps it: (label, status, nanoseconds, error,
# the data before the step); without the data (four items) when that is the same object as
# the previous step's (for the first step: the execution's input), so a history encodes it
# once. Durations are integers (`perf_counter_ns`): a history encodes an integer in a third
# of the time of a float, and the trace is encoded once per execution.
StepTrace = tuple[str, str, int, Any] | tuple[str, str, int, Any, Any]


def traced_steps(
    trace: Iterable[Sequence[Any]], given: Any = None
) -> Iterator[tuple[str, str, int, Any, Any]]:
    """The rows of a trace (or of its JSON) each with its data before, filled in from the row
    above where it was left out (above the first row: `given`, the execution's input)."""
    before: Any = given
    for row in trace:
        if len(row) > 4:
            before = row[4]
        yield row[0], row[1], row[2], row[3], before


def trace_step(ctx: ExecutionContext, row: tuple[str, str, int, Any], before: Any) -> None:
    """Append a finished step to `ctx.trace`, its data left out when unchanged."""
    trace = ctx.trace
    if trace is not None:
        if before is ctx.traced:
            trace.append(row)
        else:
            ctx.traced = before
            trace.append((*row, before))


class ExecutionObserver(Protocol):
    """Hooks for history, metrics and live views. Keep them cheap: they run on the hot path.

    An observer with a true `traces` attribute is not called per step: it reads the steps
    from `ctx.trace` in `execution_finished` instead (one list append per step for all such
    observers, instead of a call per step for each). `step_finished` is then never called.
    One with a false `steps` attribute looks at no step at all: it is not called per step
    and keeps no trace going. One with a false `starts` attribute is not called when an
    execution starts (a call per execution saved for observers that only look at the end).
    """

    def execution_started(self, ctx: ExecutionContext) -> None: ...

    def step_finished(
        self, ctx: ExecutionContext, step: str, status: str, duration: float, error: Any
    ) -> None: ...

    def execution_finished(self, ctx: ExecutionContext) -> None: ...


class Observers:
    """A fan-out to the registered observers; a no-op when there are none.

    `active` says whether there is any observer, `tracing` whether executions keep a `trace`
    of their steps (some observer reads it), `starting` whether some observer wants
    `execution_started`, `per_step` whether some observer wants a call after each step
    (`notify`). Plain attributes: the engine and every pipeline run ask.
    """

    __slots__ = ("_items", "_per_step", "_starters", "active", "per_step", "starting", "tracing")

    def __init__(self, items: Sequence[ExecutionObserver] = ()) -> None:
        self._items: tuple[ExecutionObserver, ...] = ()
        self._per_step: tuple[ExecutionObserver, ...] = ()
        self._starters: tuple[ExecutionObserver, ...] = ()
        self.active = False
        self.per_step = False
        self.tracing = False
        self.starting = False
        self._set(tuple(items))

    def _set(self, items: tuple[ExecutionObserver, ...]) -> None:
        self._items = items
        self.active = bool(items)
        self._per_step = tuple(
            o for o in items if getattr(o, "steps", True) and not getattr(o, "traces", False)
        )
        self.per_step = bool(self._per_step)
        self.tracing = any(getattr(o, "traces", False) for o in items)
        self._starters = tuple(o for o in items if getattr(o, "starts", True))
        self.starting = bool(self._starters)

    def __bool__(self) -> bool:
        return self.active

    def add(self, observer: ExecutionObserver) -> None:
        self._set((*self._items, observer))

    def remove(self, observer: ExecutionObserver) -> None:
        self._set(tuple(o for o in self._items if o is not observer))

    def started(self, ctx: ExecutionContext) -> None:
        for o in self._starters:
            try:
                o.execution_started(ctx)
            except Exception:
                log.exception("observer %r failed", o)

    def step(
        self,
        ctx: ExecutionContext,
        step: str,
        status: str,
        duration: float,
        error: Any,
        *,
        before: Any = None,
    ) -> None:
        """A step finished after `duration` seconds; `before` is the data it started from
        (kept in `ctx.trace`)."""
        trace_step(ctx, (step, status, round(duration * 1e9), error), before)
        self.notify(ctx, step, status, duration, error)

    def notify(
        self, ctx: ExecutionContext, step: str, status: str, duration: float, error: Any
    ) -> None:
        """Call the observers that want each step (not the trace readers)."""
        for o in self._per_step:
            try:
                o.step_finished(ctx, step, status, duration, error)
            except Exception:
                log.exception("observer %r failed", o)

    def finished(self, ctx: ExecutionContext) -> None:
        for o in self._items:
            try:
                o.execution_finished(ctx)
            except Exception:
                log.exception("observer %r failed", o)
