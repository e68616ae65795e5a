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
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import accumulate
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, TypeVar, runtime_checkable

import orjson
from ahocorasick_rs import MATCHKIND_LEFTMOST_FIRST, BytesAhoCorasick

from flownb.errors import StepError
from flownb.execution import Response, StepTrace, traced_steps

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
    if isinstance(value, StepError):  # a step's error: its message names the step
        return str(value)
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
    walked and encoded again. The search is an Aho-Corasick automaton that lets go of the
    GIL, so `screen` checks a whole batch of records in one call while the engine runs on.
    """

    def __init__(self, words: Iterable[str] = DEFAULT_REDACT) -> None:
        self.words = tuple(w.lower() for w in words if w)
        # Leftmost-first matching, not the overlapping default: only it lets the automaton
        # skip ahead with its SIMD prefilter (25x faster on history records), and it still
        # finds a match in every record that holds a word, as no word holds a newline.
        self._matcher = (
            BytesAhoCorasick([w.encode() for w in self.words], matchkind=MATCHKIND_LEFTMOST_FIRST)
            if self.words
            else None
        )

    def might_hold(self, data: bytes) -> bool:
        """Might this JSON hold a secret key?"""
        matcher = self._matcher
        return matcher is not None and bool(matcher.find_matches_as_indexes(data.lower()))

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
        if self.might_hold(data):
            data = json_bytes(self.clean(orjson.loads(data)))
        return _cut(data, limit)

    def screen(self, details: list[bytes]) -> list[bytes]:
        """JSON documents with the values of secret keys replaced: one search over all of
        them (off the GIL), and only those it flags are decoded, walked and encoded again.
        The same list comes back when nothing was flagged (the common case: no copy)."""
        matcher = self._matcher
        if matcher is None or not details:
            return details
        hits = matcher.find_matches_as_indexes(b"\n".join(details).lower())  # JSON: no raw \n
        if not hits:
            return details
        ends = list(accumulate(len(d) + 1 for d in details))
        out = list(details)
        for i in {bisect_right(ends, start) for _, start, _ in hits}:
            out[i] = orjson.dumps(self.clean(orjson.loads(details[i])))
        return out


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
    """One execution as readers see it. `started` is epoch seconds; inputs and outputs are
    JSON text."""

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


# The two layouts of `ExecutionRow.detail`, a JSON array `[layout, input, output, steps,
# outputs]`. VALUES: the recorder's fast path, one encoding of the execution as it ran:
# `input` and `output` are JSON values, `steps` is the trace (`[label, status, nanoseconds,
# error, data before]` rows) and `outputs` maps step labels to their results. TEXTS: every
# value is already JSON text (cut, secrets replaced), `steps` rows are `[name, status,
# nanoseconds, error, input, output]` and `outputs` is empty. A VALUES row of four has the
# data before of the row above it, or the execution's input if it is the first (see
# `flownb.execution.StepTrace`); with `outputs` null (only the execution's data is kept), no
# row has data. Layouts 0 and 1, written by earlier versions, are VALUES and TEXTS with step
# durations in seconds.
VALUES = 2
TEXTS = 3
_IN_SECONDS = {0: VALUES, 1: TEXTS}


def _value_text(value: Any) -> str | None:
    return None if value is None else json_bytes(value).decode()


def _same(text: str | None) -> str | None:
    return text


class ExecutionRow(NamedTuple):
    """One execution as stores keep it: the columns the history is searched by, and `detail`
    (inputs, outputs and steps as one JSON text, decoded only when the record is read).

    The recorder builds it on the engine's hot path, so it is a plain tuple, in the history
    table's column order: a database store writes it as it is. The recorder does not search
    `detail` for secrets: the store does that (`Redactor.screen`, a whole batch at a time)
    before it keeps or shows it.
    """

    id: str
    trigger: str
    workflow: str
    action: str
    status: str
    started: float
    duration_ms: float
    node: str | None
    request_id: str | None
    error: str | None
    detail: bytes

    @classmethod
    def of(cls, record: ExecutionRecord) -> ExecutionRow:
        """The row of a record built by hand (its texts are kept as they are)."""
        steps = [
            (s.name, s.status, round(s.duration_ms * 1e6), s.error, s.input, s.output)
            for s in record.steps
        ]
        detail = orjson.dumps((TEXTS, record.input, record.output, steps, None))
        return cls(
            record.id,
            record.trigger,
            record.workflow,
            record.action,
            record.status,
            record.started,
            record.duration_ms,
            record.node,
            record.request_id,
            record.error,
            detail,
        )

    def record(self) -> ExecutionRecord:
        """The record readers see: `detail` (screened) decoded into texts and steps."""
        layout, given, result, rows, outputs = orjson.loads(self.detail)
        first = None if outputs is None else given  # rows without data: no data before
        outputs = outputs or {}
        ms = 1e-6  # milliseconds per unit of a step's duration
        if layout in _IN_SECONDS:
            layout, ms = _IN_SECONDS[layout], 1000.0
        text: Callable[[Any], str | None]
        if layout == TEXTS:
            text = _same
            steps = [
                StepRecord(name, status, took * ms, error, _same(before), _same(after))
                for name, status, took, error, before, after in rows
            ]
        else:
            text = _value_text
            steps = [
                StepRecord(
                    name,
                    status,
                    took * ms,
                    error,
                    text(before),
                    text(outputs.get(name)) if status == "ok" else None,
                )
                for name, status, took, error, before in traced_steps(rows, first)
            ]
        return ExecutionRecord(
            self.id,
            self.trigger,
            self.workflow,
            self.action,
            self.status,
            self.started,
            self.duration_ms,
            self.node,
            self.request_id,
            self.error,
            text(given),
            text(result),
            steps,
        )


# An `ExecutionRow`'s values as a plain tuple: what the recorder hands to a store. The garbage
# collector stops tracking a plain tuple of strings, numbers and bytes at its first collection
# but tracks a named tuple until it is freed, so rows waiting for a writer would be promoted
# to the oldest generation and set off full collections (2 per 100,000 executions of
# bench/history.py's pipeline, about 4 % of its time). Readers name them: `ExecutionRow._make`.
Row = tuple[str, str, str, str, str, float, float, str | None, str | None, str | None, bytes]


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

    redactor: Redactor  # replaces secrets before a row is kept; the recorder's too

    def add(self, row: Row) -> None: ...

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
    record: ExecutionRow,
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
    """The last `capacity` executions (and audit events), in memory; rows are decoded into
    records when read."""

    def __init__(self, capacity: int = 1000, *, redact: Iterable[str] = DEFAULT_REDACT) -> None:
        self.redactor = Redactor(redact)
        self._records: deque[Row] = deque(maxlen=capacity)
        self._audit: deque[AuditEvent] = deque(maxlen=capacity)

    def _record(self, row: ExecutionRow) -> ExecutionRecord:
        return row._replace(detail=self.redactor.screen([row.detail])[0]).record()

    def _rows(self) -> list[ExecutionRow]:
        """The rows, newest first (a copy: another thread may append)."""
        return [ExecutionRow._make(row) for row in reversed(list(self._records))]

    def add(self, row: Row) -> None:
        self._records.append(row)

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
        for record in self._rows():
            if matches(
                record,
                status=status,
                workflow=workflow,
                action=action,
                request_id=request_id,
                before=before,
            ):
                out.append(self._record(record))
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
        for row in self._rows():
            if row.id == execution_id:
                return self._record(row)
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


# What started an execution, by the type of its request (no request: "direct").
_TRIGGERS = {"Request": "http", "Message": "message"}


Capture = Literal["steps", "io", "none"]


class HistoryRecorder:
    """An execution observer writing one `ExecutionRow` per execution to `store`.

    It reads the steps from the execution's trace when it finishes (`traces = True`: no call
    per step) and encodes the whole execution in one call, as it is (the VALUES layout of
    `ExecutionRow.detail`, as bytes: the store searches them for secrets, a batch at a time,
    off the engine's thread). Only when that text is longer than `max_record_bytes` (or holds
    a value JSON cannot take) does it take the careful way (TEXTS): each distinct value
    encoded alone, cut at `max_bytes`, with the values of secret-looking keys replaced by the
    store's `redactor`. A Python function that changes its input in place therefore shows in
    the steps' inputs as the changed value.

    `capture` says what is kept besides names, statuses and timings: "steps" (the default:
    the execution's and every step's input and output), "io" (only the execution's input and
    output) or "none" (no data at all); True and False mean "steps" and "none".
    """

    traces = True
    starts = False

    def __init__(
        self,
        store: HistoryStore,
        *,
        max_bytes: int = 2048,
        max_record_bytes: int = 16_384,
        capture: Capture | bool = "steps",
    ) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.max_record_bytes = max_record_bytes
        if capture is True or capture is False:
            capture = "steps" if capture else "none"
        if capture not in ("steps", "io", "none"):
            raise ValueError(f"capture is one of steps, io, none; not {capture!r}")
        self.capture: Capture = capture
        self._add = store.add

    def execution_started(self, ctx: ExecutionContext) -> None:
        """Not called (`starts = False`): the input is `ctx.input`."""

    def step_finished(
        self, ctx: ExecutionContext, step: str, status: str, duration: float, error: Any
    ) -> None:
        """Not called (the steps come from `ctx.trace`)."""

    def execution_finished(self, ctx: ExecutionContext) -> None:
        elapsed = time.perf_counter() - ctx.started
        ok = ctx.status == "ok"
        self._add(
            (  # a plain tuple (see `Row`)
                ctx.id,
                _TRIGGERS.get(type(ctx.request).__name__, "direct"),
                ctx.workflow,
                ctx.action,
                ctx.status,
                time.time() - elapsed,
                elapsed * 1000.0,
                ctx.node,
                ctx.request_id,
                None if ok else error_text(ctx.error),
                self._detail(ctx, ok),
            )
        )

    def _detail(self, ctx: ExecutionContext, ok: bool) -> bytes:
        """`ExecutionRow.detail`: the execution as it is in one encoding when that is small,
        else the careful way (`_texts`)."""
        trace = ctx.trace or ()
        capture = self.capture
        result = ctx.result if ok else None
        if type(result) is Response:  # a respond step's: as a dict, 3x faster to encode
            result = {"status": result.status, "body": result.body, "headers": result.headers}
        if capture == "steps":
            layout: tuple[Any, ...] = (VALUES, ctx.input, result, trace, ctx.steps)
        else:
            rows = [row[:4] for row in trace]  # no data: every step "as the one before", None
            given = None if capture == "none" else ctx.input
            layout = (VALUES, given, None if capture == "none" else result, rows, None)
        try:  # plain JSON types first: orjson is twice as fast without options or a default
            data = orjson.dumps(layout)
        except (TypeError, orjson.JSONEncodeError):
            try:  # other types (sets, numpy, models, errors in the trace), non-string keys
                data = orjson.dumps(layout, default=_default, option=_OPTIONS)
            except (TypeError, orjson.JSONEncodeError):  # one odd value: encode each alone
                return self._texts(ctx, ok, trace)
        if len(data) > self.max_record_bytes:
            return self._texts(ctx, ok, trace)
        return data

    def _texts(self, ctx: ExecutionContext, ok: bool, trace: Iterable[StepTrace]) -> bytes:
        """The TEXTS layout: each distinct object encoded once (by identity: steps replace
        the data rather than change it in place), cut at `max_bytes`, secrets replaced."""
        encode = self.store.redactor.encode
        limit = self.max_bytes
        memo: dict[int, str | None] = {id(None): None}

        def text(value: Any) -> str | None:
            key = id(value)
            found = memo.get(key, _MISSING)
            if found is _MISSING:
                found = memo[key] = encode(value, limit)
            return found  # type: ignore[return-value]

        steps = self.capture == "steps"
        outputs = ctx.steps
        rows = [
            (
                name,
                status,
                took,
                None if error is None else str(error),
                text(before) if steps else None,
                text(outputs.get(name)) if steps and status == "ok" else None,
            )
            for name, status, took, error, before in traced_steps(trace, ctx.input)
        ]
        given = result = None
        if self.capture != "none":
            given = text(ctx.input)
            result = text(ctx.result) if ok else None
        return orjson.dumps((TEXTS, given, result, rows, None))


_MISSING = object()


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
