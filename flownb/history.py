"""Execution history: what ran, when, how long each step took, what went in and out.

`HistoryRecorder` is an execution observer that turns each execution into an
`ExecutionRecord` and hands it to a `HistoryStore`. The store contract is two methods so
that durable stores (SQLite, PostgreSQL) can sit behind it: `add` must not block (a durable
store queues records and writes them in batches), `query` returns the newest first.
`MemoryHistory` is the in-memory ring buffer a notebook uses.

Inputs and outputs are kept as JSON text cut at `max_bytes`, so a record's size is bounded
whatever flows through the workflow.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import orjson

if TYPE_CHECKING:
    from flownb.execution import ExecutionContext

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _default(value: Any) -> Any:
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    for attr in ("model_dump", "to_dict"):
        method = getattr(value, attr, None)
        if callable(method):
            try:
                return method()
            except Exception:
                break
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", "replace")
    return repr(value)


def json_bytes(value: Any) -> bytes:
    """JSON of anything (unknown objects as their repr); never raises."""
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        return orjson.dumps(repr(value))


def json_text(value: Any, limit: int) -> str:
    """JSON text of `value`, cut to about `limit` bytes with a marker saying how big it was."""
    data = json_bytes(value)
    if len(data) <= limit:
        return data.decode("utf-8")
    return data[:limit].decode("utf-8", "ignore") + f"… (truncated, {len(data)} bytes)"


def json_value(value: Any, limit: int) -> Any:
    """A JSON-safe copy of `value`; a truncated JSON text when it is bigger than `limit`."""
    data = json_bytes(value)
    if len(data) <= limit:
        return orjson.loads(data)
    return data[:limit].decode("utf-8", "ignore") + f"… (truncated, {len(data)} bytes)"


def error_text(error: BaseException | None) -> str | None:
    return None if error is None else f"{type(error).__name__}: {error}"


@dataclass(slots=True)
class StepRecord:
    name: str
    status: str
    duration_ms: float
    error: str | None = None
    input: str | None = None
    output: str | None = None


@dataclass(slots=True)
class ExecutionRecord:
    """One execution. `started` is epoch seconds; inputs and outputs are capped JSON text."""

    id: str
    trigger: str
    workflow: str
    action: str
    status: str
    started: float
    duration_ms: float
    node: str | None = None
    request_id: str | None = None
    error: str | None = None
    input: str | None = None
    output: str | None = None
    steps: list[StepRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class HistoryStore(Protocol):
    """Where execution records go. `add` runs on the engine's hot path: it must not block."""

    def add(self, record: ExecutionRecord) -> None: ...

    def query(self, *, limit: int = 20, status: str | None = None) -> list[ExecutionRecord]:
        """The newest records first, optionally only those with `status` (ok, error)."""
        ...


class MemoryHistory:
    """The last `capacity` executions, in memory."""

    def __init__(self, capacity: int = 1000) -> None:
        self._records: deque[ExecutionRecord] = deque(maxlen=capacity)

    def add(self, record: ExecutionRecord) -> None:
        self._records.append(record)

    def query(self, *, limit: int = 20, status: str | None = None) -> list[ExecutionRecord]:
        out: list[ExecutionRecord] = []
        for record in reversed(self._records):
            if status is None or record.status == status:
                out.append(record)
                if len(out) >= limit:
                    break
        return out

    def __len__(self) -> int:
        return len(self._records)

    def clear(self) -> None:
        self._records.clear()


class _Pending:
    __slots__ = ("current", "input", "started", "steps")

    def __init__(self, started: float, data: str | None) -> None:
        self.started = started
        self.input = data
        self.current = data  # the data before the next step: its input
        self.steps: list[StepRecord] = []


def trigger_of(ctx: ExecutionContext) -> str:
    """What started an execution, read off its request: http, message, or direct."""
    name = type(ctx.request).__name__
    if name == "Request":
        return "http"
    if name == "Message":
        return "message"
    return "direct"


class HistoryRecorder:
    """An execution observer writing one `ExecutionRecord` per execution to `store`.

    With `capture=False` only names, statuses and timings are kept (no JSON encoding at all).
    """

    def __init__(self, store: HistoryStore, *, max_bytes: int = 2048, capture: bool = True):
        self.store = store
        self.max_bytes = max_bytes
        self.capture = capture
        self._pending: dict[ExecutionContext, _Pending] = {}

    def _json(self, value: Any) -> str | None:
        return json_text(value, self.max_bytes) if self.capture else None

    def execution_started(self, ctx: ExecutionContext) -> None:
        self._pending[ctx] = _Pending(time.time(), self._json(ctx.data))

    def step_finished(
        self, ctx: ExecutionContext, step: str, status: str, duration: float, error: Any
    ) -> None:
        pending = self._pending.get(ctx)
        if pending is None:
            return
        pending.steps.append(
            StepRecord(
                step,
                status,
                duration * 1000.0,
                None if error is None else str(error),
                pending.current,
            )
        )
        if self.capture:
            pending.current = self._json(ctx.data)

    def execution_finished(self, ctx: ExecutionContext) -> None:
        pending = self._pending.pop(ctx, None)
        duration = ctx.elapsed * 1000.0
        if pending is None:  # the recorder was added while this execution ran
            pending = _Pending(time.time() - duration / 1000.0, None)
        if self.capture:
            for step in pending.steps:
                if step.status == "ok" and step.name in ctx.steps:
                    step.output = self._json(ctx.steps[step.name])
        self.store.add(
            ExecutionRecord(
                id=ctx.id,
                trigger=trigger_of(ctx),
                workflow=ctx.workflow,
                action=ctx.action,
                status=ctx.status,
                started=pending.started,
                duration_ms=duration,
                node=ctx.node,
                request_id=ctx.request_id,
                error=error_text(ctx.error),
                input=pending.input,
                output=self._json(ctx.result) if ctx.status == "ok" else None,
                steps=pending.steps,
            )
        )


def history_table(records: list[ExecutionRecord]) -> Any:
    """A pandas DataFrame of records (one `step:NAME` column of milliseconds per step name);
    the list of dicts when pandas is not installed."""
    try:
        import pandas as pd  # type: ignore[import-untyped]
    except ImportError:
        return [r.to_dict() for r in records]
    table: list[dict[str, Any]] = []
    for record in records:
        row: dict[str, Any] = {
            "started": pd.Timestamp(record.started, unit="s", tz="UTC"),
            "workflow": record.workflow,
            "action": record.action,
            "trigger": record.trigger,
            "node": record.node,
            "status": record.status,
            "duration_ms": round(record.duration_ms, 3),
            "error": record.error,
            "request_id": record.request_id,
            "id": record.id,
            "steps": [
                {"name": s.name, "status": s.status, "ms": round(s.duration_ms, 3)}
                for s in record.steps
            ],
        }
        for s in record.steps:
            row[f"step:{s.name}"] = round(s.duration_ms, 3)
        table.append(row)
    columns = [
        "started",
        "workflow",
        "action",
        "trigger",
        "node",
        "status",
        "duration_ms",
        "error",
        "request_id",
        "id",
        "steps",
    ]
    step_columns = list(dict.fromkeys(k for row in table for k in row if k.startswith("step:")))
    return pd.DataFrame(table, columns=[*columns, *step_columns])
