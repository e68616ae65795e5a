"""Where a notebook workflow's engine runs, and how calls reach it.

In a kernel the caller is always on the kernel's running event loop: the engine runs there
too, and `start` / `stop` / sends become tasks, so a cell returns at once and later cells are
not blocked. With no running loop (a script) the engine runs on a `flownb.SyncEngine`
background thread and the same calls block until done. Lifecycle calls run in the order they
were made, each after the previous one finished.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from flownb.engine import Engine
from flownb.errors import FlownbError

if TYPE_CHECKING:
    from flownb.config import Config
    from flownb.sync import SyncEngine

log = logging.getLogger("flownb.hosting")

T = TypeVar("T")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
Prepare = Callable[[], tuple["Config", dict[str, Any]]]


def running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class EngineHost:
    """Runs at most one engine at a time for one workflow.

    `prepare()` gives the config to start and the `Engine` keyword arguments (it raises when
    there is nothing valid to run); `changed(running)` is called after each start and stop.
    """

    def __init__(self, name: str, prepare: Prepare, changed: Callable[[bool], None]) -> None:
        self.name = name
        self.prepare = prepare
        self.changed = changed
        self.engine: Engine | None = None
        self.config: Config | None = None  # what the engine was started with
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: SyncEngine | None = None
        self._last: asyncio.Future[Any] | None = None
        self.pending: set[asyncio.Future[Any]] = set()

    # --- lifecycle ---------------------------------------------------------------------------
    def lifecycle(self, op: str, timeout: float | None = None) -> asyncio.Future[None] | None:
        """Run "start", "stop" or "restart": a task on the running loop, else blocking."""
        caller = running_loop()
        if caller is None:
            if op in ("stop", "restart"):
                self._stop_blocking(timeout)
            if op in ("start", "restart"):
                self._start_blocking()
            return None
        previous = self._last

        async def run() -> None:
            if previous is not None and not previous.done():
                await asyncio.wait([previous])
            if op in ("stop", "restart"):
                await self._stop(timeout)
            if op in ("start", "restart"):
                await self._start()

        task = caller.create_task(run(), name=f"flownb {op} {self.name}")
        self._last = task
        self.track(task, op)
        return task

    async def _start(self) -> None:
        if self.engine is not None:
            return
        config, kwargs = self.prepare()
        engine = Engine(config, **kwargs)
        await engine.start()
        self._started(engine, asyncio.get_running_loop(), config, None)

    def _start_blocking(self) -> None:
        if self.engine is not None:
            return
        from flownb.sync import SyncEngine

        config, kwargs = self.prepare()
        thread = SyncEngine(config, **kwargs)
        thread.start()
        self._started(thread.engine, thread.loop, config, thread)

    def _started(
        self,
        engine: Engine,
        loop: asyncio.AbstractEventLoop,
        config: Config,
        thread: SyncEngine | None,
    ) -> None:
        self.engine, self.loop, self.thread, self.config = engine, loop, thread, config
        self.changed(True)

    async def _stop(self, timeout: float | None) -> None:
        engine, thread, loop = self.engine, self.thread, self.loop
        if engine is None:
            return
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, thread.stop, timeout)
        elif loop is asyncio.get_running_loop():
            await engine.stop(timeout)
        elif loop is not None and loop.is_running():
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(engine.stop(timeout), loop))
        self._stopped()

    def _stop_blocking(self, timeout: float | None) -> None:
        engine, thread, loop = self.engine, self.thread, self.loop
        if engine is None:
            return
        if thread is not None:
            thread.stop(timeout)
        elif loop is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(engine.stop(timeout), loop).result()
        else:  # its loop has ended (asyncio.run returned): nothing of it is left to stop
            log.warning("workflow %r: its event loop has ended; marking it stopped", self.name)
        self._stopped()

    def _stopped(self) -> None:
        self.engine = self.loop = self.thread = self.config = None
        self.changed(False)

    # --- calls into the running engine ---------------------------------------------------------
    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> Any:
        """Run `coro` on the engine's loop: a task when called on that loop, an awaitable
        from another loop, the result (blocking) with no running loop."""
        loop = self.loop
        if loop is None or loop.is_closed():
            coro.close()
            raise FlownbError(
                f"workflow {self.name!r} is not running; start it first "
                f"(wf.start(), or %workflow run {self.name})"
            )
        caller = running_loop()
        if caller is loop:
            task = loop.create_task(coro)
            self.track(task, "send")
            return task
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        if caller is None:
            return future.result(timeout)
        wrapped = asyncio.wrap_future(future)
        self.track(wrapped, "send")
        return wrapped

    def track(self, future: asyncio.Future[Any], what: str) -> None:
        """Keep `future` for `wait()`, and log its failure if nobody awaits it."""
        self.pending.add(future)

        def done(f: asyncio.Future[Any]) -> None:
            self.pending.discard(f)
            if f.cancelled():
                return
            exc = f.exception()
            if isinstance(exc, FlownbError):
                log.error("%s %s: %s", self.name, what, exc)
            elif exc is not None:
                log.error("%s %s failed", self.name, what, exc_info=exc)

        future.add_done_callback(done)

    async def wait(self) -> None:
        while self.pending:
            await asyncio.gather(*list(self.pending))


# --- firing triggers -----------------------------------------------------------------------------
async def send_trigger(
    engine: Engine, kind: str, target: str, data: Any, *, server: str | None, broker: str | None
) -> Any:
    """What `Workflow.send` runs on the engine's loop; see there."""
    if kind == "http":
        method, path = split_http_target(target)
        url = server_url(engine, server) + path
        body: dict[str, Any] = {}
        if isinstance(data, str | bytes):
            body["content"] = data
        elif data is not None:
            body["json"] = data
        return await engine.http_client().request(method, url, **body)
    if kind == "topic":
        if broker is None and "messaging" in engine.workflows:
            return await engine.trigger_workflow("messaging", target, data)
        module: Any = engine.module(engine.resolve_ref("broker", broker))
        message_id = await module.publish(target, data)
        return {"id": message_id, "topic": target}
    return await engine.trigger_workflow(kind, target, data)


def split_http_target(target: str) -> tuple[str, str]:
    """`"POST /orders"` -> ("POST", "/orders"); a bare path means GET."""
    parts = target.strip().split(None, 1)
    if len(parts) == 2 and parts[0].upper() in HTTP_METHODS:
        method, path = parts[0].upper(), parts[1].strip()
    elif len(parts) == 1:
        method, path = "GET", parts[0]
    else:
        raise FlownbError(
            f"an http target is 'METHOD /path', e.g. 'GET /hello?n=1', not {target!r}"
        )
    if not path.startswith("/"):
        raise FlownbError(f"an http path starts with '/', got {path!r}")
    return method, path


def server_urls(engine: Engine) -> dict[str, str]:
    """Base URL of each http.server module of a running engine."""
    from flownb.modules.http import HttpServer

    return {n: m.url for n, m in engine.modules.items() if isinstance(m, HttpServer)}


def server_url(engine: Engine, server: str | None) -> str:
    urls = server_urls(engine)
    if server is not None:
        if server not in urls:
            known = ", ".join(urls) or "none"
            raise FlownbError(f"no http.server named {server!r} (servers: {known})")
        return urls[server]
    if len(urls) != 1:
        named = f" ({', '.join(urls)})" if urls else ""
        raise FlownbError(
            f"the workflow has {len(urls)} http.server modules{named}; name one with server="
        )
    return next(iter(urls.values()))
