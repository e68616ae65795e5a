"""Execution history: what ran, when, how long each step took, what went in and out.

`HistoryRecorder` is an execution observer that turns each execution into an
`ExecutionRecord` and hands it to a `HistoryStore`. Writing is `add` (it runs on the engine's
hot path, so it must not block: a durable store queues records and writes them in batches);
reading is async (`query`, `get`), since a durable store reads a database. The same store
keeps the audit log (`AuditEvent`: config changes and reloads, who, when, what changed).

`MemoryHistory` is the in-memory ring buffer a notebook uses by default;
`flownb.historydb.SqlHistory` is the durable store (SQLite file or PostgreSQL) that
`flownb run`, `flownb history` and notebooks share. `read_history` reads any store from
synchronous code, a notebook cell included.

Inputs and outputs are kept as JSON text cut at `max_bytes`, with the values of secret-looking
keys (`password`, `token`, ...) replaced, so a record's size is bounded and credentials that
flow through a workflow are not written to disk.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, TypeVar, runtime_checkable

import orjson

from flownb.execution import Response, StepTrace

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from flownb.execution import ExecutionContext

T = TypeVar("T")

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY

# Keys whose values are never recorded (matched anywhere in the key, case-insensitively).
DEFAULT_REDACT: tuple[str, ...] = (
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "authorization",
    "cookie",
    "credential",
    "private_key",
)
REDACTED = "[redacted]"


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
    if type(value) is Response:  # a respond step's result; a dict is 3x faster to encode
        value = {"status": value.status, "body": value.body, "headers": value.headers}
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        return orjson.dumps(repr(value))


def _cut(data: bytes, limit: int) -> str:
    if len(data) <= limit:
        return data.decode("utf-8")
    return data[:limit].decode("utf-8", "ignore") + f"… (truncated, {len(data)} bytes)"


def json_text(value: Any, limit: int) -> str:
    """JSON text of `value`, cut to about `limit` bytes with a marker saying how big it was."""
    return _cut(json_bytes(value), limit)


def json_value(value: Any, limit: int) -> Any:
    """A JSON-safe copy of `value`; a truncated JSON text when it is bigger than `limit`."""
    data = json_bytes(value)
    if len(data) <= limit:
        return orjson.loads(data)
    return data[:limit].decode("utf-8", "ignore") + f"… (truncated, {len(data)} bytes)"


def error_text(error: BaseException | None) -> str | None:
    return None if error is None else f"{type(error).__name__}: {error}"


class Redactor:
    """Replaces the values of secret-looking keys in JSON data before it is recorded.

    The cheap check is a search for any of the words in the lowercased text (a value may
    contain one too: then the walk finds nothing to replace); only data that passes it is
    walked and encoded again.
    """

    def __init__(self, words: Iterable[str] = DEFAULT_REDACT) -> None:
        self.words = tuple(w.lower() for w in words if w)
        alternatives = "|".join(re.escape(w) for w in self.words)
        self._probe = re.compile(alternatives.encode()) if self.words else None
        self._probe_text = re.compile(alternatives) if self.words else None

    def needed(self, texts: Iterable[str]) -> bool:
        """Might any of these JSON texts hold a secret key? (one search for all of them)"""
        probe = self._probe_text
        return probe is not None and probe.search("\x00".join(texts).lower()) is not None

    def secret(self, key: object) -> bool:
        lower = str(key).lower()
        return any(word in lower for word in self.words)

    def clean(self, value: Any) -> Any:
        """A copy of JSON data with the values of secret keys replaced."""
        if isinstance(value, dict):
            return {k: REDACTED if self.secret(k) else self.clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.clean(v) for v in value]
        return value

    def encode(self, value: Any, limit: int) -> str:
        """Capped JSON text of `value`, secrets replaced."""
        data = json_bytes(value)
        probe = self._probe
        if probe is not None and probe.search(data.lower()) is not None:
            data = json_bytes(self.clean(orjson.loads(data)))
        return _cut(data, limit)


class StepRecord(NamedTuple):
    """One step of an execution; `input` and `output` are capped JSON text (or None)."""

    name: str
    status: str
    duration_ms: float
    error: str | None = None
    input: str | None = None
    output: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


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
        return {
            "id": self.id,
            "trigger": self.trigger,
            "workflow": self.workflow,
            "action": self.action,
            "status": self.status,
            "started": self.started,
            "duration_ms": self.duration_ms,
            "node": self.node,
            "request_id": self.request_id,
            "error": self.error,
            "input": self.input,
            "output": self.output,
            "steps": [s._asdict() for s in self.steps],
        }


@dataclass(slots=True)
class AuditEvent:
    """A change made to a running service: who (`actor`), when, what (`action`, `target`),
    and a one-line `summary` of the difference; `details` holds the structured diff."""

    actor: str
    action: str
    target: str = ""
    summary: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            from flownb.execution import new_id

            self.id = new_id()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "summary": self.summary,
            "details": self.details,
        }


@runtime_checkable
class HistoryStore(Protocol):
    """Where execution records and audit events go.

    `add` and `add_audit` run on the engine's hot path: they must not block. Reads are async
    and return the newest first; `before` (epoch seconds) pages back through older records.
    """

    def add(self, record: ExecutionRecord) -> None: ...

    def add_audit(self, event: AuditEvent) -> None: ...

    async def query(
        self,
        *,
        limit: int = 20,
        status: str | None = None,
        workflow: str | None = None,
        action: str | None = None,
        request_id: str | None = None,
        before: float | None = None,
    ) -> list[ExecutionRecord]: ...

    async def get(self, execution_id: str) -> ExecutionRecord | None: ...

    async def audit_events(
        self, *, limit: int = 50, before: float | None = None
    ) -> list[AuditEvent]: ...


def matches(
    record: ExecutionRecord,
    *,
    status: str | None,
    workflow: str | None,
    action: str | None,
    request_id: str | None,
    before: float | None,
) -> bool:
    return (
        (status is None or record.status == status)
        and (workflow is None or record.workflow == workflow)
        and (action is None or record.action == action)
        and (request_id is None or record.request_id == request_id)
        and (before is None or record.started < before)
    )


class MemoryHistory:
    """The last `capacity` executions (and audit events), in memory."""

    def __init__(self, capacity: int = 1000) -> None:
        self._records: deque[ExecutionRecord] = deque(maxlen=capacity)
        self._audit: deque[AuditEvent] = deque(maxlen=capacity)

    def add(self, record: ExecutionRecord) -> None:
        self._records.append(record)

    def add_audit(self, event: AuditEvent) -> None:
        self._audit.append(event)

    def select(
        self,
        *,
        limit: int = 20,
        status: str | None = None,
        workflow: str | None = None,
        action: str | None = None,
        request_id: str | None = None,
        before: float | None = None,
    ) -> list[ExecutionRecord]:
        """`query` without awaiting (the records are in memory)."""
        out: list[ExecutionRecord] = []
        for record in reversed(list(self._records)):  # list(): another thread may append
            if matches(
                record,
                status=status,
                workflow=workflow,
                action=action,
                request_id=request_id,
                before=before,
            ):
                out.append(record)
                if len(out) >= limit:
                    break
        return out

    async def query(
        self,
        *,
        limit: int = 20,
        status: str | None = None,
        workflow: str | None = None,
        action: str | None = None,
        request_id: str | None = None,
        before: float | None = None,
    ) -> list[ExecutionRecord]:
        return self.select(
            limit=limit,
            status=status,
            workflow=workflow,
            action=action,
            request_id=request_id,
            before=before,
        )

    async def get(self, execution_id: str) -> ExecutionRecord | None:
        for record in reversed(list(self._records)):
            if record.id == execution_id:
                return record
        return None

    async def audit_events(
        self, *, limit: int = 50, before: float | None = None
    ) -> list[AuditEvent]:
        found = [e for e in reversed(list(self._audit)) if before is None or e.at < before]
        return found[:limit]

    def __len__(self) -> int:
        return len(self._records)

    def clear(self) -> None:
        self._records.clear()
        self._audit.clear()


def run_blocking(coro: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
    """Run `coro` to completion from synchronous code, also inside a running event loop
    (a notebook cell): then it runs on a fresh loop in a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1, thread_name_prefix="flownb-history") as pool:
        return pool.submit(asyncio.run, coro).result(timeout)


def read_history(store: HistoryStore, **filters: Any) -> list[ExecutionRecord]:
    """`store.query(**filters)` from synchronous code (scripts, notebook cells)."""
    if isinstance(store, MemoryHistory):
        return store.select(**filters)
    return run_blocking(store.query(**filters))


def trigger_of(ctx: ExecutionContext) -> str:
    """What started an execution, read off its request: http, message, or direct."""
    name = type(ctx.request).__name__
    if name == "Request":
        return "http"
    if name == "Message":
        return "message"
    return "direct"


_new_tuple = tuple.__new__  # builds a StepRecord without the Python-level __new__ (hot path)
_MISSING = object()
Capture = Literal["steps", "io", "none"]


class HistoryRecorder:
    """An execution observer writing one `ExecutionRecord` per execution to `store`.

    It reads the steps from the execution's trace when it finishes (`traces = True`: no call
    per step) and encodes then, each distinct value once: steps replace the data rather than
    change it in place, so consecutive steps that leave the data alone share one text, and a
    value that is both a step's output and the data (or the result) is encoded once. A Python
    function that changes its input in place therefore shows in the steps' inputs as the
    changed value.

    `capture` says what is kept besides names, statuses and timings: "steps" (the default:
    the execution's and every step's input and output), "io" (only the execution's input and
    output: about a third of the cost on a short pipeline) or "none" (no JSON at all); True
    and False mean "steps" and "none". `redact` lists the key words whose values are replaced
    (default `DEFAULT_REDACT`; empty to keep everything).
    """

    traces = True

    def __init__(
        self,
        store: HistoryStore,
        *,
        max_bytes: int = 2048,
        capture: Capture | bool = "steps",
        redact: Iterable[str] = DEFAULT_REDACT,
    ) -> None:
        self.store = store
        self.max_bytes = max_bytes
        if capture is True or capture is False:
            capture = "steps" if capture else "none"
        if capture not in ("steps", "io", "none"):
            raise ValueError(f"capture is one of steps, io, none; not {capture!r}")
        self.capture: Capture = capture
        self.redactor = Redactor(redact)
        self._inputs: dict[ExecutionContext, Any] = {}

    def _json(self, value: Any) -> str:
        return self.redactor.encode(value, self.max_bytes)

    def execution_started(self, ctx: ExecutionContext) -> None:
        self._inputs[ctx] = ctx.data

    def step_finished(
        self, ctx: ExecutionContext, step: str, status: str, duration: float, error: Any
    ) -> None:
        """Not called (the steps come from `ctx.trace`)."""

    @staticmethod
    def _captured(
        ctx: ExecutionContext,
        given: Any,
        trace: Iterable[StepTrace],
        encode: Callable[[Any], str],
    ) -> tuple[list[StepRecord], str | None, str | None, Iterable[str]]:
        """The steps, input and result as capped JSON text; each distinct object encoded once
        (by identity: steps replace the data rather than change it in place)."""
        memo: dict[int, Any] = {id(None): None}  # id -> text (None for None)
        seen = memo.get
        missing = _MISSING
        outputs = ctx.steps
        steps: list[StepRecord] = []
        last: Any = missing  # consecutive steps usually share their input: no lookup then
        last_text: Any = None
        for name, status, seconds, error, before in trace:
            if before is not last:
                last = before
                last_text = seen(id(before), missing)
                if last_text is missing:
                    last_text = memo[id(before)] = encode(before)
            output: Any = None
            if status == "ok":
                value = outputs.get(name)
                output = seen(id(value), missing)
                if output is missing:
                    output = memo[id(value)] = encode(value)
            steps.append(
                _new_tuple(
                    StepRecord,
                    (
                        name,
                        status,
                        seconds * 1000.0,
                        None if error is None else str(error),
                        last_text,
                        output,
                    ),
                )
            )
        data = seen(id(given), missing)
        if data is missing:
            data = memo[id(given)] = encode(given)
        result: Any = None
        if ctx.status == "ok":
            value = ctx.result
            result = seen(id(value), missing)
            if result is missing:
                result = memo[id(value)] = encode(value)
        return steps, data, result, [t for t in memo.values() if t is not None]

    def execution_finished(self, ctx: ExecutionContext) -> None:
        given = self._inputs.pop(ctx, None)
        elapsed = ctx.elapsed
        trace = ctx.trace or ()
        ok = ctx.status == "ok"
        capture = self.capture
        if capture == "steps":
            limit = self.max_bytes
            steps, data, result, texts = self._captured(
                ctx, given, trace, lambda value: _cut(json_bytes(value), limit)
            )
            if self.redactor.needed(texts):  # rare: encode again, secrets replaced
                steps, data, result, _ = self._captured(ctx, given, trace, self._json)
        else:
            steps = [
                _new_tuple(
                    StepRecord,
                    (
                        name,
                        status,
                        seconds * 1000.0,
                        None if error is None else str(error),
                        None,
                        None,
                    ),
                )
                for name, status, seconds, error, _ in trace
            ]
            data = result = None
            if capture == "io":
                data = self._json(given)
                result = self._json(ctx.result) if ok else None
        self.store.add(
            ExecutionRecord(
                ctx.id,
                trigger_of(ctx),
                ctx.workflow,
                ctx.action,
                ctx.status,
                time.time() - elapsed,
                elapsed * 1000.0,
                ctx.node,
                ctx.request_id,
                None if ok else error_text(ctx.error),
                data,
                result,
                steps,
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
