"""`log`: write a templated message (and fields) to the workflow log."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from flownb.execution import ExecutionContext
from flownb.pipeline import StepFn, StepSpec

if TYPE_CHECKING:
    from flownb.engine import Engine

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class LogStep(StepSpec):
    type: Literal["log"] = "log"
    message: str = Field(description="text or template")
    level: Literal["debug", "info", "warning", "error"] = "info"
    fields: dict[str, Any] = Field(default_factory=dict, description="extra structured fields")
    logger: str = Field("flownb.workflow", description="logger name")

    def compile(self, engine: Engine) -> StepFn:
        message = engine.templates.value(self.message)
        fields = engine.templates.value(self.fields)
        logger = logging.getLogger(self.logger)
        level = _LEVELS[self.level]

        async def run(ctx: ExecutionContext) -> None:
            if logger.isEnabledFor(level):
                extra = {
                    "execution_id": ctx.id,
                    "request_id": ctx.request_id,
                    "fields": fields(ctx.scope),
                }
                logger.log(level, "%s", message(ctx.scope), extra=extra)

        return run
