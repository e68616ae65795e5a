"""A blocking facade over `Engine` for scripts and for notebooks that prefer not to await.

The engine runs on its own event loop in a daemon thread, so calling these methods never
blocks (or needs) the caller's loop, including a Jupyter kernel's.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from flownb.config import Config
from flownb.engine import Engine

T = TypeVar("T")


class SyncEngine:
    """`with SyncEngine(config) as wf: wf.trigger("pipeline", "hello", {...})`."""

    def __init__(self, config: Config | str | os.PathLike[str], **engine_kwargs: Any) -> None:
        if not isinstance(config, Config):
            from flownb.loader import load_config

            config = load_config(config, registry=engine_kwargs.get("registry"))
        self._config = config
        self._kwargs = engine_kwargs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("the engine is not started; call start() first")
        return self._engine

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self, timeout: float | None = 60.0) -> SyncEngine:
        if self._thread is not None:
            raise RuntimeError("already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="flownb-engine", daemon=True)
        self._thread.start()

        async def create_and_start() -> Engine:
            engine = Engine(self._config, **self._kwargs)
            self._engine = engine
            await engine.start()
            return engine

        try:
            self._call(create_and_start(), timeout)
        except BaseException:
            self._shutdown_loop()
            raise
        return self

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The engine's event loop (running in the background thread)."""
        if self._loop is None:
            raise RuntimeError("the engine is not started; call start() first")
        return self._loop

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the engine's loop and wait for its result."""
        if self._loop is None:
            coro.close()
            raise RuntimeError("the engine is not started; call start() first")
        return self._call(coro, timeout)

    def trigger(
        self, kind: str, action: str, data: Any = None, timeout: float | None = None
    ) -> Any:
        """`Engine.trigger_workflow`, blocking until the result is ready."""
        return self._call(self.engine.trigger_workflow(kind, action, data), timeout)

    def stop(self, timeout: float | None = None) -> bool:
        if self._thread is None:
            return True
        try:
            return self._call(self.engine.stop(timeout))
        finally:
            self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)
        if loop is not None and not loop.is_running():
            loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> SyncEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
