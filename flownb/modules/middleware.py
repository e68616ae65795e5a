"""HTTP middleware module types: auth, logging, ratelimit, cors, requestid.

Each provides "middleware" and is a `flownb.http.Middleware`; the http workflow composes
them per route (workflow-wide ones first, outermost first). A sensible order is
`requestid, logging, cors, ratelimit, auth`: the id is known to every log line, CORS answers
preflights before auth asks browsers for credentials they never send on a preflight.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import math
import re
import time
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from flownb.execution import execution_id
from flownb.fields import Duration, Spec
from flownb.http.middleware import Middleware
from flownb.http.ratelimit import TokenBuckets, retry_after
from flownb.http.reply import Reply, error_reply
from flownb.http.request import Request
from flownb.http.router import Endpoint
from flownb.module import Module
from flownb.registry import ModuleType

Credentials = list[str] | dict[str, str]


# --- auth ----------------------------------------------------------------------------------
class AuthConfig(Spec):
    scheme: Literal["bearer", "basic", "apikey"] = Field(
        description="bearer: Authorization: Bearer TOKEN; basic: user and password; "
        "apikey: a key in a header"
    )
    tokens: Credentials = Field(
        default_factory=list,
        description="bearer tokens, a list or name -> token; fill from the environment, "
        "e.g. ['${API_TOKEN}']",
    )
    users: dict[str, str] = Field(
        default_factory=dict,
        description="basic: user -> password, e.g. {alice: '${ALICE_PASSWORD}'}",
    )
    keys: Credentials = Field(
        default_factory=list, description="apikey: accepted keys, a list or name -> key"
    )
    header: str = Field("X-API-Key", description="apikey: the header carrying the key")
    realm: str = Field("flownb", description="realm named in WWW-Authenticate")

    @model_validator(mode="after")
    def _credentials(self) -> AuthConfig:
        needed = {"bearer": "tokens", "basic": "users", "apikey": "keys"}[self.scheme]
        for other in ("tokens", "users", "keys"):
            if other != needed and getattr(self, other):
                raise ValueError(f"{other} is not used by scheme {self.scheme!r}; use {needed}")
        given: Any = getattr(self, needed)
        if not given:
            raise ValueError(
                f"scheme {self.scheme!r} needs at least one entry in {needed} (an empty list "
                "would refuse everyone; to turn auth off, remove the middleware)"
            )
        values = given.values() if isinstance(given, dict) else given
        if any(not v for v in values):
            raise ValueError(
                f"{needed} has an empty credential; is its environment variable set and not empty?"
            )
        if isinstance(given, dict) and any(not k for k in given):
            raise ValueError(f"{needed} has an empty name")
        return self


def _named(credentials: Credentials, kind: str) -> list[tuple[str, bytes]]:
    items = (
        credentials.items()
        if isinstance(credentials, dict)
        else ((f"{kind}-{i}", c) for i, c in enumerate(credentials))
    )
    return [(name, secret.encode()) for name, secret in items]


def _bytes(text: str) -> bytes:
    """Header text as bytes; aiohttp keeps undecodable bytes as surrogates."""
    return text.encode("utf-8", "surrogateescape")


def _match(given: bytes, known: list[tuple[str, bytes]]) -> str | None:
    """The name of the credential equal to `given`; compares against all of them, always."""
    found = None
    for name, secret in known:
        if hmac.compare_digest(given, secret) and found is None:
            found = name
    return found


class Auth(Module[AuthConfig], Middleware):
    """Refuses requests without valid credentials (401); sets `request.user` otherwise."""

    def __init__(self, name: str, config: AuthConfig) -> None:
        super().__init__(name, config)
        self.scheme = config.scheme
        realm = config.realm.replace('"', "'")
        challenge = {
            "bearer": f'Bearer realm="{realm}"',
            "basic": f'Basic realm="{realm}", charset="UTF-8"',
            "apikey": f'ApiKey realm="{realm}", header="{config.header}"',
        }[config.scheme]
        self._challenge = {"WWW-Authenticate": challenge}
        self._tokens = _named(config.tokens, "token")
        self._keys = _named(config.keys, "key")
        self._users = {u: p.encode() for u, p in config.users.items()}
        self._dummy = b"\x00" * 32

    def authenticate(self, request: Request) -> str | None:
        """The principal's name, or None (missing or wrong credentials)."""
        headers = request.headers
        if self.scheme == "apikey":
            key = headers.get(self.config.header)
            return None if not key else _match(_bytes(key), self._keys)
        kind, _, value = headers.get("Authorization", "").partition(" ")
        value = value.strip()
        if not value:
            return None
        if self.scheme == "bearer":
            return _match(_bytes(value), self._tokens) if kind.lower() == "bearer" else None
        if kind.lower() != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        expected = self._users.get(user)
        ok = hmac.compare_digest(password.encode(), expected or self._dummy)
        return user if sep and ok and expected is not None else None

    async def __call__(self, request: Request, call_next: Endpoint) -> Reply:
        name = self.authenticate(request)
        if name is None:
            present = (
                self.config.header in request.headers
                if self.scheme == "apikey"
                else "Authorization" in request.headers
            )
            message = "invalid credentials" if present else "authentication required"
            return error_reply(401, message, request.id, headers=dict(self._challenge))
        request.user = {"name": name, "scheme": self.scheme}
        return await call_next(request)


# --- logging -------------------------------------------------------------------------------
class LoggingConfig(Spec):
    level: Literal["debug", "info", "warning"] = Field("info", description="log level")
    logger: str = Field("flownb.http.requests", description="logger name")


class RequestLogging(Module[LoggingConfig], Middleware):
    """One log line per request: method, route, path, status, duration, request id."""

    def __init__(self, name: str, config: LoggingConfig) -> None:
        super().__init__(name, config)
        self.log = logging.getLogger(config.logger)
        self.level = logging.getLevelName(config.level.upper())

    async def __call__(self, request: Request, call_next: Endpoint) -> Reply:
        if not self.log.isEnabledFor(self.level):
            return await call_next(request)
        started = time.perf_counter()
        status = 500
        try:
            reply = await call_next(request)
            status = reply.status
            return reply
        finally:
            self.log.log(
                self.level,
                "%s %s (%s) %d %.2fms request=%s",
                request.method,
                request.route,
                request.path,
                status,
                (time.perf_counter() - started) * 1000,
                request.id,
            )


# --- ratelimit -----------------------------------------------------------------------------
class RateLimitConfig(Spec):
    requests_per_minute: float | None = Field(
        None, alias="requestsPerMinute", gt=0, description="sustained rate per client"
    )
    rate: float | None = Field(None, gt=0, description="sustained rate per client, per second")
    burst: int | None = Field(
        None,
        ge=1,
        description="requests a client may make at once (default: a minute's worth for "
        "requestsPerMinute, a second's worth for rate)",
    )
    key: str = Field(
        "ip",
        description='"ip" (the client address) or a header name such as X-API-Key '
        "(clients without that header are keyed by address)",
    )
    max_clients: int = Field(
        10_000, alias="maxClients", ge=1, description="buckets kept in memory at most"
    )

    @model_validator(mode="after")
    def _one_rate(self) -> RateLimitConfig:
        if (self.requests_per_minute is None) == (self.rate is None):
            raise ValueError("set exactly one of requestsPerMinute or rate")
        return self


class RateLimit(Module[RateLimitConfig], Middleware):
    """Token bucket per client; over the limit, 429 with Retry-After."""

    def __init__(self, name: str, config: RateLimitConfig) -> None:
        super().__init__(name, config)
        if config.requests_per_minute is not None:
            rate = config.requests_per_minute / 60.0
            burst = config.burst or max(1, math.ceil(config.requests_per_minute))
        else:
            rate = float(config.rate or 1.0)
            burst = config.burst or max(1, math.ceil(rate))
        self.buckets = TokenBuckets(rate, burst, max_keys=config.max_clients)
        self._header = None if config.key.lower() == "ip" else config.key

    async def __call__(self, request: Request, call_next: Endpoint) -> Reply:
        key = None
        if self._header is not None:
            value = request.headers.get(self._header)
            key = f"h:{value}" if value else None
        if key is None:
            key = f"ip:{request.remote}"
        wait = self.buckets.take(key)
        if wait:
            return error_reply(
                429, "too many requests", request.id, headers={"Retry-After": retry_after(wait)}
            )
        return await call_next(request)


# --- cors ----------------------------------------------------------------------------------
_DEFAULT_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
_DEFAULT_HEADERS = ["Authorization", "Content-Type", "X-Request-ID"]


class CorsConfig(Spec):
    allowed_origins: list[str] = Field(
        alias="allowedOrigins",
        min_length=1,
        description='origins allowed, e.g. ["https://app.example.com"]; "*" allows any '
        "origin and must be written explicitly",
    )
    allowed_methods: list[str] = Field(
        default_factory=lambda: list(_DEFAULT_METHODS), alias="allowedMethods"
    )
    allowed_headers: list[str] = Field(
        default_factory=lambda: list(_DEFAULT_HEADERS),
        alias="allowedHeaders",
        description='request headers allowed; "*" allows whatever the browser asks for',
    )
    exposed_headers: list[str] = Field(
        default_factory=lambda: ["X-Request-ID"],
        alias="exposedHeaders",
        description="reply headers scripts may read",
    )
    allow_credentials: bool = Field(
        False, alias="allowCredentials", description="allow cookies and Authorization"
    )
    max_age: Duration = Field(
        Duration("10m"), alias="maxAge", description="how long browsers cache a preflight"
    )

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and (origin.endswith("/") or "://" not in origin):
                raise ValueError(
                    f"origin {origin!r} must be scheme://host[:port] without a path, "
                    "e.g. https://app.example.com"
                )
        return value

    @field_validator("allowed_methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        return [m.upper() for m in value]

    @model_validator(mode="after")
    def _no_wildcard_credentials(self) -> CorsConfig:
        if self.allow_credentials and "*" in self.allowed_origins:
            raise ValueError(
                'allowedOrigins "*" cannot be combined with allowCredentials: list the origins '
                "that may send credentials"
            )
        return self


class Cors(Module[CorsConfig], Middleware):
    """Answers CORS preflights and adds CORS headers to replies for allowed origins."""

    def __init__(self, name: str, config: CorsConfig) -> None:
        super().__init__(name, config)
        self.any_origin = "*" in config.allowed_origins
        self.origins = frozenset(o for o in config.allowed_origins if o != "*")
        self.methods = frozenset(config.allowed_methods)
        self.any_header = "*" in config.allowed_headers
        self.headers = frozenset(h.lower() for h in config.allowed_headers if h != "*")
        common: dict[str, str] = {}
        if config.allow_credentials:
            common["Access-Control-Allow-Credentials"] = "true"
        self._common = common
        self._simple = dict(common)
        if config.exposed_headers:
            self._simple["Access-Control-Expose-Headers"] = ", ".join(config.exposed_headers)
        self._preflight = {
            **common,
            "Access-Control-Allow-Methods": ", ".join(config.allowed_methods),
            "Access-Control-Max-Age": str(int(config.max_age)),
        }
        self._allow_headers = ", ".join(h for h in config.allowed_headers if h != "*")

    def allows(self, origin: str) -> bool:
        return self.any_origin or origin in self.origins

    def _origin_headers(self, origin: str) -> dict[str, str]:
        if self.any_origin and not self.config.allow_credentials:
            return {"Access-Control-Allow-Origin": "*"}
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    async def __call__(self, request: Request, call_next: Endpoint) -> Reply:
        headers = request.headers
        origin = headers.get("Origin")
        if origin is None:
            return await call_next(request)
        wanted = headers.get("Access-Control-Request-Method")
        if request.method == "OPTIONS" and wanted is not None:
            return self.preflight(request, origin, wanted)
        reply = await call_next(request)
        if self.allows(origin):
            reply.headers.update(self._origin_headers(origin))
            reply.headers.update(self._simple)
        else:
            reply.headers["Vary"] = "Origin"  # the reply depends on Origin: keep caches honest
        return reply

    def preflight(self, request: Request, origin: str, wanted: str) -> Reply:
        if not self.allows(origin):
            return error_reply(403, f"CORS: origin {origin} is not allowed", request.id)
        if wanted.upper() not in self.methods:
            return error_reply(403, f"CORS: method {wanted} is not allowed", request.id)
        asked = request.headers.get("Access-Control-Request-Headers", "")
        names = [h.strip() for h in asked.split(",") if h.strip()]
        if not self.any_header:
            refused = [h for h in names if h.lower() not in self.headers]
            if refused:
                return error_reply(
                    403, f"CORS: header {', '.join(refused)} is not allowed", request.id
                )
        out = {**self._origin_headers(origin), **self._preflight}
        allow_headers = ", ".join(names) if self.any_header else self._allow_headers
        if allow_headers:
            out["Access-Control-Allow-Headers"] = allow_headers
        return Reply(204, b"", out)


# --- requestid -----------------------------------------------------------------------------
_SANE_ID = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")


class RequestIdConfig(Spec):
    header: str = Field("X-Request-ID", description="header read from requests, set on replies")


class RequestId(Module[RequestIdConfig], Middleware):
    """Takes a sane incoming request id (<= 128 of A-Z a-z 0-9 . _ -) or makes one; echoes it."""

    def __init__(self, name: str, config: RequestIdConfig) -> None:
        super().__init__(name, config)
        self.header = config.header

    async def __call__(self, request: Request, call_next: Endpoint) -> Reply:
        incoming = request.headers.get(self.header)
        rid = incoming if incoming is not None and _SANE_ID.match(incoming) else execution_id()
        request.id = rid
        reply = await call_next(request)
        reply.headers[self.header] = rid
        return reply


def _types() -> list[ModuleType]:
    spec: Mapping[str, tuple[str, type[Spec], type[Module[Any]]]] = {
        "http.middleware.auth": (
            "checks bearer tokens, basic passwords or API keys (401 on failure)",
            AuthConfig,
            Auth,
        ),
        "http.middleware.logging": (
            "logs one line per request: method, route, status, duration, request id",
            LoggingConfig,
            RequestLogging,
        ),
        "http.middleware.ratelimit": (
            "token bucket per client (address or header); 429 with Retry-After",
            RateLimitConfig,
            RateLimit,
        ),
        "http.middleware.cors": (
            "answers CORS preflights and adds CORS headers for allowed origins",
            CorsConfig,
            Cors,
        ),
        "http.middleware.requestid": (
            "accepts or generates X-Request-ID and echoes it on every reply",
            RequestIdConfig,
            RequestId,
        ),
    }
    return [
        ModuleType(name, "Middleware", desc, config, cls, provides=("middleware",))
        for name, (desc, config, cls) in spec.items()
    ]


TYPES: list[ModuleType] = _types()
