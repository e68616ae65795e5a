"""`workflows.http`: routes on a router, served by an HTTP server, each running a handler.

Each route runs as one engine execution (`workflow="http"`, `action="METHOD /template"`) with
the request as `ctx.request` and its input (query, path params, body) as `data`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, field_validator

from flownb.errors import ConfigError, Diagnostic, FlownbError, Loc
from flownb.fields import Ref, Spec
from flownb.http.reply import Reply, error_reply, exception_reply, result_reply
from flownb.workflows.base import Workflow

if TYPE_CHECKING:
    from flownb.engine import Engine
    from flownb.http.middleware import Middleware
    from flownb.http.request import Request
    from flownb.http.router import Endpoint
    from flownb.module import Handler

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def check_path(value: str) -> str:
    """A route path must start with '/' and be a valid template (checked at config load)."""
    from flownb.http.router import PathPattern

    if not value.startswith("/"):
        raise ValueError("a route path must start with '/'")
    try:
        PathPattern(value)
    except FlownbError as exc:
        raise ValueError(str(exc)) from None
    return value


class RouteSpec(Spec):
    method: HttpMethod | list[HttpMethod] = Field("GET", description="method or methods served")
    path: str = Field(description="path template, e.g. /orders/{id}; {name:regex} narrows a param")
    handler: Annotated[str, Ref("handler")] = Field(description="handler module or pipeline")
    middlewares: list[Annotated[str, Ref("middleware")]] = Field(
        default_factory=list, description="middleware modules, outermost first"
    )

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        if isinstance(value, str):
            return value.upper()
        if isinstance(value, list):
            return [v.upper() if isinstance(v, str) else v for v in value]
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return check_path(value)

    @property
    def methods(self) -> list[str]:
        return [self.method] if isinstance(self.method, str) else list(self.method)


class HttpWorkflowSpec(Spec):
    server: Annotated[str | None, Ref("http.server", implicit=True)] = Field(
        None, description="http.server module; may be left out when there is only one"
    )
    router: Annotated[str | None, Ref("http.router", implicit=True)] = Field(
        None, description="http.router module; may be left out when there is only one"
    )
    middlewares: list[Annotated[str, Ref("middleware")]] = Field(
        default_factory=list, description="middleware applied to every route, outermost first"
    )
    routes: list[RouteSpec] = Field(default_factory=list)


# --- runtime ---------------------------------------------------------------------------------
def handler_endpoint(
    engine: Engine, handler: Handler, methods: Iterable[str], template: str
) -> Endpoint:
    """The innermost endpoint of a route: read the input, run the handler as one execution."""
    actions = {m: f"{m} {template}" for m in methods}
    run_handler = engine.run_handler
    streams = getattr(handler, "streams_request", False)  # it reads the body itself (a proxy)

    async def endpoint(request: Request) -> Reply:
        if not engine.accepting:
            return unavailable_reply(request)
        try:
            data = None if streams else await request.input()
            ctx = await run_handler(
                handler,
                data,
                workflow="http",
                action=actions.get(request.method) or f"{request.method} {template}",
                request=request,
                request_id=request.id,
            )
        except Exception as exc:
            return exception_reply(exc, request.id)
        return result_reply(ctx.result)

    return endpoint


@contextmanager
def collect(engine: Engine, problems: list[Diagnostic], loc: Loc) -> Iterator[None]:
    """Turn a FlownbError raised while wiring a route into a diagnostic at `loc`."""
    try:
        yield
    except ConfigError:
        raise
    except FlownbError as exc:
        problems.append(engine.config.diagnostic(loc, str(exc)))


class RouteWiring:
    """What the http workflow and the http trigger share: mount their router on their server,
    resolve middleware names, add routes, and report every wiring problem at once."""

    def __init__(
        self,
        engine: Engine,
        server: str | None,
        router: str | None,
        base: Loc,
        middlewares: list[str],
    ) -> None:
        from flownb.modules.http import HttpRouter, HttpServer

        self.engine, self.base = engine, base
        http_server = engine.services.get(engine.resolve_ref("http.server", server), HttpServer)
        self.router = engine.services.get(engine.resolve_ref("http.router", router), HttpRouter)
        http_server.mount(self.router)
        self.problems: list[Diagnostic] = []
        self.shared = self.middlewares(middlewares, (*base, "middlewares"))

    def middlewares(self, names: list[str], loc: Loc) -> list[Middleware]:
        from flownb.http.middleware import Middleware

        try:
            return [self.engine.services.get(name, Middleware) for name in names]
        except FlownbError as exc:
            self.problems.append(self.engine.config.diagnostic(loc, str(exc)))
            return []

    def add(
        self,
        methods: str | list[str],
        path: str,
        endpoint: Endpoint,
        own: list[Middleware],
        loc: Loc,
    ) -> None:
        with collect(self.engine, self.problems, (*loc, "path")):
            self.router.add(methods, path, endpoint, middlewares=[*self.shared, *own])

    def finish(self) -> None:
        if self.problems:
            raise ConfigError(self.problems)


def unavailable_reply(request: Request) -> Reply:
    return error_reply(
        503, "the engine is shutting down", request.id, headers={"Connection": "close"}
    )


class HttpWorkflow(Workflow[HttpWorkflowSpec]):
    """Adds every route to the router, with its middleware chain compiled in, at build."""

    kind = "http"

    async def configure(self) -> None:
        engine, spec = self.engine, self.spec
        base: Loc = ("workflows", "http")
        wiring = RouteWiring(engine, spec.server, spec.router, base, spec.middlewares)
        for i, route in enumerate(spec.routes):
            loc, known = (*base, "routes", i), len(wiring.problems)
            own = wiring.middlewares(route.middlewares, (*loc, "middlewares"))
            with collect(engine, wiring.problems, (*loc, "handler")):
                handler = engine.handler(route.handler)
            if len(wiring.problems) > known:
                continue
            template = wiring.router.table.prefix + route.path
            endpoint = handler_endpoint(engine, handler, route.methods, template)
            wiring.add(route.methods, route.path, endpoint, own, loc)
        wiring.finish()

    async def trigger(self, action: str, data: Any, *, request_id: str | None = None) -> Any:
        """Run the handler (module or pipeline) named `action`, without a request."""
        ctx = await self.engine.run_handler(
            self.engine.handler(action),
            data,
            workflow="http",
            action=action,
            request_id=request_id,
        )
        return ctx.result
