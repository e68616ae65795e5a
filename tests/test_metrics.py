"""Prometheus metrics: names, labels (route templates, not raw paths), steps, module
operations, one registry per engine, and the metrics.collector module."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from flownb.engine import Engine
from flownb.errors import FlownbError
from flownb.loader import parse_config
from flownb.metrics import CONTENT_TYPE, Metrics
from flownb.testing import run_engine

CONFIG = """
modules:
  - {name: server, type: http.server, config: {address: "127.0.0.1:0"}}
  - {name: router, type: http.router}
  - {name: metrics, type: metrics.collector, config: {path: /prom}}
workflows:
  http:
    routes:
      - {method: GET, path: "/items/{id}", handler: item}
      - {method: POST, path: /fail, handler: broken}
pipelines:
  item:
    - {type: set, name: found, values: {id: "{{ data.id }}"}}
    - {type: respond, name: reply, body: {id: "{{ vars.id }}"}}
  broken:
    - {type: call, name: explode, function: explode}
"""


def explode(data: Any) -> None:
    raise FlownbError("no luck")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return found[(name, tuple(sorted(labels.items())))]


async def test_metrics_collector_serves_the_issue_metrics_by_route_template() -> None:
    async with run_engine(CONFIG, functions={"explode": explode}) as h:
        for i in range(3):
            assert (await h.client.get(f"/items/{i}")).status_code == 200
        assert (await h.client.post("/fail")).status_code == 500
        assert (await h.client.get("/nowhere")).status_code == 404
        reply = await h.client.get("/prom")
    assert reply.status_code == 200 and reply.headers["content-type"] == CONTENT_TYPE
    found = samples(reply.text)
    route, fail = "GET /items/{id}", "POST /fail"
    assert (
        value(found, "workflow_executions_total", workflow_type="http", action=route, status="ok")
        == 3
    )
    assert (
        value(found, "workflow_executions_total", workflow_type="http", action=fail, status="error")
        == 1
    )
    assert value(found, "workflow_duration_seconds_count", workflow_type="http", action=route) == 3
    assert value(found, "active_workflows", workflow_type="http") == 0
    assert (
        value(found, "http_requests_total", method="GET", path="/items/{id}", status_code="200")
        == 3
    )
    assert value(found, "http_requests_total", method="POST", path="/fail", status_code="500") == 1
    assert (
        value(found, "http_requests_total", method="GET", path="<unmatched>", status_code="404")
        == 1
    )
    assert (
        value(found, "http_request_duration_seconds_count", method="GET", path="/items/{id}") == 3
    )
    assert (
        value(
            found,
            "workflow_step_duration_seconds_count",
            workflow_type="http",
            action=route,
            step="found",
        )
        == 3
    )
    assert (
        value(
            found, "workflow_step_errors_total", workflow_type="http", action=fail, step="explode"
        )
        == 1
    )
    assert (
        value(found, "module_operations_total", module="server", operation="start", status="ok")
        == 1
    )
    assert (
        value(found, "module_operations_total", module="metrics", operation="init", status="ok")
        == 1
    )
    assert not any("/items/1" in str(labels) for _, labels in found), (
        "raw paths never become labels"
    )
    assert any(name.startswith("process_") for name, _ in found)


async def test_each_engine_has_its_own_registry() -> None:
    text = "pipelines:\n  p: [{type: set, values: {a: 1}}]\n"
    one, two = Engine(parse_config(text)), Engine(parse_config(text))
    for engine in (one, two):
        engine.use_metrics()
        await engine.start()
    try:
        await one.trigger_workflow("pipeline", "p", {})
        await one.trigger_workflow("pipeline", "p", {})
        await two.trigger_workflow("pipeline", "p", {})
    finally:
        await one.stop()
        await two.stop()
    assert one.metrics is not None and two.metrics is not None
    assert one.metrics.registry is not two.metrics.registry
    labels = {"workflow_type": "pipeline", "action": "p", "status": "ok"}
    assert (
        value(samples(one.metrics.exposition().decode()), "workflow_executions_total", **labels)
        == 2
    )
    assert (
        value(samples(two.metrics.exposition().decode()), "workflow_executions_total", **labels)
        == 1
    )


async def test_modules_report_their_own_operations() -> None:
    metrics = Metrics()
    engine = Engine(parse_config("pipelines: {}"), metrics=metrics)
    engine.record_operation("db", "query", "error")
    engine.record_operation("db", "query")
    found = samples(metrics.exposition().decode())
    assert value(found, "module_operations_total", module="db", operation="query", status="ok") == 1
    assert (
        value(found, "module_operations_total", module="db", operation="query", status="error") == 1
    )
    Engine(parse_config("pipelines: {}")).record_operation("x", "y")  # no metrics: no-op


async def test_the_scrape_path_is_checked() -> None:
    bad = CONFIG.replace("path: /prom", "path: prom")
    try:
        parse_config(bad)
    except FlownbError as exc:
        assert "starts with '/'" in str(exc)
    else:
        raise AssertionError("a path without '/' was accepted")
    async with run_engine(CONFIG, functions={"explode": explode}) as h, httpx.AsyncClient() as c:
        assert (await c.post(h.url() + "/prom")).status_code == 405
