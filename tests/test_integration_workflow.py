"""`workflows.integration` against a real local HTTP server (aiohttp on 127.0.0.1:0)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from flownb.engine import Engine
from flownb.errors import ConfigError, ExecutionError, StepError, UnknownNameError
from flownb.loader import parse_config


@dataclass
class Upstream:
    url: str
    hits: Counter[str] = field(default_factory=Counter)
    received: list[dict[str, Any]] = field(default_factory=list)
    fail_times: int = 2


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    state = Upstream(url="")

    async def user(request: web.Request) -> web.Response:
        state.hits["user"] += 1
        state.received.append(
            {
                "path": request.path,
                "raw": request.raw_path,
                "query": dict(request.query),
                "headers": dict(request.headers),
            }
        )
        return web.json_response(
            {"id": request.match_info["id"], "name": "Ada", "tier": "gold"},
            headers={"X-Upstream": "users"},
        )

    async def orders(request: web.Request) -> web.Response:
        state.hits["orders"] += 1
        body = await request.json()
        state.received.append(
            {"path": request.path, "body": body, "headers": dict(request.headers)}
        )
        return web.json_response({"order": 42, "got": body}, status=201)

    async def flaky(request: web.Request) -> web.Response:
        state.hits["flaky"] += 1
        if state.hits["flaky"] <= state.fail_times:
            return web.json_response({"error": "try later"}, status=500)
        return web.json_response({"ok": True})

    async def missing(request: web.Request) -> web.Response:
        state.hits["missing"] += 1
        return web.json_response({"error": "no such thing"}, status=404)

    async def hook(request: web.Request) -> web.Response:
        state.hits["hook"] += 1
        state.received.append(
            {"path": request.path, "body": await request.json(), "headers": dict(request.headers)}
        )
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/users/{id}", user)
    app.router.add_post("/orders", orders)
    app.router.add_get("/flaky", flaky)
    app.router.add_get("/missing", missing)
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


def workflow(upstream: Upstream, steps: str) -> str:
    return f"""
workflows:
  integration:
    connectors:
      - name: api
        type: http
        config: {{baseUrl: "{upstream.url}/", headers: {{X-Api-Key: secret}}, timeout: 5s}}
      - name: alerts
        type: webhook
        config: {{url: "{upstream.url}/hook", headers: {{X-Source: flownb}}}}
    steps:
{steps}
"""


async def run(
    upstream: Upstream, steps: str, action: str = "run", data: Any = None, **kw: Any
) -> Any:
    async with Engine(parse_config(workflow(upstream, steps))) as engine:
        return await engine.trigger_workflow("integration", action, data or {}, **kw)


async def test_steps_chain_templated_input_and_transforms(upstream: Upstream) -> None:
    steps = """
      - name: fetch_user
        connector: api
        action: "GET /users/{{ data.user_id }}"
        input: {expand: "{{ data.expand }}"}
        transform: >-
          {'name': response.body.name, 'tier': response.body.tier,
           'via': response.headers['x-upstream']}
      - name: place_order
        connector: api
        action: POST /orders
        input:
          customer: "{{ steps.fetch_user.name }}"
          lines: "{{ data.lines }}"
          priority: "{{ steps.fetch_user.tier == 'gold' }}"
"""
    result = await run(
        upstream,
        steps,
        data={"user_id": 7, "expand": "all", "lines": [{"sku": "a"}]},
        request_id="req-1",
    )
    assert result["last"] == "place_order"
    assert result["steps"]["fetch_user"] == {"name": "Ada", "tier": "gold", "via": "users"}
    assert result["steps"]["place_order"] == {
        "order": 42,
        "got": {"customer": "Ada", "lines": [{"sku": "a"}], "priority": True},
    }
    get, post = upstream.received
    assert get["path"] == "/users/7" and get["query"] == {"expand": "all"}
    assert get["headers"]["X-Api-Key"] == "secret"
    assert get["headers"]["X-Request-ID"] == "req-1"
    assert post["headers"]["Content-Type"] == "application/json"


async def test_path_values_are_url_quoted(upstream: Upstream) -> None:
    steps = """
      - {name: fetch, connector: api, action: "GET /users/{{ data.id }}"}
"""
    result = await run(upstream, steps, data={"id": "a/b c"})
    assert result["steps"]["fetch"]["id"] == "a/b c"
    assert upstream.received[0]["raw"] == "/users/a%2Fb%20c"


async def test_5xx_replies_are_retried(upstream: Upstream) -> None:
    steps = """
      - {name: poll, connector: api, action: GET /flaky, retryCount: 2, retryDelay: 10ms}
"""
    result = await run(upstream, steps)
    assert result["steps"]["poll"] == {"ok": True}
    assert upstream.hits["flaky"] == 3


async def test_exhausted_retries_fail_the_run_with_502(upstream: Upstream) -> None:
    upstream.fail_times = 10
    steps = """
      - {name: poll, connector: api, action: GET /flaky, retryCount: 1, retryDelay: 10ms}
      - {name: never, connector: api, action: GET /users/1}
"""
    with pytest.raises(StepError) as info:
        await run(upstream, steps)
    assert info.value.status == 502 and info.value.step == "poll"
    assert "replied 500" in str(info.value)
    assert info.value.details == {"status": 500, "body": '{"error": "try later"}'}
    assert upstream.hits == Counter({"flaky": 2})


async def test_4xx_replies_are_not_retried(upstream: Upstream) -> None:
    steps = """
      - {name: get, connector: api, action: GET /missing, retryCount: 3, retryDelay: 10ms}
"""
    with pytest.raises(StepError, match="replied 404"):
        await run(upstream, steps)
    assert upstream.hits["missing"] == 1


async def test_on_error_runs_the_error_step_with_vars_error(upstream: Upstream) -> None:
    steps = """
      - {name: get, connector: api, action: GET /missing, onError: alert}
      - {name: skipped, connector: api, action: GET /users/1}
      - name: alert
        connector: alerts
        action: send
        input:
          failed: "{{ vars.error.step }}"
          why: "{{ vars.error.message }}"
          for: "{{ data.who }}"
"""
    result = await run(upstream, steps, data={"who": "ops"})
    assert result["last"] == "alert"
    assert result["steps"]["get"]["status"] == 502
    assert "skipped" not in result["steps"]
    assert result["steps"]["alert"] is None  # 204, no body
    (sent,) = [r for r in upstream.received if r["path"] == "/hook"]
    assert sent["body"]["failed"] == "get" and sent["body"]["for"] == "ops"
    assert "replied 404" in sent["body"]["why"]
    assert sent["headers"]["X-Source"] == "flownb"


async def test_on_success_jumps_and_a_named_action_starts_there(upstream: Upstream) -> None:
    steps = """
      - {name: first, connector: api, action: GET /users/1, onSuccess: third}
      - {name: second, connector: api, action: GET /users/2}
      - {name: third, connector: api, action: GET /users/3}
"""
    result = await run(upstream, steps)
    assert list(result["steps"]) == ["first", "third"]
    result = await run(upstream, steps, action="second")
    assert list(result["steps"]) == ["second", "third"] and result["last"] == "third"
    with pytest.raises(UnknownNameError, match="known: first, run, second, third"):
        await run(upstream, steps, action="fourth")


async def test_a_loop_of_steps_is_stopped(upstream: Upstream) -> None:
    steps = """
      - {name: ping, connector: api, action: GET /users/1, onSuccess: pong}
      - {name: pong, connector: api, action: GET /users/2, onSuccess: ping}
"""
    with pytest.raises(ExecutionError) as info:
        await run(upstream, steps)
    assert info.value.status == 508 and "loop" in str(info.value)
    assert upstream.hits["user"] == 20


async def test_webhook_send_posts_the_input_as_json(upstream: Upstream) -> None:
    steps = """
      - name: notify
        connector: alerts
        action: send
        input: {event: shipped, order: "{{ data.id }}"}
"""
    result = await run(upstream, steps, data={"id": 5})
    assert result == {"steps": {"notify": None}, "last": "notify"}
    (sent,) = upstream.received
    assert sent["body"] == {"event": "shipped", "order": 5}


async def test_the_run_is_one_execution(upstream: Upstream) -> None:
    seen: list[tuple[str, str, str]] = []

    class Observer:
        def execution_started(self, ctx: Any) -> None:
            pass

        def step_finished(self, *args: Any) -> None:
            pass

        def execution_finished(self, ctx: Any) -> None:
            seen.append((ctx.workflow, ctx.action, ctx.status))

    steps = """
      - {name: a, connector: api, action: GET /users/1}
      - {name: b, connector: api, action: GET /users/2}
"""
    config = parse_config(workflow(upstream, steps))
    async with Engine(config, observers=[Observer()]) as engine:
        await engine.trigger_workflow("integration", "run", {})
    assert seen == [("integration", "run", "ok")]


async def test_an_unreachable_host_is_a_502(upstream: Upstream) -> None:
    text = """
workflows:
  integration:
    connectors:
      - {name: gone, type: http, config: {baseUrl: "http://127.0.0.1:9", timeout: 2s}}
    steps:
      - {name: call, connector: gone, action: GET /x}
"""
    async with Engine(parse_config(text)) as engine:
        with pytest.raises(StepError) as info:
            await engine.trigger_workflow("integration", "run", {})
    assert info.value.status == 502 and "ConnectError" in str(info.value)


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ("- {name: s, connector: api, action: FETCH /x}", "should be 'METHOD /path'"),
        ("- {name: s, connector: api, action: GET x}", "should be 'METHOD /path'"),
        ("- {name: s, connector: nope, action: GET /x}", "unknown connector 'nope'"),
        ("- {name: s, connector: api, action: GET /x, onError: t}", "unknown integration step 't'"),
        ("- {name: s, connector: api, action: send}", "its action is 'METHOD /path'"),
        ("- {name: s, connector: alerts, action: GET /x}", "its action is 'send'"),
        ("- {name: s, connector: api, action: 'GET /{{ data.id '}", "invalid template"),
    ],
)
async def test_bad_steps_are_reported(upstream: Upstream, steps: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        await Engine(parse_config(workflow(upstream, "      " + steps))).start()


def test_connector_config_is_checked_against_its_type() -> None:
    text = """
workflows:
  integration:
    connectors:
      - {name: api, type: http, config: {url: "http://x"}}
      - {name: hook, type: webhook, config: {url: "http://x", retries: 3}}
      - {name: db, type: database, config: {dsn: "sqlite://"}}
      - {name: both, type: http, config: {baseUrl: "http://x", client: c}}
    steps: []
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, filename="wf.yaml")
    message = str(info.value)
    assert "connectors[0].config.url" in message
    assert "connectors[1].config" in message and "retries" in message
    assert "connectors[2].config.dsn" in message
    assert "connectors[3].config" in message and "either baseUrl or client" in message
