"""One execution of a workflow: its id, input, working variables and outcome.

Every trigger, route and subscription ends in an `ExecutionContext`; observers (history,
metrics, the canvas' live view) hear about its start, each step, and its end. The context is
created per execution, so it is kept lean (slots, no copies of the input).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from flownb.engine import Engine


log = logging.getLogger("flownb.execution")


def new_id() -> str:
    """A random 128-bit id as 32 hex digits (same shape as uuid4().hex, cheaper)."""
    return os.urandom(16).hex()


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
        "node",
        "request",
        "request_id",
        "response",
        "result",
        "scope",
        "started",
        "status",
        "steps",
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
        self.id = new_id()
        self.node = node  # the handler (module or pipeline) running it, for live views
        self.engine = engine
        self.workflow = workflow
        self.action = action
        self.data = data
        self.request = request
        self.request_id = request_id
        self.vars: dict[str, Any] = {}
        self.steps: dict[str, Any] = {}
        self.response: Response | None = None
        self.result: Any = None
        self.status = "running"
        self.error: BaseException | None = None
        self.started = time.perf_counter()
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


class ExecutionObserver(Protocol):
    """Hooks for history, metrics and live views. Keep them cheap: they run on the hot path."""

    def execution_started(self, ctx: ExecutionContext) -> None: ...

    def step_finished(
        self, ctx: ExecutionContext, step: str, status: str, duration: float, error: Any
    ) -> None: ...

    def execution_finished(self, ctx: ExecutionContext) -> None: ...


class Observers:
    """A fan-out to the registered observers; a no-op when there are none."""

    __slots__ = ("_items",)

    def __init__(self, items: Sequence[ExecutionObserver] = ()) -> None:
        self._items: tuple[ExecutionObserver, ...] = tuple(items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def add(self, observer: ExecutionObserver) -> None:
        self._items = (*self._items, observer)

    def remove(self, observer: ExecutionObserver) -> None:
        self._items = tuple(o for o in self._items if o is not observer)

    def started(self, ctx: ExecutionContext) -> None:
        for o in self._items:
            try:
                o.execution_started(ctx)
            except Exception:
                log.exception("observer %r failed", o)

    def step(
        self, ctx: ExecutionContext, step: str, status: str, duration: float, error: Any
    ) -> None:
        for o in self._items:
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
