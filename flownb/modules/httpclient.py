"""The `httpclient` module: one configured way to call an HTTP API (httpx underneath).

Base URL, default headers, auth (bearer, basic or an API key, with credentials from `${VAR}`),
a timeout, a connection pool, retries with exponential backoff and a token-bucket rate limit,
declared once and used by `http_call` steps (`client: NAME`), integration connectors and
Python code (`await client.request("GET", "/items")`).

Retries: a connection that could not be made is retried for every method (nothing reached the
server); 429 too (the server did not process it), waiting what `Retry-After` asks; other
failures (5xx, 408, timeouts after sending) only for the `retry.methods`, the idempotent ones
by default, so a POST is not sent twice by accident. Rate limit: a call waits for its token
(fairly, first come first served); one that would wait longer than `maxWait` fails with 429.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from flownb.backoff import Backoff, retry_after, should_retry
from flownb.errors import ExecutionError
from flownb.fields import Duration, Spec
from flownb.module import Module
from flownb.registry import ModuleType

if TYPE_CHECKING:
    import httpx

    from flownb.clock import Clock
    from flownb.engine import Engine

log = logging.getLogger("flownb.httpclient")

HttpMethod = Literal["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]
IDEMPOTENT: tuple[HttpMethod, ...] = ("GET", "HEAD", "OPTIONS", "PUT", "DELETE")


class ClientAuthConfig(Spec):
    scheme: Literal["bearer", "basic", "apikey"] = Field(
        description="bearer: Authorization: Bearer TOKEN; basic: username and password; "
        "apikey: a key in a header (or a query parameter)"
    )
    token: str | None = Field(None, description="bearer: the token, e.g. ${API_TOKEN}")
    username: str | None = Field(None, description="basic: the user")
    password: str | None = Field(None, description="basic: the password, e.g. ${API_PASSWORD}")
    key: str | None = Field(None, description="apikey: the key, e.g. ${API_KEY}")
    header: str = Field("X-API-Key", description="apikey: the header carrying the key")
    query: str | None = Field(
        None, description="apikey: send the key as this query parameter instead of a header"
    )

    @model_validator(mode="after")
    def _credentials(self) -> ClientAuthConfig:
        needed = {"bearer": ("token",), "basic": ("username", "password"), "apikey": ("key",)}
        missing = [k for k in needed[self.scheme] if not getattr(self, k)]
        if missing:
            raise ValueError(f"scheme {self.scheme} needs {' and '.join(missing)}")
        unused = [
            k
            for k in ("token", "username", "password", "key")
            if getattr(self, k) and k not in needed[self.scheme]
        ]
        if unused:
            raise ValueError(f"{', '.join(unused)} is not used by scheme {self.scheme}")
        return self


class ClientRetryConfig(Spec):
    max_retries: int = Field(3, alias="maxRetries", ge=0, description="retries after the first try")
    initial_backoff: Duration = Field(
        Duration("200ms"), alias="initialBackoff", description="wait before the first retry"
    )
    max_backoff: Duration = Field(
        Duration("10s"), alias="maxBackoff", description="longest wait between tries"
    )
    multiplier: float = Field(2.0, ge=1.0, description="each wait is this many times the last")
    jitter: float = Field(
        0.2, ge=0.0, le=1.0, description="random part taken off each wait (0.2: up to 20%)"
    )
    methods: list[HttpMethod] = Field(
        default_factory=lambda: list(IDEMPOTENT),
        description="methods retried after 5xx, 408 or a timeout (connect errors and 429 are "
        "retried for every method)",
    )
    max_retry_after: Duration = Field(
        Duration("60s"),
        alias="maxRetryAfter",
        description="longest Retry-After honoured; a server asking for more gets no retry",
    )


class ClientRateLimitConfig(Spec):
    rate: float | None = Field(None, gt=0, description="calls per second")
    requests_per_minute: float | None = Field(
        None, alias="requestsPerMinute", gt=0, description="calls per minute"
    )
    burst: int | None = Field(
        None, ge=1, description="calls allowed at once (default: a second's or minute's worth)"
    )
    max_wait: Duration = Field(
        Duration("30s"), alias="maxWait", description="a call waiting longer than this fails (429)"
    )

    @model_validator(mode="after")
    def _one_rate(self) -> ClientRateLimitConfig:
        if (self.requests_per_minute is None) == (self.rate is None):
            raise ValueError("set exactly one of rate or requestsPerMinute")
        return self


class HttpClientConfig(Spec):
    base_url: str = Field(
        "", alias="baseUrl", description="prefix of relative URLs, e.g. https://api.example.com/v1"
    )
    timeout: Duration = Field(Duration("10s"), description="per-try timeout")
    headers: dict[str, str] = Field(default_factory=dict, description="sent with every call")
    auth: ClientAuthConfig | None = Field(None, description="credentials sent with every call")
    retry: ClientRetryConfig = Field(
        default_factory=ClientRetryConfig, description="retries with exponential backoff"
    )
    rate_limit: ClientRateLimitConfig | None = Field(
        None, alias="rateLimit", description="token bucket shared by every call of this client"
    )
    max_connections: int = Field(
        100, alias="maxConnections", ge=1, description="connections open at once"
    )
    follow_redirects: bool = Field(False, alias="followRedirects")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("baseUrl starts with http:// or https://")
        return value


class HttpClientError(ExecutionError):
    """A call that got no usable reply (could not connect, timed out, rate limited)."""

    status = 502


class TokenBucket:
    """Reserving token bucket: each call takes a token now or books the next free one, so
    waiting calls are served in order and none starves."""

    __slots__ = ("burst", "clock", "last", "rate", "tokens")

    def __init__(self, rate: float, burst: int, clock: Clock) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = float(burst)
        self.last = clock.monotonic()

    def reserve(self, max_wait: float) -> float | None:
        """Seconds to wait for a token (0: go now); None if that exceeds `max_wait`."""
        now = self.clock.monotonic()
        self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.rate)
        self.last = now
        wait = 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate
        if wait > max_wait:
            return None
        self.tokens -= 1.0
        return wait


class HttpClient(Module[HttpClientConfig]):
    """Calls an HTTP API with the configured auth, timeout, retries and rate limit."""

    _client: httpx.AsyncClient | None = None
    _bucket: TokenBucket | None = None

    async def init(self, engine: Engine) -> None:
        config = self.config
        retry = config.retry
        self.clock = engine.clock
        self.backoff = Backoff(
            float(retry.initial_backoff), float(retry.max_backoff), retry.multiplier, retry.jitter
        )
        self.retry_methods = frozenset(retry.methods)
        limit = config.rate_limit
        if limit is not None:
            per_second = limit.rate or (limit.requests_per_minute or 60.0) / 60.0
            default = limit.rate or limit.requests_per_minute or 1.0
            self._bucket = TokenBucket(
                per_second, limit.burst or max(1, math.ceil(default)), engine.clock
            )

    async def start(self) -> None:
        import httpx

        config = self.config
        headers = dict(config.headers)
        params: dict[str, str] = {}
        auth: httpx.Auth | None = None
        creds = config.auth
        if creds is not None:
            if creds.scheme == "bearer":
                headers["Authorization"] = f"Bearer {creds.token}"
            elif creds.scheme == "basic":
                auth = httpx.BasicAuth(creds.username or "", creds.password or "")
            elif creds.query:
                params[creds.query] = creds.key or ""
            else:
                headers[creds.header] = creds.key or ""
        self._client = httpx.AsyncClient(
            base_url=config.base_url,
            headers=headers,
            params=params,
            auth=auth,
            timeout=float(config.timeout),
            limits=httpx.Limits(max_connections=config.max_connections),
            follow_redirects=config.follow_redirects,
        )

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise HttpClientError(f"httpclient {self.name!r} is not started", status=503)
        return self._client

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        request_id: str | None = None,
    ) -> httpx.Response:
        """Send one call, retrying as configured; the last reply, whatever its status.

        Raises `HttpClientError` (502, or 504 for a timeout, 429 when rate limited) when no
        reply came back after the last try.
        """
        import httpx

        method = method.upper()
        client = self.client
        extra = dict(headers or {})
        if request_id:
            extra.setdefault("X-Request-ID", request_id)
        retries = self.config.retry.max_retries
        for attempt in range(retries + 1):
            await self._take_token(method, url)
            try:
                reply = await client.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    content=content,
                    headers=extra,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TransportError as exc:
                unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if attempt == retries or not (unsent or method in self.retry_methods):
                    raise self._failed(method, url, exc, attempt + 1) from None
                delay = self.backoff.delay(attempt)
                log.info("%s %s %s: %s; retry in %.2fs", self.name, method, url, exc, delay)
            else:
                delay_or_none = self._retry_delay(reply, method, attempt, retries)
                if delay_or_none is None:
                    return reply
                delay = delay_or_none
                await reply.aclose()
                log.info(
                    "%s %s %s: %d; retry in %.2fs", self.name, method, url, reply.status_code, delay
                )
            await self.clock.sleep_until(self.clock.now() + delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _retry_delay(
        self, reply: httpx.Response, method: str, attempt: int, retries: int
    ) -> float | None:
        """Seconds to wait before retrying after `reply`, or None to return it."""
        status = reply.status_code
        if attempt == retries or not should_retry(status):
            return None
        if status != 429 and method not in self.retry_methods:
            return None
        delay = self.backoff.delay(attempt)
        asked = retry_after(reply.headers.get("Retry-After"), self.clock.now())
        if asked is not None:
            if asked > float(self.config.retry.max_retry_after):
                return None
            delay = max(delay, asked)
        return delay

    async def _take_token(self, method: str, url: str) -> None:
        bucket = self._bucket
        if bucket is None:
            return
        limit = self.config.rate_limit
        assert limit is not None
        wait = bucket.reserve(float(limit.max_wait))
        if wait is None:
            raise HttpClientError(
                f"httpclient {self.name!r}: {method} {url} would wait longer than maxWait "
                f"({float(limit.max_wait):g}s) for the rate limit",
                status=429,
            )
        if wait > 0:
            await self.clock.sleep_until(self.clock.now() + wait)

    def _failed(self, method: str, url: str, exc: Exception, tries: int) -> HttpClientError:
        import httpx

        timed_out = isinstance(exc, httpx.TimeoutException)
        reason = f"timed out ({type(exc).__name__})" if timed_out else f"{type(exc).__name__}"
        detail = str(exc)
        if detail and not timed_out:
            reason += f": {detail}"
        full = str(self.client.base_url.join(url)) if self._client is not None else url
        return HttpClientError(
            f"httpclient {self.name!r}: {method} {full} failed after "
            f"{tries} {'try' if tries == 1 else 'tries'}: {reason}",
            status=504 if timed_out else 502,
        )


TYPES: list[ModuleType] = [
    ModuleType(
        "httpclient",
        "Integration",
        "HTTP API client: base URL, auth (bearer/basic/API key), timeout, retries with "
        "backoff, rate limit",
        HttpClientConfig,
        HttpClient,
        provides=("httpclient",),
    ),
]
