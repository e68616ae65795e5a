"""The `dynamic.component` module: a user's Python component as a handler of the engine.

The component comes from `path` (a file) or `componentId` (looked up in `directory`). It is
checked when the engine builds, started with the engine (in worker processes unless
`trusted: true`) and stopped with it; with `watch: true` a saved file is reloaded in place.
Routes, subscriptions and hooks use it by module name (it is a handler); pipelines use it as a
`call` step, `function: <module name>`; `provides` registers it under more service names.
A component reaches the handlers and pipelines listed in `requires` with
`await services.call(name, data)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, model_validator

from flownb.dynamic.contract import DEFAULT_IMPORTS, Limits, Options, call_context
from flownb.dynamic.loader import component_files, load_file
from flownb.dynamic.registry import Component, ComponentRegistry
from flownb.dynamic.watcher import ComponentWatcher
from flownb.errors import FlownbError, UnknownNameError
from flownb.execution import ExecutionContext, Response
from flownb.fields import Duration, Ref, Spec
from flownb.module import Module
from flownb.registry import ModuleType

if TYPE_CHECKING:
    from flownb.engine import Engine
    from flownb.health import Check


class DynamicComponentConfig(Spec):
    """Exactly one of `componentId` or `path` says which component runs."""

    component_id: str | None = Field(
        None, alias="componentId", description="component name, looked up in `directory`"
    )
    path: str | None = Field(
        None, description="component file (relative to the config file's folder)"
    )
    directory: str = Field(
        "components", description="where `componentId` is looked up (relative to the config)"
    )
    config: dict[str, Any] = Field(
        default_factory=dict, description="passed to the component's init(config, services)"
    )
    provides: list[str] = Field(
        default_factory=list, description="more service names to register this component as"
    )
    requires: list[Annotated[str, Ref("handler")]] = Field(
        default_factory=list,
        description="handlers or pipelines the component may call with services.call",
    )
    trusted: bool = Field(
        False, description="run in the engine's process (fast; no CPU, memory or time limits)"
    )
    check: bool = Field(
        True, description="static sandbox check and runtime guards; off only for your own code"
    )
    imports: list[str] = Field(
        default_factory=lambda: list(DEFAULT_IMPORTS),
        description="modules the component may import",
    )
    cpu_seconds: float = Field(
        2.0, alias="cpuSeconds", gt=0, description="CPU time per call (isolated only)"
    )
    memory_mb: int = Field(
        256, alias="memoryMb", ge=64, description="address-space limit of a worker, in MB"
    )
    timeout: Duration = Field(
        Duration(5.0), description="wall time per call; the worker is killed after it"
    )
    max_output_bytes: int = Field(
        1_000_000, alias="maxOutputBytes", ge=1, description="largest result, as JSON bytes"
    )
    max_open_files: int = Field(
        0, alias="maxOpenFiles", ge=0, description="files or sockets a worker may open"
    )
    pool_size: int = Field(
        1, alias="poolSize", ge=1, le=64, description="worker processes (each has its own state)"
    )
    watch: bool = Field(False, description="reload the component when its file is saved")

    @model_validator(mode="after")
    def _exactly_one(self) -> DynamicComponentConfig:
        if (self.component_id is None) == (self.path is None):
            raise ValueError("set exactly one of componentId or path")
        return self

    def options(self) -> Options:
        return Options(
            trusted=self.trusted,
            check=self.check,
            imports=tuple(self.imports),
            limits=Limits(
                cpu_seconds=self.cpu_seconds,
                memory_mb=self.memory_mb,
                timeout=float(self.timeout),
                max_output_bytes=self.max_output_bytes,
                max_open_files=self.max_open_files,
            ),
            pool_size=self.pool_size,
            config=self.config,
        )


class DynamicComponent(Module[DynamicComponentConfig]):
    """A component as a handler (`handle`), a function (`call` steps) and named services."""

    registry: ComponentRegistry
    component: Component
    _engine: Engine
    _watcher: ComponentWatcher | None = None

    async def init(self, engine: Engine) -> None:
        self._engine = engine
        config = self.config
        for name in config.requires:
            engine.handler(name)  # exists and is a handler or pipeline
        self.registry = ComponentRegistry(
            config.options(), services=self._call_service, requires=config.requires, autostart=True
        )
        self.component = self.registry.register(load_file(self._source_path(engine)))
        if self.name in engine.functions:
            raise FlownbError(
                f"a function called {self.name!r} is already registered; rename the module"
            )
        engine.functions.register(self.name, self.call)
        for alias in config.provides:
            engine.services.register(alias, self)

    def _base(self, engine: Engine) -> Path:
        path = engine.config.path
        return Path(path).resolve().parent if path else Path.cwd()

    def _source_path(self, engine: Engine) -> Path:
        config, base = self.config, self._base(engine)
        if config.path is not None:
            return base / config.path
        directory = base / config.directory
        wanted = config.component_id
        known: list[str] = []
        for file in component_files(directory):
            name = load_file(file).name
            if name == wanted:
                return file
            known.append(name)
        raise UnknownNameError(f"component in {str(directory)!r}", str(wanted), known)

    async def start(self) -> None:
        await self.component.start()
        if self.config.watch and self.component.source.path is not None:
            file = self.component.source.path
            self._watcher = ComponentWatcher(
                self.registry, file.parent, files={file}, on_change=self._changed
            )
            await self._watcher.start()

    def _changed(self, _path: Path, component: Component | None) -> None:
        if component is not None:
            self.component = component  # the file may now declare another name

    async def stop(self) -> None:
        if self._watcher is not None:
            await self._watcher.stop()
            self._watcher = None
        await self.registry.close()
        # The functions may outlive this engine (a notebook's): free the name for a restart.
        functions = self._engine.functions
        if self.name in functions and functions.get(self.name) == self.call:
            functions.unregister(self.name)

    async def health(self) -> Check | None:
        """Running is healthy; a rejected new version (the old one serves on) is degraded."""
        from flownb.health import Check

        component = self.component
        if component.state != "running":
            return Check.unhealthy(
                f"component {component.name!r} is {component.state}"
                + (f": {component.reason}" if component.reason else "")
            )
        if component.last_error:
            return Check.degraded(
                f"version {component.version} serves; the newest was "
                f"rejected: {component.last_error.splitlines()[0]}"
            )
        return Check.healthy(f"version {component.version}")

    async def handle(self, ctx: ExecutionContext, data: Any) -> Any:
        view = call_context(
            self.component.name,
            execution_id=ctx.id,
            request_id=ctx.request_id,
            workflow=ctx.workflow,
            action=ctx.action,
        )
        return await self.component.execute(data, view, ctx)

    async def call(self, data: Any, ctx: ExecutionContext) -> Any:
        """The `call` step entry point (`function: <module name>`)."""
        return await self.handle(ctx, data)

    async def _call_service(self, name: str, data: Any, parent: Any) -> Any:
        engine = self._engine
        if isinstance(parent, ExecutionContext):
            workflow, action, request_id = parent.workflow, parent.action, parent.request_id
        else:
            workflow, action, request_id = "dynamic", self.name, None
        ctx = ExecutionContext(engine, workflow, action, data, request_id=request_id, node=name)
        result = await engine.handler(name).handle(ctx, data)
        return result.body if isinstance(result, Response) else result


TYPES: list[ModuleType] = [
    ModuleType(
        "dynamic.component",
        "Integration",
        "User Python code (a component file), statically checked and run in limited worker "
        "processes (or in-process when trusted); hot-reloaded on save with `watch`.",
        DynamicComponentConfig,
        DynamicComponent,
        provides=("handler",),
    ),
]
