"""The `notebook.job` module: run a notebook on a schedule, headless, and keep each output.

Each due time (cron or interval, on the engine's clock) starts one run: the notebook runs in
its own process (`flownb notebook run`, so a long or stuck notebook never blocks the engine's
loop and a timeout can end it), with the job's parameters, writing its output notebook into a
folder named from the `output` pattern. A failing run is retried up to `retries` times; at
most `maxConcurrent` runs go at once (a due time finding that many still running is skipped).

Every run is one engine execution (workflow `notebook`, action = the job's name), so the
execution history records it through whatever `HistoryStore` observes the engine: status,
duration, output path (the result), the failing cell (the error), one step per attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import signal
import string
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from flownb.errors import FlownbError
from flownb.fields import Duration
from flownb.registry import ModuleType
from flownb.timer import JobRuns, TimedModule, TimerSpec

if TYPE_CHECKING:
    from flownb.engine import Engine
    from flownb.execution import ExecutionContext
    from flownb.template import Compiled

log = logging.getLogger("flownb.notebook")

WORKFLOW = "notebook"  # the workflow name runs are recorded under in the history
OUTPUT_FIELDS = ("job", "notebook", "timestamp", "attempt")
STAMP = "%Y%m%d-%H%M%S"
_KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL for a run past its timeout


class NotebookJobConfig(TimerSpec):
    notebook: str = Field(
        description="the notebook to run (.ipynb), relative to the workflow file's folder"
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "values for the notebook's parameters cell; may use {{ data.trigger_time }} "
            "(the run's due time, ISO 8601)"
        ),
    )
    output: str = Field(
        "runs/{job}/{timestamp}",
        description=(
            "folder of each run's output notebook, relative to the workflow file's folder; "
            "fields {job}, {notebook} (its name without .ipynb), {timestamp} (the due time, "
            "20240131-060000; or {timestamp:%Y/%m/%d}), {attempt}"
        ),
    )
    timeout: Duration | None = Field(
        None, description="longest a run may take; it is then stopped and counts as failed"
    )
    retries: int = Field(0, ge=0, le=100, description="runs again after a failure, this often")
    retry_delay: Duration = Field(
        Duration("10s"), alias="retryDelay", description="wait between a failure and its retry"
    )
    max_concurrent: int = Field(
        1, alias="maxConcurrent", ge=1, description="runs at once; a due time past it is skipped"
    )
    run_on_start: bool = Field(
        False, alias="runOnStart", description="also run when the engine starts"
    )
    serve: Duration | None = Field(
        None, description="how long the notebook's wf.serve(...) cells serve (replaces theirs)"
    )
    until_executions: int | None = Field(
        None, alias="untilExecutions", ge=1, description="or until this many executions"
    )
    until: str | None = Field(
        None, description="or until this condition, e.g. \"last.status == 'error'\""
    )
    kernel: str | None = Field(None, description="Jupyter kernel name (default: the notebook's)")
    progress: bool = Field(
        True, description="show a progress bar per run when the engine runs in a terminal"
    )

    @field_validator("notebook")
    @classmethod
    def _ipynb(cls, value: str) -> str:
        if not value.endswith(".ipynb"):
            raise ValueError(f"a notebook path ends with .ipynb, not {value!r}")
        return value

    @field_validator("output")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
        except ValueError as exc:
            raise ValueError(f"output pattern {value!r}: {exc}") from None
        for name in fields:
            if name not in OUTPUT_FIELDS:
                known = ", ".join("{" + f + "}" for f in OUTPUT_FIELDS)
                raise ValueError(f"output pattern {value!r}: unknown field {{{name}}}; use {known}")
        try:
            output_folder(value, job="j", notebook="n", due=dt.datetime.now(dt.UTC), attempt=1)
        except ValueError as exc:
            raise ValueError(f"output pattern {value!r}: {exc}") from None
        return value


class _Stamp(dt.datetime):
    """A due time that formats as 20240131-060000 unless given a format of its own."""

    def __format__(self, spec: str) -> str:
        return super().__format__(spec or STAMP)


def output_folder(pattern: str, *, job: str, notebook: str, due: dt.datetime, attempt: int) -> str:
    stamp = _Stamp.fromtimestamp(due.timestamp(), due.tzinfo)
    return pattern.format(job=job, notebook=notebook, timestamp=stamp, attempt=attempt)


def _folder_of(path: str) -> Path:
    """The absolute folder of a workflow file: where its relative paths start."""
    return Path(os.path.abspath(path)).parent


class RunFailed(FlownbError):
    """A notebook run failed: a cell raised, the run timed out, or the process died."""


class NotebookJob(TimedModule[NotebookJobConfig]):
    """Runs a notebook on its timetable from `start` until `drain`; see the module docstring."""

    kind = "notebook.job"

    def __init__(self, name: str, config: NotebookJobConfig) -> None:
        super().__init__(name, config)
        self.base = Path.cwd()
        self.runs = JobRuns(f"notebook.job {name!r}", self._run, limit=config.max_concurrent)
        self._parameters: Compiled | None = None

    @property
    def notebook(self) -> Path:
        return self.base / self.config.notebook

    async def init(self, engine: Engine) -> None:
        await super().init(engine)
        if engine.config.path:
            self.base = _folder_of(engine.config.path)
        self._parameters = engine.templates.value(self.config.parameters)

    async def start(self) -> None:
        if not self.notebook.is_file():
            raise FlownbError(
                f"notebook {self.notebook} not found (notebook: {self.config.notebook})"
            )
        await super().start()

    def run_on_start(self) -> bool:
        return self.config.run_on_start

    def launch(self, when: dt.datetime) -> None:
        self.runs.launch(when)

    async def cancel_runs(self) -> None:
        await self.runs.cancel()

    # --- one run ------------------------------------------------------------------------------
    async def run_now(self) -> Any:
        """Run the notebook once now (what `flownb schedule --once` does); returns the result
        (output path, attempts, seconds) or raises `RunFailed`."""
        assert self.timetable is not None, "init() runs before run_now()"
        ctx = await self._execute(self.timetable.local(self.clock.now()))
        return ctx.result

    async def _run(self, when: dt.datetime) -> None:
        await self._execute(when)

    async def _execute(self, when: dt.datetime) -> ExecutionContext:
        engine = self._engine
        assert engine is not None, "init() runs before any run"
        data = {
            "trigger_time": when.isoformat(),
            "job": self.name,
            "notebook": self.config.notebook,
        }
        return await engine.execute(
            WORKFLOW, self.name, data, lambda ctx: self._attempts(ctx, when), node=self.name
        )

    async def _attempts(self, ctx: ExecutionContext, when: dt.datetime) -> dict[str, Any]:
        config = self.config
        assert self._parameters is not None and self._engine is not None
        parameters = self._parameters(ctx.scope)
        attempts = config.retries + 1
        for attempt in range(1, attempts + 1):
            output = self._output(when, attempt)
            started = time.perf_counter()
            try:
                await self._attempt(output, parameters, when)
            except RunFailed as exc:
                self._engine.observers.step(
                    ctx, f"attempt {attempt}", "error", time.perf_counter() - started, exc
                )
                if attempt == attempts:
                    if attempts > 1:
                        raise RunFailed(f"{exc} (attempt {attempt} of {attempts})") from None
                    raise
                log.warning("%s: attempt %d of %d failed: %s", self.name, attempt, attempts, exc)
                await self.clock.sleep_until(self.clock.now() + float(config.retry_delay))
                continue
            seconds = time.perf_counter() - started
            result = {"output": str(output), "attempts": attempt, "seconds": round(seconds, 3)}
            ctx.steps[f"attempt {attempt}"] = result
            self._engine.observers.step(ctx, f"attempt {attempt}", "ok", seconds, None)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _output(self, when: dt.datetime, attempt: int) -> Path:
        config = self.config
        stem = Path(config.notebook).stem
        folder = output_folder(
            config.output, job=self.name, notebook=stem, due=when, attempt=attempt
        )
        own_folder = attempt == 1 or "{attempt" in config.output
        name = f"{stem}.ipynb" if own_folder else f"{stem}.attempt{attempt}.ipynb"
        return self.base / folder / name

    def _command(self, output: Path, parameters: dict[str, Any]) -> list[str]:
        config = self.config
        cmd = [sys.executable, "-m", "flownb", "--log-level", "WARNING", "notebook", "run"]
        cmd += [str(self.notebook), str(output), "--progress", "json"]
        for key, value in parameters.items():
            cmd += ["-p", str(key), json.dumps(value, default=str)]
        if config.serve is not None:
            cmd += ["--serve", str(float(config.serve))]
        if config.until_executions is not None:
            cmd += ["--until-executions", str(config.until_executions)]
        if config.until is not None:
            cmd += ["--until", config.until]
        if config.kernel is not None:
            cmd += ["--kernel", config.kernel]
        return cmd

    async def _attempt(self, output: Path, parameters: dict[str, Any], when: dt.datetime) -> None:
        """One run of the notebook in its own process; raises `RunFailed`."""
        config = self.config
        proc = await asyncio.create_subprocess_exec(
            *self._command(output, parameters),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group: a timeout ends the kernel too
        )
        report = _Report(self.name, f"{when:%Y-%m-%d %H:%M}", enabled=config.progress)
        stderr = asyncio.ensure_future(_tail(proc.stderr))
        try:
            async with asyncio.timeout(None if config.timeout is None else float(config.timeout)):
                await report.follow(proc.stdout)
                code = await proc.wait()
        except TimeoutError:
            await _end(proc)
            raise RunFailed(_timed_out(self.config, output, report.cell, report.cells)) from None
        except BaseException:  # cancelled (the engine stops), or a bug here: no orphan run
            await _end(proc)
            raise
        finally:
            report.close()
            text = await stderr
        if code != 0 or report.failure is not None:
            raise RunFailed(report.failure or _last_error(text) or f"exit status {code}")


def _timed_out(config: NotebookJobConfig, output: Path, done: int, cells: int) -> str:
    where = f" in cell {done + 1} of {cells}" if cells else " before its first cell ended"
    seen = f"; the output notebook {output} shows how far it got" if output.is_file() else ""
    return f"{config.notebook}: timed out after {float(config.timeout or 0):g} s{where}{seen}"


class _Report:
    """Reads the run's JSON lines: progress (a tqdm bar in a terminal) and the outcome."""

    def __init__(self, job: str, when: str, *, enabled: bool) -> None:
        self.cell = self.cells = 0
        self.failure: str | None = None
        self._label = f"{job} {when}"
        self._enabled = enabled
        self._bar: Any = None

    async def follow(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        async for raw in stream:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            if "failed" in event:
                self.failure = str(event["failed"])
            elif isinstance(event.get("cell"), int) and isinstance(event.get("cells"), int):
                self.cell, self.cells = event["cell"], event["cells"]
                self._advance()

    def _advance(self) -> None:
        if not self._enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            # disable=None: only on a terminal; delay: only runs that last show a bar
            self._bar = tqdm(
                total=self.cells,
                desc=self._label,
                unit="cell",
                disable=None,
                delay=1.0,
                leave=False,
            )
        self._bar.total = self.cells
        self._bar.n = self.cell
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


async def _tail(stream: asyncio.StreamReader | None, limit: int = 20_000) -> str:
    """The last `limit` characters of a stream, read to its end."""
    if stream is None:
        return ""
    text = ""
    async for raw in stream:
        text = (text + raw.decode("utf-8", "replace"))[-limit:]
    return text


def _last_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("flownb: error: "):
            return line.removeprefix("flownb: error: ")
    return lines[-1] if lines else ""


async def _end(proc: asyncio.subprocess.Process) -> None:
    """Stop a run's process group (the runner and its kernel): SIGTERM, then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, _KILL_GRACE), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), wait)
            return
        except TimeoutError:
            continue


TYPES: list[ModuleType] = [
    ModuleType(
        "notebook.job",
        "Scheduling",
        "Runs a notebook on a cron expression or an interval, headless, keeping each output.",
        NotebookJobConfig,
        NotebookJob,
    ),
]
