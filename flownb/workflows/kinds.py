"""The workflow kinds a config can declare and a trigger can target."""

from __future__ import annotations

from typing import Literal, get_args

WorkflowKind = Literal[
    "http", "messaging", "statemachine", "event", "scheduler", "integration", "pipeline"
]
WORKFLOW_KINDS: tuple[str, ...] = get_args(WorkflowKind)
