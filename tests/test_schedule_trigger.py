"""`triggers.schedule`: timers that call `trigger_workflow`, with overlap skips and clean stop."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import pytest

from flownb.clock import ManualClock
from flownb.engine import Engine
from flownb.errors import ConfigError
from flownb.loader import parse_config
from flownb.triggers.schedule import ScheduleTrigger

START = dt.datetime(2024, 6, 1, 11, 59, 0, tzinfo=dt.UTC)

CONFIG = """
triggers:
  schedule:
    jobs:
      - {job}
pipelines:
  report:
    - type: call
      function: record
"""


def config(job: str) -> str:
    return CONFIG.replace("{job}", job)


class Calls:
    def __init__(self) -> None:
        self.inputs: list[dict[str, Any]] = []
        self.changed = asyncio.Event()

    async def __call__(self, data: dict[str, Any]) -> None:
        self.inputs.append(data)
        self.changed.set()

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.inputs) < count:
                self.changed.clear()
                await self.changed.wait()


def the_trigger(engine: Engine) -> ScheduleTrigger:
    (trigger,) = engine.triggers
    assert isinstance(trigger, ScheduleTrigger)
    return trigger


async def test_cron_job_triggers_a_pipeline_with_params_and_trigger_time() -> None:
    clock = ManualClock(START)
    calls = Calls()
    text = config(
        "{cron: '0 14 * * *', timezone: Europe/Paris, workflow: pipeline, action: report,"
        " params: {kind: daily}}"
    )
    engine = Engine(parse_config(text), functions={"record": calls}, clock=clock)
    await engine.start()
    try:
        await clock.settle()
        ticker, _ = the_trigger(engine).timers[0]
        assert ticker.next_run is not None
        assert ticker.next_run.isoformat() == "2024-06-01T14:00:00+02:00"  # 12:00 UTC
        clock.advance(60)
        await clock.settle()
        await calls.wait_for(1)
        assert calls.inputs == [{"kind": "daily", "trigger_time": "2024-06-01T14:00:00+02:00"}]
    finally:
        await engine.stop()


async def test_interval_job_keeps_firing() -> None:
    calls = Calls()
    text = config("{interval: 20ms, workflow: pipeline, action: report}")
    engine = Engine(parse_config(text), functions={"record": calls})
    await engine.start()
    try:
        await calls.wait_for(3)
    finally:
        await engine.stop()
    assert all("trigger_time" in data for data in calls.inputs)


async def test_a_job_still_running_skips_its_next_time(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock(START)
    gate = asyncio.Event()
    started = asyncio.Event()

    async def slow(data: dict[str, Any]) -> None:
        started.set()
        await gate.wait()

    text = config("{name: nightly, interval: 1m, workflow: pipeline, action: report}")
    engine = Engine(parse_config(text), functions={"record": slow}, clock=clock)
    await engine.start()
    _, runs = the_trigger(engine).timers[0]
    try:
        await clock.settle()
        clock.advance(60)
        await clock.settle()
        await asyncio.wait_for(started.wait(), 5)
        with caplog.at_level(logging.WARNING, logger="flownb.schedule"):
            clock.advance(60)
            await clock.settle()
        assert runs.started == 1 and runs.skipped == 1
        assert "schedule trigger 'nightly': skipped the run due at" in caplog.text
    finally:
        gate.set()
        await engine.stop()


async def test_failures_are_logged_and_the_timer_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock(START)

    def boom(data: dict[str, Any]) -> None:
        raise ValueError("no report today")

    text = config("{interval: 1m, workflow: pipeline, action: report}")
    engine = Engine(parse_config(text), functions={"record": boom}, clock=clock)
    await engine.start()
    _, runs = the_trigger(engine).timers[0]
    try:
        await clock.settle()
        with caplog.at_level(logging.ERROR, logger="flownb.schedule"):
            for _ in range(3):
                clock.advance(60)
                await clock.settle()
                assert await runs.wait(5)
        assert runs.failed == 3
        assert "'pipeline:report'" in caplog.text and "no report today" in caplog.text
    finally:
        await engine.stop()


async def test_stop_cancels_a_run_that_outlives_the_drain_timeout() -> None:
    clock = ManualClock(START)
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def hang(data: dict[str, Any]) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    text = config("{interval: 1m, workflow: pipeline, action: report}")
    engine = Engine(
        parse_config(text),
        functions={"record": hang},
        clock=clock,
        drain_timeout=0.05,
    )
    await engine.start()
    await clock.settle()
    clock.advance(60)
    await asyncio.wait_for(started.wait(), 5)
    await engine.stop()
    assert cancelled.is_set()
    current = asyncio.current_task()
    assert [t for t in asyncio.all_tasks() if t is not current and not t.done()] == []


async def test_two_jobs_for_the_same_action_keep_separate_timers() -> None:
    clock = ManualClock(START)
    calls = Calls()
    text = """
triggers:
  schedule:
    jobs:
      - {interval: 1m, workflow: pipeline, action: report, params: {n: 1}}
      - {interval: 2m, workflow: pipeline, action: report, params: {n: 2}}
pipelines:
  report: [{type: call, function: record}]
"""
    engine = Engine(parse_config(text), functions={"record": calls}, clock=clock)
    await engine.start()
    try:
        await clock.settle(sleepers=2)
        clock.advance(120)
        await clock.settle(sleepers=2)
        await calls.wait_for(2)
        assert sorted(d["n"] for d in calls.inputs) == [1, 2]
        keys = [ticker.key for ticker, _ in the_trigger(engine).timers]
        assert keys == ["trigger:pipeline:report", "trigger:pipeline:report#1"]
    finally:
        await engine.stop()


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ("{workflow: pipeline, action: report}", "give exactly one of cron or interval"),
        ("{cron: '61 * * * *', workflow: pipeline, action: report}", "invalid cron expression"),
        ("{interval: 1m, workflow: pipeline, action: reprot}", "did you mean 'report'"),
        (
            "{interval: 1m, timezone: Mars/Olympus, workflow: pipeline, action: report}",
            "unknown timezone 'Mars/Olympus'",
        ),
    ],
)
def test_bad_jobs_are_config_errors(job: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(config(job))
