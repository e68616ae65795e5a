"""The component contract: what a component source defines, its options, and its errors.

A component is Python source that defines `execute(ctx, data) -> dict` and optionally `name`,
`init(config, services)`, `start()` and `stop()` (each sync or async). `ctx` is a small
JSON-safe dict (see `call_context`), never the engine's `ExecutionContext`; data crosses the
boundary as JSON values only, checked both ways (`encode`), whether the component runs in a
worker process or in-process.

This module is imported by the worker process too, so it keeps to the standard library,
orjson and `flownb.errors` (importing the `flownb` package would load the whole engine).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import orjson

from flownb.errors import ExecutionError, FlownbError

HOOKS = ("init", "start", "stop", "execute")

# The safe standard-library subset a component may import unless its options say otherwise.
DEFAULT_IMPORTS: tuple[str, ...] = (
    "base64",
    "bisect",
    "collections",
    "collections.abc",
    "dataclasses",
    "datetime",
    "decimal",
    "enum",
    "fractions",
    "functools",
    "hashlib",
    "heapq",
    "hmac",
    "itertools",
    "json",
    "math",
    "random",
    "re",
    "statistics",
    "string",
    "textwrap",
    "typing",
    "uuid",
)

_STRICT = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)

State = Literal["unloaded", "loaded", "initialized", "running", "stopped", "error"]


class ComponentError(ExecutionError):
    """A component call or lifecycle step failed; the message names the component and why."""

    def __init__(self, component: str, reason: str, *, status: int | None = None) -> None:
        self.component, self.reason = component, reason
        super().__init__(f"component {component!r}: {reason}", status=status)


class LimitExceeded(ComponentError):
    """A resource limit was hit (CPU, memory, wall time, output, files, processes)."""


class DataError(ComponentError):
    """A value crossing the component boundary is not JSON (wrong type or key)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One static-check finding, pinned to a line and column (both 1-based)."""

    line: int
    col: int
    message: str


class CheckError(FlownbError):
    """A component source failed the static sandbox check; carries every problem found."""

    def __init__(self, origin: str, problems: Sequence[Problem]) -> None:
        self.origin, self.problems = origin, list(problems)
        super().__init__(self.render())

    def lines(self) -> list[str]:
        return [f"{self.origin}:{p.line}:{p.col}: {p.message}" for p in self.problems]

    def render(self) -> str:
        count = len(self.problems)
        head = f"{self.origin}: {count} problem{'s' if count != 1 else ''} in component"
        return "\n".join([head, *self.lines()])


@dataclass(frozen=True)
class Limits:
    """Per-call limits of an isolated component (trusted ones only get `max_output_bytes`)."""

    cpu_seconds: float = 2.0
    memory_mb: int = 256
    timeout: float = 5.0
    max_output_bytes: int = 1_000_000
    max_open_files: int = 0  # files or sockets the component may open at once

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpu_seconds": self.cpu_seconds,
            "memory_mb": self.memory_mb,
            "timeout": self.timeout,
            "max_output_bytes": self.max_output_bytes,
            "max_open_files": self.max_open_files,
        }


@dataclass(frozen=True)
class Options:
    """How a component runs: isolated (default) or trusted, checked, with which imports."""

    trusted: bool = False
    check: bool = True  # static check and runtime guards; turn off only for code you wrote
    imports: tuple[str, ...] = DEFAULT_IMPORTS
    limits: Limits = field(default_factory=Limits)
    pool_size: int = 1
    config: Mapping[str, Any] = field(default_factory=dict)

    def with_(self, **changes: Any) -> Options:
        return replace(self, **changes)


@dataclass(frozen=True)
class Source:
    """A component's source text, where it came from, and the name it declares."""

    name: str
    text: str
    origin: str  # a file path, or "<string>"
    path: Path | None = None


def declared_name(text: str) -> str | None:
    """The string assigned to a top-level `name`, read without running the code."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "name"
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    return None


def call_context(
    component: str,
    *,
    execution_id: str | None = None,
    request_id: str | None = None,
    workflow: str | None = None,
    action: str | None = None,
) -> dict[str, Any]:
    """The `ctx` a component sees: plain JSON, safe to send to a worker."""
    return {
        "component": component,
        "executionId": execution_id,
        "requestId": request_id,
        "workflow": workflow,
        "action": action,
    }


def encode(value: Any, component: str, what: str) -> bytes:
    """`value` as JSON bytes, or a `DataError` naming the first non-JSON part and its path."""
    try:
        return orjson.dumps(value, option=_STRICT)
    except TypeError:
        path, problem = _find_non_json(value, what)
        raise DataError(
            component, f"{path} is not JSON-compatible ({problem}); pass JSON values only"
        ) from None


def check_result(value: Any, component: str) -> None:
    """`execute` must return a dict (a JSON object); anything else is a clear error."""
    if type(value) is not dict:
        raise DataError(
            component,
            f"execute() must return a dict (a JSON object), not {type(value).__name__}",
        )


def copy_json(value: Any, component: str, what: str) -> Any:
    """A JSON-checked deep copy (the same thing a worker would receive)."""
    return orjson.loads(encode(value, component, what))


def _find_non_json(value: Any, path: str) -> tuple[str, str]:
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        kind = type(item)
        if item is None or kind in (str, bool, float):
            continue
        if kind is int:
            if not -(2**63) <= item < 2**64:
                return where, "integer out of the 64-bit range"
            continue
        if kind is dict:
            for key, sub in item.items():
                if type(key) is not str:
                    return where, f"key {key!r} is a {type(key).__name__}, not a string"
                stack.append((sub, f"{where}.{key}"))
            continue
        if kind in (list, tuple):
            stack.extend((sub, f"{where}[{i}]") for i, sub in enumerate(item))
            continue
        article = "an" if kind.__name__[:1].lower() in "aeiou" else "a"
        return where, f"{article} {kind.__name__}"
    return path, "nested too deeply or not serializable"
