"""The component registry: components by name, their lifecycle states, and atomic swaps.

States: `unloaded` (removed), `loaded` (source checked), `initialized` (`init` ran),
`running` (`start` ran; calls accepted), `stopped`, `error` (with the reason). A new version
(`replace`) is checked and, if the component is running, brought up beside the old one; only
then are calls switched to it. Calls already running finish on the old version, which is
then closed. A version that fails leaves the old one serving and is reported in `last_error`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flownb.dynamic.checker import check, compile_unchecked
from flownb.dynamic.contract import (
    CheckError,
    ComponentError,
    Options,
    Source,
    State,
    call_context,
)
from flownb.dynamic.runtime import InProcessRuntime, Runtime, ServiceCall
from flownb.errors import FlownbError, UnknownNameError

log = logging.getLogger("flownb.dynamic")


@dataclass(frozen=True)
class ComponentInfo:
    """A snapshot of one component, as `ComponentRegistry.list()` reports it."""

    name: str
    state: State
    reason: str | None
    version: int
    origin: str
    trusted: bool
    last_error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "reason": self.reason,
            "version": self.version,
            "origin": self.origin,
            "trusted": self.trusted,
            "lastError": self.last_error,
        }


class Component:
    """One registered component: its current source, options, state and runtime."""

    def __init__(
        self,
        source: Source,
        options: Options,
        services: ServiceCall | None = None,
        requires: Sequence[str] = (),
    ) -> None:
        self.source, self.options = source, options
        self.services, self.requires = services, tuple(requires)
        self.state: State = "loaded"
        self.reason: str | None = None
        self.last_error: str | None = None
        self.version = 1
        self._runtime: Runtime | None = None

    @property
    def name(self) -> str:
        return self.source.name

    def info(self) -> ComponentInfo:
        return ComponentInfo(
            self.name,
            self.state,
            self.reason,
            self.version,
            self.source.origin,
            self.options.trusted,
            self.last_error,
        )

    def _fail(self, reason: str) -> None:
        self.state, self.reason = "error", reason
        log.error("component %r: %s", self.name, reason)

    def _runtime_for(self, source: Source) -> Runtime:
        if self.options.trusted:
            return InProcessRuntime(source, self.options, self.services, self.requires)
        from flownb.dynamic.pool import WorkerPool

        return WorkerPool(source, self.options, self.services, self.requires)

    async def _bring_up(self, source: Source, *, start: bool) -> Runtime:
        runtime = self._runtime_for(source)
        try:
            await runtime.open()
            if start:
                await runtime.start()
        except BaseException:
            await runtime.close(0)
            raise
        return runtime

    # --- lifecycle ---------------------------------------------------------------------
    async def init(self) -> None:
        """Load the code (in workers, unless trusted) and run its `init(config, services)`."""
        if self.state not in ("loaded", "stopped", "error"):
            raise FlownbError(f"component {self.name!r} cannot init from state {self.state!r}")
        try:
            self._runtime = await self._bring_up(self.source, start=False)
        except FlownbError as exc:
            self._fail(str(exc))
            raise
        self.state, self.reason = "initialized", None

    async def start(self) -> None:
        if self.state in ("loaded", "stopped", "error"):
            await self.init()
        if self.state != "initialized" or self._runtime is None:
            raise FlownbError(f"component {self.name!r} cannot start from state {self.state!r}")
        try:
            await self._runtime.start()
        except FlownbError as exc:
            self._fail(str(exc))
            raise
        self.state = "running"

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Run `stop()` and end the runtime once calls in flight are done."""
        runtime, self._runtime = self._runtime, None
        if runtime is not None:
            await self._retire(runtime, drain_timeout)
        if runtime is not None or self.state != "error":
            self.state = "stopped"

    async def _retire(self, runtime: Runtime, drain_timeout: float) -> None:
        """Let calls finish on `runtime`, run its `stop()` if it was started, end it."""
        try:
            await runtime.wait_idle(drain_timeout)
            if self.state == "running":
                await runtime.stop()
        except FlownbError as exc:
            log.warning("component %r: stop() failed: %s", self.name, exc)
        finally:
            await runtime.close(0)

    async def execute(
        self, data: Any, ctx: dict[str, Any] | None = None, parent: Any = None
    ) -> Any:
        """Run `execute(ctx, data)` on the current version."""
        runtime = self._runtime
        if runtime is None or self.state != "running":
            raise ComponentError(self.name, f"is not running (state: {self.state})", status=503)
        return await runtime.execute(ctx or call_context(self.name), data, parent)

    async def replace(self, source: Source, drain_timeout: float = 5.0) -> bool:
        """Swap in a new version atomically; on failure keep the old one and say why.

        Returns True if the new version is now the one serving.
        """
        try:
            _compile(source, self.options)
        except CheckError as exc:
            self.last_error = exc.render()
            log.error("component %r: new version rejected:\n%s", self.name, self.last_error)
            return False
        if self.state not in ("initialized", "running"):
            self.source, self.version = source, self.version + 1
            self.state, self.reason, self.last_error = "loaded", None, None
            return True
        try:
            new = await self._bring_up(source, start=self.state == "running")
        except FlownbError as exc:
            self.last_error = str(exc)
            log.error("component %r: new version failed to start: %s", self.name, exc)
            return False
        old, self._runtime = self._runtime, new
        self.source, self.version, self.last_error = source, self.version + 1, None
        log.info("component %r: now serving version %d", self.name, self.version)
        if old is not None:
            await self._retire(old, drain_timeout)
        return True


def _compile(source: Source, options: Options) -> None:
    if options.check:
        check(source.text, source.origin, options.imports)
    else:
        compile_unchecked(source.text, source.origin)


class ComponentRegistry:
    """Components by name. Explicit and instance-scoped; one per engine module or notebook."""

    def __init__(
        self,
        options: Options | None = None,
        *,
        services: ServiceCall | None = None,
        requires: Sequence[str] = (),
        autostart: bool = False,
    ) -> None:
        self.options = options or Options()
        self.services, self.requires = services, tuple(requires)
        self.autostart = autostart  # start components that appear later (hot reload)
        self._items: dict[str, Component] = {}
        self._errors: dict[str, ComponentInfo] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[Component]:
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)

    def register(self, source: Source, options: Options | None = None) -> Component:
        """Check `source` and add it as `loaded`; raises `CheckError` with line:col problems."""
        if source.name in self._items:
            raise FlownbError(f"component {source.name!r} is already registered")
        options = options or self.options
        try:
            _compile(source, options)
        except CheckError as exc:
            self._errors[source.name] = ComponentInfo(
                source.name, "error", exc.render(), 0, source.origin, options.trusted, None
            )
            raise
        self._errors.pop(source.name, None)
        component = Component(source, options, self.services, self.requires)
        self._items[source.name] = component
        return component

    async def unregister(self, name: str) -> None:
        """Stop the component (calls in flight finish first) and forget it."""
        component = self.get(name)
        await component.stop()
        component.state = "unloaded"
        del self._items[name]

    def get(self, name: str) -> Component:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError("component", name, list(self._items)) from None

    def list(self) -> list[ComponentInfo]:
        """Every component, plus sources that failed their check (state `error`)."""
        found = [c.info() for c in self._items.values()]
        found.extend(info for name, info in self._errors.items() if name not in self._items)
        return sorted(found, key=lambda i: i.name)

    def by_path(self, path: Path) -> Component | None:
        resolved = path.resolve()
        for component in self._items.values():
            if component.source.path is not None and component.source.path == resolved:
                return component
        return None

    def forget_error(self, path: Path) -> None:
        origin = str(path.resolve())
        for name in [n for n, i in self._errors.items() if i.origin == origin]:
            del self._errors[name]

    async def execute(self, name: str, data: Any, ctx: dict[str, Any] | None = None) -> Any:
        return await self.get(name).execute(data, ctx)

    async def start_all(self) -> None:
        for component in self:
            if component.state in ("loaded", "initialized", "stopped"):
                await component.start()

    async def close(self) -> None:
        """Stop every component (the registry can be started again)."""
        for component in reversed(list(self)):
            await component.stop()
