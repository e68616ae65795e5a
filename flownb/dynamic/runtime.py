"""Where a component's code runs: the `Runtime` contract and the trusted in-process runtime.

Two runtimes share one contract: `pool.WorkerPool` (isolated worker processes with limits;
the default) and `InProcessRuntime` (`trusted: true`: the same checked code and guards, in
the engine's process, no process boundary and so no CPU, memory or wall-time limits; only
the output-size limit applies). Both copy data in and out as JSON.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import orjson

from flownb.dynamic.checker import check, compile_unchecked
from flownb.dynamic.contract import (
    ComponentError,
    LimitExceeded,
    Options,
    Source,
    check_result,
    copy_json,
    encode,
)
from flownb.dynamic.sandbox import (
    ContractError,
    Hooks,
    Imports,
    ServicesView,
    describe,
    load_hooks,
    plain_globals,
    restricted_globals,
)

# `(service name, data, the calling ExecutionContext or None) -> result`: how components reach
# the engine's handlers and pipelines (only those listed in `requires`).
ServiceCall = Callable[[str, Any, Any], Awaitable[Any]]


class Runtime(Protocol):
    """A component's code, loaded and callable. `open` runs `init`; `close` drains first."""

    @property
    def inflight(self) -> int: ...

    async def open(self) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def execute(self, ctx: dict[str, Any], data: Any, parent: Any = None) -> Any: ...

    async def close(self, drain_timeout: float = 5.0) -> None: ...

    async def wait_idle(self, timeout: float) -> bool: ...


class Drain:
    """In-flight accounting shared by runtimes, so a swap can wait for old calls to finish."""

    def __init__(self) -> None:
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def inflight(self) -> int:
        return self._inflight

    def _enter(self) -> None:
        self._inflight += 1
        self._idle.clear()

    def _leave(self) -> None:
        self._inflight -= 1
        if self._inflight == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


class InProcessRuntime(Drain):
    """`trusted: true`: hooks called directly, still checked and guarded unless `check` is off."""

    def __init__(
        self,
        source: Source,
        options: Options,
        services: ServiceCall | None = None,
        requires: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.source, self.options = source, options
        self.name = source.name
        self._services, self._requires = services, tuple(requires)
        self._hooks: Hooks | None = None
        self._max_output = options.limits.max_output_bytes

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            result = fn(*args)
            if inspect.isawaitable(result):
                result = await result
        except ComponentError:
            raise
        except RecursionError:
            raise LimitExceeded(self.name, "exceeded the recursion limit") from None
        except Exception as exc:
            raise ComponentError(self.name, describe(exc, self.source.origin)) from exc
        return result

    async def open(self) -> None:
        source, options = self.source, self.options
        if options.check:
            code = check(source.text, source.origin, options.imports)
            namespace = restricted_globals(Imports(options.imports))
        else:
            code = compile_unchecked(source.text, source.origin)
            namespace = plain_globals()
        try:
            self._hooks = hooks = load_hooks(code, namespace, source.name)
        except ContractError as exc:
            raise ComponentError(self.name, str(exc)) from None
        except Exception as exc:
            reason = f"failed to load: {describe(exc, source.origin)}"
            raise ComponentError(self.name, reason) from exc
        self.name = hooks.name
        if hooks.init is not None:
            view = ServicesView(self._requires, self._service)
            await self._run(hooks.init, copy_json(dict(options.config), self.name, "config"), view)

    async def _service(self, name: str, data: Any) -> Any:
        if self._services is None:
            raise LookupError(f"service {name!r} is not available here")
        result = await self._services(name, copy_json(data, self.name, "service data"), None)
        return copy_json(result, self.name, f"result of service {name!r}")

    async def start(self) -> None:
        if self._hooks is not None and self._hooks.start is not None:
            await self._run(self._hooks.start)

    async def stop(self) -> None:
        if self._hooks is not None and self._hooks.stop is not None:
            await self._run(self._hooks.stop)

    async def execute(self, ctx: dict[str, Any], data: Any, parent: Any = None) -> Any:
        hooks = self._hooks
        if hooks is None:
            raise ComponentError(self.name, "is not loaded")
        name = self.name
        data = orjson.loads(encode(data, name, "input"))
        self._enter()
        try:
            result = hooks.execute(ctx, data)
            if inspect.isawaitable(result):
                result = await result
        except ComponentError:
            raise
        except RecursionError:
            raise LimitExceeded(name, "exceeded the recursion limit") from None
        except Exception as exc:
            raise ComponentError(name, describe(exc, self.source.origin)) from exc
        finally:
            self._leave()
        check_result(result, name)
        body = encode(result, name, "output")
        if len(body) > self._max_output:
            raise LimitExceeded(
                name,
                f"output of {len(body):,} bytes exceeds the limit of {self._max_output:,} bytes",
            )
        return orjson.loads(body)

    async def close(self, drain_timeout: float = 5.0) -> None:
        await self.wait_idle(drain_timeout)
        self._hooks = None
