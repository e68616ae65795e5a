"""`workflows.scheduler`: handlers run on the timetable of a `scheduler` module."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from flownb.fields import Ref, Spec


class JobSpec(Spec):
    scheduler: Annotated[str | None, Ref("scheduler", implicit=True)] = None
    job: Annotated[str, Ref("handler")] = Field(description="handler module or pipeline to run")
    params: dict[str, Any] = Field(default_factory=dict, description="input data of each run")


class SchedulerWorkflowSpec(Spec):
    jobs: list[JobSpec] = Field(default_factory=list)
