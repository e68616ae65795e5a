"""Hot reload: watch a components directory and bring the registry in line on every save.

Built on watchfiles (a Rust file watcher): changes are debounced (`debounce_ms`), then each
changed component file goes through `loader.sync_file`: a new version is checked and swapped
in atomically, a failing one leaves the old version serving (reported in the log and in the
component's `last_error`), a deleted file unregisters its component.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

import watchfiles

from flownb.dynamic.loader import is_component_file, sync_file
from flownb.dynamic.registry import Component, ComponentRegistry
from flownb.errors import FlownbError

log = logging.getLogger("flownb.dynamic")

Listener = Callable[[Path, "Component | None"], None]


class ComponentWatcher:
    """Watches `directory` (optionally only `files` in it) for one registry.

    `start()` returns once the watch is live; `stop()` ends it. `wait_until(pred)` lets tests
    and notebooks wait for a reload to be processed without sleeping.
    """

    def __init__(
        self,
        registry: ComponentRegistry,
        directory: str | Path,
        *,
        files: set[Path] | None = None,
        debounce_ms: int = 100,
        on_change: Listener | None = None,
    ) -> None:
        self.registry = registry
        self.directory = Path(directory).resolve()
        self.files = {f.resolve() for f in files} if files is not None else None
        self.debounce_ms = debounce_ms
        self.on_change = on_change
        self.batches = 0
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._changed = asyncio.Condition()

    def _wanted(self, _change: watchfiles.Change, path: str) -> bool:
        file = Path(path)
        if self.files is not None:
            return file.resolve() in self.files
        return file.parent.resolve() == self.directory and is_component_file(file)

    async def start(self) -> None:
        if self._task is not None:
            return
        if not self.directory.is_dir():
            raise FlownbError(f"cannot watch {str(self.directory)!r}: not a directory")
        self._stop.clear()
        self._ready.clear()
        self._task = asyncio.create_task(self._run(), name=f"watch {self.directory}")
        ready = asyncio.ensure_future(self._ready.wait())
        await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            await self.stop()
            raise FlownbError(f"cannot watch {str(self.directory)!r}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()
        try:
            async with asyncio.timeout(5):
                await task
        except TimeoutError:  # pragma: no cover - the watch thread checks the event every step
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        changes_seen = watchfiles.awatch(
            self.directory,
            watch_filter=self._wanted,
            debounce=self.debounce_ms,
            step=20,
            stop_event=self._stop,
            rust_timeout=100,
            yield_on_timeout=True,
            recursive=False,
        )
        async for changes in changes_seen:
            self._ready.set()
            if not changes:
                continue
            for path in sorted({Path(p) for _, p in changes}):
                await self._sync(path)
            async with self._changed:
                self.batches += 1
                self._changed.notify_all()

    async def _sync(self, path: Path) -> None:
        try:
            component = await sync_file(self.registry, path)
        except Exception:
            log.exception("reloading %s failed", path)
            return
        if self.on_change is not None:
            self.on_change(path, component)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Wait until `predicate()` holds after a processed change; False on timeout."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(predicate)
        except TimeoutError:
            return False
        return True

    async def __aenter__(self) -> ComponentWatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
