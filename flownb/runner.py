"""Run a config as a service: start, serve until SIGINT/SIGTERM, drain, stop, exit code.

This is what `flownb run CONFIG` does. The first signal starts a graceful shutdown (stop
accepting, drain in-flight executions up to the drain timeout, stop modules in reverse order,
exit 0); further signals are reported and ignored so a drain is never cut short by accident.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from flownb.config import Config
from flownb.engine import Engine
from flownb.errors import FlownbError

log = logging.getLogger("flownb.runner")


def served_urls(engine: Engine) -> list[tuple[str, str]]:
    """(module name, base URL) of every module that listens, after start."""
    out = []
    for name, module in engine.modules.items():
        url = getattr(module, "url", None)
        if isinstance(url, str):
            out.append((name, url))
    return out


async def serve(
    config: Config,
    *,
    functions: Mapping[str, Callable[..., Any]] | None = None,
    drain_timeout: float = 30.0,
    out: TextIO = sys.stderr,
) -> int:
    """Start the engine, wait for a signal, shut down gracefully; returns the exit code."""
    engine = Engine(config, functions=functions, drain_timeout=drain_timeout)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            print(
                f"flownb: {signal.Signals(signum).name}: draining (up to {drain_timeout:g}s)",
                file=out,
                flush=True,
            )
            stopping.set()
        else:
            print("flownb: already shutting down; waiting for in-flight work", file=out, flush=True)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        try:
            await engine.start()
        except FlownbError as exc:
            print(f"flownb: error: {exc}", file=out, flush=True)
            return 1
        for name, url in served_urls(engine):
            print(f"flownb: {name} listening on {url}", file=out, flush=True)
        print(
            f"flownb: running {len(engine.modules)} modules; press Ctrl+C to stop",
            file=out,
            flush=True,
        )
        await stopping.wait()
        drained = await engine.stop()
        print("flownb: stopped" + ("" if drained else " (drain timed out)"), file=out, flush=True)
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run_service(config: Config, **kwargs: Any) -> int:
    """Blocking entry point: uvloop when installed, else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(serve(config, **kwargs))
    return int(uvloop.run(serve(config, **kwargs)))
