"""A config running as a long-lived service: one engine at a time, reloaded without a gap.

`EngineService` is what `flownb run` runs and what the management API drives (a notebook can
use it too). It owns what outlives any one engine: the execution history, the metrics, the
stores (state-machine instances, resources, schedules, dead letters) and the listening
sockets (`flownb.http.listener.Listeners`).

A reload builds and starts the new engine beside the running one; the new engine's HTTP
servers attach to the sockets already open and wait. Once it has started, the sockets switch
to it in one step (`Listeners.promote`), and only then does the old engine drain (in-flight
executions finish on the old engine) and stop. A config that fails to build or start leaves
the old engine serving, untouched. Reloads are serialised, and each one (and each failed one)
is recorded as an audit event: who, when, and what changed.

While both engines run (from the new one's start to the old one's stop), both consume from
their brokers and both schedulers tick; in-memory brokers do not carry messages over.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from flownb.config import Config
from flownb.engine import Engine
from flownb.errors import FlownbError
from flownb.history import AuditEvent, Capture, HistoryRecorder, HistoryStore
from flownb.metrics import Metrics
from flownb.stores import Stores

if TYPE_CHECKING:
    from flownb.functions import Functions
    from flownb.http.listener import Listeners
    from flownb.registry import Registry

log = logging.getLogger("flownb.service")

State = Literal["new", "starting", "running", "reloading", "stopping", "stopped", "failed"]
SECTIONS = ("modules", "pipelines", "workflows", "triggers")


@dataclass
class Reload:
    """What a reload did."""

    revision: int
    summary: str
    changes: dict[str, dict[str, list[str]]]
    drained: bool
    seconds: float
    at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "summary": self.summary,
            "changes": self.changes,
            "drained": self.drained,
            "seconds": round(self.seconds, 4),
            "at": self.at,
        }


def _named(section: str, value: Any) -> dict[str, Any]:
    """A config section as name -> item (modules are a list of named items)."""
    if section == "modules" and isinstance(value, list):
        return {str(m.get("name")): m for m in value if isinstance(m, dict)}
    return dict(value) if isinstance(value, dict) else {}


def config_diff(old: Config | None, new: Config) -> dict[str, dict[str, list[str]]]:
    """Per section: the names added, removed and changed between two configs."""
    before = old.model_dump(mode="json", by_alias=True, exclude_unset=True) if old else {}
    after = new.model_dump(mode="json", by_alias=True, exclude_unset=True)
    out: dict[str, dict[str, list[str]]] = {}
    for section in SECTIONS:
        a, b = _named(section, before.get(section)), _named(section, after.get(section))
        diff = {
            "added": sorted(set(b) - set(a)),
            "removed": sorted(set(a) - set(b)),
            "changed": sorted(k for k in set(a) & set(b) if a[k] != b[k]),
        }
        if any(diff.values()):
            out[section] = diff
    return out


def diff_summary(changes: dict[str, dict[str, list[str]]]) -> str:
    """One line: `modules +a -b ~c; pipelines ~hello`, or `no changes`."""
    parts = []
    for section, diff in changes.items():
        marks = [f"+{n}" for n in diff["added"]]
        marks += [f"-{n}" for n in diff["removed"]]
        marks += [f"~{n}" for n in diff["changed"]]
        parts.append(f"{section} {' '.join(marks)}")
    return "; ".join(parts) or "no changes"


class EngineService:
    """Runs a config; `reload` swaps in a new one without dropping requests (see above).

    `history` (optional) records every execution (`capture`: what of its data, see
    `HistoryRecorder`) and the audit log; the service closes
    neither the history nor anything else it was given. Extra keyword arguments go to every
    `Engine` it builds.
    """

    def __init__(
        self,
        config: Config,
        *,
        functions: Functions | Mapping[str, Callable[..., Any]] | None = None,
        registry: Registry | None = None,
        history: HistoryStore | None = None,
        stores: Stores | None = None,
        metrics: Metrics | None = None,
        drain_timeout: float = 30.0,
        environ: Mapping[str, str] | None = None,
        capture: Capture = "steps",
        **engine_kwargs: Any,
    ) -> None:
        from flownb.http.listener import Listeners
        from flownb.registry import default_registry

        self.config = config
        self.path: str | None = config.path
        self.functions = functions
        self.registry = registry or default_registry()
        self.history = history
        if stores is None:
            dead_letters = getattr(history, "dead_letters", None)
            stores = Stores(dead_letters=dead_letters) if dead_letters is not None else Stores()
        self.stores = stores
        self.metrics = metrics or Metrics()
        self.listeners: Listeners = Listeners()
        self.drain_timeout = drain_timeout
        self.environ = environ
        self.engine_kwargs = engine_kwargs
        self.engine: Engine | None = None
        self.state: State = "new"
        self.revision = 0
        self.started_at: float | None = None
        self.last_reload: Reload | None = None
        self._recorder = HistoryRecorder(history, capture=capture) if history is not None else None
        self._lock = asyncio.Lock()

    # --- building engines ------------------------------------------------------------------
    def _engine(self, config: Config) -> Engine:
        observers = [self._recorder] if self._recorder is not None else []
        return Engine(
            config,
            registry=self.registry,
            functions=self.functions,
            stores=self.stores,
            observers=observers,
            drain_timeout=self.drain_timeout,
            metrics=self.metrics,
            listeners=self.listeners,
            **self.engine_kwargs,
        )

    def parse(self, source: str | Mapping[str, Any], *, filename: str = "<api>") -> Config:
        """A config from YAML/JSON text or JSON data, validated and dry-built (`ConfigError`
        with every problem otherwise); `${VAR}` expands and `imports` resolve beside the
        service's config file."""
        import orjson

        from flownb.loader import parse_config

        text = source if isinstance(source, str) else orjson.dumps(source).decode()
        base = Path(self.path).resolve().parent if self.path else None
        config = parse_config(
            text, filename=filename, base_dir=base, registry=self.registry, environ=self.environ
        )
        self.check(config)
        return config

    def check(self, config: Config) -> None:
        """The dry build `flownb validate` does: modules created, pipelines compiled."""
        Engine(config, registry=self.registry, functions=self.functions).check()

    def read_file(self) -> Config:
        """The service's config file as it is on disk now."""
        from flownb.loader import load_config

        if self.path is None:
            raise FlownbError("this service was not started from a file; send the config")
        config = load_config(self.path, registry=self.registry, environ=self.environ)
        self.check(config)
        return config

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        if self.engine is not None:
            raise FlownbError(f"the service is already {self.state}")
        self.state = "starting"
        engine = self._engine(self.config)
        try:
            await engine.start()
        except BaseException:
            self.state = "failed"
            raise
        self.engine, self.state, self.revision = engine, "running", 1
        self.started_at = time.time()

    async def stop(self, timeout: float | None = None) -> bool:
        """Drain and stop the engine; True if every execution finished in time."""
        async with self._lock:
            engine = self.engine
            if engine is None:
                self.state = "stopped"
                return True
            self.state = "stopping"
            try:
                return await engine.stop(timeout)
            finally:
                self.engine, self.state = None, "stopped"

    async def reload(
        self,
        config: Config | None = None,
        *,
        actor: str = "unknown",
        reason: str | None = None,
    ) -> Reload:
        """Swap in `config` (default: the config file read again); see the module docstring.

        Raises `ConfigError` / `BuildError` / `FlownbError` when the new config cannot run; the
        running engine then goes on untouched.
        """
        async with self._lock:
            old = self.engine
            if old is None or self.state != "running":
                raise FlownbError(f"cannot reload: the service is {self.state}")
            began = time.perf_counter()
            target = self.path or "<config>"
            try:
                new_config = config if config is not None else self.read_file()
                changes = config_diff(self.config, new_config)
                new = self._engine(new_config)
                self.state = "reloading"
                try:
                    await new.start()
                finally:
                    self.state = "running"
            except Exception as exc:
                self._audit(actor, "config.reload.failed", target, str(exc), {"reason": reason})
                raise
            self.listeners.promote()  # from here on, requests reach the new engine
            self.engine, self.config = new, new_config
            self.revision += 1
            drained = await old.stop()
            result = Reload(
                self.revision,
                diff_summary(changes),
                changes,
                drained,
                time.perf_counter() - began,
            )
            self.last_reload = result
            self._audit(
                actor,
                "config.reload",
                target,
                result.summary,
                {"revision": self.revision, "changes": changes, "reason": reason},
            )
            log.info("reloaded (revision %d): %s", self.revision, result.summary)
            return result

    def _audit(
        self, actor: str, action: str, target: str, summary: str, details: dict[str, Any]
    ) -> None:
        if self.history is not None:
            self.history.add_audit(AuditEvent(actor, action, target, summary, details))

    def audit(self, actor: str, action: str, target: str, summary: str, **details: Any) -> None:
        """Record a change made to the service (the API records component edits this way)."""
        self._audit(actor, action, target, summary, details)

    def save(self, config: Config) -> None:
        """Write `config` to the service's file (YAML; `${VAR}` kept where it came from)."""
        from flownb.loader import dump_config

        if self.path is None:
            raise FlownbError("this service was not started from a file: nothing to save to")
        file = Path(self.path)
        temporary = file.with_name(f".{file.name}.{os.getpid()}.tmp")
        temporary.write_text(dump_config(config), encoding="utf-8")
        temporary.replace(file)

    # --- reading ----------------------------------------------------------------------------
    @property
    def uptime(self) -> float:
        return 0.0 if self.started_at is None else time.time() - self.started_at

    def status(self) -> dict[str, Any]:
        from flownb.runner import served_urls

        engine = self.engine
        return {
            "state": self.state,
            "engineState": engine.state if engine is not None else "stopped",
            "revision": self.revision,
            "config": self.path,
            "startedAt": self.started_at,
            "uptimeSeconds": round(self.uptime, 3),
            "modules": [{"name": m.name, "type": m.type} for m in self.config.modules],
            "workflows": [k for k in (engine.workflows if engine else {}) if k != "pipeline"],
            "pipelines": list(self.config.pipelines),
            "servers": dict(served_urls(engine)) if engine is not None else {},
            "inflight": engine.inflight if engine is not None else 0,
            "lastReload": self.last_reload.to_dict() if self.last_reload else None,
        }
