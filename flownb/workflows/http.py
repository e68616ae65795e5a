"""`workflows.http`: routes on a router, served by an HTTP server, each running a handler."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from flownb.fields import Ref, Spec

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


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
        if not value.startswith("/"):
            raise ValueError("a route path must start with '/'")
        return value

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
