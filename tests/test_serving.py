"""`wf.serve(...)`: a workflow runs until a limit, then stops; a headless runner's limits win."""

from __future__ import annotations

import asyncio
import threading

import pytest

from flownb import FlownbError, Workflow
from flownb.serving import ENV, ServeLimits, ServeProgress, effective_limits

TICKER = """
modules:
  - {name: every, type: scheduler, config: {interval: 0.02s, runOnStart: true}}
workflows:
  scheduler:
    jobs: [{scheduler: every, job: beat}]
pipelines:
  beat:
    - {type: set, target: data, values: {n: "{{ 2 }}"}}
"""

QUIET = """
pipelines:
  echo:
    - {type: set, target: data, values: {ok: true}}
  broken:
    - {type: set, target: data, values: {n: "{{ 1 / 0 }}"}}
"""


def test_limits_parse_durations_and_refuse_nonsense() -> None:
    assert ServeLimits.of("1m30s").seconds == 90.0
    assert ServeLimits.of(executions=3).describe() == "3 executions"
    assert ServeLimits().empty and ServeLimits().describe() == "until interrupted"
    with pytest.raises(FlownbError, match="invalid duration"):
        ServeLimits.of("soon")
    with pytest.raises(FlownbError, match="executions must be a whole number"):
        ServeLimits.of(executions=0)
    with pytest.raises(FlownbError, match="seconds must be more than 0"):
        ServeLimits.of(-1)


def test_the_runners_limits_replace_the_notebooks() -> None:
    mine = ServeLimits.of(executions=3)
    theirs = ServeLimits.of(30, until="errors > 0")
    assert effective_limits(mine, {}) == mine
    assert effective_limits(mine, {ENV: theirs.to_env()}) == theirs
    with pytest.raises(FlownbError, match="FLOWNB_SERVE is not JSON"):
        effective_limits(mine, {ENV: "{oops"})
    with pytest.raises(FlownbError, match="a JSON object with seconds"):
        effective_limits(mine, {ENV: '{"minutes": 3}'})
    with pytest.raises(FlownbError, match="need `until` as an expression"):
        ServeLimits.of(until=lambda p: True).to_env()


async def test_serve_until_n_executions_then_stop() -> None:
    wf = Workflow(TICKER, name="ticker")
    result = await wf.serve(executions=3)
    assert (result.executions, result.errors, result.reason) == (3, 0, "3 executions")
    assert not wf.running
    assert "ticker: served" in str(result) and "stopped: 3 executions" in str(result)


async def test_serve_for_a_duration_keeps_running_when_asked() -> None:
    wf = Workflow(QUIET, name="quiet")
    result = await wf.serve(seconds=0.05, stop=False)
    assert (result.executions, result.reason) == (0, "0.05 s")
    assert wf.running
    await wf.stop()


async def test_serve_until_a_condition_on_the_last_execution() -> None:
    wf = Workflow(QUIET, name="quiet")
    await wf.start()
    task = wf.serve(until="last.status == 'error'")
    await wf.send("pipeline", "echo", {})
    await asyncio.sleep(0)
    assert not task.done()
    with pytest.raises(FlownbError):
        await wf.send("pipeline", "missing", {})  # an unknown pipeline: no execution
    with pytest.raises(FlownbError):
        await wf.send("pipeline", "broken", {})  # an execution in error
    result = await task
    assert (result.executions, result.errors) == (2, 1)
    assert result.reason == "until last.status == 'error'"


async def test_serve_until_a_python_callable() -> None:
    wf = Workflow(TICKER, name="ticker")
    seen: list[ServeProgress] = []

    def enough(progress: ServeProgress) -> bool:
        seen.append(progress)
        return progress.executions >= 2

    result = await wf.serve(until=enough)
    assert result.executions == 2 and result.reason == "until"
    assert seen[-1].last is not None and seen[-1].last["action"] == "beat"


async def test_a_bad_condition_is_refused_before_serving() -> None:
    wf = Workflow(TICKER, name="ticker")
    with pytest.raises(FlownbError, match="invalid expression"):
        await wf.serve(until="executions >=")
    assert not wf.running


async def test_a_failing_condition_ends_the_serve_with_its_error() -> None:
    wf = Workflow(TICKER, name="ticker")
    with pytest.raises(FlownbError, match="the until condition failed"):
        await wf.serve(until="executions / 0 > 1")
    assert not wf.running


async def test_the_environment_replaces_the_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, '{"executions": 2}')
    wf = Workflow(TICKER, name="ticker")
    result = await wf.serve(seconds=600)
    assert (result.executions, result.reason) == (2, "2 executions")


async def test_serve_ends_when_the_workflow_is_stopped_elsewhere() -> None:
    wf = Workflow(QUIET, name="quiet")
    await wf.start()
    task = wf.serve()
    await asyncio.sleep(0.01)
    await wf.stop()
    result = await task
    assert result.reason == "the workflow stopped"


async def test_cancelling_a_serve_stops_the_workflow() -> None:
    wf = Workflow(QUIET, name="quiet")
    started = asyncio.Event()
    wf.observe(lambda change: started.set(), names=["running"])
    task = wf.serve()
    await asyncio.wait_for(started.wait(), 10)
    assert wf.running
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not wf.running


def test_serve_blocks_without_a_running_loop() -> None:
    wf = Workflow(TICKER, name="ticker")
    result = wf.serve(executions=2)
    assert result.executions == 2 and not wf.running
    assert threading.current_thread() is threading.main_thread()
