"""Workflow kinds: `workflows.<kind>` sections and `trigger_workflow` targets.

Runtime classes are imported on first use, so a config pays only for the kinds it uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flownb.workflows.kinds import WORKFLOW_KINDS, WorkflowKind

if TYPE_CHECKING:
    from flownb.workflows.base import Workflow

_RUNTIME: dict[str, str] = {
    "http": "flownb.workflows.http:HttpWorkflow",
    "messaging": "flownb.workflows.messaging:MessagingWorkflow",
    "statemachine": "flownb.workflows.statemachine:StateMachineWorkflow",
    "event": "flownb.workflows.event:EventWorkflow",
    "scheduler": "flownb.workflows.scheduler:SchedulerWorkflow",
    "integration": "flownb.workflows.integration:IntegrationWorkflow",
    "pipeline": "flownb.workflows.pipeline:PipelineWorkflow",
}
assert set(_RUNTIME) == set(WORKFLOW_KINDS)


def workflow_type(kind: str) -> type[Workflow[Any]]:
    module, _, attr = _RUNTIME[kind].partition(":")
    cls: type[Workflow[Any]] = getattr(importlib.import_module(module), attr)
    return cls


__all__ = ["WORKFLOW_KINDS", "WorkflowKind", "workflow_type"]
