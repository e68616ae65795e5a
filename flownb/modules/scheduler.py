"""The `scheduler` module: a timetable (cron or interval) that runs the jobs attached to it.

Jobs come from `workflows.scheduler.jobs`; each due time runs every attached job as its own
engine execution. A job still running from an earlier time is skipped (up to `maxConcurrent`
runs at once) and the skip is logged; a failing run is logged and the schedule goes on.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from pydantic import Field

from flownb.clock import Clock, SystemClock
from flownb.fields import Duration
from flownb.module import Module
from flownb.registry import ModuleType
from flownb.stores import MemoryScheduleStore, ScheduleStore
from flownb.timer import JobRuns, RunFn, Ticker, TimerSpec, Timetable

if TYPE_CHECKING:
    from flownb.engine import Engine


class SchedulerConfig(TimerSpec):
    max_concurrent: int = Field(
        1, alias="maxConcurrent", ge=1, description="runs of one job at once; more are skipped"
    )
    run_on_start: bool = Field(
        False, alias="runOnStart", description="also run the jobs when the engine starts"
    )
    jitter: Duration | None = Field(
        None, description="delay each run by a random time up to this (spreads the load)"
    )


class Scheduler(Module[SchedulerConfig]):
    """Fires attached jobs on its timetable from `start` until `drain`."""

    def __init__(self, name: str, config: SchedulerConfig) -> None:
        super().__init__(name, config)
        self.timetable: Timetable | None = None
        self.clock: Clock = SystemClock()
        self.store: ScheduleStore = MemoryScheduleStore()
        self.jobs: list[JobRuns] = []
        self._ticker: Ticker | None = None
        self._engine: Engine | None = None

    async def init(self, engine: Engine) -> None:
        config = self.config
        self.timetable = config.timetable()
        self.clock = engine.clock
        self.store = engine.stores.schedules
        self._engine = engine

    def attach(self, label: str, run: RunFn) -> JobRuns:
        """Run `run(trigger_time)` at each due time from now on."""
        job = JobRuns(
            f"scheduler {self.name!r} job {label!r}", run, limit=self.config.max_concurrent
        )
        self.jobs.append(job)
        return job

    @property
    def next_run(self) -> dt.datetime | None:
        return None if self._ticker is None else self._ticker.next_run

    async def start(self) -> None:
        assert self.timetable is not None, "init() runs before start()"
        self._ticker = Ticker(
            f"scheduler:{self.name}",
            self.timetable,
            self._tick,
            clock=self.clock,
            store=self.store,
            run_on_start=self.config.run_on_start,
            jitter=float(self.config.jitter or 0.0),
        )
        await self._ticker.start()

    def _tick(self, when: dt.datetime) -> None:
        if self._engine is not None and not self._engine.accepting:
            return  # the engine is stopping: no new runs
        for job in self.jobs:
            job.launch(when)

    async def drain(self) -> None:
        if self._ticker is not None:
            await self._ticker.stop()

    async def stop(self) -> None:
        await self.drain()
        self._ticker = None
        for job in self.jobs:
            await job.cancel()


TYPES: list[ModuleType] = [
    ModuleType(
        "scheduler",
        "Scheduling",
        "Runs the jobs of workflows.scheduler on a cron expression or an interval.",
        SchedulerConfig,
        Scheduler,
        provides=("scheduler",),
    ),
]
