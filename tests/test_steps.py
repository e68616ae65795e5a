"""Every step type, run in real pipelines through `trigger_workflow("pipeline", ...)`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from flownb.brokers.base import Message
from flownb.engine import Engine
from flownb.errors import ConfigError, StepError, ValidationFailed
from flownb.execution import ExecutionContext, Response
from flownb.loader import parse_config
from flownb.modules.messaging import MessageBroker


async def run(text: str, name: str, data: Any = None, **kwargs: Any) -> Any:
    functions = kwargs.pop("functions", {})
    async with Engine(parse_config(text), functions=functions) as engine:
        return await engine.trigger_workflow("pipeline", name, data, **kwargs)


# --- set ----------------------------------------------------------------------------------


async def test_set_into_vars_and_data() -> None:
    text = """
pipelines:
  p:
    - type: set
      name: computed
      values:
        total: "{{ data.price * data.qty }}"
        label: "order {{ data.id }}"
        fixed: {currency: EUR}
    - type: set
      target: data
      values:
        total: "{{ vars.total }}"
        label: "{{ vars.label | upper }}"
        currency: "{{ vars.fixed.currency }}"
        result: "{{ steps.computed.total }}"
"""
    out = await run(text, "p", {"id": 7, "price": 2.5, "qty": 4})
    assert out == {
        "id": 7,
        "price": 2.5,
        "qty": 4,
        "total": 10.0,
        "label": "ORDER 7",
        "currency": "EUR",
        "result": 10.0,
    }


async def test_set_into_data_that_is_not_an_object_starts_a_new_one() -> None:
    text = "pipelines:\n  p: [{type: set, target: data, values: {x: 1}}]\n"
    assert await run(text, "p", [1, 2]) == {"x": 1}


async def test_templates_cannot_reach_private_attributes() -> None:
    text = """
pipelines:
  p:
    - type: set
      target: data
      values: {x: "{{ data.__class__.__mro__ }}", y: "in {{ data.__class__ }}"}
"""
    out = await run(text, "p", {"a": 1})
    assert out == {"a": 1, "x": None, "y": "in "}


# --- validate -----------------------------------------------------------------------------


VALIDATE = """
pipelines:
  p:
    - type: validate
      schema:
        type: object
        required: [name, age]
        properties:
          name: {type: string}
          age: {type: integer, minimum: 0}
    - {type: set, values: {valid: true}, target: data}
  nested:
    - type: validate
      input: "{{ data.customer }}"
      schema: {type: object, required: [email]}
"""


async def test_validate_passes_valid_data_on() -> None:
    assert await run(VALIDATE, "p", {"name": "Ada", "age": 36}) == {
        "name": "Ada",
        "age": 36,
        "valid": True,
    }


async def test_validate_reports_every_problem_with_its_path() -> None:
    with pytest.raises(StepError) as info:
        await run(VALIDATE, "p", {"age": -1})
    assert info.value.status == 400
    assert isinstance(info.value.__cause__, ValidationFailed)
    assert info.value.details == [
        {"path": "/", "message": "'name' is a required property"},
        {"path": "/age", "message": "-1 is less than the minimum of 0"},
    ]
    with pytest.raises(StepError) as info:
        await run(VALIDATE, "nested", {"customer": {}})
    assert info.value.details == [{"path": "/", "message": "'email' is a required property"}]


def test_validate_needs_one_schema_source() -> None:
    with pytest.raises(ConfigError, match="give either an inline schema or module"):
        parse_config("pipelines:\n  p: [{type: validate}]\n")
    with pytest.raises(ConfigError, match="invalid JSON Schema"):
        Engine(parse_config("pipelines:\n  p: [{type: validate, schema: {type: 5}}]\n")).check()


# --- transform (inline operations) --------------------------------------------------------


TRANSFORM = """
pipelines:
  extract:
    - {type: transform, operations: [{extract: "orders[?total > `100`].id"}]}
  map:
    - type: transform
      operations:
        - map: {id: order.id, customer: order.customer.name, count: "length(order.items)"}
  fields:
    - {type: transform, operations: [{filter: {fields: [id, name]}}]}
  where:
    - type: transform
      operations:
        - extract: items
        - filter: {where: "item.qty > 1 and item.sku != 'gift'"}
  convert:
    - type: transform
      operations:
        - convert: {qty: int, price: float, id: str, paid: bool, meta: json, tags: string_json}
  keep_data:
    - type: transform
      operations: [{extract: "a"}]
      input: "{{ data.inner }}"
      replace_data: false
      output: a
    - {type: set, target: data, values: {a: "{{ vars.a }}"}}
  bad_convert:
    - {type: transform, operations: [{convert: {qty: int}}]}
  not_a_list:
    - {type: transform, operations: [{filter: {where: "item > 1"}}]}
"""


@pytest.mark.parametrize(
    ("pipeline", "data", "expected"),
    [
        ("extract", {"orders": [{"id": 1, "total": 50}, {"id": 2, "total": 150}]}, [2]),
        (
            "map",
            {"order": {"id": 9, "customer": {"name": "Ada"}, "items": [1, 2]}},
            {"id": 9, "customer": "Ada", "count": 2},
        ),
        ("fields", {"id": 1, "name": "x", "secret": "s"}, {"id": 1, "name": "x"}),
        (
            "where",
            {"items": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}, {"sku": "gift", "qty": 5}]},
            [{"sku": "a", "qty": 2}],
        ),
        (
            "convert",
            {
                "qty": "3.0",
                "price": "9.5",
                "id": 12,
                "paid": "yes",
                "meta": '{"a": 1}',
                "tags": ["x"],
                "other": 1,
            },
            {
                "qty": 3,
                "price": 9.5,
                "id": "12",
                "paid": True,
                "meta": {"a": 1},
                "tags": '["x"]',
                "other": 1,
            },
        ),
        ("keep_data", {"inner": {"a": 5}, "b": 1}, {"inner": {"a": 5}, "b": 1, "a": 5}),
    ],
)
async def test_transform_operations(pipeline: str, data: Any, expected: Any) -> None:
    assert await run(TRANSFORM, pipeline, data) == expected


async def test_a_bad_conversion_is_a_400() -> None:
    with pytest.raises(StepError) as info:
        await run(TRANSFORM, "bad_convert", {"qty": "three"})
    assert info.value.status == 400
    assert "cannot convert field 'qty' to int" in str(info.value)
    with pytest.raises(StepError) as info:
        await run(TRANSFORM, "not_a_list", {"a": 1})
    assert info.value.status == 400 and "filter.where needs a list" in str(info.value)


# --- conditional --------------------------------------------------------------------------


CONDITIONAL = """
pipelines:
  route:
    - type: conditional
      name: route
      cases:
        - when: data.total > 1000
          steps:
            - {type: set, target: data, values: {lane: manual}}
        - when: "{{ data.total > 100 }}"
          pipeline: priority
      default:
        steps:
          - {type: set, target: data, values: {lane: standard}}
    - {type: set, target: data, values: {decision: "{{ steps.route.case }}"}}
  priority:
    - {type: set, target: data, values: {lane: priority}}
  no_default:
    - type: conditional
      name: c
      cases: [{when: data.x, steps: [{type: set, values: {y: 1}}]}]
    - {type: set, target: data, values: {case: "{{ steps.c.case }}"}}
  reply_early:
    - type: conditional
      cases:
        - when: not data.ok
          steps:
            - {type: respond, status: 422, body: {error: not ok}}
    - {type: respond, status: 200, body: {fine: true}}
  recover_in_branch:
    - type: conditional
      cases:
        - when: "true"
          steps:
            - {type: validate, schema: {type: string}, on_error: {pipeline: handled}}
    - {type: set, target: data, values: {after_branch: true}}
  handled:
    - {type: set, target: data, values: {handled: "{{ vars.error.status }}"}}
"""


@pytest.mark.parametrize(
    ("total", "lane", "case"),
    [(5000, "manual", 0), (500, "priority", 1), (50, "standard", "default")],
)
async def test_conditional_runs_the_first_case_that_holds(total: int, lane: str, case: Any) -> None:
    out = await run(CONDITIONAL, "route", {"total": total})
    assert out == {"total": total, "lane": lane, "decision": case}


async def test_conditional_without_a_match_or_default_does_nothing() -> None:
    assert await run(CONDITIONAL, "no_default", {"x": False}) == {"x": False, "case": None}


async def test_respond_inside_a_branch_ends_the_whole_pipeline() -> None:
    refused = await run(CONDITIONAL, "reply_early", {"ok": False})
    assert refused == Response(422, {"error": "not ok"}, {})
    assert await run(CONDITIONAL, "reply_early", {"ok": True}) == Response(200, {"fine": True}, {})


async def test_an_error_handled_in_a_branch_ends_the_whole_pipeline() -> None:
    assert await run(CONDITIONAL, "recover_in_branch", {}) == {"handled": 400}


def test_a_branch_needs_steps_or_a_pipeline() -> None:
    text = """
pipelines:
  p:
    - type: conditional
      cases: [{when: "true", steps: [], pipeline: q}]
  q: []
"""
    with pytest.raises(ConfigError, match="a branch has either steps or pipeline"):
        parse_config(text)


# --- publish ------------------------------------------------------------------------------


async def test_publish_sends_to_the_broker_with_the_request_id() -> None:
    text = """
modules:
  - {name: bus, type: messaging.broker}
pipelines:
  p:
    - type: publish
      topic: "orders.{{ data.kind }}"
      message: {id: "{{ data.id }}", kind: "{{ data.kind }}"}
      headers: {source: api}
      name: sent
    - {type: set, target: data, values: {message_id: "{{ steps.sent.id }}"}}
"""
    received: list[Message] = []
    arrived = asyncio.Event()

    async def on_message(message: Message) -> None:
        received.append(message)
        arrived.set()

    async with Engine(parse_config(text)) as engine:
        broker = engine.modules["bus"]
        assert isinstance(broker, MessageBroker)
        await broker.subscribe("orders.new", on_message, group="test")
        out = await engine.trigger_workflow(
            "pipeline", "p", {"id": 3, "kind": "new"}, request_id="req-9"
        )
        await asyncio.wait_for(arrived.wait(), 5)
    (message,) = received
    assert message.topic == "orders.new" and message.payload == {"id": 3, "kind": "new"}
    assert message.headers["source"] == "api" and message.headers["request-id"] == "req-9"
    assert out["message_id"] == message.id


# --- http_call ----------------------------------------------------------------------------


@pytest.fixture
async def api() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def echo(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        seen.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": body,
            }
        )
        return web.json_response({"echo": body, "query": dict(request.query)})

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"error": "nope"}, status=int(request.match_info["code"]))

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="plain words")

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/text", text)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


def http_config(base: str) -> str:
    return f"""
pipelines:
  post:
    - type: http_call
      name: call
      method: POST
      url: "{base}/echo"
      query: {{page: "{{{{ data.page }}}}"}}
      headers: {{X-Tenant: "{{{{ data.tenant }}}}"}}
      body: {{order: "{{{{ data.order }}}}"}}
    - {{type: set, target: data, values: {{reply: "{{{{ steps.call }}}}"}}}}
  status:
    - {{type: http_call, url: "{base}/status/{{{{ data.code }}}}"}}
  lenient:
    - {{type: http_call, url: "{base}/status/404", fail_on_status: false, output: r}}
    - {{type: set, target: data, values: {{status: "{{{{ vars.r.status }}}}"}}}}
  text:
    - {{type: http_call, url: "{base}/text", output: r}}
    - {{type: set, target: data, values: {{body: "{{{{ vars.r.body }}}}"}}}}
"""


async def test_http_call_sends_templated_requests_and_passes_the_request_id(
    api: tuple[str, list[dict[str, Any]]],
) -> None:
    base, seen = api
    out = await run(
        http_config(base),
        "post",
        {"page": 2, "tenant": "acme", "order": {"id": 1}},
        request_id="req-42",
    )
    reply = out["reply"]
    assert reply["status"] == 200
    assert reply["body"] == {"echo": {"order": {"id": 1}}, "query": {"page": "2"}}
    (request,) = seen
    assert request["method"] == "POST" and request["query"] == {"page": "2"}
    assert request["headers"]["X-Tenant"] == "acme"
    assert request["headers"]["X-Request-ID"] == "req-42"
    assert request["headers"]["Content-Type"] == "application/json"


@pytest.mark.parametrize("code", [404, 500, 503])
async def test_http_call_error_replies_are_502(
    api: tuple[str, list[dict[str, Any]]], code: int
) -> None:
    base, _ = api
    with pytest.raises(StepError) as info:
        await run(http_config(base), "status", {"code": code})
    assert info.value.status == 502 and f"replied {code}" in str(info.value)
    assert info.value.details == {"status": code, "body": '{"error": "nope"}'}


async def test_http_call_can_accept_error_replies_and_text(
    api: tuple[str, list[dict[str, Any]]],
) -> None:
    base, _ = api
    assert (await run(http_config(base), "lenient", {}))["status"] == 404
    assert (await run(http_config(base), "text", {}))["body"] == "plain words"


async def test_http_call_to_a_closed_port_is_502() -> None:
    text = "pipelines:\n  p: [{type: http_call, url: 'http://127.0.0.1:9/x'}]\n"
    with pytest.raises(StepError) as info:
        await run(text, "p", {})
    assert info.value.status == 502 and "ConnectError" in str(info.value)


# --- call ---------------------------------------------------------------------------------


def sync_data(data: dict[str, Any]) -> dict[str, Any]:
    return {"sync": data["n"] + 1}


async def async_data(data: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"async": data["n"] * 2}


def sync_ctx(data: dict[str, Any], ctx: ExecutionContext) -> str:
    return f"{ctx.workflow}:{ctx.action}:{data['n']}"


async def async_ctx(data: Any, ctx: ExecutionContext) -> str:
    return str(ctx.vars.get("who"))


class Callable:
    async def __call__(self, data: Any) -> str:
        return "object"


CALL = """
pipelines:
  p:
    - {type: set, values: {who: tester}}
    - {type: call, function: sync_data, name: a}
    - {type: call, function: async_data, name: b}
    - {type: call, function: sync_ctx, name: c}
    - {type: call, function: async_ctx, name: d}
    - {type: call, function: obj, name: e, input: "{{ data.n }}"}
    - {type: call, function: "tests.test_steps:sync_data", name: f}
    - {type: set, target: data, values: {results: "{{ [steps.a, steps.b, steps.c, steps.d,
                                                      steps.e, steps.f] }}"}}
  replace:
    - {type: call, function: sync_data, replace_data: true}
"""


async def test_call_runs_sync_and_async_functions_with_or_without_ctx() -> None:
    functions = {
        "sync_data": sync_data,
        "async_data": async_data,
        "sync_ctx": sync_ctx,
        "async_ctx": async_ctx,
        "obj": Callable(),
    }
    out = await run(CALL, "p", {"n": 5}, functions=functions)
    assert out["results"] == [
        {"sync": 6},
        {"async": 10},
        "pipeline:p:5",
        "tester",
        "object",
        {"sync": 6},
    ]
    assert await run(CALL, "replace", {"n": 1}, functions=functions) == {"sync": 2}


async def test_call_of_an_unknown_function_fails_the_build() -> None:
    text = "pipelines:\n  p: [{type: call, function: missing}]\n"
    with pytest.raises(ConfigError, match="unknown function 'missing'"):
        await Engine(parse_config(text), functions={"other": sync_data}).start()


# --- log ----------------------------------------------------------------------------------


async def test_log_writes_a_templated_message_with_fields(caplog: pytest.LogCaptureFixture) -> None:
    text = """
pipelines:
  p:
    - type: log
      level: warning
      message: "order {{ data.id }} is late"
      fields: {order: "{{ data.id }}"}
    - {type: log, level: debug, message: quiet, logger: flownb.test.quiet}
"""
    with caplog.at_level(logging.INFO):
        out = await run(text, "p", {"id": 12}, request_id="r-1")
    assert out == {"id": 12}
    (record,) = [r for r in caplog.records if r.name == "flownb.workflow"]
    assert record.levelno == logging.WARNING and record.getMessage() == "order 12 is late"
    assert record.fields == {"order": 12}  # type: ignore[attr-defined]
    assert record.request_id == "r-1"  # type: ignore[attr-defined]
    assert len(record.execution_id) == 32  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.name == "flownb.test.quiet"]


# --- respond ------------------------------------------------------------------------------


RESPOND = """
pipelines:
  p:
    - type: respond
      status: "{{ 201 if data.new else 200 }}"
      headers: {Location: "/items/{{ data.id }}", X-Count: "{{ data.count }}"}
      body: {id: "{{ data.id }}", message: "saved {{ data.id }}"}
  text:
    - {type: respond, body: "hello {{ data.name }}"}
  bad:
    - {type: respond, status: "{{ data.code }}"}
"""


async def test_respond_with_templated_status_headers_and_body() -> None:
    created = await run(RESPOND, "p", {"new": True, "id": 4, "count": 2})
    assert created == Response(
        201, {"id": 4, "message": "saved 4"}, {"Location": "/items/4", "X-Count": 2}
    )
    updated = await run(RESPOND, "p", {"new": False, "id": 4, "count": 2})
    assert updated.status == 200
    assert await run(RESPOND, "text", {"name": "Ada"}) == Response(200, "hello Ada", {})


@pytest.mark.parametrize(("code", "message"), [("abc", "is not a number"), (99, "not an HTTP")])
async def test_respond_rejects_a_bad_status(code: Any, message: str) -> None:
    with pytest.raises(StepError, match=message):
        await run(RESPOND, "bad", {"code": code})
