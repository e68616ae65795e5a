"""Running a notebook headless: `flownb.execute(...)` and `flownb notebook run` wrap papermill.

Conventions:
- The cell tagged `parameters` holds the defaults; `parameters={...}` (`-p KEY VALUE`)
  overrides them (papermill injects a cell after it). A name the parameters cell does not
  set is refused (a typo would otherwise be silently ignored).
- The kernel runs in the notebook's folder (relative workflow files resolve as in Jupyter).
- A workflow defined in the notebook keeps running while a cell awaits `wf.serve(...)`
  (see `flownb.serving`); `serve`, `until_executions` and `until` here replace the limits
  the notebook gives it, through the kernel's `FLOWNB_SERVE` environment variable.
- The output notebook holds every cell's outputs (and papermill's record of parameters and
  timings); a failing cell fails the run with `NotebookFailed`, naming the cell and the
  error; the output notebook is still written, with the traceback.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flownb.errors import FlownbError
from flownb.serving import ENV as SERVE_ENV
from flownb.serving import ServeLimits
from flownb.template import Templates

log = logging.getLogger("flownb.notebooks")

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"

Progress = Callable[[int, int], object]  # (code cells done, code cells in all)


class NotebookError(FlownbError):
    """A notebook cannot be run as asked: no such file, not a notebook, unknown parameter."""


class NotebookFailed(FlownbError):
    """A cell failed (or timed out, or the kernel died); the output notebook shows where."""

    def __init__(
        self,
        notebook: str,
        cell: int,
        error: str,
        *,
        output: str | None,
        execution_count: int | None = None,
        source: str = "",
    ) -> None:
        self.notebook, self.cell, self.error, self.output = notebook, cell, error, output
        self.execution_count = execution_count
        self.source = source
        first = next((line.strip() for line in source.splitlines() if line.strip()), "")
        if len(first) > 60:
            first = first[:57] + "..."
        where = f"cell {cell}"
        if execution_count is not None:
            where += f" (In [{execution_count}]"
            where += f": {first})" if first else ")"
        elif first:
            where += f" ({first})"
        message = f"{notebook}: {where} failed: {error}"
        if output:
            message += f"; the output notebook {output} shows the traceback"
        super().__init__(message)


@dataclass
class NotebookRun:
    """A finished run: where its output is, what it was given, how long it took."""

    input: str
    output: str
    parameters: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    cells: int = 0


def parse_value(text: str) -> Any:
    """A `-p KEY VALUE` value: JSON when it parses (3, true, [1, 2], "3"), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def declared_parameters(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Names the notebook's `parameters` cell sets (with their default's text), or None when
    it has no such cell."""
    _require_papermill()
    import nbformat
    import papermill

    nb = _read(Path(path), nbformat)
    if not any(PARAMETERS_TAG in c.metadata.get("tags", []) for c in nb.cells):
        return None
    found = papermill.inspect_notebook(str(path))
    return {name: info.get("default") for name, info in found.items()}


def check_parameters(path: Path, parameters: Mapping[str, Any]) -> None:
    if not parameters:
        return
    known = declared_parameters(path)
    if known is None:
        raise NotebookError(
            f"{path}: no cell is tagged {PARAMETERS_TAG!r}, so there is nothing to set "
            f"{', '.join(parameters)} in; tag the cell that sets the defaults (JupyterLab: "
            "select it, then the property inspector's Cell Tags)"
        )
    for name in parameters:
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            listed = ", ".join(known) or "nothing"
            raise NotebookError(
                f"{path}: the parameters cell does not set {name!r}{hint} (it sets {listed})"
            )


def execute(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    parameters: Mapping[str, Any] | None = None,
    *,
    serve: float | str | None = None,
    until_executions: int | None = None,
    until: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
    kernel: str | None = None,
    cell_timeout: float | None = None,
    progress: bool | Progress = False,
    log_output: bool = False,
    env: Mapping[str, str] | None = None,
) -> NotebookRun:
    """Run notebook `input` top to bottom in a fresh kernel and write the result to `output`.

    `parameters` override the `parameters` cell. `serve` (seconds, or "5m"),
    `until_executions` and `until` (an expression, see `flownb.serving`) replace the limits
    of the notebook's `wf.serve(...)` calls. `cwd`: the kernel's folder (default: the
    notebook's). `kernel`: a kernel name (default: the notebook's, else python3).
    `cell_timeout`: seconds any one cell may take. `progress`: True for a progress bar on
    stderr, or a callable `(cells done, cells)`. `env`: extra environment for the kernel.
    Raises `NotebookError` for a bad request and `NotebookFailed` when a cell fails.
    """
    _require_papermill()
    import nbformat
    import papermill
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    source, target = Path(input), Path(output)
    nb = _read(source, nbformat)
    params = dict(parameters or {})
    check_parameters(source, params)
    limits = ServeLimits.of(serve, until_executions, until)
    if until is not None:
        Templates().condition(until)  # a syntax error is reported now, not in the kernel
    kernel_env = dict(env or {})
    if not limits.empty:
        if not _calls_serve(nb):
            log.warning("%s never calls .serve(...); the serve limits have no effect", source)
        kernel_env[SERVE_ENV] = limits.to_env()
    kernel_name = kernel or nb.metadata.get("kernelspec", {}).get("name") or "python3"
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(cwd) if cwd is not None else source.resolve().parent
    if not folder.is_dir():
        raise NotebookError(f"cwd {folder} is not a folder")
    tracker = _Tracker(nb, progress if callable(progress) else None, injected=bool(params))
    started = time.monotonic()
    try:
        papermill.execute_notebook(
            str(source),
            str(target),
            parameters=params,
            kernel_name=kernel_name,
            progress_bar=progress is True,
            log_output=log_output,
            execution_timeout=cell_timeout,
            kernel_manager_class=_kernel_manager_class(kernel_env),
            resources={"metadata": {"path": str(folder.resolve())}},
            store_widget_state=False,
            on_cell_start=tracker.cell_started,
            on_cell_executed=tracker.cell_executed,
        )
    except PapermillExecutionError as exc:
        error = f"{exc.ename}: {exc.evalue}" if exc.evalue else str(exc.ename)
        raise NotebookFailed(
            str(source),
            tracker.input_number(exc.cell_index),
            error,
            output=str(target),
            execution_count=exc.exec_count,
            source=exc.source,
        ) from None
    except CellTimeoutError:
        raise tracker.failed(
            str(source), f"did not finish within {cell_timeout:g} s", str(target)
        ) from None
    except DeadKernelError as exc:
        raise tracker.failed(str(source), f"the kernel died ({exc})", str(target)) from None
    except NoSuchKernel:
        raise NotebookError(
            f"{source}: no Jupyter kernel named {kernel_name!r}; install ipykernel in this "
            "environment, or pass another kernel name (kernel=..., --kernel NAME)"
        ) from None
    return NotebookRun(
        str(source), str(target), params, time.monotonic() - started, tracker.executed
    )


def _require_papermill() -> None:
    try:
        import papermill  # noqa: F401
    except ImportError:
        raise NotebookError(
            "running notebooks needs papermill, from the notebook extra: "
            "pip install 'flownb[notebook]'"
        ) from None


def _read(path: Path, nbformat: Any) -> Any:
    if not path.is_file():
        raise NotebookError(f"no notebook at {path}")
    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as exc:
        raise NotebookError(f"{path} is not a readable notebook: {exc}") from None


def _calls_serve(nb: Any) -> bool:
    return any(c.cell_type == "code" and ".serve(" in c.source for c in nb.cells)


class _Tracker:
    """Follows execution cell by cell: progress, and which cell was running when it ended."""

    def __init__(self, nb: Any, progress: Progress | None, *, injected: bool) -> None:
        code = sum(1 for c in nb.cells if c.cell_type == "code" and c.source.strip())
        self.total = code + (1 if injected else 0)
        self.progress = progress
        self.executed = 0
        self.current: tuple[int, Any] | None = None
        self.injected: list[int] = []

    def cell_started(self, cell: Any, cell_index: int) -> None:
        self.current = (cell_index, cell)
        if INJECTED_TAG in cell.metadata.get("tags", []) and cell_index not in self.injected:
            self.injected.append(cell_index)

    def cell_executed(self, cell: Any, cell_index: int, execute_reply: Any = None) -> None:
        self.executed += 1
        if self.progress is not None:
            self.progress(self.executed, self.total)

    def input_number(self, index: int) -> int:
        """1-based position in the input notebook of cell `index` of the executed one."""
        return index + 1 - sum(1 for i in self.injected if i < index)

    def failed(self, notebook: str, error: str, output: str) -> NotebookFailed:
        index, cell = self.current if self.current is not None else (0, None)
        return NotebookFailed(
            notebook,
            self.input_number(index),
            error,
            output=output,
            execution_count=getattr(cell, "execution_count", None),
            source=getattr(cell, "source", ""),
        )


def _kernel_manager_class(env: Mapping[str, str]) -> type[Any]:
    """A kernel manager that starts kernels with `env` added to this process' environment
    (per run, never by changing `os.environ`, which other threads share) and encrypts the
    kernel's sockets when the kernel supports it."""
    from jupyter_client.manager import AsyncKernelManager

    extra = dict(env)

    class FlownbKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
            merged = dict(kw.pop("env", None) or os.environ)
            merged.update(extra)
            kw.setdefault("transport_encryption", "auto")
            await super().start_kernel(env=merged, **kw)

        async def _async_interrupt_kernel(self) -> None:
            # jupyter_client interrupts before every shutdown; the kernel, idle by then,
            # would log a stray "KeyboardInterrupt caught in kernel" on our stderr.
            if not self.shutting_down:
                await super()._async_interrupt_kernel()

    return FlownbKernelManager


# --- `flownb notebook run` -------------------------------------------------------------------
def run_command(
    input: str,
    output: str,
    *,
    parameters: list[list[str]] | None = None,
    parameters_file: str | None = None,
    serve: str | None = None,
    until_executions: int | None = None,
    until: str | None = None,
    cwd: str | None = None,
    kernel: str | None = None,
    cell_timeout: float | None = None,
    progress: str = "auto",
    log_output: bool = False,
) -> int:
    """The `flownb notebook run` command; returns the exit status (1 if a cell failed)."""
    import sys

    logging.getLogger("papermill").setLevel(logging.WARNING)
    values: dict[str, Any] = _parameters_file(parameters_file) if parameters_file else {}
    for key, value in parameters or []:
        values[key] = parse_value(value)
    report: bool | Progress = progress == "bar" or (progress == "auto" and sys.stderr.isatty())
    if progress == "json":

        def report(done: int, total: int) -> None:
            print(json.dumps({"cell": done, "cells": total}), flush=True)

    try:
        run = execute(
            input,
            output,
            values,
            serve=serve,
            until_executions=until_executions,
            until=until,
            cwd=cwd,
            kernel=kernel,
            cell_timeout=cell_timeout,
            progress=report,
            log_output=log_output,
        )
    except NotebookFailed as exc:
        if progress == "json":
            print(json.dumps({"failed": str(exc), "cell": exc.cell}), flush=True)
        print(f"flownb: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"flownb: ran {run.input} in {run.seconds:.1f} s ({run.cells} cells); output: {run.output}",
        file=sys.stderr,
    )
    return 0


def _parameters_file(path: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise NotebookError(f"cannot read the parameters file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise NotebookError(f"the parameters file {path} is not YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise NotebookError(f"the parameters file {path} must hold a mapping of names to values")
    return {str(k): v for k, v in data.items()}
