"""`http_call`: call an HTTP API (httpx), with the request id passed on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import Field

from flownb.errors import StepError
from flownb.execution import ExecutionContext
from flownb.fields import Duration
from flownb.pipeline import StepFn, StepSpec

if TYPE_CHECKING:
    from flownb.engine import Engine


class HttpCallStep(StepSpec):
    type: Literal["http_call"] = "http_call"
    url: str = Field(description="URL, or a template giving one")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)
    body: Any = Field(None, description="JSON body (value or template)")
    request_timeout: Duration = Field(Duration(10.0), description="per-request timeout")
    fail_on_status: bool = Field(True, description="treat 4xx/5xx replies as step failures")

    def compile(self, engine: Engine) -> StepFn:
        url = engine.templates.value(self.url)
        headers = engine.templates.value(self.headers)
        query = engine.templates.value(self.query)
        body = engine.templates.value(self.body)
        method, timeout, strict = self.method, float(self.request_timeout), self.fail_on_status
        label = self.name or "http_call"

        async def run(ctx: ExecutionContext) -> dict[str, Any]:
            import httpx

            scope = ctx.scope
            hdrs = {str(k): str(v) for k, v in headers(scope).items()}
            if ctx.request_id:
                hdrs.setdefault("X-Request-ID", ctx.request_id)
            payload = body(scope)
            if payload is not None and not any(k.lower() == "content-type" for k in hdrs):
                hdrs["Content-Type"] = "application/json"
            client = engine.http_client()
            try:
                reply = await client.request(
                    method,
                    str(url(scope)),
                    headers=hdrs,
                    params=query(scope),
                    content=None if payload is None else orjson.dumps(payload),
                    timeout=timeout,
                )
            except httpx.HTTPError as exc:
                raise StepError(
                    label, f"{method} failed: {type(exc).__name__}: {exc}", status=502
                ) from None
            if strict and reply.status_code >= 400:
                raise StepError(
                    label,
                    f"{method} {reply.url} replied {reply.status_code}",
                    status=502,
                    details={"status": reply.status_code, "body": reply.text[:2000]},
                )
            try:
                parsed: Any = reply.json()
            except ValueError:
                parsed = reply.text
            return {"status": reply.status_code, "headers": dict(reply.headers), "body": parsed}

        return run
