"""The `http.proxy` module: a reverse proxy, mounted as the handler of routes.

```yaml
- name: api-proxy
  type: http.proxy
  config: {target: "http://127.0.0.1:9000", pathRewrite: {"^/api": ""}}
workflows:
  http:
    routes:
      - {method: [GET, POST, PUT, DELETE], path: "/api/{rest:.*}", handler: api-proxy}
```

Bodies stream both ways: the request body goes upstream as it arrives and the reply comes
back chunk by chunk, so a large upload or download is never held in memory. Paths with `.`
or `..` segments are refused (400), so a client cannot climb out of `target`. Hop-by-hop
headers (`Connection` and what it names, `Keep-Alive`, `Transfer-Encoding`, `Upgrade`...) are
dropped; `X-Forwarded-For`, `-Proto` and `-Host` are set and the request id is passed on as
`X-Request-ID`. An upstream that cannot be reached is a 502, one that does not answer in time
a 504. Each proxied request is one engine execution, like any route.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from pydantic import Field, field_validator

from flownb.errors import ExecutionError
from flownb.execution import ExecutionContext, Response
from flownb.fields import Duration, Spec
from flownb.module import Module
from flownb.registry import ModuleType

if TYPE_CHECKING:
    import httpx
    from aiohttp.web import BaseRequest

    from flownb.engine import Engine
    from flownb.http.request import Request

HOP_BY_HOP = frozenset(
    {
        "connection",
        "expect",  # 100-continue is answered here; the upstream gets the body as it comes
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_CHUNK = 64 * 1024


class ProxyConfig(Spec):
    target: str = Field(description="upstream base URL, e.g. http://127.0.0.1:9000 or .../v2")
    path_rewrite: dict[str, str] = Field(
        default_factory=dict,
        alias="pathRewrite",
        description="regex -> replacement on the request path, first match wins, e.g. "
        '{"^/api": ""} sends /api/items to TARGET/items',
    )
    timeout: Duration = Field(
        Duration("30s"), description="longest wait for the upstream to answer (then 504)"
    )
    connect_timeout: Duration = Field(
        Duration("5s"), alias="connectTimeout", description="longest wait to connect (then 502)"
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="added to every upstream request, e.g. credentials"
    )
    preserve_host: bool = Field(
        False, alias="preserveHost", description="send the client's Host header upstream"
    )
    max_body_bytes: int | None = Field(
        None,
        alias="maxBodyBytes",
        ge=0,
        description="largest request body passed on (413); none: no limit",
    )
    max_connections: int = Field(
        100, alias="maxConnections", ge=1, description="upstream connections open at once"
    )

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("target starts with http:// or https://")
        return value.rstrip("/")

    @field_validator("path_rewrite")
    @classmethod
    def _rewrites(cls, value: dict[str, str]) -> dict[str, str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pathRewrite {pattern!r} is not a valid regex: {exc}") from None
        return value


def _dropped(headers: Mapping[str, str]) -> frozenset[str]:
    """Hop-by-hop headers, plus those the Connection header names."""
    named = {
        part.strip().lower()
        for value in [headers.get("Connection", "")]
        for part in value.split(",")
        if part.strip()
    }
    return HOP_BY_HOP | named


class ReverseProxy(Module[ProxyConfig]):
    """Forwards each request of its routes to `target`, streaming both bodies."""

    streams_request = True  # the http workflow hands it the request unread
    _client: httpx.AsyncClient | None = None

    def __init__(self, name: str, config: ProxyConfig) -> None:
        super().__init__(name, config)
        self.rewrites = [(re.compile(p), r) for p, r in config.path_rewrite.items()]

    async def init(self, engine: Engine) -> None:
        self.engine = engine

    async def start(self) -> None:
        import httpx

        config = self.config
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(float(config.timeout), connect=float(config.connect_timeout)),
            limits=httpx.Limits(max_connections=config.max_connections),
            follow_redirects=False,
        )

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def upstream_url(self, path: str, query: str) -> str:
        """`target` + the (rewritten) path + the query, as sent: still percent-encoded.

        A path with `.` or `..` segments (even encoded) is refused: resolved upstream, it
        could leave the part of the upstream that `target` and the route expose.
        """
        if any(part in (".", "..") for part in unquote(path).split("/")):
            raise ExecutionError("the path may not contain '.' or '..' segments", status=400)
        for pattern, replacement in self.rewrites:
            rewritten, count = pattern.subn(replacement, path, count=1)
            if count:
                path = rewritten
                break
        if not path.startswith("/"):
            path = "/" + path
        return self.config.target + path + (f"?{query}" if query else "")

    def _request_headers(self, raw: BaseRequest, request_id: str) -> dict[str, str]:
        incoming = raw.headers
        drop = _dropped(incoming) | {"host", "x-request-id"}
        headers = {k: v for k, v in incoming.items() if k.lower() not in drop}
        if self.config.preserve_host and "Host" in incoming:
            headers["Host"] = incoming["Host"]
        remote = raw.remote or ""
        before = incoming.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{before}, {remote}" if before else remote
        headers["X-Forwarded-Proto"] = raw.scheme
        if "Host" in incoming:
            headers["X-Forwarded-Host"] = incoming["Host"]
        headers["X-Request-ID"] = request_id
        headers.update(self.config.headers)
        return headers

    async def _body(self, raw: BaseRequest) -> AsyncIterator[bytes]:
        limit = self.config.max_body_bytes
        size = 0
        async for chunk in raw.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if limit is not None and size > limit:
                raise ExecutionError(f"request body is larger than {limit} bytes", status=413)
            yield chunk

    async def handle(self, ctx: ExecutionContext, data: Any) -> Response:
        import httpx

        from flownb.http.request import raw_request

        request: Request | None = ctx.request
        if request is None:
            raise ExecutionError(
                f"http.proxy {self.name!r} answers HTTP routes only (it forwards a request)",
                status=400,
            )
        client = self._client
        if client is None:
            raise ExecutionError(f"http.proxy {self.name!r} is not started", status=503)
        raw = raw_request(request)
        limit = self.config.max_body_bytes
        if limit is not None and (raw.content_length or 0) > limit:
            raise ExecutionError(f"request body is larger than {limit} bytes", status=413)
        path, _, query = raw.raw_path.partition("?")  # as sent: still percent-encoded
        url = self.upstream_url(path, query)
        headers = self._request_headers(raw, ctx.request_id or request.id)
        content = self._body(raw) if raw.body_exists else None
        outgoing = client.build_request(raw.method, url, headers=headers, content=content)
        try:
            upstream = await client.send(outgoing, stream=True)
        except httpx.TimeoutException:
            raise ExecutionError(
                f"upstream {self.config.target} did not answer within "
                f"{float(self.config.timeout):g}s",
                status=504,
            ) from None
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise ExecutionError(
                f"upstream {self.config.target} is unreachable ({reason})", status=502
            ) from None
        drop = _dropped(upstream.headers)
        reply_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in drop}
        reply_headers.setdefault("X-Request-ID", headers["X-Request-ID"])
        return Response(upstream.status_code, _relay(upstream), reply_headers)


async def _relay(upstream: httpx.Response) -> AsyncIterator[bytes]:
    """The upstream body as it arrives (still encoded: Content-Encoding passes through)."""
    try:
        async for chunk in upstream.aiter_raw(_CHUNK):
            yield chunk
    finally:
        await upstream.aclose()


TYPES: list[ModuleType] = [
    ModuleType(
        "http.proxy",
        "HTTP",
        "reverse proxy: forwards a route's requests to an upstream URL (path rewrite, "
        "streamed bodies, X-Forwarded-* headers)",
        ProxyConfig,
        ReverseProxy,
        provides=("handler",),
    ),
]
