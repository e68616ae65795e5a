"""Live run view: per-node status and counters, pushed to canvases at most 10 times a second.

`LiveStats` is an execution observer keyed by the node that ran each execution (its
`ctx.node`, a handler module or pipeline, mapped to `module:NAME` / `pipeline:NAME`). It only
counts on the hot path; changed nodes are collected and pushed to the subscribed sinks (the
canvases) in one batch per interval, so a busy workflow costs one comm message per 100 ms,
not one per execution. Last inputs, outputs and errors are kept as references and encoded
(JSON-safe, cut at 10 KB) only when someone inspects the node.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from flownb.history import error_text, json_value

if TYPE_CHECKING:
    from flownb.execution import ExecutionContext

log = logging.getLogger("flownb.live")

Sink = Callable[[dict[str, dict[str, Any]]], None]
INSPECT_LIMIT = 10_000


class NodeStats:
    """Counters of one node; `public()` is what the canvas' `stats` trait holds for it."""

    __slots__ = (
        "at",
        "errors",
        "executions",
        "inflight",
        "last_error",
        "last_input",
        "last_ms",
        "last_output",
        "outcome",
        "total_ms",
    )

    def __init__(self) -> None:
        self.executions = 0
        self.errors = 0
        self.inflight = 0
        self.total_ms = 0.0
        self.last_ms = 0.0
        self.outcome = "idle"
        self.at: float | None = None
        self.last_input: Any = None
        self.last_output: Any = None
        self.last_error: BaseException | None = None

    @property
    def status(self) -> str:
        return "running" if self.inflight > 0 else self.outcome

    def public(self) -> dict[str, Any]:
        avg = self.total_ms / self.executions if self.executions else 0.0
        return {
            "status": self.status,
            "executions": self.executions,
            "errors": self.errors,
            "lastMs": round(self.last_ms, 3),
            "avgMs": round(avg, 3),
        }


class LiveStats:
    """Execution observer for live views; see the module docstring."""

    steps = False  # looks at no step: not called after each one (flownb.execution)

    def __init__(self, *, interval: float = 0.1, limit: int = INSPECT_LIMIT) -> None:
        self.interval = interval
        self.limit = limit
        self._ids: Mapping[str, str] = {}
        self._nodes: dict[str, NodeStats] = {}
        self._dirty: set[str] = set()
        self._sinks: list[Sink] = []
        self._handle: asyncio.TimerHandle | None = None
        self._last_flush = float("-inf")

    def bind(self, ids: Mapping[str, str]) -> None:
        """Which node each handler name stands for (see `flownb.graph.handler_ids`)."""
        self._ids = dict(ids)

    def subscribe(self, sink: Sink) -> None:
        self._sinks.append(sink)

    def unsubscribe(self, sink: Sink) -> None:
        self._sinks = [s for s in self._sinks if s != sink]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {nid: stats.public() for nid, stats in self._nodes.items()}

    def node(self, node_id: str) -> NodeStats | None:
        return self._nodes.get(node_id)

    def inspect(self, node_id: str) -> dict[str, Any]:
        """The last execution of a node: `{id, input, output, error, at}`, JSON-safe, cut."""
        stats = self._nodes.get(node_id)
        if stats is None:
            return {"id": node_id, "input": None, "output": None, "error": None, "at": None}
        at = None
        if stats.at is not None:
            at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stats.at))
            at += f".{int(stats.at % 1 * 1000):03d}Z"
        return {
            "id": node_id,
            "input": json_value(stats.last_input, self.limit),
            "output": json_value(stats.last_output, self.limit),
            "error": error_text(stats.last_error),
            "at": at,
        }

    def reset(self) -> None:
        self._nodes.clear()
        self._dirty.clear()

    # --- observer hooks (hot path) --------------------------------------------------------
    def execution_started(self, ctx: ExecutionContext) -> None:
        nid = self._ids.get(ctx.node) if ctx.node is not None else None
        if nid is None:
            return
        stats = self._nodes.get(nid)
        if stats is None:
            stats = self._nodes[nid] = NodeStats()
        stats.inflight += 1
        self._touch(nid)

    def step_finished(
        self, ctx: ExecutionContext, step: str, status: str, duration: float, error: Any
    ) -> None:
        """Steps are not nodes of the canvas; nothing to count."""

    def execution_finished(self, ctx: ExecutionContext) -> None:
        nid = self._ids.get(ctx.node) if ctx.node is not None else None
        if nid is None:
            return
        stats = self._nodes.get(nid)
        if stats is None:
            return
        ms = ctx.elapsed * 1000.0
        stats.inflight = max(0, stats.inflight - 1)
        stats.executions += 1
        stats.total_ms += ms
        stats.last_ms = ms
        stats.at = time.time()
        stats.last_input = ctx.input
        if ctx.status == "error":
            stats.errors += 1
            stats.outcome = "error"
            stats.last_error = ctx.error
            stats.last_output = None
        else:
            stats.outcome = "ok"
            stats.last_error = None
            stats.last_output = ctx.result
        self._touch(nid)

    # --- throttled push ------------------------------------------------------------------
    def _touch(self, nid: str) -> None:
        self._dirty.add(nid)
        if self._handle is None and self._sinks:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            delay = max(0.0, self._last_flush + self.interval - loop.time())
            self._handle = loop.call_later(delay, self._flush_later, loop)

    def _flush_later(self, loop: asyncio.AbstractEventLoop) -> None:
        self._handle = None
        self._last_flush = loop.time()
        self.flush()

    def flush(self) -> None:
        """Push the nodes changed since the last push to every sink."""
        if not self._dirty:
            return
        delta = {nid: self._nodes[nid].public() for nid in self._dirty if nid in self._nodes}
        self._dirty.clear()
        for sink in list(self._sinks):
            try:
                sink(delta)
            except Exception:
                log.exception("live stats sink %r failed", sink)

    def cancel(self) -> None:
        """Drop a pending push (the engine's loop is going away); the next change reschedules."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
