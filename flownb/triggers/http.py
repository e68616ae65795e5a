"""`triggers.http`: an HTTP route that calls `trigger_workflow` with path, query, body and params.

The input is path params, then query, then the body's keys (a JSON object is merged; any
other body goes under `body`), then the route's `params`, later ones winning. Mode `async`
replies 202 at once and runs the workflow in a background task (the trigger's `stop` waits
for those, so an engine drain does too); mode `sync` replies with the result.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, field_validator

from flownb.errors import Loc
from flownb.fields import Ref, Spec
from flownb.http.reply import Reply, exception_reply, json_reply, result_reply
from flownb.triggers.base import Trigger
from flownb.workflows.http import HttpMethod, RouteWiring, check_path, unavailable_reply
from flownb.workflows.kinds import WorkflowKind

if TYPE_CHECKING:
    from flownb.engine import Engine
    from flownb.http.request import Request
    from flownb.http.router import Endpoint

log = logging.getLogger("flownb.triggers.http")


class HttpTriggerRoute(Spec):
    path: str = Field(description="path template, e.g. /hooks/{source}")
    method: HttpMethod = "POST"
    workflow: WorkflowKind
    action: str
    params: dict[str, Any] = Field(
        default_factory=dict, description="added to the input data (they win over the request)"
    )
    mode: Literal["async", "sync"] = Field(
        "async",
        description="async: reply 202 with the request id and run in the background; "
        "sync: reply with the result",
    )
    middlewares: list[Annotated[str, Ref("middleware")]] = Field(
        default_factory=list, description="middleware modules for this route, outermost first"
    )

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return check_path(value)


class HttpTriggerSpec(Spec):
    server: Annotated[str | None, Ref("http.server", implicit=True)] = None
    router: Annotated[str | None, Ref("http.router", implicit=True)] = None
    middlewares: list[Annotated[str, Ref("middleware")]] = Field(
        default_factory=list,
        description="middleware applied to every trigger route (e.g. auth), outermost first",
    )
    routes: list[HttpTriggerRoute] = Field(default_factory=list)


class HttpTrigger(Trigger[HttpTriggerSpec]):
    kind = "http"

    def __init__(self, engine: Engine, spec: HttpTriggerSpec) -> None:
        super().__init__(engine, spec)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False

    async def configure(self) -> None:
        spec = self.spec
        base: Loc = ("triggers", "http")
        wiring = RouteWiring(self.engine, spec.server, spec.router, base, spec.middlewares)
        for i, route in enumerate(spec.routes):
            loc, known = (*base, "routes", i), len(wiring.problems)
            own = wiring.middlewares(route.middlewares, (*loc, "middlewares"))
            if len(wiring.problems) == known:
                wiring.add(route.method, route.path, self._endpoint(route), own, loc)
        wiring.finish()

    def _endpoint(self, route: HttpTriggerRoute) -> Endpoint:
        engine = self.engine
        workflow, action, params = route.workflow, route.action, route.params
        background = route.mode == "async"

        async def endpoint(request: Request) -> Reply:
            if self._stopping or not engine.accepting:
                return unavailable_reply(request)
            rid = request.id
            try:
                data = trigger_input(request, await request.read_body(), params)
                if background:
                    self._spawn(workflow, action, data, rid)
                    return json_reply(
                        {"accepted": True, "requestId": rid}, 202, {"X-Request-ID": rid}
                    )
                result = await engine.trigger_workflow(workflow, action, data, request_id=rid)
            except Exception as exc:
                return exception_reply(exc, rid)
            return result_reply(result)

        return endpoint

    def _spawn(self, workflow: str, action: str, data: dict[str, Any], rid: str) -> None:
        task = asyncio.create_task(self._run(workflow, action, data, rid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, workflow: str, action: str, data: dict[str, Any], rid: str) -> None:
        try:
            await self.engine.trigger_workflow(workflow, action, data, request_id=rid)
        except Exception:
            log.exception("%s %s (request %s) failed", workflow, action, rid)

    async def stop(self) -> None:
        """Refuse new requests; wait (up to the engine's drain timeout) for background runs."""
        self._stopping = True
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.engine.drain_timeout)

    @property
    def pending(self) -> int:
        """Background executions not finished yet."""
        return len(self._tasks)


def trigger_input(request: Request, body: Any, params: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = dict(request.params)
    data.update(request.query)
    if isinstance(body, dict):
        data.update(body)
    elif body is not None:
        data["body"] = body
    if params:
        data.update(copy.deepcopy(params))
    return data
