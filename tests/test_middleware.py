"""HTTP middlewares through a real server: auth, ratelimit, cors, requestid, logging."""

from __future__ import annotations

import base64
import logging

import pytest

from flownb.errors import ConfigError
from flownb.http.ratelimit import TokenBuckets
from flownb.loader import parse_config
from flownb.testing import run_engine

SERVER = """
modules:
  - {name: server, type: http.server, config: {address: "127.0.0.1:0"}}
  - {name: router, type: http.router}
"""
WHO = """
pipelines:
  who:
    - type: respond
      body: {user: "{{ request.user.name }}", id: "{{ request.id }}"}
"""


def app(middleware: str, *, route_mw: str = "[]", shared: str = "[]") -> str:
    return (
        SERVER
        + middleware
        + f"""
workflows:
  http:
    middlewares: {shared}
    routes:
      - {{method: GET, path: /who, handler: who, middlewares: {route_mw}}}
      - {{method: POST, path: /who, handler: who, middlewares: {route_mw}}}
      - {{method: GET, path: /open, handler: who}}
"""
        + WHO
    )


ENV = {"API_TOKEN": "t0ken-from-env", "ALICE_PASSWORD": "s3cret", "API_KEY": "k3y"}


def basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@pytest.mark.parametrize(
    ("config", "good", "bad", "challenge", "user"),
    [
        (
            'scheme: bearer, tokens: ["${API_TOKEN}"]',
            {"Authorization": "Bearer t0ken-from-env"},
            {"Authorization": "Bearer nope"},
            'Bearer realm="flownb"',
            "token-0",
        ),
        (
            'scheme: basic, users: {alice: "${ALICE_PASSWORD}"}',
            basic("alice", "s3cret"),
            basic("alice", "wrong"),
            'Basic realm="flownb", charset="UTF-8"',
            "alice",
        ),
        (
            'scheme: apikey, keys: {ci: "${API_KEY}"}, header: X-Key',
            {"X-Key": "k3y"},
            {"X-Key": "k3z"},
            'ApiKey realm="flownb", header="X-Key"',
            "ci",
        ),
    ],
)
async def test_auth_schemes(
    config: str, good: dict[str, str], bad: dict[str, str], challenge: str, user: str
) -> None:
    mw = f"  - {{name: auth, type: http.middleware.auth, config: {{{config}}}}}\n"
    text = app(mw, route_mw="[auth]")
    async with run_engine(parse_config(text, environ=ENV)) as h:
        missing = await h.client.get("/who")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == challenge
        assert missing.json()["error"]["message"] == "authentication required"
        assert missing.json()["error"]["requestId"] == missing.headers["x-request-id"]
        wrong = await h.client.get("/who", headers=bad)
        assert wrong.status_code == 401
        assert wrong.json()["error"]["message"] == "invalid credentials"
        ok = await h.client.get("/who", headers=good)
        assert ok.status_code == 200
        assert ok.json()["user"] == user
        assert (await h.client.get("/open")).status_code == 200, "only the route's middleware"


async def test_basic_auth_rejects_unknown_users_and_garbage() -> None:
    mw = '  - {name: auth, type: http.middleware.auth, config: {scheme: basic, users: {a: "p"}}}\n'
    async with run_engine(app(mw, shared="[auth]")) as h:
        for headers in (
            basic("bob", "p"),
            {"Authorization": "Basic !!!"},
            {"Authorization": "Bearer p"},
            {"Authorization": "Basic " + base64.b64encode(b"a").decode()},
        ):
            assert (await h.client.get("/who", headers=headers)).status_code == 401
        assert (await h.client.get("/open")).status_code == 401, "workflow-wide middleware"
        assert (await h.client.get("/open", headers=basic("a", "p"))).status_code == 200


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ("scheme: bearer", "needs at least one entry in tokens"),
        ("scheme: bearer, tokens: []", "needs at least one entry in tokens"),
        ('scheme: bearer, tokens: ["${EMPTY:-}"]', "empty credential"),
        ("scheme: basic, users: {}", "needs at least one entry in users"),
        ("scheme: apikey, keys: {}", "needs at least one entry in keys"),
        ("scheme: apikey, keys: [k], tokens: [t]", "tokens is not used by scheme 'apikey'"),
        ("scheme: jwt, tokens: [t]", "scheme"),
    ],
)
def test_auth_config_never_lets_everyone_in(config: str, problem: str) -> None:
    mw = f"  - {{name: auth, type: http.middleware.auth, config: {{{config}}}}}\n"
    with pytest.raises(ConfigError, match=problem):
        parse_config(SERVER + mw, environ={})


async def test_ratelimit_replies_429_with_retry_after() -> None:
    mw = (
        "  - {name: limit, type: http.middleware.ratelimit,"
        " config: {requestsPerMinute: 2, burst: 2}}\n"
    )
    async with run_engine(app(mw, shared="[limit]")) as h:
        assert (await h.client.get("/who")).status_code == 200
        assert (await h.client.get("/open")).status_code == 200
        limited = await h.client.get("/who")
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 30
        assert limited.json()["error"]["status"] == 429


async def test_ratelimit_keys_by_header() -> None:
    mw = (
        "  - {name: limit, type: http.middleware.ratelimit,"
        " config: {rate: 0.01, burst: 1, key: X-Client}}\n"
    )
    async with run_engine(app(mw, shared="[limit]")) as h:
        assert (await h.client.get("/who", headers={"X-Client": "a"})).status_code == 200
        assert (await h.client.get("/who", headers={"X-Client": "b"})).status_code == 200
        assert (await h.client.get("/who", headers={"X-Client": "a"})).status_code == 429


def test_token_buckets_refill_and_stay_bounded() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=1.0, burst=2, max_keys=100, clock=lambda: now[0])
    assert buckets.take("a") == 0.0 and buckets.take("a") == 0.0
    assert buckets.take("a") == pytest.approx(1.0)
    now[0] = 1.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == pytest.approx(0.5)
    for i in range(1000):
        buckets.take(f"client-{i}")
    assert len(buckets) <= 100


def test_ratelimit_needs_exactly_one_rate() -> None:
    for config in ("{}", "{rate: 1, requestsPerMinute: 60}"):
        mw = f"  - {{name: limit, type: http.middleware.ratelimit, config: {config}}}\n"
        with pytest.raises(ConfigError, match="exactly one of requestsPerMinute or rate"):
            parse_config(SERVER + mw)


CORS = """  - name: cors
    type: http.middleware.cors
    config:
      allowedOrigins: ["https://app.example.com"]
      allowedMethods: [GET, POST]
      allowCredentials: true
      maxAge: 1m
"""


async def test_cors_preflight_and_normal_requests() -> None:
    async with run_engine(app(CORS, shared="[cors]")) as h:
        origin = {"Origin": "https://app.example.com"}
        pre = await h.client.options(
            "/who",
            headers={
                **origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, authorization",
            },
        )
        assert pre.status_code == 204
        assert pre.headers["access-control-allow-origin"] == "https://app.example.com"
        assert pre.headers["access-control-allow-methods"] == "GET, POST"
        assert pre.headers["access-control-allow-credentials"] == "true"
        assert pre.headers["access-control-max-age"] == "60"
        assert "Authorization" in pre.headers["access-control-allow-headers"]
        assert pre.headers["vary"] == "Origin"

        normal = await h.client.get("/who", headers=origin)
        assert normal.status_code == 200
        assert normal.headers["access-control-allow-origin"] == "https://app.example.com"
        assert normal.headers["access-control-expose-headers"] == "X-Request-ID"

        refused = await h.client.options(
            "/who", headers={**origin, "Access-Control-Request-Method": "DELETE"}
        )
        assert refused.status_code == 403
        assert "access-control-allow-origin" not in refused.headers


async def test_cors_disallowed_origin_gets_no_cors_headers() -> None:
    async with run_engine(app(CORS, shared="[cors]")) as h:
        evil = {"Origin": "https://evil.example.com"}
        normal = await h.client.get("/who", headers=evil)
        assert normal.status_code == 200
        assert not [k for k in normal.headers if k.startswith("access-control-")]
        pre = await h.client.options(
            "/who", headers={**evil, "Access-Control-Request-Method": "GET"}
        )
        assert pre.status_code == 403
        assert not [k for k in pre.headers if k.startswith("access-control-")]
        plain = await h.client.get("/who")
        assert not [k for k in plain.headers if k.startswith("access-control-")]


def test_cors_wildcard_must_be_explicit_and_not_with_credentials() -> None:
    for config, problem in [
        ("{}", "allowedOrigins"),
        ('{allowedOrigins: ["*"], allowCredentials: true}', "cannot be combined"),
        ('{allowedOrigins: ["https://a.example/"]}', "without a path"),
    ]:
        mw = f"  - {{name: cors, type: http.middleware.cors, config: {config}}}\n"
        with pytest.raises(ConfigError, match=problem):
            parse_config(SERVER + mw)


async def test_cors_wildcard_origin() -> None:
    mw = '  - {name: cors, type: http.middleware.cors, config: {allowedOrigins: ["*"]}}\n'
    async with run_engine(app(mw, shared="[cors]")) as h:
        reply = await h.client.get("/who", headers={"Origin": "https://any.example"})
        assert reply.headers["access-control-allow-origin"] == "*"


REQUEST_ID = "  - {name: rid, type: http.middleware.requestid}\n"


async def test_request_id_in_and_out() -> None:
    async with run_engine(app(REQUEST_ID, shared="[rid]")) as h:
        reply = await h.client.get("/who", headers={"X-Request-ID": "abc-123.x_y"})
        assert reply.headers["x-request-id"] == "abc-123.x_y"
        assert reply.json()["id"] == "abc-123.x_y", "the execution sees the same id"
        for insane in ("has space", "x" * 129, "semi;colon"):
            reply = await h.client.get("/who", headers={"X-Request-ID": insane})
            generated = reply.headers["x-request-id"]
            assert generated != insane and len(generated) == 32
            assert reply.json()["id"] == generated
        reply = await h.client.get("/who")
        assert len(reply.headers["x-request-id"]) == 32


async def test_request_id_reaches_error_replies_and_the_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mw = (
        REQUEST_ID
        + "  - {name: log, type: http.middleware.logging}\n"
        + '  - {name: auth, type: http.middleware.auth, config: {scheme: bearer, tokens: ["t"]}}\n'
    )
    caplog.set_level(logging.INFO, logger="flownb.http.requests")
    async with run_engine(app(mw, shared="[rid, log, auth]")) as h:
        reply = await h.client.get("/who", headers={"X-Request-ID": "req-1"})
        assert reply.status_code == 401
        assert reply.json()["error"]["requestId"] == "req-1"
        assert reply.headers["x-request-id"] == "req-1"
    lines = [r.getMessage() for r in caplog.records if r.name == "flownb.http.requests"]
    assert lines == ["GET /who (/who) 401 " + lines[0].split(" ")[4] + " request=req-1"]
