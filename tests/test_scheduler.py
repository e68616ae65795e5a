"""The `scheduler` module and `workflows.scheduler`: timetables, overlap, failures, clean stop."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import pytest

from flownb.clock import ManualClock
from flownb.engine import Engine
from flownb.errors import ConfigError, UnknownNameError
from flownb.loader import parse_config
from flownb.modules.scheduler import Scheduler
from flownb.stores import MemoryScheduleStore, Stores
from flownb.timer import Timetable

UTC = dt.UTC
START = dt.datetime(2024, 1, 1, 0, 0, 30, tzinfo=UTC)


def job_config(scheduler: str, pipeline: str = "record", params: str = "{}") -> str:
    return f"""
modules:
  - name: tick
    type: scheduler
    config: {scheduler}
workflows:
  scheduler:
    jobs:
      - job: {pipeline}
        params: {params}
pipelines:
  record:
    - type: call
      function: record
      replace_data: true
"""


class Recorder:
    """A job function that remembers its inputs and lets a test wait for the n-th run."""

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    async def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        self.runs.append(data)
        self._changed.set()
        return {"run": len(self.runs)}

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.runs) < count:
                self._changed.clear()
                await self._changed.wait()


def no_other_tasks() -> list[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return [t for t in asyncio.all_tasks() if t is not current and not t.done()]


async def test_interval_runs_a_pipeline_with_params_and_trigger_time() -> None:
    record = Recorder()
    config = parse_config(job_config("{interval: 20ms}", params="{region: eu}"))
    engine = Engine(config, functions={"record": record})
    await engine.start()
    try:
        await record.wait_for(3)
    finally:
        await engine.stop()
    first = record.runs[0]
    assert first["region"] == "eu"
    when = dt.datetime.fromisoformat(first["trigger_time"])
    assert when.tzinfo is not None
    times = [dt.datetime.fromisoformat(r["trigger_time"]) for r in record.runs[:3]]
    assert times == sorted(times) and len(set(times)) == 3
    assert no_other_tasks() == []


async def test_cron_runs_on_a_manual_clock_in_its_timezone() -> None:
    record = Recorder()
    clock = ManualClock(START)  # 00:00:30 UTC = 09:00:30 in Tokyo
    config = parse_config(job_config("{cron: '*/5 * * * *', timezone: Asia/Tokyo}"))
    engine = Engine(config, functions={"record": record}, clock=clock)
    await engine.start()
    try:
        await clock.settle()
        scheduler = engine.modules["tick"]
        assert isinstance(scheduler, Scheduler)
        assert scheduler.next_run == dt.datetime(
            2024, 1, 1, 9, 5, tzinfo=dt.timezone(dt.timedelta(hours=9))
        )
        clock.advance(4 * 60)  # 00:04:30: not yet
        await clock.settle()
        assert record.runs == []
        clock.advance(30)  # 00:05:00
        await clock.settle()
        await record.wait_for(1)
        assert record.runs[0]["trigger_time"] == "2024-01-01T09:05:00+09:00"
        clock.advance(4 * 60 + 59)
        await clock.settle()
        assert len(record.runs) == 1
        clock.advance(1)
        await clock.settle()
        await record.wait_for(2)
        assert record.runs[1]["trigger_time"] == "2024-01-01T09:10:00+09:00"
    finally:
        await engine.stop()


async def test_missed_times_are_skipped_not_replayed() -> None:
    record = Recorder()
    clock = ManualClock(START)
    engine = Engine(
        parse_config(job_config("{interval: 1m}")),
        functions={"record": record},
        clock=clock,
    )
    await engine.start()
    try:
        await clock.settle()
        clock.advance(10 * 60)  # ten due times pass at once
        await clock.settle()
        await record.wait_for(1)
        clock.advance(30)
        await clock.settle()
        assert len(record.runs) == 1
    finally:
        await engine.stop()


async def test_max_concurrent_skips_a_tick_while_the_job_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(START)
    gate = asyncio.Event()
    started: list[str] = []
    running = asyncio.Event()

    async def slow(data: dict[str, Any]) -> None:
        started.append(data["trigger_time"])
        running.set()
        await gate.wait()

    engine = Engine(
        parse_config(job_config("{interval: 10s}")),
        functions={"record": slow},
        clock=clock,
    )
    await engine.start()
    scheduler = engine.modules["tick"]
    assert isinstance(scheduler, Scheduler)
    (job,) = scheduler.jobs
    try:
        await clock.settle()
        clock.advance(10)
        await clock.settle()
        await asyncio.wait_for(running.wait(), 5)
        with caplog.at_level(logging.WARNING, logger="flownb.schedule"):
            clock.advance(10)
            await clock.settle()
        assert job.skipped == 1 and len(started) == 1
        assert "skipped the run due at 2024-01-01T00:00:50+00:00" in caplog.text
        assert "maxConcurrent 1" in caplog.text
        gate.set()
        assert await job.wait(5)
        clock.advance(10)
        await clock.settle()
        assert await job.wait(5)
        assert len(started) == 2 and job.skipped == 1
    finally:
        gate.set()
        await engine.stop()


async def test_max_concurrent_above_one_lets_runs_overlap() -> None:
    clock = ManualClock(START)
    gate = asyncio.Event()
    started: list[str] = []

    async def slow(data: dict[str, Any]) -> None:
        started.append(data["trigger_time"])
        await gate.wait()

    engine = Engine(
        parse_config(job_config("{interval: 10s, maxConcurrent: 2}")),
        functions={"record": slow},
        clock=clock,
    )
    await engine.start()
    scheduler = engine.modules["tick"]
    assert isinstance(scheduler, Scheduler)
    (job,) = scheduler.jobs
    try:
        await clock.settle()
        for _ in range(3):
            clock.advance(10)
            await clock.settle()
        assert job.started == 2 and job.skipped == 1 and job.running == 2
    finally:
        gate.set()
        await engine.stop()


async def test_a_failing_job_is_logged_and_the_schedule_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(START)
    record = Recorder()

    def boom(data: dict[str, Any]) -> None:
        raise RuntimeError("database unreachable")

    config = parse_config(
        """
modules:
  - {name: tick, type: scheduler, config: {interval: 1m}}
workflows:
  scheduler:
    jobs:
      - {job: failing}
      - {job: record}
pipelines:
  failing:
    - {type: call, function: boom}
  record:
    - {type: call, function: record}
"""
    )
    engine = Engine(config, functions={"boom": boom, "record": record}, clock=clock)
    await engine.start()
    scheduler = engine.modules["tick"]
    assert isinstance(scheduler, Scheduler)
    failing, _ = scheduler.jobs
    try:
        await clock.settle()
        with caplog.at_level(logging.ERROR, logger="flownb.schedule"):
            for n in range(1, 4):
                clock.advance(60)
                await clock.settle()
                await record.wait_for(n)
                assert await failing.wait(5)
        assert failing.failed == 3 and failing.started == 3
        assert "job 'failing'" in caplog.text and "database unreachable" in caplog.text
    finally:
        await engine.stop()


async def test_stop_cancels_runs_still_going_and_leaves_no_tasks() -> None:
    clock = ManualClock(START)
    running = asyncio.Event()
    cancelled = asyncio.Event()

    async def forever(data: dict[str, Any]) -> None:
        running.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    engine = Engine(
        parse_config(job_config("{interval: 10s, runOnStart: true}")),
        functions={"record": forever},
        clock=clock,
    )
    await engine.start()
    await asyncio.wait_for(running.wait(), 5)
    drained = await engine.stop(timeout=0.05)
    assert drained is False
    assert cancelled.is_set()
    assert clock.sleepers == []
    assert no_other_tasks() == []


async def test_stop_waits_for_a_run_that_finishes_in_time() -> None:
    clock = ManualClock(START)
    gate = asyncio.Event()
    finished: list[bool] = []

    async def short(data: dict[str, Any]) -> None:
        await gate.wait()
        finished.append(True)

    engine = Engine(
        parse_config(job_config("{interval: 10s, runOnStart: true}")),
        functions={"record": short},
        clock=clock,
    )
    await engine.start()
    await clock.settle()
    stopping = asyncio.create_task(engine.stop(timeout=5))
    await asyncio.sleep(0)
    gate.set()
    assert await stopping is True
    assert finished == [True]
    assert no_other_tasks() == []


async def test_run_on_start_and_last_runs_survive_a_restart() -> None:
    clock = ManualClock(START)
    record = Recorder()
    store = MemoryScheduleStore()
    config = parse_config(job_config("{interval: 1m, runOnStart: true}"))

    async def run_once() -> None:
        engine = Engine(
            config,
            functions={"record": record},
            clock=clock,
            stores=Stores(schedules=store),
        )
        await engine.start()
        await clock.settle()
        await engine.stop()

    await run_once()
    assert len(record.runs) == 1
    assert await store.last_run("scheduler:tick") == START.timestamp()
    clock.advance(20)  # restart within the interval: no second run on start
    await run_once()
    assert len(record.runs) == 1
    clock.advance(60)  # restart after a missed time: runOnStart catches up
    await run_once()
    assert len(record.runs) == 2


async def test_jitter_delays_the_run_but_not_its_trigger_time() -> None:
    clock = ManualClock(START)
    record = Recorder()
    engine = Engine(
        parse_config(job_config("{interval: 1m, jitter: 10s}")),
        functions={"record": record},
        clock=clock,
    )
    await engine.start()
    try:
        await clock.settle()
        (deadline,) = clock.sleepers
        due = START.timestamp() + 60
        assert due <= deadline <= due + 10
        clock.advance(70)
        await clock.settle()
        await record.wait_for(1)
        assert record.runs[0]["trigger_time"] == "2024-01-01T00:01:30+00:00"
    finally:
        await engine.stop()


async def test_trigger_runs_a_job_now_and_returns_its_result() -> None:
    clock = ManualClock(START)
    record = Recorder()
    engine = Engine(
        parse_config(job_config("{cron: '0 3 * * *'}", params="{region: eu}")),
        functions={"record": record},
        clock=clock,
    )
    await engine.start()
    try:
        result = await engine.trigger_workflow("scheduler", "record", {"extra": 1})
        assert result == {"run": 1}
        assert record.runs == [
            {"region": "eu", "trigger_time": "2024-01-01T00:00:30+00:00", "extra": 1}
        ]
        with pytest.raises(UnknownNameError, match="known: record"):
            await engine.trigger_workflow("scheduler", "nope", {})
    finally:
        await engine.stop()


async def test_a_handler_module_can_be_the_job() -> None:
    clock = ManualClock(START)
    received: list[Any] = []

    async def handle(data: Any) -> str:
        received.append(data)
        return "done"

    config = parse_config(
        """
modules:
  - {name: tick, type: scheduler, config: {interval: 1m}}
  - name: cleanup
    type: messaging.handler
    config: {function: handle}
workflows:
  scheduler:
    jobs: [{job: cleanup, params: {days: 30}}]
"""
    )
    engine = Engine(config, functions={"handle": handle}, clock=clock)
    await engine.start()
    try:
        await clock.settle()
        clock.advance(60)
        await clock.settle()
        scheduler = engine.modules["tick"]
        assert isinstance(scheduler, Scheduler)
        assert await scheduler.jobs[0].wait(5)
    finally:
        await engine.stop()
    assert len(received) == 1 and received[0]["days"] == 30


# --- timetables ---------------------------------------------------------------------------


def at(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def iso(when: float, tz: str) -> str:
    return Timetable(interval=1, timezone=tz).local(when).isoformat()


@pytest.mark.parametrize(
    ("cron", "tz", "now", "expected"),
    [
        ("0 9 * * *", "UTC", "2024-01-15T07:30:00+00:00", "2024-01-15T09:00:00+00:00"),
        ("0 9 * * *", "Europe/Paris", "2024-01-15T07:30:00+00:00", "2024-01-15T09:00:00+01:00"),
        ("0 9 * * *", "Europe/Paris", "2024-07-15T07:30:00+00:00", "2024-07-16T09:00:00+02:00"),
        ("0 9 * * 1", "America/New_York", "2024-01-15T15:00:00+00:00", "2024-01-22T09:00:00-05:00"),
        ("*/15 * * * *", "Asia/Kolkata", "2024-01-01T00:00:00+00:00", "2024-01-01T05:45:00+05:30"),
        # spring forward: 02:30 does not exist that night; it runs when the clock says 03:00
        ("30 2 * * *", "Europe/Paris", "2024-03-31T00:00:00+00:00", "2024-03-31T03:00:00+02:00"),
    ],
)
def test_cron_next_time(cron: str, tz: str, now: str, expected: str) -> None:
    timetable = Timetable(cron=cron, timezone=tz)
    assert iso(timetable.next_after(at(now)), tz) == expected


def test_a_fixed_time_job_runs_once_when_clocks_go_back() -> None:
    daily = Timetable(cron="30 2 * * *", timezone="Europe/Paris")
    first = daily.next_after(at("2024-10-26T23:00:00+00:00"))
    assert iso(first, "Europe/Paris") == "2024-10-27T02:30:00+02:00"
    assert iso(daily.next_after(first), "Europe/Paris") == "2024-10-28T02:30:00+01:00"
    hourly = Timetable(cron="30 * * * *", timezone="Europe/Paris")
    second = hourly.next_after(first)
    assert iso(second, "Europe/Paris") == "2024-10-27T02:30:00+01:00"  # an hour later, again


def test_interval_next_time() -> None:
    assert Timetable(interval=90).next_after(1000.0) == 1090.0


# --- config errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheduler", "message"),
    [
        ("{}", "give exactly one of cron or interval"),
        ("{cron: '* * * * *', interval: 5s}", "give exactly one of cron or interval"),
        ("{interval: 0}", "interval must be more than 0 seconds"),
        ("{cron: 'every day'}", "invalid cron expression"),
        ("{interval: 5s, timezone: Europe/Pariss}", "did you mean 'Europe/Paris'"),
        ("{interval: 5s, maxConcurrent: 0}", "maxConcurrent"),
        ("{interval: 5s, maxConcurent: 2}", "maxConcurent"),
    ],
)
def test_bad_scheduler_config_is_reported(scheduler: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(job_config(scheduler), filename="wf.yaml")
    text = str(info.value)
    assert message in text
    assert "wf.yaml:" in text and "modules[0].config" in text


def test_jobs_need_a_scheduler_module() -> None:
    with pytest.raises(ConfigError, match="no module provides 'scheduler'"):
        parse_config(
            """
workflows:
  scheduler:
    jobs: [{job: p}]
pipelines:
  p: [{type: log, message: hi}]
"""
        )


# --- the clock ----------------------------------------------------------------------------


async def test_manual_clock_wakes_sleepers_in_order_and_never_goes_back() -> None:
    clock = ManualClock(100)
    woke: list[float] = []

    async def sleeper(until: float) -> None:
        await clock.sleep_until(until)
        woke.append(clock.now())

    tasks = [asyncio.create_task(sleeper(t)) for t in (130, 110)]
    await clock.settle(sleepers=2)
    assert clock.sleepers == [110, 130]
    clock.advance(10)
    await clock.settle(sleepers=1)
    assert woke == [110]
    clock.set(dt.datetime.fromtimestamp(200, UTC))
    await asyncio.gather(*tasks)
    assert woke == [110, 200] and clock.sleepers == []
    with pytest.raises(ValueError, match="does not go backwards"):
        clock.set(150)
