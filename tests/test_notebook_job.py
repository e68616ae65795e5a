"""The `notebook.job` module: scheduled headless notebook runs, recorded in the history."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from flownb.clock import ManualClock
from flownb.engine import Engine
from flownb.errors import ConfigError
from flownb.history import HistoryRecorder, MemoryHistory
from flownb.loader import load_config, parse_config
from flownb.modules.notebook import NotebookJob, RunFailed, output_folder

KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
START = dt.datetime(2024, 1, 31, 5, 0, tzinfo=dt.UTC)


def write_notebook(path: Path, *cells: str, parameters: str = "n = 1\nwhen = ''") -> Path:
    nb = new_notebook(metadata=KERNEL)
    cell = new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, *(new_code_cell(c) for c in cells)]
    nbformat.write(nb, str(path))
    return path


def job_config(folder: Path, **config: object) -> Path:
    """A workflow file with one notebook.job called `report`."""
    body = {"notebook": "report.ipynb", "cron": "0 6 * * *", **config}
    path = folder / "jobs.yaml"
    path.write_text(
        json.dumps({"modules": [{"name": "report", "type": "notebook.job", "config": body}]})
    )
    return path


async def run_at_six(folder: Path, **config: object) -> tuple[Engine, NotebookJob, MemoryHistory]:
    """Start the job on a manual clock and move the clock to its 06:00 run."""
    history = MemoryHistory()
    clock = ManualClock(START)
    engine = Engine(
        load_config(job_config(folder, **config)), clock=clock, observers=[HistoryRecorder(history)]
    )
    await engine.start()
    job = engine.modules["report"]
    assert isinstance(job, NotebookJob)
    await clock.settle()
    assert job.next_run == START.replace(hour=6)
    clock.advance(3600)
    await clock.settle()
    return engine, job, history


def test_config_mistakes_name_the_field() -> None:
    bad = """
modules:
  - name: a
    type: notebook.job
    config: {notebook: a.ipynb, cron: "0 6 * * *", interval: 1h}
  - name: b
    type: notebook.job
    config: {notebook: b.py, interval: 1h, output: "runs/{day}"}
  - name: c
    type: notebook.job
    config: {notebook: c.ipynb, interval: 1h, maxConcurrent: 0, retries: -1}
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(bad)
    text = caught.value.render()
    assert "<config>:5:13: modules[0].config: give exactly one of cron or interval" in text
    assert "modules[1].config.notebook: a notebook path ends with .ipynb, not 'b.py'" in text
    assert "unknown field {day}; use {job}, {notebook}, {timestamp}, {attempt}" in text
    assert "modules[2].config.maxConcurrent" in text and "modules[2].config.retries" in text


def test_output_folders_from_the_pattern() -> None:
    due = START.replace(hour=6)
    assert output_folder("runs/{job}/{timestamp}", job="r", notebook="n", due=due, attempt=1) == (
        "runs/r/20240131-060000"
    )
    custom = output_folder(
        "{timestamp:%Y/%m/%d}/{notebook}-{attempt}", job="r", notebook="n", due=due, attempt=2
    )
    assert custom == "2024/01/31/n-2"


async def test_a_scheduled_run_writes_its_output_and_is_recorded(tmp_path: Path) -> None:
    write_notebook(tmp_path / "report.ipynb", "print(n * 2, when)")
    engine, job, history = await run_at_six(
        tmp_path, parameters={"n": 21, "when": "{{ data.trigger_time }}"}, progress=False
    )
    try:
        assert job.runs.started == 1
        assert await job.runs.wait(timeout=60)
    finally:
        await engine.stop()
    [record] = await history.query()
    assert (record.workflow, record.action, record.status, record.node) == (
        "notebook", "report", "ok", "report"
    )  # fmt: skip
    result = json.loads(record.output or "null")
    output = tmp_path / "runs" / "report" / "20240131-060000" / "report.ipynb"
    assert result["output"] == str(output) and result["attempts"] == 1
    assert [s.name for s in record.steps] == ["attempt 1"] and record.duration_ms > 0
    printed = [o["text"] for c in nbformat.read(str(output), 4).cells for o in c.get("outputs", [])]
    assert printed == ["42 2024-01-31T06:00:00+00:00\n"]


async def test_a_failing_run_is_retried_then_recorded_with_its_cell(tmp_path: Path) -> None:
    write_notebook(tmp_path / "report.ipynb", "assert n > 5, f'n is only {n}'")
    engine, job, history = await run_at_six(tmp_path, retries=1, retryDelay=0, progress=False)
    try:
        assert await job.runs.wait(timeout=90)
    finally:
        await engine.stop()
    assert job.runs.failed == 1
    [record] = await history.query()
    assert record.status == "error" and record.output is None
    folder = tmp_path / "runs" / "report" / "20240131-060000"
    assert record.error is not None
    assert record.error.startswith("RunFailed: ") and "cell 2 (In [2]: assert n > 5" in record.error
    assert "AssertionError: n is only 1" in record.error
    assert f"{folder / 'report.attempt2.ipynb'} shows the traceback" in record.error
    assert record.error.endswith("(attempt 2 of 2)")
    assert [(s.name, s.status) for s in record.steps] == [
        ("attempt 1", "error"),
        ("attempt 2", "error"),
    ]
    assert (folder / "report.ipynb").is_file() and (folder / "report.attempt2.ipynb").is_file()


async def test_a_run_past_its_timeout_is_ended(tmp_path: Path) -> None:
    write_notebook(tmp_path / "report.ipynb", "import time\ntime.sleep(120)")
    history = MemoryHistory()
    engine = Engine(
        load_config(job_config(tmp_path, timeout="2s", progress=False)),
        observers=[HistoryRecorder(history)],
    )
    await engine.build()
    job = engine.modules["report"]
    assert isinstance(job, NotebookJob)
    try:
        with pytest.raises(RunFailed, match=r"^report.ipynb: timed out after 2 s (in|before)"):
            await asyncio.wait_for(job.run_now(), 60)
    finally:
        await engine.stop()
    [record] = await history.query()
    assert record.status == "error" and "timed out" in (record.error or "")


async def test_runs_past_max_concurrent_are_skipped(tmp_path: Path) -> None:
    write_notebook(tmp_path / "report.ipynb", "import time\ntime.sleep(120)")
    engine, job, _ = await run_at_six(tmp_path, interval="1h", cron=None, progress=False)
    clock = engine.clock
    assert isinstance(clock, ManualClock)
    try:
        clock.advance(3600)
        await clock.settle()
        assert (job.runs.started, job.runs.skipped, job.runs.running) == (1, 1, 1)
    finally:
        await engine.stop(timeout=0)  # the stuck run is cancelled: its process group ended
    assert job.runs.running == 0


async def test_a_missing_notebook_fails_the_start(tmp_path: Path) -> None:
    engine = Engine(load_config(job_config(tmp_path)))
    with pytest.raises(Exception, match=r"notebook .*report.ipynb not found"):
        await engine.start()
