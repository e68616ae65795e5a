"""The `pipeline` target: `trigger_workflow("pipeline", NAME, data)` runs a named pipeline."""

from __future__ import annotations

from typing import Any

from flownb.workflows.base import Workflow


class PipelineWorkflow(Workflow[None]):
    kind = "pipeline"

    async def trigger(self, action: str, data: Any, *, request_id: str | None = None) -> Any:
        pipeline = self.engine.pipeline(action)
        ctx = await self.engine.run_handler(
            pipeline, data, workflow="pipeline", action=action, request_id=request_id
        )
        return ctx.result
