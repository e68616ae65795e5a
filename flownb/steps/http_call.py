"""`http_call`: call an HTTP API (httpx), with the request id passed on."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
from pydantic import Field

from flownb.errors import StepError
from flownb.execution import ExecutionContext
from flownb.fields import Duration, Ref
from flownb.pipeline import StepFn, StepSpec

if TYPE_CHECKING:
    import httpx

    from flownb.engine import Engine


class HttpCallStep(StepSpec):
    type: Literal["http_call"] = "http_call"
    url: str = Field(description="URL, or a template giving one (relative to the client's baseUrl)")
    client: Annotated[str | None, Ref("httpclient")] = Field(
        None,
        description="httpclient module to call through (its base URL, auth, timeout, retries "
        "and rate limit)",
    )
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)
    body: Any = Field(None, description="JSON body (value or template)")
    request_timeout: Duration = Field(Duration(10.0), description="per-request timeout")
    fail_on_status: bool = Field(True, description="treat 4xx/5xx replies as step failures")

    def compile(self, engine: Engine) -> StepFn:
        if self.client is not None:
            return self._through_client(engine)
        url = engine.templates.value(self.url)
        prepare = self._prepare(engine)
        method, timeout = self.method, float(self.request_timeout)
        label = self.name or "http_call"

        async def run(ctx: ExecutionContext) -> dict[str, Any]:
            import httpx

            hdrs, query, content = prepare(ctx)
            if ctx.request_id:
                hdrs.setdefault("X-Request-ID", ctx.request_id)
            try:
                reply = await engine.http_client().request(
                    method,
                    str(url(ctx.scope)),
                    headers=hdrs,
                    params=query,
                    content=content,
                    timeout=timeout,
                )
            except httpx.HTTPError as exc:
                raise StepError(
                    label, f"{method} failed: {type(exc).__name__}: {exc}", status=502
                ) from None
            return self._result(reply)

        return run

    def _through_client(self, engine: Engine) -> StepFn:
        """The call goes through an `httpclient` module; its timeout applies unless the step
        sets `request_timeout`."""
        from flownb.modules.httpclient import HttpClient

        assert self.client is not None
        client: HttpClient = engine.services.get(self.client, HttpClient)
        url = engine.templates.value(self.url)
        prepare = self._prepare(engine)
        given = "request_timeout" in self.model_fields_set
        timeout = float(self.request_timeout) if given else None
        method = self.method

        async def run(ctx: ExecutionContext) -> dict[str, Any]:
            hdrs, query, content = prepare(ctx)
            reply = await client.request(
                method,
                str(url(ctx.scope)),
                headers=hdrs,
                params=query,
                content=content,
                timeout=timeout,
                request_id=ctx.request_id,
            )
            return self._result(reply)

        return run

    def _prepare(
        self, engine: Engine
    ) -> Callable[[ExecutionContext], tuple[dict[str, str], Any, bytes | None]]:
        """Headers, query and JSON body of one call, from the step's templates."""
        headers = engine.templates.value(self.headers)
        query = engine.templates.value(self.query)
        body = engine.templates.value(self.body)

        def prepare(ctx: ExecutionContext) -> tuple[dict[str, str], Any, bytes | None]:
            scope = ctx.scope
            hdrs = {str(k): str(v) for k, v in headers(scope).items()}
            payload = body(scope)
            if payload is not None and not any(k.lower() == "content-type" for k in hdrs):
                hdrs["Content-Type"] = "application/json"
            content = None if payload is None else orjson.dumps(payload)
            return hdrs, query(scope), content

        return prepare

    def _result(self, reply: httpx.Response) -> dict[str, Any]:
        """The step's output; a 4xx/5xx reply fails the step when `fail_on_status`."""
        if self.fail_on_status and reply.status_code >= 400:
            raise StepError(
                self.name or "http_call",
                f"{self.method} {reply.url} replied {reply.status_code}",
                status=502,
                details={"status": reply.status_code, "body": reply.text[:2000]},
            )
        try:
            parsed: Any = reply.json()
        except ValueError:
            parsed = reply.text
        return {"status": reply.status_code, "headers": dict(reply.headers), "body": parsed}
