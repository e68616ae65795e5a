"""The http workflow end to end: a real server on an ephemeral port, driven with httpx."""

from __future__ import annotations

import asyncio
import re
import socket
from typing import Any

import httpx
import pytest

from flownb.engine import Engine
from flownb.errors import BuildError, ConfigError, FlownbError
from flownb.execution import ExecutionContext, Response
from flownb.http.router import PathPattern, Router
from flownb.loader import parse_config
from flownb.testing import run_engine

BASE = """
modules:
  - {name: server, type: http.server, config: {address: "127.0.0.1:0", maxBodyBytes: 64}}
  - {name: router, type: http.router}
"""

APP = (
    BASE
    + """
  - {name: boom, type: http.handler, config: {function: boom}}
  - {name: made, type: http.handler, config: {function: made}}
  - {name: inline, type: http.handler, config: {steps: [{type: respond, status: 201,
      body: {got: "{{ data }}", id: "{{ request.params.id }}"}}]}}
workflows:
  http:
    routes:
      - {method: GET, path: /hello, handler: hello}
      - {method: [GET, PUT], path: "/orders/{id}", handler: echo}
      - {method: POST, path: /orders, handler: echo}
      - {method: GET, path: "/files/{rest:.+}", handler: echo}
      - {method: GET, path: "/items/{n:[0-9]+}", handler: echo}
      - {method: GET, path: /boom, handler: boom}
      - {method: GET, path: /made, handler: made}
      - {method: POST, path: "/inline/{id}", handler: inline}
pipelines:
  hello:
    - type: respond
      body: {hello: world, q: "{{ request.query.n }}"}
  echo:
    - type: set
      values: {route: "{{ request.route }}", method: "{{ request.method }}"}
    - type: respond
      body: {data: "{{ data }}", route: "{{ vars.route }}", method: "{{ vars.method }}"}
"""
)


def boom(data: Any) -> Any:
    raise RuntimeError("secret database password is hunter2")


def made(data: Any, ctx: ExecutionContext) -> Response:
    return Response(
        status=418,
        body=f"teapot for {ctx.request.remote}",
        headers={"X-Brew": "yes", "Content-Type": "text/x-tea"},
    )


FUNCTIONS = {"boom": boom, "made": made}


async def test_hello_route_renders_the_query_into_the_reply() -> None:
    async with run_engine(APP, functions=FUNCTIONS) as h:
        reply = await h.client.get("/hello", params={"n": "3"})
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "application/json"
        assert reply.json() == {"hello": "world", "q": "3"}
        assert h.url().startswith("http://127.0.0.1:")
        assert h.url("server") == h.url()


async def test_path_params_query_and_body_make_the_data() -> None:
    async with run_engine(APP, functions=FUNCTIONS) as h:
        got = (await h.client.get("/orders/42", params={"x": "1"})).json()
        assert got == {
            "data": {"x": "1", "id": "42"},
            "route": "/orders/{id}",
            "method": "GET",
        }
        got = (await h.client.put("/orders/42?id=q", json={"qty": 2})).json()
        assert got["data"] == {"id": "42", "qty": 2}, "path params win over the query"
        got = (await h.client.post("/orders", json=[1, 2])).json()
        assert got["data"] == [1, 2], "a non-object body is the data when nothing else is"
        got = (await h.client.put("/orders/7", json=[1, 2])).json()
        assert got["data"] == {"id": "7", "body": [1, 2]}
        got = (await h.client.post("/orders", data={"a": "1"})).json()
        assert got["data"] == {"a": "1"}, "form posts arrive as a dict"
        got = (await h.client.get("/files/a/b/c.txt")).json()
        assert got["data"] == {"rest": "a/b/c.txt"}
        assert (await h.client.get("/items/12")).json()["data"] == {"n": "12"}
        assert (await h.client.get("/items/x1")).status_code == 404


async def test_unknown_path_is_404_and_wrong_method_405_with_allow() -> None:
    async with run_engine(APP, functions=FUNCTIONS) as h:
        reply = await h.client.get("/nope")
        assert reply.status_code == 404
        assert reply.headers["server"] == "flownb", "no Python/aiohttp versions on the wire"
        error = reply.json()["error"]
        assert error["status"] == 404 and error["requestId"] == reply.headers["x-request-id"]
        reply = await h.client.delete("/orders/1")
        assert reply.status_code == 405
        assert reply.headers["allow"] == "GET, HEAD, OPTIONS, PUT"
        assert reply.json()["error"]["status"] == 405
        head = await h.client.head("/hello")
        assert head.status_code == 200 and head.content == b""
        options = await h.client.options("/orders")
        assert options.status_code == 204 and options.headers["allow"] == "OPTIONS, POST"


async def test_malformed_json_is_400_with_request_id() -> None:
    async with run_engine(APP, functions=FUNCTIONS) as h:
        for headers in ({"Content-Type": "application/json"}, {}):
            reply = await h.client.post("/orders", content=b'{"a": ', headers=headers)
            assert reply.status_code == 400
            error = reply.json()["error"]
            assert error["message"].startswith("malformed JSON body")
            assert error["requestId"] == reply.headers["x-request-id"] != ""
        text = await h.client.post(
            "/orders", content=b"{not json", headers={"Content-Type": "text/plain"}
        )
        assert text.json()["data"] == "{not json", "text/plain bodies stay text"


async def test_body_over_the_limit_is_413() -> None:
    async with run_engine(APP, functions=FUNCTIONS) as h:
        big = b'{"a": "' + b"x" * 100 + b'"}'
        reply = await h.client.post("/orders", content=big)
        assert reply.status_code == 413
        assert reply.json()["error"]["status"] == 413

        async def chunked() -> Any:
            for _ in range(10):
                yield b"x" * 10

        streamed = await h.client.post("/orders", content=chunked())
        assert streamed.status_code == 413, "enforced while reading a body without length"
        fits = await h.client.post("/orders", json={"a": "x" * 20})
        assert fits.status_code == 200


async def test_handler_exception_is_500_without_details(caplog: pytest.LogCaptureFixture) -> None:
    async with run_engine(APP, functions=FUNCTIONS) as h:
        reply = await h.client.get("/boom")
        assert reply.status_code == 500
        rid = reply.headers["x-request-id"]
        assert reply.json() == {
            "error": {"status": 500, "message": "internal error", "requestId": rid}
        }
        assert "hunter2" not in reply.text and "Traceback" not in reply.text
        assert "RuntimeError" not in reply.text
    logged = [r for r in caplog.records if rid in r.getMessage()]
    assert logged and logged[0].exc_info is not None, "the traceback is logged with the id"


async def test_response_from_a_python_function_and_inline_steps() -> None:
    async with run_engine(APP, functions=FUNCTIONS) as h:
        reply = await h.client.get("/made")
        assert reply.status_code == 418
        assert reply.headers["x-brew"] == "yes"
        assert reply.headers["content-type"] == "text/x-tea"
        assert reply.text == "teapot for 127.0.0.1"
        reply = await h.client.post("/inline/9", json={"k": "v"})
        assert reply.status_code == 201
        assert reply.json() == {"got": {"id": "9", "k": "v"}, "id": "9"}


async def test_trigger_runs_a_handler_as_an_http_execution() -> None:
    async with run_engine(APP, functions=FUNCTIONS) as h:
        result = await h.engine.trigger_workflow("http", "echo", {"id": 1})
        assert result.status == 200 and result.body["data"] == {"id": 1}


async def test_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = parse_config(BASE.replace("127.0.0.1:0", f"127.0.0.1:{port}"))
        engine = Engine(config)
        with pytest.raises(BuildError) as info:
            await engine.start()
    message = str(info.value)
    assert message == (
        f"module 'server' failed to start: cannot listen on 127.0.0.1:{port}: "
        "address already in use"
    )
    assert isinstance(info.value, FlownbError) and "\n" not in message


async def test_drain_lets_an_inflight_request_finish_while_the_listener_is_closed() -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(data: Any) -> dict[str, str]:
        entered.set()
        await release.wait()
        return {"done": "yes"}

    config = (
        BASE
        + """
  - {name: slow, type: http.handler, config: {function: slow}}
workflows:
  http:
    routes: [{method: GET, path: /slow, handler: slow}]
"""
    )
    async with run_engine(config, functions={"slow": slow}) as h:
        url = h.url()
        server = h.engine.module("server")
        pending = asyncio.create_task(h.client.get("/slow"))
        await asyncio.wait_for(entered.wait(), 5)
        stopping = asyncio.create_task(h.engine.stop())
        await asyncio.wait_for(server.server.wait_closed(), 5)  # type: ignore[attr-defined]
        assert not server.server.serving  # type: ignore[attr-defined]
        async with httpx.AsyncClient() as fresh:
            with pytest.raises(httpx.ConnectError):
                await fresh.get(url + "/slow")
        assert not stopping.done()
        release.set()
        reply = await asyncio.wait_for(pending, 5)
        assert reply.status_code == 200 and reply.json() == {"done": "yes"}
        assert await asyncio.wait_for(stopping, 5) is True


async def test_config_errors_name_the_field() -> None:
    bad = (
        BASE.replace('"127.0.0.1:0"', "nowhere")
        + """
  - {name: h, type: http.handler, config: {function: f, pipeline: p}}
pipelines:
  p: [{type: set, values: {a: 1}}]
"""
    )
    with pytest.raises(ConfigError) as info:
        parse_config(bad)
    text = str(info.value)
    assert "must be host:port" in text
    assert "set exactly one of pipeline, function or steps (got pipeline, function)" in text


async def test_duplicate_routes_and_bad_templates_are_refused() -> None:
    router = Router("/api")

    async def endpoint(request: Any) -> Any:
        raise AssertionError

    router.add("GET", "/a/{id}", endpoint)
    with pytest.raises(FlownbError, match=re.escape("GET /api/a/{id} is already routed")):
        router.add(["GET"], "/a/{id}", endpoint)
    for template, problem in [
        ("/a/{id", "never closed"),
        ("/a/id}", "without"),
        ("/a/{1x}", "parameter name"),
        ("/a/{x}/{x}", "appears twice"),
        ("/a/{x:(}", "invalid parameter regex"),
    ]:
        with pytest.raises(FlownbError, match=problem):
            PathPattern(template)
    found = router.lookup("/api/a/7")
    assert found is not None and found[1] == {"id": "7"}
    assert router.lookup("/a/7") is None
    regex = PathPattern("/d/{day:[0-9]{2}}").regex
    assert regex is not None and regex.match("/d/12") and not regex.match("/d/123")


async def test_two_servers_and_routers() -> None:
    config = """
modules:
  - {name: public, type: http.server, config: {address: "127.0.0.1:0"}}
  - {name: internal, type: http.server, config: {address: "127.0.0.1:0"}}
  - {name: api, type: http.router, config: {prefix: /v1}}
  - {name: admin, type: http.router, config: {prefix: /admin}}
workflows:
  http:
    server: public
    router: api
    routes: [{method: GET, path: /hello, handler: hello}]
triggers:
  http:
    server: internal
    router: admin
    routes: [{path: /run, workflow: pipeline, action: hello, mode: sync}]
pipelines:
  hello:
    - {type: respond, body: {hello: world}}
"""
    async with run_engine(config) as h:
        with pytest.raises(FlownbError, match="name the server"):
            h.url()
        with pytest.raises(FlownbError, match=r"no http\.server named 'nope'"):
            h.url("nope")
        async with httpx.AsyncClient() as client:
            public, internal = h.url("public"), h.url("internal")
            assert public != internal
            assert (await client.get(public + "/v1/hello")).json() == {"hello": "world"}
            assert (await client.get(internal + "/v1/hello")).status_code == 404
            assert (await client.post(internal + "/admin/run")).json() == {"hello": "world"}
            assert (await client.post(public + "/admin/run")).status_code == 404


async def test_one_server_serves_several_routers() -> None:
    config = """
modules:
  - {name: server, type: http.server, config: {address: "127.0.0.1:0"}}
  - {name: pages, type: http.router}
  - {name: hooks, type: http.router}
workflows:
  http:
    router: pages
    routes: [{method: GET, path: /thing, handler: hello}]
triggers:
  http:
    router: hooks
    routes: [{path: /thing, workflow: pipeline, action: hello, mode: sync}]
pipelines:
  hello:
    - {type: respond, body: "{{ request.method if request else 'trigger' }}"}
"""
    async with run_engine(config) as h:
        assert (await h.client.get("/thing")).text == "GET"
        assert (await h.client.post("/thing")).text == "trigger"
        assert (await h.client.delete("/thing")).status_code == 405


async def _raw_exchange(url: str, data: bytes) -> bytes:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(4096), 5)
    finally:
        writer.close()


async def test_slow_or_broken_bodies_are_client_errors() -> None:
    config = APP.replace("maxBodyBytes: 64", "maxBodyBytes: 64, readTimeout: 100ms")
    async with run_engine(config, functions=FUNCTIONS) as h:
        slow = await _raw_exchange(
            h.url(), b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{"
        )
        assert slow.startswith(b"HTTP/1.1 408 "), slow
        assert b'"requestId"' in slow
        broken = await _raw_exchange(
            h.url(),
            b"POST /orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        )
        assert b" 400 " in broken.split(b"\r\n")[0], broken


def test_public_surface_and_registered_types() -> None:
    import flownb.http
    from flownb.registry import default_registry

    assert flownb.http.__all__ == sorted(flownb.http.__all__)
    assert all(getattr(flownb.http, name) is not None for name in flownb.http.__all__)
    registry = default_registry()
    expected = {
        "http.server": ("HTTP", ("http.server",)),
        "http.router": ("HTTP", ("http.router",)),
        "http.handler": ("HTTP", ("handler",)),
        "api.handler": ("HTTP", ("handler",)),
        **{
            f"http.middleware.{kind}": ("Middleware", ("middleware",))
            for kind in ("auth", "logging", "ratelimit", "cors", "requestid")
        },
    }
    for name, (category, provides) in expected.items():
        module_type = registry.get(name)
        assert (module_type.category, module_type.provides) == (category, provides)
        assert module_type.schema()["configSchema"]["type"] == "object"


async def test_route_problems_are_config_errors_with_positions() -> None:
    bad_templates = (
        BASE
        + """
workflows:
  http:
    routes: [{method: GET, path: "/a/{id", handler: p}]
triggers:
  http:
    routes: [{path: "/c/{x}/{x}", workflow: pipeline, action: p}]
pipelines:
  p: [{type: set, values: {a: 1}}]
"""
    )
    with pytest.raises(ConfigError) as info:
        parse_config(bad_templates)
    lines = str(info.value).splitlines()[1:]
    assert lines[0].startswith("<config>:8:") and "is never closed" in lines[0], lines
    assert "triggers.http.routes[0].path" in lines[1] and "appears twice" in lines[1], lines

    clash = (
        BASE
        + """
workflows:
  http:
    routes: [{method: POST, path: /hook, handler: p}]
triggers:
  http:
    routes: [{path: /hook, workflow: pipeline, action: p}]
pipelines:
  p: [{type: set, values: {a: 1}}]
"""
    )
    with pytest.raises(ConfigError) as info:
        async with run_engine(clash):
            pass
    assert "triggers.http.routes[0].path: router 'router': POST /hook is already routed" in str(
        info.value
    )


async def test_request_summary_redacts_credentials() -> None:
    def describe(data: Any, ctx: ExecutionContext) -> Any:
        return ctx.request.to_dict()

    config = (
        BASE
        + """
  - {name: describe, type: http.handler, config: {function: describe}}
workflows:
  http:
    routes: [{method: POST, path: "/d/{x}", handler: describe}]
"""
    )
    async with run_engine(config, functions={"describe": describe}) as h:
        reply = await h.client.post(
            "/d/1?q=2",
            json={"a": 1},
            headers={"Authorization": "Bearer t", "X-API-Key": "k", "X-Plain": "p"},
        )
        got = reply.json()
        assert got["route"] == "/d/{x}" and got["params"] == {"x": "1"}
        assert got["query"] == {"q": "2"} and got["body"] == {"a": 1}
        assert got["headers"]["Authorization"] == got["headers"]["X-API-Key"] == "[redacted]"
        assert got["headers"]["X-Plain"] == "p"
        assert got["remote"] == "127.0.0.1" and len(got["id"]) == 32
