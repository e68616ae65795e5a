"""`flownb.Workflow`: one workflow config, edited and run inside a notebook kernel.

A Workflow holds the config being edited (`raw`, JSON, possibly invalid, `${VAR}` kept as
written), its canvas positions (`layout`), the last config that validated (`config`) and the
problems of the current one (`diagnostics`, pinned to canvas node ids). Every edit, from
Python (`update`, `config = ...`, `layout = ...`) or from a canvas (`apply_patch`), is
validated the way `flownb run` would (schema, cross-references, a dry build of the engine);
an edit that does not validate is kept in `raw` and reported, and never reaches an engine.
It is a `traitlets.HasTraits`, so `wf.observe(callback, names=["config"])` works.

It also runs: `start` / `stop` / `restart` schedule on the running event loop (the kernel's)
and return a task, so later cells are not blocked; with no running loop (a script) the
engine runs on a `flownb.SyncEngine` background thread and the calls block. A running engine
keeps the config it started with until `restart`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import traitlets
import yaml

from flownb import graph
from flownb.config import Config
from flownb.deadletters import replay_dead_letter
from flownb.engine import Engine
from flownb.errors import BuildError, ConfigError, Diagnostic, FlownbError, Loc
from flownb.functions import Functions
from flownb.history import (
    HistoryRecorder,
    HistoryStore,
    MemoryHistory,
    history_table,
    read_history,
)
from flownb.hosting import (
    EngineHost,
    running_loop,
    send_trigger,
    server_urls,
    split_http_target,
)
from flownb.live import LiveStats
from flownb.loader import _merge_imports, dump_config, layout_path, validate_source
from flownb.rawconfig import (
    Problem,
    clean_layout,
    expand,
    layout_model,
    merge_layout,
    plain,
    raw_of,
)
from flownb.registry import Registry, default_registry
from flownb.serving import ServeLimits, ServeResult, Until, effective_limits, watch
from flownb.yamlsource import Source, SourceMap, parse_yaml

log = logging.getLogger("flownb.workflow")

LayoutMode = Literal["inline", "file", "none"]

__all__ = [
    "LayoutMode",
    "PatchError",
    "RevisionConflict",
    "View",
    "Workflow",
    "split_http_target",
]


class RevisionConflict(FlownbError):
    """An edit was made against an older revision than the workflow's: it is refused."""

    def __init__(self, base: int, current: int) -> None:
        self.base, self.current = base, current
        super().__init__(
            f"edit made on revision {base}, but the workflow is at revision {current}; "
            "reload and edit again"
        )


class PatchError(FlownbError):
    """An edit that cannot be applied at all (a malformed JSON Patch or layout)."""


class View(Protocol):
    """Something showing a workflow (a canvas), told after every change."""

    def workflow_changed(self, origin: object | None) -> None: ...


@dataclass
class _Verdict:
    config: Config | None
    problems: list[Problem]
    data: Mapping[str, Any]  # the checked data (expanded, imports merged): for node ids


class Workflow(traitlets.HasTraits):
    """A workflow config being edited, validated and run; see the module docstring.

    `source` is a `Config`, a dict (the JSON form), YAML text, or a path to a workflow file
    (with its `layout:` block or `NAME.layout.yaml` sidecar). `functions` defaults to the
    kernel's components (`flownb.components.registry`); `environ` is what `${VAR}` expands
    from (default: the process environment); `history` is where executions are recorded:
    the last 1,000 in memory by default, `history=True` for the data directory's durable
    store shared with `flownb run` and `flownb history`, or a database URL.
    """

    config = traitlets.Instance(Config, allow_none=True, help="the last config that validated")
    raw = traitlets.Dict(read_only=True, help="the config being edited, as JSON; may be invalid")
    layout = traitlets.Dict(help="canvas positions: {node id: {x, y}}")
    diagnostics: traitlets.List[dict[str, Any]] = traitlets.List(
        read_only=True, help="problems of `raw`, pinned to node ids"
    )
    revision = traitlets.Int(0, read_only=True, help="bumped by every accepted change")
    running = traitlets.Bool(False, read_only=True, help="an engine runs this workflow")

    def __init__(
        self,
        source: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        *,
        name: str | None = None,
        filename: str = "<config>",
        base_dir: str | os.PathLike[str] | None = None,
        functions: Functions | Mapping[str, Callable[..., Any]] | None = None,
        registry: Registry | None = None,
        environ: Mapping[str, str] | None = None,
        history: HistoryStore | str | bool | None = None,
        drain_timeout: float = 10.0,
    ) -> None:
        super().__init__()
        from flownb.components import ComponentRegistry
        from flownb.components import registry as components

        self.name = name or "workflow"
        self.drain_timeout = drain_timeout
        self.registry = registry or default_registry()
        if functions is None:
            self.functions: Functions = components
        else:
            self.functions = functions if isinstance(functions, Functions) else Functions(functions)
        if isinstance(self.functions, ComponentRegistry):
            self.functions.watch(self._function_changed)
        self.store: HistoryStore = history_store(history)
        self.live = LiveStats()
        self._recorder = HistoryRecorder(self.store)
        self._environ = environ
        self._base_dir = Path(base_dir) if base_dir is not None else None
        self._path: Path | None = None
        self._layout_mode: LayoutMode | None = None
        self._positions: SourceMap | None = None  # YAML positions, while raw is as loaded
        self._problems: list[Problem] = []
        self._data: Mapping[str, Any] = {}
        self._internal = False
        self._views: weakref.WeakSet[Any] = weakref.WeakSet()
        self._schema: dict[str, Any] | None = None
        if source is None:
            self._accept({}, {}, self._check(expand({}, self._env(), filename)), bump=False)
        elif isinstance(source, Config):
            self._assign_config(source, None, bump=False)
        elif isinstance(source, Mapping):
            self._update_dict(source, filename, bump=False)
        elif isinstance(source, os.PathLike) or _looks_like_path(source):
            self._load_file(Path(source), rename=name is None, bump=False)
        else:
            self._update_yaml(source, filename, bump=False)
        self._host = EngineHost(self.name, self._prepare, self._on_host)

    # --- reading the state ----------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        """The workflow file, when loaded from or saved to one."""
        return self._path

    @property
    def valid(self) -> bool:
        return not self._problems and self.config is not None

    @property
    def error(self) -> ConfigError | None:
        """The current problems as one error (FILE:LINE:COL lines), or None when valid."""
        return ConfigError([d for d, _ in self._problems]) if self._problems else None

    def __repr__(self) -> str:
        raw = self.raw
        modules = raw.get("modules")
        pipelines = raw.get("pipelines")
        parts = [
            _plural(len(modules) if isinstance(modules, list) else 0, "module"),
            _plural(len(pipelines) if isinstance(pipelines, dict) else 0, "pipeline"),
        ]
        state = _plural(len(self._problems), "error") if self._problems else "valid"
        run = "running" if self.running else "stopped"
        return (
            f"<Workflow {self.name!r} revision {self.revision}: {', '.join(parts)}; {state}; {run}>"
        )

    # --- loading and editing ---------------------------------------------------------------
    def update(self, source: Config | Mapping[str, Any] | str, *, filename: str = "<yaml>") -> int:
        """Replace the whole config (YAML text, a dict or a Config); returns the revision.

        A `layout` in the new source replaces the positions; otherwise they are kept.
        """
        if isinstance(source, Config):
            self._assign_config(source, self.config)
        elif isinstance(source, Mapping):
            self._update_dict(source, filename)
        elif isinstance(source, str):
            self._update_yaml(source, filename)
        else:
            raise TypeError(f"update() takes YAML text, a dict or a Config, not {source!r}")
        return self.revision

    def load(self, path: str | os.PathLike[str]) -> int:
        """Replace the config with a workflow file's (and its positions); `save` writes there.
        Returns the revision."""
        self._base_dir = None
        self._load_file(Path(path), rename=False)
        return self.revision

    def apply_patch(
        self,
        ops: Sequence[Mapping[str, Any]],
        *,
        layout: Mapping[str, Any] | None = None,
        base: int | None = None,
        origin: object | None = None,
    ) -> int:
        """Apply RFC 6902 JSON Patch `ops` to `raw` and layout changes (`None` deletes).

        `base` is the revision the edit was made on; a stale one raises `RevisionConflict`.
        A malformed patch raises `PatchError` and changes nothing. Otherwise the edit is
        kept, valid or not, and validated. `origin` is the view that made it: it is not
        sent the change back. Returns the new revision.
        """
        import jsonpatch
        import jsonpointer

        if base is not None and base != self.revision:
            raise RevisionConflict(base, self.revision)
        new_layout = _layout_edit(self.layout, layout) if layout else None
        if ops:
            try:
                new_raw = jsonpatch.apply_patch(self.raw, list(ops), in_place=False)
            except (
                jsonpatch.JsonPatchException,
                jsonpointer.JsonPointerException,
                TypeError,
                KeyError,
                ValueError,
            ) as exc:
                raise PatchError(f"cannot apply the edit: {exc}") from None
            if not isinstance(new_raw, dict):
                raise PatchError("cannot apply the edit: the config must stay a mapping")
            self._positions = None
            layout_now = new_layout if new_layout is not None else dict(self.layout)
            verdict = self._check(expand(new_raw, self._env(), "<canvas>"))
            self._accept(new_raw, layout_now, verdict, origin=origin)
        elif new_layout is not None:
            self._accept_layout(new_layout, origin=origin)
        return self.revision

    def validate(self) -> list[dict[str, Any]]:
        """Validate `raw` again (e.g. after registering a component); returns diagnostics."""
        verdict = self._check(expand(self.raw, self._env(), "<config>", self._positions))
        if verdict.config is not None:
            verdict.config.layout = layout_model(self.layout)
        if verdict.config is not None and verdict.config == self.config:
            verdict.config = self.config  # same config: keep the object, observers stay quiet
        self._accept(dict(self.raw), dict(self.layout), verdict, bump=False)
        return list(self.diagnostics)

    def to_yaml(self, layout: bool = True) -> str:
        """The config as YAML, `${VAR}` references as written, positions as a `layout:` block."""
        data: dict[str, Any] = dict(self.raw)
        if layout and self.layout:
            data["layout"] = dict(self.layout)
        if not data:
            return ""
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)

    def save(
        self, path: str | os.PathLike[str] | None = None, layout: LayoutMode | None = None
    ) -> Path:
        """Write the config (as edited, even if invalid) to `path` (default: its own file).

        `layout`: "inline" (a `layout:` block), "file" (a `NAME.layout.yaml` beside it) or
        "none"; default: as the workflow was loaded, else "file", which keeps positions out
        of the workflow's diffs.
        """
        target = Path(path) if path is not None else self._path
        if target is None:
            raise FlownbError(f"workflow {self.name!r} has no file yet; pass save(path)")
        mode: LayoutMode = layout or self._layout_mode or "file"
        if mode not in ("inline", "file", "none"):
            raise FlownbError(f"save(layout=...) is 'inline', 'file' or 'none', not {mode!r}")
        _write(target, self.to_yaml(layout=mode == "inline"))
        if mode == "file":
            positions = yaml.safe_dump(dict(self.layout), sort_keys=False, width=100)
            _write(layout_path(target), positions)
        self._path, self._layout_mode = target, mode
        if self._base_dir is None:
            self._base_dir = target.parent
        return target

    # --- traits set from Python -------------------------------------------------------------
    @traitlets.observe("config")
    def _config_set(self, change: dict[str, Any]) -> None:
        if self._internal or change["new"] is None:
            return
        self._assign_config(change["new"], change["old"])

    @traitlets.observe("layout")
    def _layout_set(self, change: dict[str, Any]) -> None:
        if self._internal:
            return
        self._accept_layout(dict(change["new"]), origin=None)

    @traitlets.validate("layout")
    def _layout_valid(self, proposal: Any) -> Any:
        value = proposal["value"]
        return value if self._internal else _layout_edit({}, value)

    # --- validation internals ---------------------------------------------------------------
    def _env(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    def _load_file(self, file: Path, *, rename: bool, bump: bool = True) -> None:
        display = _display(file)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise FlownbError(
                f"cannot read workflow file {display}: {exc.strerror or exc}"
            ) from None
        except UnicodeDecodeError:
            raise FlownbError(f"workflow file {display} is not UTF-8 text") from None
        self._path = file
        if self._base_dir is None:
            self._base_dir = file.parent
        if rename:
            self.name = file.name.removesuffix(file.suffix)
        source = parse_yaml(text, display, self._env())
        data = source.data
        sidecar = layout_path(file)
        if isinstance(data, dict) and "layout" in data:
            self._layout_mode = "inline"
        elif isinstance(data, dict) and sidecar.exists():
            self._layout_mode = "file"
            side = parse_yaml(sidecar.read_text(encoding="utf-8"), _display(sidecar), {})
            source.diagnostics.extend(side.diagnostics)
            if side.data is not None:
                data["layout"] = side.data
                source.map.merge(side.map, (), ("layout",))
        else:
            self._layout_mode = None
        self._update_source(source, bump=bump)

    def _update_yaml(self, text: str, filename: str, *, bump: bool = True) -> None:
        self._update_source(parse_yaml(text, filename, self._env()), bump=bump)

    def _update_source(self, source: Source, *, bump: bool = True) -> None:
        if source.data is None and source.diagnostics:  # not YAML: nothing to keep in raw
            verdict = _Verdict(None, [(d, "schema") for d in source.diagnostics], {})
            self._accept(dict(self.raw), dict(self.layout), verdict, bump=False)
            return
        raw = raw_of(source)
        layout = dict(self.layout)
        problems: list[Problem] = []
        if isinstance(source.data, dict) and "layout" in source.data:
            raw.pop("layout", None)
            layout, problems = clean_layout(plain(source.data.pop("layout")), source.map)
        smap = source.map
        self._positions = SourceMap(
            dict(smap.values), dict(smap.keys), default_file=smap.default_file
        )
        verdict = self._check(source)
        if problems:
            verdict.problems[:0] = problems
            verdict.config = None
        self._accept(raw, layout, verdict, bump=bump)

    def _update_dict(self, data: Mapping[str, Any], filename: str, *, bump: bool = True) -> None:
        raw = plain(dict(data))
        layout = dict(self.layout)
        problems: list[Problem] = []
        if "layout" in raw:
            layout, problems = clean_layout(raw.pop("layout"), SourceMap(default_file=filename))
        self._positions = None
        verdict = self._check(expand(raw, self._env(), filename))
        if problems:
            verdict.problems[:0] = problems
            verdict.config = None
        self._accept(raw, layout, verdict, bump=bump)

    def _assign_config(self, config: Config, previous: Config | None, *, bump: bool = True) -> None:
        """`wf.config = config` (or a Config given to the constructor / `update`)."""
        raw = plain(yaml.safe_load(dump_config(config)) or {})
        layout = dict(self.layout)
        if "layout" in raw:
            layout, _ = clean_layout(raw.pop("layout"), SourceMap())
        self._positions = None
        verdict = self._check(expand(raw, self._env(), config.path or "<config>"))
        if verdict.config is not None:
            verdict.config = config  # keep the object the user gave
        elif previous is not config:
            verdict.config = previous  # `config` holds the last one that validated
        self._accept(raw, layout, verdict, bump=bump, force_config=True)

    def _check(self, source: Source) -> _Verdict:
        """Schema, cross-references, then a dry build: everything `flownb run` would check."""
        if isinstance(source.data, dict) and "imports" in source.data:
            base = self._base_dir or Path.cwd()
            source = _merge_imports(source, base, self._env(), stack=())
        config, found = validate_source(source, self.registry)
        problems: list[Problem] = [(d, "schema") for d in found]
        data = source.data if isinstance(source.data, dict) else {}
        if config is not None:
            problems.extend(self._dry_build(config))
            if problems:
                config = None
        return _Verdict(config, problems, data)

    def _dry_build(self, config: Config) -> list[Problem]:
        try:
            Engine(config, registry=self.registry, functions=self.functions).check()
        except ConfigError as exc:
            return [(d, "engine") for d in exc.diagnostics]
        except BuildError as exc:
            return [(config.diagnostic(_module_loc(config, exc.module), str(exc)), "engine")]
        except FlownbError as exc:
            return [(config.diagnostic((), str(exc)), "engine")]
        except Exception as exc:  # a module factory's own bug: still the user's to see
            message = f"{type(exc).__name__}: {exc}"
            return [(config.diagnostic((), message), "engine")]
        return []

    def _accept(
        self,
        raw: dict[str, Any],
        layout: dict[str, Any],
        verdict: _Verdict,
        *,
        origin: object | None = None,
        bump: bool = True,
        force_config: bool = False,
    ) -> None:
        config = verdict.config
        if config is not None:
            config.layout = layout_model(layout)
        self._problems = verdict.problems
        self._data = verdict.data
        diagnostics = [graph.diagnostic_dict(d, verdict.data, s) for d, s in verdict.problems]
        with self._changing():
            self.set_trait("raw", raw)
            self.layout = layout
            if config is not None or force_config:
                self.config = config
            self.set_trait("diagnostics", diagnostics)
            if bump:
                self.set_trait("revision", self.revision + 1)
        self._notify(origin)

    def _accept_layout(self, layout: dict[str, Any], *, origin: object | None) -> None:
        if self.config is not None:
            self.config.layout = layout_model(layout)
        with self._changing():
            self.layout = layout
            self.set_trait("revision", self.revision + 1)
        self._notify(origin)

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """Trait changes made here are the workflow's own, not user assignments to react to."""
        outer, self._internal = self._internal, True
        try:
            with self.hold_trait_notifications():
                yield
        finally:
            self._internal = outer

    def _function_changed(self, name: str) -> None:
        if any(source == "engine" for _, source in self._problems):
            self.validate()

    def report(self, message: str, loc: Loc = (), *, source: str = "engine") -> None:
        """Add a problem found outside validation (a failed start or save) to `diagnostics`;
        the next validation clears it."""
        config = self.config
        if config is not None:
            diag = config.diagnostic(loc, message)
        else:
            diag = Diagnostic(str(self._path or "<config>"), 1, 1, loc, message)
        self._problems = [*self._problems, (diag, source)]
        entry = graph.diagnostic_dict(diag, self._data, source)
        with self._changing():
            self.set_trait("diagnostics", [*self.diagnostics, entry])
        self._notify(None)

    # --- views (canvases) --------------------------------------------------------------------
    def attach(self, view: View) -> None:
        """Tell `view` about every change from now on (a canvas calls this)."""
        self._views.add(view)

    def detach(self, view: View) -> None:
        self._views.discard(view)

    def _notify(self, origin: object | None) -> None:
        for view in list(self._views):
            try:
                view.workflow_changed(origin)
            except Exception:
                log.exception("view %r failed to update", view)

    def schema(self) -> dict[str, Any]:
        """What the canvas' palette and forms read: every type's schema and the file schema."""
        if self._schema is None:
            from flownb.schema import file_schema

            types = self.registry.json_schema()
            self._schema = {
                "types": types["types"],
                "categories": types["categories"],
                "file": file_schema(self.registry),
            }
        return self._schema

    def canvas(self) -> Any:
        """A new `flownb.Canvas` bound to this workflow."""
        from flownb.canvas import Canvas

        return Canvas(self)

    def summary(self) -> str:
        """One line about the workflow, then its problems (FILE:LINE:COL lines)."""
        lines = [repr(self), *(str(d) for d, _ in self._problems)]
        return "\n".join(lines)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        """In a notebook a workflow shows as its canvas (or says why it cannot)."""
        try:
            canvas = self.canvas()
        except (ImportError, FlownbError) as exc:
            return {"text/plain": f"{self.summary()}\n(no canvas: {exc})"}
        return canvas._repr_mimebundle_(include=include, exclude=exclude)

    def inspect(self, node_id: str) -> dict[str, Any]:
        """The last input, output and error of a node (`module:NAME` / `pipeline:NAME`)."""
        return self.live.inspect(node_id)

    def history(
        self, limit: int = 20, status: str | None = None, workflow: str | None = None
    ) -> Any:
        """Recent executions, newest first: a pandas DataFrame (step timings as `step:NAME`
        columns) when pandas is installed, else a list of dicts. `workflow` keeps one
        workflow type (http, messaging, pipeline...). Works in a cell and in a script, with
        the memory store and the durable one alike."""
        records = read_history(self.store, limit=limit, status=status, workflow=workflow)
        return history_table(records)

    # --- running -------------------------------------------------------------------------------
    @property
    def engine(self) -> Engine | None:
        """The running engine, if any."""
        return self._host.engine

    def start(self) -> asyncio.Future[None] | None:
        """Start an engine on the config; a task on the running loop, else blocks (see top).

        An invalid config raises `ConfigError`; a module failing to start is also reported
        in `diagnostics`, on its node.
        """
        return self._lifecycle("start")

    def stop(self, timeout: float | None = None) -> asyncio.Future[None] | None:
        """Stop the engine (in-flight executions drain first, up to `timeout` seconds)."""
        return self._host.lifecycle("stop", timeout)

    def restart(self) -> asyncio.Future[None] | None:
        """Stop, then start on the current config (how edits reach a running workflow)."""
        return self._lifecycle("restart")

    async def wait(self) -> None:
        """Wait for every start, stop and send scheduled so far (and see their errors)."""
        await self._host.wait()

    def serve(
        self,
        seconds: float | str | None = None,
        executions: int | None = None,
        until: Until | None = None,
        *,
        stop: bool = True,
    ) -> Any:
        """Run the workflow until a limit is reached, then stop it (`stop=False`: keep it).

        Limits: `seconds`, `executions` finished from now, or `until` (an expression such as
        `"last.status == 'error'"`, or a callable taking the `ServeProgress`); none means
        until interrupted. A headless runner's `--serve` / `--until-executions` / `--until`
        replace them (see `flownb.serving`). In a kernel this returns a task: `await
        wf.serve(seconds=30)` holds the cell while the workflow serves. With no running loop
        it blocks. Returns a `ServeResult`.
        """
        limits = effective_limits(ServeLimits.of(seconds, executions, until))
        if running_loop() is None:
            return self._serve_blocking(limits, stop)

        async def run() -> ServeResult:
            if not self.running:
                await self._awaitable(self.start())
            engine = self._host.engine
            if engine is None:
                raise FlownbError(f"workflow {self.name!r} did not start")
            try:
                return await watch(engine, self.name, limits)
            finally:
                if stop:
                    await self._awaitable(self.stop())

        task = asyncio.get_running_loop().create_task(run(), name=f"flownb serve {self.name}")
        self._host.track(task, "serve")
        return task

    def _serve_blocking(self, limits: ServeLimits, stop: bool) -> ServeResult:
        if not self.running:
            self.start()
        engine, loop = self._host.engine, self._host.loop
        if engine is None or loop is None:
            raise FlownbError(f"workflow {self.name!r} did not start")
        future = asyncio.run_coroutine_threadsafe(watch(engine, self.name, limits), loop)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            raise
        finally:
            if stop:
                self.stop()

    @staticmethod
    async def _awaitable(result: asyncio.Future[None] | None) -> None:
        if result is not None:
            await result

    def status(self) -> dict[str, Any]:
        """State, HTTP servers' URLs, modules, in-flight executions, pending changes."""
        engine = self._host.engine
        config = self._host.config if engine is not None else self.config
        if engine is not None:
            state: str = engine.state
        else:
            state = "stopped" if self.valid else "invalid"
        return {
            "name": self.name,
            "state": state,
            "running": self.running,
            "revision": self.revision,
            "errors": len(self._problems),
            "stale": engine is not None and self._host.config != self.config,
            "servers": server_urls(engine) if engine is not None else {},
            "modules": [m.name for m in config.modules] if config is not None else [],
            "inflight": engine.inflight if engine is not None else 0,
        }

    def send(
        self,
        kind: str,
        target: str,
        data: Any = None,
        *,
        server: str | None = None,
        broker: str | None = None,
        timeout: float | None = 30.0,
    ) -> Any:
        """Fire a trigger at the running workflow and return its result.

        `kind` "http": a real request to the workflow's server, `target` "METHOD /path?q"
        (GET if no method), `data` the JSON body; returns the `httpx.Response`. "topic":
        publish `data` on topic `target` (through the messaging workflow, else the only
        broker, or `broker`). Any workflow kind ("pipeline", "statemachine", "event",
        "scheduler", "integration"): `Engine.trigger_workflow(kind, target, data)`.
        On the engine's own loop this returns a task to await; elsewhere it blocks.
        """
        engine = self._host.engine
        if engine is None:
            raise FlownbError(
                f"workflow {self.name!r} is not running; start it first "
                f"(wf.start(), or %workflow run {self.name})"
            )
        coro = send_trigger(engine, kind, target, data, server=server, broker=broker)
        return self._host.run(coro, timeout)

    def dead_letters(
        self,
        limit: int = 100,
        *,
        kind: str | None = None,
        include_replayed: bool = False,
        timeout: float | None = 30.0,
    ) -> Any:
        """Work the running workflow gave up on (a webhook whose target kept failing...),
        newest first, as dicts. On the engine's own loop this returns a task to await."""
        engine = self._dead_letter_engine()

        async def read() -> list[dict[str, Any]]:
            found = await engine.stores.dead_letters.list(
                kind=kind, include_replayed=include_replayed, limit=limit
            )
            return [letter.to_dict() for letter in found]

        return self._host.run(read(), timeout)

    def replay(self, letter_id: str, *, force: bool = False, timeout: float | None = 60.0) -> Any:
        """Send dead letter `letter_id` again through the module that produced it; returns
        what that module reports (a task to await on the engine's loop)."""
        engine = self._dead_letter_engine()

        async def run() -> Any:
            _, outcome = await replay_dead_letter(engine, letter_id, force=force)
            return outcome

        return self._host.run(run(), timeout)

    def _dead_letter_engine(self) -> Engine:
        engine = self._host.engine
        if engine is None:
            raise FlownbError(
                f"workflow {self.name!r} is not running; start it first "
                f"(wf.start(), or %workflow run {self.name})"
            )
        return engine

    def _lifecycle(self, op: str) -> asyncio.Future[None] | None:
        try:
            task = self._host.lifecycle(op)
        except BuildError as exc:  # blocking mode
            self._start_failed(exc)
            raise
        if task is not None:
            task.add_done_callback(self._start_done)
        return task

    def _start_done(self, task: asyncio.Future[None]) -> None:
        if not task.cancelled():
            self._start_failed(task.exception())

    def _start_failed(self, exc: BaseException | None) -> None:
        """A module that failed to start is pinned to its node (a port in use, say)."""
        config = self.config
        if isinstance(exc, BuildError) and config is not None:
            self.report(str(exc), _module_loc(config, exc.module))

    def _prepare(self) -> tuple[Config, dict[str, Any]]:
        """What the host starts: the config (checked again first) and the engine's options."""
        if self._problems:
            self.validate()  # a component may have been defined since
        error = self.error
        if error is not None:
            raise error
        config = self.config
        if config is None:
            raise FlownbError(f"workflow {self.name!r} has no valid config to run")
        if config.path is None and self._path is not None:
            config._path = str(self._path)  # relative paths (components) resolve beside the file
        self.live.bind(graph.handler_ids(_names(config)))
        options = {
            "registry": self.registry,
            "functions": self.functions,
            "observers": [self.live, self._recorder],
            "drain_timeout": self.drain_timeout,
        }
        return config, options

    def _on_host(self, running: bool) -> None:
        if not running:
            self.live.cancel()
            self.live.flush()
        with self._changing():
            self.set_trait("running", running)
        self._notify(None)


# --- helpers -----------------------------------------------------------------------------------
def _looks_like_path(text: str) -> bool:
    one_line = "\n" not in text and not text.lstrip().startswith(("{", "["))
    return one_line and text.strip().endswith((".yaml", ".yml"))


def _display(file: Path) -> str:
    try:
        return str(file.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(file)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _write(path: Path, text: str) -> None:
    """Write through a temporary file, so a failed save never leaves half a workflow."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _names(config: Config) -> dict[str, Any]:
    return {
        "modules": [{"name": m.name} for m in config.modules],
        "pipelines": dict.fromkeys(config.pipelines),
    }


def _layout_edit(layout: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return merge_layout(layout, changes)
    except ValueError as exc:
        raise PatchError(str(exc)) from None


def _module_loc(config: Config, name: str) -> Loc:
    for i, spec in enumerate(config.modules):
        if spec.name == name:
            return ("modules", i)
    return ()


def history_store(history: HistoryStore | str | bool | None) -> HistoryStore:
    """A workflow's history: the last executions in memory (None, the default), the data
    directory's durable store that `flownb run` and `flownb history` use (True), the durable
    store at a database URL (a string), or the store given."""
    if history is None or history is False:
        return MemoryHistory()
    if history is True or isinstance(history, str):
        from flownb.historydb import open_history

        return open_history(None if history is True else history)
    return history
