"""`workflows.scheduler`: handlers run on the timetable of a `scheduler` module."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from flownb.errors import ExecutionError, UnknownNameError
from flownb.fields import Ref, Spec
from flownb.workflows.base import Workflow

if TYPE_CHECKING:
    from flownb.engine import Engine


class JobSpec(Spec):
    scheduler: Annotated[str | None, Ref("scheduler", implicit=True)] = None
    job: Annotated[str, Ref("handler")] = Field(description="handler module or pipeline to run")
    params: dict[str, Any] = Field(default_factory=dict, description="input data of each run")


class SchedulerWorkflowSpec(Spec):
    jobs: list[JobSpec] = Field(default_factory=list)


class ScheduledJob:
    """One job of the workflow: its handler, fixed params and the scheduler it runs on."""

    __slots__ = ("engine", "handler", "name", "params", "scheduler")

    def __init__(self, engine: Engine, spec: JobSpec) -> None:
        from flownb.modules.scheduler import Scheduler

        self.engine, self.name, self.params = engine, spec.job, spec.params
        self.handler = engine.handler(spec.job)
        self.scheduler = engine.services.get(
            engine.resolve_ref("scheduler", spec.scheduler), Scheduler
        )

    async def run(self, when: dt.datetime, data: Any = None, request_id: str | None = None) -> Any:
        """Run once as its own execution; `data` (manual runs) goes over the params."""
        payload = {**self.params, "trigger_time": when.isoformat(), **(data or {})}
        ctx = await self.engine.run_handler(
            self.handler, payload, workflow="scheduler", action=self.name, request_id=request_id
        )
        return ctx.result


class SchedulerWorkflow(Workflow[SchedulerWorkflowSpec]):
    """Attaches each job to its scheduler; `trigger(job, data)` runs a job now."""

    kind = "scheduler"

    async def configure(self) -> None:
        self.jobs: dict[str, ScheduledJob] = {}
        for spec in self.spec.jobs:
            job = ScheduledJob(self.engine, spec)
            job.scheduler.attach(job.name, job.run)
            self.jobs.setdefault(job.name, job)  # the same job on two schedulers: first wins

    async def trigger(self, action: str, data: Any, *, request_id: str | None = None) -> Any:
        job = self.jobs.get(action)
        if job is None:
            raise UnknownNameError("scheduler job", action, list(self.jobs))
        if data is not None and not isinstance(data, dict):
            raise ExecutionError("a scheduler job takes an object as input", status=400)
        scheduler = job.scheduler
        assert scheduler.timetable is not None
        now = scheduler.timetable.local(scheduler.clock.now())
        return await job.run(now, data, request_id)
