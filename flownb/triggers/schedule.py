"""`triggers.schedule`: cron or interval timers that call `trigger_workflow`."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from pydantic import Field

from flownb.fields import Name, Spec
from flownb.timer import JobRuns, RunFn, Ticker, TimerSpec
from flownb.triggers.base import Trigger
from flownb.workflows.kinds import WorkflowKind


class ScheduleJob(TimerSpec):
    name: Name | None = Field(None, description="defaults to workflow:action")
    workflow: WorkflowKind
    action: str
    params: dict[str, Any] = Field(default_factory=dict)


class ScheduleTriggerSpec(Spec):
    jobs: list[ScheduleJob] = Field(default_factory=list)


class ScheduleTrigger(Trigger[ScheduleTriggerSpec]):
    """One timer per job; a job still running when its next time comes is skipped (logged)."""

    kind = "schedule"

    async def configure(self) -> None:
        clock, store = self.engine.clock, self.engine.stores.schedules
        self.timers: list[tuple[Ticker, JobRuns]] = []
        seen: set[str] = set()
        for i, job in enumerate(self.spec.jobs):
            name = job.name or f"{job.workflow}:{job.action}"
            if name in seen:
                name = f"{name}#{i}"
            seen.add(name)
            runs = JobRuns(f"schedule trigger {name!r}", self._runner(job))
            timetable = job.timetable()
            ticker = Ticker(f"trigger:{name}", timetable, runs.launch, clock=clock, store=store)
            self.timers.append((ticker, runs))

    def _runner(self, job: ScheduleJob) -> RunFn:
        engine, workflow, action, params = self.engine, job.workflow, job.action, job.params

        async def run(when: dt.datetime) -> Any:
            data = {**params, "trigger_time": when.isoformat()}
            return await engine.trigger_workflow(workflow, action, data)

        return run

    async def start(self) -> None:
        for ticker, _ in self.timers:
            await ticker.start()

    async def stop(self) -> None:
        """Stop the timers, let runs in flight finish (up to the drain timeout), cancel the rest."""
        for ticker, _ in self.timers:
            await ticker.stop()
        timeout = self.engine.drain_timeout
        finished = await asyncio.gather(*(runs.wait(timeout) for _, runs in self.timers))
        for (_, runs), done in zip(self.timers, finished, strict=True):
            if not done:
                await runs.cancel()
