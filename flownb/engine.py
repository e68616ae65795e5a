"""The engine: builds a validated config into running modules, workflows and triggers.

Lifecycle: `build` (create modules in dependency order, `init` each, wire workflows and
triggers) -> `start` (modules in order, then workflows, then triggers) -> `stop` (stop
accepting work, drain in-flight executions up to a timeout, then stop everything in reverse
order). Every failure names the module and the phase.

`trigger_workflow(kind, action, data)` is the single entry point every trigger uses; every
execution, whatever started it, goes through `execute`, which gives it an id, tells the
observers, and counts it for draining.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from flownb.clock import Clock, SystemClock
from flownb.config import Config, ModuleSpec
from flownb.deadletters import Replayers
from flownb.errors import BuildError, ConfigError, Diagnostic, FlownbError, UnknownNameError
from flownb.execution import ExecutionContext, ExecutionObserver, Observers
from flownb.fields import iter_refs
from flownb.functions import Functions
from flownb.logs import execution_id as _execution_id_var
from flownb.logs import request_id as _request_id_var
from flownb.module import Handler, Module, Services
from flownb.pipeline import Pipeline
from flownb.registry import Registry, default_registry
from flownb.stores import Stores
from flownb.template import Templates, TemplateSyntaxError

if TYPE_CHECKING:
    import httpx

    from flownb.health import Report
    from flownb.http.listener import Listeners
    from flownb.metrics import Metrics
    from flownb.triggers.base import Trigger
    from flownb.workflows.base import Workflow

log = logging.getLogger("flownb.engine")

State = Literal["new", "built", "starting", "running", "draining", "stopped", "failed"]
ExecFn = Callable[[ExecutionContext], Awaitable[Any]]


def build_order(modules: Sequence[ModuleSpec], registry: Registry) -> list[ModuleSpec]:
    """Modules sorted so each comes after what it depends on (file order otherwise kept).

    Dependencies: `dependsOn`, and every module a config references, including an implicit
    reference left out (it means the only module providing that kind).
    """
    by_name = {m.name: m for m in modules}
    providers: dict[str, list[str]] = {}
    for m in modules:
        for kind in registry.get(m.type).provides:
            providers.setdefault(kind, []).append(m.name)
    deps: dict[str, set[str]] = {}
    for m in modules:
        found = {d for d in m.depends_on if d in by_name}
        for _, ref, named in iter_refs(m.config):
            if ref.kind == "pipeline":
                continue
            only = providers.get(ref.kind, [])
            name = named if named is not None else (only[0] if len(only) == 1 else None)
            if name is not None and name in by_name:
                found.add(name)
        found.discard(m.name)
        deps[m.name] = found
    users: dict[str, list[str]] = {m.name: [] for m in modules}
    for name, ds in deps.items():
        for d in ds:
            users[d].append(name)
    remaining = {name: len(ds) for name, ds in deps.items()}
    ready = deque(m.name for m in modules if remaining[m.name] == 0)
    order: list[ModuleSpec] = []
    while ready:
        name = ready.popleft()
        order.append(by_name[name])
        for user in users[name]:
            remaining[user] -= 1
            if remaining[user] == 0:
                ready.append(user)
    if len(order) != len(modules):
        stuck = [m.name for m in modules if remaining[m.name] > 0]
        raise FlownbError(f"dependency cycle among modules: {', '.join(stuck)}")
    return order


class Engine:
    """Builds and runs one config. Async first; see `flownb.SyncEngine` for scripts."""

    def __init__(
        self,
        config: Config,
        *,
        registry: Registry | None = None,
        functions: Functions | Mapping[str, Callable[..., Any]] | None = None,
        stores: Stores | None = None,
        observers: Iterable[ExecutionObserver] = (),
        services: Mapping[str, object] | None = None,
        clock: Clock | None = None,
        drain_timeout: float = 30.0,
        metrics: Metrics | None = None,
        listeners: Listeners | None = None,
    ) -> None:
        """`metrics` and `listeners` are shared by the engines of one service (`flownb.service`):
        counters go on across reloads, and HTTP servers take over the sockets of the engine
        they replace."""
        self.config = config
        self.registry = registry or default_registry()
        self.functions = functions if isinstance(functions, Functions) else Functions(functions)
        self.stores = stores or Stores()
        self.replayers = Replayers()  # dead-letter replayers by kind; modules register at init
        self.templates = Templates()
        self.clock: Clock = clock or SystemClock()
        self.services = Services()
        for name, service in (services or {}).items():
            self.services.register(name, service)
        self.observers = Observers(list(observers))
        self.metrics: Metrics | None = None
        if metrics is not None:
            self.use_metrics(metrics)
        self.listeners = listeners
        self.drain_timeout = drain_timeout
        self.modules: dict[str, Module[Any]] = {}
        self.workflows: dict[str, Workflow[Any]] = {}
        self.triggers: list[Trigger[Any]] = []
        self.state: State = "new"
        self._pipelines: dict[str, Pipeline] = {}
        self._providers: dict[str, list[str]] | None = None
        self._compiling: set[str] = set()
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopped = asyncio.Event()
        self._http_client: httpx.AsyncClient | None = None
        self._started_modules: list[Module[Any]] = []

    # --- construction helpers ----------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> Engine:
        from flownb.loader import load_config

        return cls(load_config(path, registry=kwargs.get("registry")), **kwargs)

    @classmethod
    def from_yaml(cls, text: str, **kwargs: Any) -> Engine:
        from flownb.loader import parse_config

        return cls(parse_config(text, registry=kwargs.get("registry")), **kwargs)

    # --- lookups used by modules, steps and workflows --------------------------------
    def module(self, name: str) -> Module[Any]:
        try:
            return self.modules[name]
        except KeyError:
            raise UnknownNameError("module", name, list(self.modules)) from None

    def resolve_ref(self, kind: str, name: str | None) -> str:
        """`name`, or the only module providing `kind` when `name` is left out."""
        if name is not None:
            return name
        found = [m.name for m in self.config.modules if kind in self.registry.get(m.type).provides]
        if len(found) != 1:
            raise FlownbError(
                f"cannot pick a {kind!r} module: found {', '.join(found) or 'none'}; name one"
            )
        return found[0]

    def pipeline(self, name: str) -> Pipeline:
        """The compiled pipeline `name` (compiled on first use, then cached)."""
        compiled = self._pipelines.get(name)
        if compiled is not None:
            return compiled
        spec = self.config.pipelines.get(name)
        if spec is None:
            raise UnknownNameError("pipeline", name, list(self.config.pipelines))
        if name in self._compiling:
            raise FlownbError(f"pipeline {name!r} refers to itself")
        self._compiling.add(name)
        try:
            compiled = Pipeline(name, list(spec.steps), self)
        finally:
            self._compiling.discard(name)
        self._pipelines[name] = compiled
        return compiled

    def handler(self, name: str) -> Handler:
        """A handler module, or else a pipeline, called `name`."""
        if name in self.services:
            service: object = self.services.get(name)
            if isinstance(service, Handler):
                return service
            raise FlownbError(f"module {name!r} is not a handler")
        return self.pipeline(name)

    def http_client(self) -> httpx.AsyncClient:
        """One shared outgoing HTTP client (connection pooling), closed at stop."""
        if self._http_client is None:
            import httpx

            self._http_client = httpx.AsyncClient(follow_redirects=False)
        return self._http_client

    # --- lifecycle -----------------------------------------------------------------
    def _create_modules(self) -> list[ModuleSpec]:
        order = build_order(self.config.modules, self.registry)
        for spec in order:
            module_type = self.registry.get(spec.type)
            try:
                module = module_type.factory(spec.name, spec.config)
            except FlownbError:
                raise
            except Exception as exc:
                raise BuildError(spec.name, "build", exc) from exc
            self.services.register(spec.name, module)
            self.modules[spec.name] = module
        return order

    def _compile_pipelines(self) -> None:
        diags: list[Diagnostic] = []
        for name in self.config.pipelines:
            try:
                self.pipeline(name)
            except (TemplateSyntaxError, FlownbError) as exc:
                diags.append(self.config.diagnostic(("pipelines", name), str(exc), key=True))
        if diags:
            raise ConfigError(diags)

    def check(self) -> None:
        """Dry build: create modules and compile pipelines without init or I/O.

        A module that registers itself as a function when it inits (a dynamic component is
        callable from `call` steps by its name) is stood in for on a copy of the functions,
        so pipelines calling it compile and the real registry is left alone.
        """
        self._create_modules()
        calls = {name: getattr(module, "call", None) for name, module in self.modules.items()}
        stand_ins = {name: fn for name, fn in calls.items() if callable(fn)}
        if stand_ins:
            known = {name: self.functions.get(name) for name in self.functions}
            self.functions = Functions({**known, **stand_ins})
        self._compile_pipelines()

    async def build(self) -> None:
        if self.state != "new":
            raise FlownbError(f"engine already built (state: {self.state})")
        from flownb.triggers import trigger_type
        from flownb.workflows import workflow_type

        try:
            order = self._create_modules()
            for spec in order:
                await self._phase(
                    self.modules[spec.name], "init", self.modules[spec.name].init(self)
                )
            self._compile_pipelines()
            for kind in type(self.config.workflows).model_fields:
                spec = getattr(self.config.workflows, kind)
                if spec is not None:
                    workflow = workflow_type(kind)(self, spec)
                    await workflow.configure()
                    self.workflows[kind] = workflow
            if "pipeline" not in self.workflows:
                self.workflows["pipeline"] = workflow_type("pipeline")(self, None)
            for kind in type(self.config.triggers).model_fields:
                spec = getattr(self.config.triggers, kind)
                if spec is not None:
                    trigger = trigger_type(kind)(self, spec)
                    await trigger.configure()
                    self.triggers.append(trigger)
        except BaseException:
            self.state = "failed"
            raise
        self.state = "built"

    async def _phase(self, module: Module[Any], phase: str, coro: Awaitable[None]) -> None:
        try:
            await coro
        except BuildError:
            self.record_operation(module.name, phase, "error")
            raise
        except (FlownbError, OSError) as exc:
            self.record_operation(module.name, phase, "error")
            raise BuildError(module.name, phase, str(exc)) from exc
        except Exception as exc:
            self.record_operation(module.name, phase, "error")
            raise BuildError(module.name, phase, exc) from exc
        self.record_operation(module.name, phase, "ok")

    async def start(self) -> None:
        """Build if needed, then start modules, workflows and triggers."""
        if self.state == "new":
            await self.build()
        if self.state != "built":
            raise FlownbError(f"cannot start an engine in state {self.state!r}")
        self.state = "starting"
        self._stopped.clear()
        try:
            for module in self.modules.values():
                await self._phase(module, "start", module.start())
                self._started_modules.append(module)
            for workflow in self.workflows.values():
                await workflow.start()
            for trigger in self.triggers:
                await trigger.start()
        except BaseException:
            await self._shutdown_modules()
            self.state = "failed"
            self._stopped.set()
            raise
        self.state = "running"
        log.info(
            "engine running: %d modules, workflows: %s",
            len(self.modules),
            ", ".join(k for k in self.workflows if k != "pipeline") or "none",
        )

    async def stop(self, timeout: float | None = None) -> bool:
        """Stop accepting work, drain in-flight executions, stop modules in reverse order.

        Returns True if every execution finished within the timeout.
        """
        if self.state in ("stopped", "new", "draining"):
            if self.state == "draining":
                await self._stopped.wait()
            return True
        self.state = "draining"
        for trigger in reversed(self.triggers):
            await self._quiet(trigger.stop(), f"trigger {trigger.kind}")
        for module in reversed(self._started_modules):
            ok = await self._quiet(module.drain(), f"module {module.name!r} drain")
            self.record_operation(module.name, "drain", "ok" if ok else "error")
        drained = await self.wait_idle(self.drain_timeout if timeout is None else timeout)
        if not drained:
            log.warning("stopping with %d executions still running", self._inflight)
        for workflow in reversed(list(self.workflows.values())):
            await self._quiet(workflow.stop(), f"workflow {workflow.kind}")
        await self._shutdown_modules()
        if self._http_client is not None:
            await self._http_client.aclose()
            self._http_client = None
        self.state = "stopped"
        self._stopped.set()
        return drained

    async def _shutdown_modules(self) -> None:
        while self._started_modules:
            module = self._started_modules.pop()
            ok = await self._quiet(module.stop(), f"module {module.name!r} stop")
            self.record_operation(module.name, "stop", "ok" if ok else "error")

    async def _quiet(self, coro: Awaitable[Any], what: str) -> bool:
        try:
            await coro
        except Exception:
            log.exception("%s failed during shutdown", what)
            return False
        return True

    async def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no execution is in flight; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def inflight(self) -> int:
        return self._inflight

    # --- observability ---------------------------------------------------------------------
    def use_metrics(self, metrics: Metrics | None = None) -> Metrics:
        """Count this engine's executions, requests and module operations (in `metrics`, or
        in a new `Metrics`); returns the metrics in use. A `metrics.collector` module calls
        this at init; a service passes its own to every engine it builds."""
        if self.metrics is None:
            if metrics is None:
                from flownb.metrics import Metrics

                metrics = Metrics()
            self.metrics = metrics
            self.observers.add(metrics)
        return self.metrics

    def record_operation(self, module: str, operation: str, status: str = "ok") -> None:
        """Count one operation of a module in `module_operations_total` (no-op without
        metrics); for modules reporting their own work, e.g. ("db", "query", "error")."""
        if self.metrics is not None:
            self.metrics.operation(module, operation, status)

    async def health(self, timeout: float = 2.0) -> Report:
        """Every module's health check, aggregated (see `flownb.health`)."""
        from flownb.health import engine_health

        return await engine_health(self, timeout)

    @property
    def accepting(self) -> bool:
        return self.state in ("running", "built", "starting")

    # --- executions -----------------------------------------------------------------
    async def trigger_workflow(
        self,
        kind: str,
        action: str,
        data: Any = None,
        *,
        request_id: str | None = None,
    ) -> Any:
        """Run `action` of workflow `kind` with `data`; every trigger calls this."""
        if not self.accepting:
            raise FlownbError(f"engine is not accepting work (state: {self.state})")
        workflow = self.workflows.get(kind)
        if workflow is None:
            raise UnknownNameError("workflow", kind, list(self.workflows))
        return await workflow.trigger(action, {} if data is None else data, request_id=request_id)

    async def execute(
        self,
        workflow: str,
        action: str,
        data: Any,
        fn: ExecFn,
        *,
        request: Any = None,
        request_id: str | None = None,
        node: str | None = None,
    ) -> ExecutionContext:
        """Run `fn` as one execution: id, observers, in-flight accounting. Re-raises errors.

        `node` names the module or pipeline doing the work, for live views and history.
        """
        ctx = ExecutionContext(
            self, workflow, action, data, request=request, request_id=request_id, node=node
        )
        observers = self.observers
        self._inflight += 1
        self._idle.clear()
        # what logs say this execution is (flownb.logs); reset below for nested executions
        execution_token = _execution_id_var.set(ctx.id)
        request_token = _request_id_var.set(request_id)
        watched = observers.active
        if watched:
            if observers.tracing:
                ctx.trace = []
            if observers.starting:
                observers.started(ctx)
        try:
            ctx.result = await fn(ctx)
            ctx.status = "ok"
        except BaseException as exc:
            ctx.status = "error"
            ctx.error = exc
            raise
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()
            if watched:
                observers.finished(ctx)
            _request_id_var.reset(request_token)
            _execution_id_var.reset(execution_token)
        return ctx

    async def run_handler(
        self,
        handler: Handler,
        data: Any,
        *,
        workflow: str,
        action: str,
        request: Any = None,
        request_id: str | None = None,
    ) -> ExecutionContext:
        """Run a handler (module or pipeline) as one execution."""
        return await self.execute(
            workflow,
            action,
            data,
            lambda ctx: handler.handle(ctx, data),
            request=request,
            request_id=request_id,
            node=getattr(handler, "name", None),
        )
