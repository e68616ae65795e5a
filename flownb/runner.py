"""Run a config as a service: start, serve until SIGINT/SIGTERM, drain, stop, exit code.

This is what `flownb run CONFIG` does. The config runs in an `EngineService` (so it can be
reloaded live), with the durable execution history (`.flownb/history.db` unless told
otherwise) and the management API on 127.0.0.1:8700 behind tokens.

- The first SIGINT/SIGTERM starts a graceful shutdown (stop accepting, drain in-flight
  executions up to the drain timeout, stop modules in reverse order, exit 0); further signals
  are reported and ignored so a drain is never cut short by accident.
- SIGHUP reads the config file again and swaps it in without a failed request; a config that
  does not load or start is reported and the running one goes on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TextIO

from flownb.config import Config
from flownb.engine import Engine
from flownb.errors import ConfigError, FlownbError

if TYPE_CHECKING:
    from flownb.history import Capture
    from flownb.historydb import Retention, SqlHistory
    from flownb.management.routes import ManagementApi
    from flownb.service import EngineService

log = logging.getLogger("flownb.runner")

API_ENV = "FLOWNB_API_ADDRESS"
DEFAULT_API = "127.0.0.1:8700"


def _say(out: TextIO, text: str) -> None:
    print(f"flownb: {text}", file=out, flush=True)


def served_urls(engine: Engine) -> list[tuple[str, str]]:
    """(module name, base URL) of every module that listens, after start."""
    out = []
    for name, module in engine.modules.items():
        url = getattr(module, "url", None)
        if isinstance(url, str):
            out.append((name, url))
    return out


class _Signals:
    """SIGINT/SIGTERM: drain and stop, once; SIGHUP: reload the config file."""

    def __init__(self, service: EngineService, drain_timeout: float, out: TextIO) -> None:
        self.service = service
        self.drain_timeout = drain_timeout
        self.out = out
        self.stopping = asyncio.Event()
        self._stops = 0
        self._reloads: set[asyncio.Task[None]] = set()

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self._reload, loop)

    def remove(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)

    def _stop(self, signum: int) -> None:
        self._stops += 1
        if self._stops == 1:
            name = signal.Signals(signum).name
            _say(self.out, f"{name}: draining (up to {self.drain_timeout:g}s)")
            self.stopping.set()
        else:
            _say(self.out, "already shutting down; waiting for in-flight work")

    def _reload(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.stopping.is_set():
            _say(self.out, "SIGHUP ignored: shutting down")
            return
        task = loop.create_task(self._reload_file())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def _reload_file(self) -> None:
        service = self.service
        try:
            result = await service.reload(actor="SIGHUP", reason="SIGHUP")
        except ConfigError as exc:
            for diagnostic in exc.diagnostics:
                _say(self.out, str(diagnostic))
            _say(
                self.out,
                f"SIGHUP: the config was not reloaded; still on revision {service.revision}",
            )
        except FlownbError as exc:
            _say(
                self.out,
                f"SIGHUP: reload failed: {exc}; still on revision {service.revision}",
            )
        else:
            _say(self.out, f"SIGHUP: reloaded (revision {result.revision}): {result.summary}")


async def _open_history(
    history: str | Literal[False] | None, data_dir: str | None, retention: Retention | None
) -> SqlHistory | None:
    """The durable history (checked reachable), or None when it is turned off."""
    if history is False:
        return None
    from flownb.historydb import open_history

    # rows are written by a process of their own: the database work needs no share of the
    # engine's GIL (flownb.historyproc)
    store = open_history(history or None, data_dir=data_dir, retention=retention, writer="process")
    try:
        await store.start()
    except FlownbError:
        await store.aclose()
        raise
    return store


async def _start_api(
    service: EngineService, address: str, data_dir: str | None, out: TextIO
) -> ManagementApi:
    """Serve the management API; print its tokens once, when they were just generated."""
    from flownb.datadir import data_dir as resolve_data_dir
    from flownb.management.routes import ManagementApi
    from flownb.management.tokens import load_tokens

    tokens, new = load_tokens(resolve_data_dir(data_dir))
    api = ManagementApi(service, tokens=tokens, address=address)
    await api.start()
    _say(out, f"management API on {api.url} (tokens: {tokens.origin})")
    if new is not None:
        _say(out, f"new API tokens, shown this once: write {new['write']}  read {new['read']}")
    return api


async def serve(
    config: Config,
    *,
    functions: Mapping[str, Callable[..., Any]] | None = None,
    drain_timeout: float = 30.0,
    data_dir: str | None = None,
    history: str | Literal[False] | None = None,
    retention: Retention | None = None,
    api_address: str | Literal[False] | None = None,
    capture: Capture = "steps",
    out: TextIO = sys.stderr,
) -> int:
    """Start the service, wait for a signal, shut down gracefully; returns the exit code.

    `history`: a database URL, None for the default (the data directory's SQLite file), or
    False for none. `api_address`: host:port, None for the default (`$FLOWNB_API_ADDRESS` or
    127.0.0.1:8700), or False for no management API.
    """
    from flownb.service import EngineService

    try:
        store = await _open_history(history, data_dir, retention)
    except FlownbError as exc:
        _say(out, f"error: {exc}")
        return 1
    service = EngineService(
        config, functions=functions, history=store, drain_timeout=drain_timeout, capture=capture
    )
    loop = asyncio.get_running_loop()
    signals = _Signals(service, drain_timeout, out)
    signals.install(loop)
    api = None
    try:
        try:
            await service.start()
            if api_address is not False:
                address = api_address if isinstance(api_address, str) else None
                address = address or os.environ.get(API_ENV) or DEFAULT_API
                api = await _start_api(service, address, data_dir, out)
        except FlownbError as exc:
            _say(out, f"error: {exc}")
            await service.stop()
            return 1
        engine = service.engine
        assert engine is not None
        for name, url in served_urls(engine):
            _say(out, f"{name} listening on {url}")
        if store is not None:
            _say(out, f"history: {store.display}")
        _say(out, f"running {len(engine.modules)} modules; press Ctrl+C to stop")
        await signals.stopping.wait()
        drained = await service.stop()
        _say(out, "stopped" + ("" if drained else " (drain timed out)"))
        return 0
    finally:
        signals.remove(loop)
        if api is not None:
            await api.stop()
        if store is not None:
            await store.aclose()


def run_service(config: Config, **kwargs: Any) -> int:
    """Blocking entry point: uvloop when installed, else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(serve(config, **kwargs))
    return int(uvloop.run(serve(config, **kwargs)))
