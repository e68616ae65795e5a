"""`httpclient` against a real local HTTP server; retries and the rate limit on a ManualClock."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import orjson
import pytest
from httptarget import Target, serve

from flownb.clock import ManualClock
from flownb.engine import Engine
from flownb.errors import ConfigError, StepError
from flownb.loader import parse_config
from flownb.modules.httpclient import HttpClient, HttpClientError

T0 = 5_000.0
T = TypeVar("T")


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    async with serve(Target()) as t:
        yield t


def yaml(url: str, **config: Any) -> str:
    options = {
        "baseUrl": url + "/v1",
        "timeout": "300ms",
        "retry": {"maxRetries": 3, "initialBackoff": "1s", "jitter": 0},
        **config,
    }
    return f"""
modules:
  - name: api
    type: httpclient
    config: {orjson.dumps(options).decode()}
pipelines:
  fetch:
    steps:
      - type: http_call
        name: call
        client: api
        url: "/items/{{{{ data.id }}}}"
        query: {{full: "yes"}}
      - type: set
        target: data
        values: {{got: "{{{{ steps.call.body }}}}"}}
"""


async def started(url: str, clock: ManualClock | None = None, **config: Any) -> Engine:
    engine = Engine(parse_config(yaml(url, **config)), clock=clock or ManualClock(T0))
    await engine.start()
    return engine


def client(engine: Engine) -> HttpClient:
    return engine.services.get("api", HttpClient)


async def driving(clock: ManualClock, work: Awaitable[T]) -> T:
    """Await `work`, moving the clock to each wake-up it sleeps for."""
    task = asyncio.ensure_future(work)
    while not task.done():
        settled = asyncio.ensure_future(clock.settle())
        done, _ = await asyncio.wait({task, settled}, return_when=asyncio.FIRST_COMPLETED)
        if settled in done:
            settled.result()
            clock.set(clock.sleepers[0])
        else:
            settled.cancel()
    return await task


@pytest.mark.parametrize(
    ("auth", "header", "value"),
    [
        ({"scheme": "bearer", "token": "t0k"}, "Authorization", "Bearer t0k"),
        (
            {"scheme": "basic", "username": "ann", "password": "pw"},
            "Authorization",
            "Basic " + base64.b64encode(b"ann:pw").decode(),
        ),
        ({"scheme": "apikey", "key": "k3y"}, "X-API-Key", "k3y"),
        ({"scheme": "apikey", "key": "k3y", "header": "X-Token"}, "X-Token", "k3y"),
    ],
)
async def test_auth_schemes(target: Target, auth: dict[str, str], header: str, value: str) -> None:
    engine = await started(target.url, auth=auth, headers={"X-Team": "core"})
    try:
        reply = await client(engine).request("GET", "/things", request_id="rid-1")
        assert reply.status_code == 200
        seen = target.seen[0]
        assert seen.path == "/v1/things"
        assert seen.headers[header] == value
        assert seen.headers["X-Team"] == "core" and seen.headers["X-Request-ID"] == "rid-1"
    finally:
        await engine.stop()


async def test_api_key_in_the_query(target: Target) -> None:
    engine = await started(target.url, auth={"scheme": "apikey", "key": "k", "query": "api_key"})
    try:
        await client(engine).request("GET", "/things", params={"a": "1"})
        assert target.seen[0].query == "api_key=k&a=1"
        assert "X-API-Key" not in target.seen[0].headers
    finally:
        await engine.stop()


async def test_5xx_and_429_are_retried_with_backoff_honouring_retry_after(target: Target) -> None:
    target.script = [503, (429, {"Retry-After": "7"}), 500, 200]
    clock = ManualClock(T0)
    engine = await started(target.url, clock)
    try:
        call = asyncio.ensure_future(client(engine).request("GET", "/flaky"))
        await clock.settle()
        assert clock.sleepers == [T0 + 1]
        clock.advance(1)
        await clock.settle()
        assert clock.sleepers == [T0 + 1 + 7]  # Retry-After (7s) beats the planned 2s
        clock.advance(7)
        await clock.settle()
        assert clock.sleepers == [T0 + 8 + 4]
        clock.advance(4)
        reply = await call
        assert reply.status_code == 200 and len(target.seen) == 4
    finally:
        await engine.stop()


async def test_retries_run_out_and_the_last_reply_is_returned(target: Target) -> None:
    target.default = 502
    clock = ManualClock(T0)
    engine = await started(target.url, clock)
    try:
        reply = await driving(clock, client(engine).request("GET", "/down"))
        assert reply.status_code == 502 and len(target.seen) == 4
        assert clock.now() == T0 + 1 + 2 + 4
    finally:
        await engine.stop()


async def test_a_post_is_not_resent_after_a_5xx_but_is_after_429(target: Target) -> None:
    target.script = [500]
    clock = ManualClock(T0)
    engine = await started(target.url, clock)
    try:
        reply = await client(engine).request("POST", "/orders", json={"n": 1})
        assert reply.status_code == 500 and len(target.seen) == 1
        target.script = [429, 201]
        reply = await driving(clock, client(engine).request("POST", "/orders", json={"n": 2}))
        assert reply.status_code == 201 and len(target.seen) == 3
    finally:
        await engine.stop()


async def test_a_long_retry_after_is_not_waited_for(target: Target) -> None:
    target.script = [(503, {"Retry-After": "3600"})]
    engine = await started(target.url)
    try:
        reply = await client(engine).request("GET", "/later")
        assert reply.status_code == 503 and len(target.seen) == 1
    finally:
        await engine.stop()


async def test_timeouts_and_refused_connections_fail_clearly(target: Target) -> None:
    target.default = "hang"
    clock = ManualClock(T0)
    engine = await started(target.url, clock, retry={"maxRetries": 1, "jitter": 0})
    try:
        with pytest.raises(HttpClientError) as caught:
            await driving(clock, client(engine).request("GET", "/slow"))
        assert caught.value.status == 504 and "failed after 2 tries: timed out" in str(caught.value)
        assert len(target.seen) == 2
    finally:
        await engine.stop()
    async with serve(Target()) as gone:
        url = gone.url
    engine = await started(url, clock)
    try:
        with pytest.raises(HttpClientError) as caught:
            await driving(clock, client(engine).request("POST", "/x"))  # never sent: retried
        assert caught.value.status == 502 and "failed after 4 tries: ConnectError" in str(
            caught.value
        )
    finally:
        await engine.stop()


async def test_the_rate_limit_spaces_calls_and_refuses_long_waits(target: Target) -> None:
    clock = ManualClock(T0)
    engine = await started(target.url, clock, rateLimit={"rate": 2, "burst": 2, "maxWait": "1s"})
    api = client(engine)
    try:
        await api.request("GET", "/a")
        await api.request("GET", "/b")  # the burst
        third = asyncio.ensure_future(api.request("GET", "/c"))
        fourth = asyncio.ensure_future(api.request("GET", "/d"))
        await clock.settle(sleepers=2)
        assert clock.sleepers == [T0 + 0.5, T0 + 1.0]  # booked in order, 1/rate apart
        with pytest.raises(HttpClientError) as caught:
            await api.request("GET", "/e")  # would wait 1.5s > maxWait
        assert caught.value.status == 429
        clock.advance(1.0)
        await asyncio.gather(third, fourth)
        assert [s.path for s in target.seen] == ["/v1/a", "/v1/b", "/v1/c", "/v1/d"]
    finally:
        await engine.stop()


async def test_http_call_step_goes_through_the_client(target: Target) -> None:
    engine = await started(target.url, auth={"scheme": "bearer", "token": "t"})
    try:
        out = await engine.trigger_workflow("pipeline", "fetch", {"id": 42})
        assert out["got"] == {"status": 200, "path": "/v1/items/42"}
        assert target.seen[0].query == "full=yes"
        assert target.seen[0].headers["Authorization"] == "Bearer t"
        target.default = 404
        with pytest.raises(StepError) as caught:
            await engine.trigger_workflow("pipeline", "fetch", {"id": 1})
        assert caught.value.status == 502 and "replied 404" in str(caught.value)
    finally:
        await engine.stop()


async def test_integration_connector_uses_the_client(target: Target) -> None:
    text = (
        yaml(target.url, auth={"scheme": "apikey", "key": "sekret"})
        + """
workflows:
  integration:
    connectors:
      - {name: api, type: http, config: {client: api}}
    steps:
      - {name: get, connector: api, action: "GET /items/{{ data.id }}", transform: "response.body"}
"""
    )
    engine = Engine(parse_config(text), clock=ManualClock(T0))
    await engine.start()
    try:
        out = await engine.trigger_workflow("integration", "run", {"id": 5})
        assert out["steps"]["get"] == {"status": 200, "path": "/v1/items/5"}
        assert target.seen[0].headers["X-API-Key"] == "sekret"
    finally:
        await engine.stop()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"auth": {"scheme": "bearer"}}, "scheme bearer needs token"),
        ({"auth": {"scheme": "basic", "username": "u"}}, "needs password"),
        ({"auth": {"scheme": "apikey", "key": "k", "token": "t"}}, "token is not used"),
        ({"baseUrl": "ftp://x"}, "baseUrl starts with http"),
        ({"rateLimit": {"burst": 3}}, "exactly one of rate or requestsPerMinute"),
        ({"retry": {"methods": ["FETCH"]}}, "methods"),
    ],
)
def test_bad_client_config(config: dict[str, Any], message: str) -> None:
    text = f"modules: [{{name: api, type: httpclient, config: {orjson.dumps(config).decode()}}}]"
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert message in caught.value.render()
