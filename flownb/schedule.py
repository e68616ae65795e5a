"""`flownb schedule CONFIG`: run the `notebook.job` modules of a workflow file.

It is `flownb run` for scheduled notebooks: the whole config runs as a service until SIGINT or
SIGTERM (in-flight notebook runs drain, up to the drain timeout), and every notebook run is
recorded in the execution history, which `flownb history` reads. Each finished run is also
reported on stderr; runs in a terminal show a progress bar. `--once` runs each job (or the
`--job` ones) once, now, one after the other, and exits 1 if any failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from flownb.config import Config
from flownb.engine import Engine
from flownb.errors import FlownbError
from flownb.history import HistoryRecorder, HistoryStore
from flownb.modules.notebook import WORKFLOW, NotebookJob

if TYPE_CHECKING:
    from flownb.execution import ExecutionContext


def history_store(url: str | None = None, data_dir: str | None = None) -> HistoryStore:
    """The durable execution history that `flownb history` reads (SQLite in the data
    directory unless `url` or `$FLOWNB_HISTORY_DB` names another)."""
    from flownb.historydb import open_history

    return open_history(url, data_dir=data_dir)


class RunReporter:
    """Says on `out` how each notebook run ended (an execution observer)."""

    steps = False  # looks at no step: not called after each one (flownb.execution)
    starts = False  # not called when an execution starts

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.failed = 0

    def execution_started(self, ctx: ExecutionContext) -> None:
        pass

    def step_finished(
        self, ctx: ExecutionContext, step: str, status: str, duration: float, error: Any
    ) -> None:
        pass

    def execution_finished(self, ctx: ExecutionContext) -> None:
        if ctx.workflow != WORKFLOW:
            return
        took = f"{ctx.elapsed:.1f} s"
        if ctx.status == "ok" and isinstance(ctx.result, dict):
            line = f"{ctx.action}: ok in {took}; output {ctx.result.get('output')}"
        else:
            self.failed += 1
            line = f"{ctx.action}: failed after {took}: {ctx.error}"
        print(f"flownb: {line}", file=self.out, flush=True)


def _jobs(engine: Engine, names: Sequence[str]) -> list[NotebookJob]:
    jobs = [m for m in engine.modules.values() if isinstance(m, NotebookJob)]
    if not jobs:
        raise FlownbError(
            f"{engine.config.path or 'the config'} has no notebook.job modules to schedule"
        )
    if names:
        known = {j.name: j for j in jobs}
        missing = [n for n in names if n not in known]
        if missing:
            raise FlownbError(
                f"no notebook.job named {', '.join(map(repr, missing))} (jobs: {', '.join(known)})"
            )
        jobs = [known[n] for n in names]
    return jobs


async def schedule(
    config: Config,
    *,
    once: bool = False,
    jobs: Sequence[str] = (),
    history: HistoryStore | None = None,
    history_url: str | None = None,
    data_dir: str | None = None,
    drain_timeout: float = 30.0,
    out: TextIO = sys.stderr,
) -> int:
    """Run `config`'s notebook jobs, recording each run in `history` (default: the durable
    store at `history_url`, else in `data_dir`, see `history_store`); returns the exit
    status."""
    store = history if history is not None else history_store(history_url, data_dir)
    try:
        return await _serve(
            config, store=store, once=once, jobs=jobs, drain_timeout=drain_timeout, out=out
        )
    finally:
        if history is None:
            await _close(store)


async def _close(store: HistoryStore) -> None:
    """Write what is queued and release the store (a durable one has a writer thread)."""
    close = getattr(store, "aclose", None)
    if close is not None:
        await close()


async def _serve(
    config: Config,
    *,
    store: HistoryStore,
    once: bool,
    jobs: Sequence[str],
    drain_timeout: float,
    out: TextIO,
) -> int:
    reporter = RunReporter(out)
    engine = Engine(
        config, observers=[HistoryRecorder(store), reporter], drain_timeout=drain_timeout
    )
    if once:
        return await _once(engine, jobs, reporter)
    await engine.build()
    _jobs(engine, jobs)  # a config without jobs is a mistake here, not an idle service
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if not stopping.is_set():
            print(f"flownb: {signal.Signals(signum).name}: stopping", file=out, flush=True)
        stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await engine.start()
        for job in _jobs(engine, ()):
            when = job.next_run
            print(
                f"flownb: {job.name}: {job.config.notebook}, next run "
                f"{when.isoformat() if when else 'not planned'}",
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
        if engine.state not in ("stopped", "new"):
            await engine.stop()


async def _once(engine: Engine, names: Sequence[str], reporter: RunReporter) -> int:
    await engine.build()
    try:
        for job in _jobs(engine, names):
            with contextlib.suppress(FlownbError):  # reported, and recorded in the history
                await job.run_now()
    finally:
        await engine.stop()
    return 1 if reporter.failed else 0


def run_schedule(config: Config, **kwargs: Any) -> int:
    return asyncio.run(schedule(config, **kwargs))
