"""Python callables that pipelines (`call` steps) and handlers can run, registered by name.

A function takes the input data, and optionally the execution context as a second argument;
it may be sync or async. Names not registered are imported as `package.module:attr`.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from flownb.errors import FlownbError, UnknownNameError
from flownb.execution import ExecutionContext

AsyncFn = Callable[[Any, ExecutionContext], Awaitable[Any]]


class Functions:
    """Name -> callable, scoped to one engine (notebooks register their own functions here).

    Registering a name again replaces the function everywhere it is used, including in a
    running engine: steps and handlers look the name up on every call.
    """

    def __init__(self, items: Mapping[str, Callable[..., Any]] | None = None) -> None:
        self._items: dict[str, Callable[..., Any]] = {}
        self._adapted: dict[str, AsyncFn] = {}
        for name, fn in (items or {}).items():
            self.register(name, fn)

    def register(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(fn):
            raise FlownbError(f"function {name!r} is not callable")
        self._items[name] = fn
        self._adapted[name] = adapt(fn, name)
        return fn

    def unregister(self, name: str) -> None:
        self._items.pop(name, None)
        self._adapted.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def get(self, name: str) -> Callable[..., Any]:
        fn = self._items.get(name)
        if fn is not None:
            return fn
        if ":" in name:
            return _import(name)
        raise UnknownNameError("function", name, list(self._items))

    def resolve(self, name: str) -> AsyncFn:
        """The callable as `async (data, ctx) -> result`, whatever its own shape.

        A registered name is looked up on each call (so re-registering replaces it); an
        imported `package.module:attr` is bound once.
        """
        if name not in self._items:
            return adapt(self.get(name), name)
        adapted = self._adapted

        async def call(data: Any, ctx: ExecutionContext) -> Any:
            fn = adapted.get(name)
            if fn is None:
                raise FlownbError(f"function {name!r} was unregistered")
            return await fn(data, ctx)

        call.__qualname__ = f"function[{name}]"
        return call


def _import(path: str) -> Callable[..., Any]:
    module_name, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise FlownbError(f"cannot import function {path!r}: {exc}") from None
    if not callable(obj):
        raise FlownbError(f"{path!r} is not callable")
    return obj  # type: ignore[no-any-return]


def _wants_context(fn: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)


def adapt(fn: Callable[..., Any], name: str) -> AsyncFn:
    wants_ctx = _wants_context(fn)
    is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
    )

    async def call(data: Any, ctx: ExecutionContext) -> Any:
        result = fn(data, ctx) if wants_ctx else fn(data)
        if is_async or inspect.isawaitable(result):
            result = await result
        return result

    call.__qualname__ = f"function[{name}]"
    return call
