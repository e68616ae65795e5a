"""The step types a pipeline can use: an explicit list, the union validated by `type`."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from flownb.pipeline import StepSpec
from flownb.steps.cache import CacheStep
from flownb.steps.call import CallStep
from flownb.steps.conditional import Branch, Case, ConditionalStep
from flownb.steps.db import DbExecStep, DbQueryStep
from flownb.steps.http_call import HttpCallStep
from flownb.steps.log import LogStep
from flownb.steps.publish import PublishStep
from flownb.steps.respond import RespondStep
from flownb.steps.set import SetStep
from flownb.steps.transform import TransformStep
from flownb.steps.transition import TransitionStep
from flownb.steps.validate import ValidateStep
from flownb.steps.webhook import WebhookStep

STEP_TYPES: tuple[type[StepSpec], ...] = (
    SetStep,
    ValidateStep,
    TransformStep,
    ConditionalStep,
    TransitionStep,
    PublishStep,
    HttpCallStep,
    CallStep,
    LogStep,
    RespondStep,
    CacheStep,
    DbQueryStep,
    DbExecStep,
    WebhookStep,
)

AnyStep = Annotated[
    SetStep
    | ValidateStep
    | TransformStep
    | ConditionalStep
    | TransitionStep
    | PublishStep
    | HttpCallStep
    | CallStep
    | LogStep
    | RespondStep
    | CacheStep
    | DbQueryStep
    | DbExecStep
    | WebhookStep,
    Field(discriminator="type"),
]

for _model in (Branch, Case, ConditionalStep):
    _model.model_rebuild(_types_namespace={"AnyStep": AnyStep})

STEP_NAMES: tuple[str, ...] = tuple(t.model_fields["type"].default for t in STEP_TYPES)

__all__ = ["STEP_NAMES", "STEP_TYPES", "AnyStep"]
