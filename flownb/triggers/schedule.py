"""`triggers.schedule`: cron or interval timers that call `trigger_workflow`."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from flownb.fields import Cron, Duration, Name, Spec
from flownb.workflows.kinds import WorkflowKind


class ScheduleJob(Spec):
    name: Name | None = Field(None, description="defaults to workflow:action")
    cron: Cron | None = None
    interval: Duration | None = None
    workflow: WorkflowKind
    action: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_timer(self) -> ScheduleJob:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("give exactly one of cron or interval")
        return self


class ScheduleTriggerSpec(Spec):
    jobs: list[ScheduleJob] = Field(default_factory=list)
