"""The `scheduler` module: a timetable (cron or interval) that runs the jobs attached to it.

Jobs come from `workflows.scheduler.jobs`; each due time runs every attached job as its own
engine execution. A job still running from an earlier time is skipped (up to `maxConcurrent`
runs at once) and the skip is logged; a failing run is logged and the schedule goes on.
"""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from flownb.fields import Duration
from flownb.registry import ModuleType
from flownb.timer import JobRuns, RunFn, TimedModule, TimerSpec


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


class Scheduler(TimedModule[SchedulerConfig]):
    """Fires attached jobs on its timetable from `start` until `drain`."""

    kind = "scheduler"

    def __init__(self, name: str, config: SchedulerConfig) -> None:
        super().__init__(name, config)
        self.jobs: list[JobRuns] = []

    def attach(self, label: str, run: RunFn) -> JobRuns:
        """Run `run(trigger_time)` at each due time from now on."""
        job = JobRuns(
            f"scheduler {self.name!r} job {label!r}", run, limit=self.config.max_concurrent
        )
        self.jobs.append(job)
        return job

    def run_on_start(self) -> bool:
        return self.config.run_on_start

    def jitter(self) -> float:
        return float(self.config.jitter or 0.0)

    def launch(self, when: dt.datetime) -> None:
        for job in self.jobs:
            job.launch(when)

    async def cancel_runs(self) -> None:
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
