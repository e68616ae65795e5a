"""`triggers.http`: an HTTP route that calls `trigger_workflow` with path, query, body and params."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from flownb.fields import Ref, Spec
from flownb.workflows.http import HttpMethod
from flownb.workflows.kinds import WorkflowKind


class HttpTriggerRoute(Spec):
    path: str
    method: HttpMethod = "POST"
    workflow: WorkflowKind
    action: str
    params: dict[str, Any] = Field(default_factory=dict, description="added to the input data")
    mode: Literal["async", "sync"] = Field(
        "async", description="async: reply 202 with the execution id; sync: reply with the result"
    )


class HttpTriggerSpec(Spec):
    server: Annotated[str | None, Ref("http.server", implicit=True)] = None
    router: Annotated[str | None, Ref("http.router", implicit=True)] = None
    routes: list[HttpTriggerRoute] = Field(default_factory=list)
