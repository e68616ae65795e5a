"""`triggers.http`: routes that call trigger_workflow, replying 202 (async) or the result."""

from __future__ import annotations

import asyncio
from typing import Any

from flownb.execution import ExecutionContext
from flownb.testing import run_engine

CONFIG = """
modules:
  - {name: server, type: http.server, config: {address: "127.0.0.1:0"}}
  - {name: router, type: http.router, config: {prefix: /hooks}}
triggers:
  http:
    routes:
      - path: "/orders/{id}"
        workflow: pipeline
        action: record
        params: {source: webhook, id: from-params}
      - path: "/sync/{id}"
        method: PUT
        workflow: pipeline
        action: reply
        mode: sync
        params: {source: sync}
      - {path: /fail, workflow: pipeline, action: fail, mode: sync}
      - {path: /fail-later, workflow: pipeline, action: fail}
pipelines:
  record:
    - {type: call, function: record}
  reply:
    - type: respond
      status: 200
      body: {got: "{{ data }}", execution: "{{ execution.workflow }}"}
  fail:
    - {type: call, function: fail}
"""


async def test_async_mode_replies_202_and_runs_in_the_background() -> None:
    seen: list[tuple[dict[str, Any], str | None]] = []
    done = asyncio.Event()

    def record(data: dict[str, Any], ctx: ExecutionContext) -> None:
        seen.append((data, ctx.request_id))
        done.set()

    async with run_engine(CONFIG, functions={"record": record, "fail": _fail}) as h:
        reply = await h.client.post("/hooks/orders/7", params={"q": "1"}, json={"total": 5})
        assert reply.status_code == 202
        body = reply.json()
        assert body["accepted"] is True and body["requestId"] == reply.headers["x-request-id"]
        await asyncio.wait_for(done.wait(), 5)
    data, rid = seen[0]
    assert data == {"id": "from-params", "q": "1", "total": 5, "source": "webhook"}
    assert rid == body["requestId"]


async def test_sync_mode_replies_with_the_result() -> None:
    async with run_engine(CONFIG, functions={"record": print, "fail": _fail}) as h:
        reply = await h.client.put("/hooks/sync/9", params={"n": "2"}, json={"k": [1]})
        assert reply.status_code == 200
        assert reply.json() == {
            "got": {"id": "9", "n": "2", "k": [1], "source": "sync"},
            "execution": "pipeline",
        }
        assert (await h.client.post("/hooks/sync/9")).status_code == 405


async def test_sync_errors_are_mapped_and_async_errors_logged(caplog: Any) -> None:
    async with run_engine(CONFIG, functions={"record": print, "fail": _fail}) as h:
        reply = await h.client.post("/hooks/fail")
        assert reply.status_code == 500
        assert reply.json()["error"]["message"] == "internal error"
        assert "kaput" not in reply.text
        later = await h.client.post("/hooks/fail-later")
        assert later.status_code == 202
        rid = later.json()["requestId"]
        # leaving the block stops the engine, which waits for background runs
    assert any(rid in r.getMessage() and r.exc_info for r in caplog.records)


async def test_engine_stop_waits_for_background_runs() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def record(data: dict[str, Any]) -> None:
        started.set()
        await release.wait()
        finished.append(data["id"])

    async with run_engine(CONFIG, functions={"record": record, "fail": _fail}) as h:
        assert (await h.client.post("/hooks/orders/1")).status_code == 202
        await asyncio.wait_for(started.wait(), 5)
        stopping = asyncio.create_task(h.engine.stop())
        await asyncio.sleep(0)
        assert not stopping.done()
        release.set()
        assert await asyncio.wait_for(stopping, 5) is True
    assert finished == ["from-params"]


def _fail(data: Any) -> None:
    raise ValueError("kaput")


async def test_trigger_routes_take_middlewares() -> None:
    config = CONFIG.replace(
        "  - {name: router, type: http.router, config: {prefix: /hooks}}\n",
        "  - {name: router, type: http.router, config: {prefix: /hooks}}\n"
        '  - {name: auth, type: http.middleware.auth, config: {scheme: apikey, keys: ["k"]}}\n',
    ).replace("  http:\n    routes:", "  http:\n    middlewares: [auth]\n    routes:")
    async with run_engine(config, functions={"record": print, "fail": _fail}) as h:
        assert (await h.client.put("/hooks/sync/1")).status_code == 401
        ok = await h.client.put("/hooks/sync/1", headers={"X-API-Key": "k"})
        assert ok.status_code == 200


async def test_requests_during_shutdown_get_503() -> None:
    """While stop waits for a background run, the listener is still open: new work is 503."""
    started, release = asyncio.Event(), asyncio.Event()

    async def record(data: dict[str, Any]) -> None:
        started.set()
        await release.wait()

    config = (
        CONFIG
        + """
workflows:
  http:
    routes: [{method: GET, path: /hello, handler: reply}]
"""
    )
    async with run_engine(config, functions={"record": record, "fail": _fail}) as h:
        assert (await h.client.get("/hooks/hello")).status_code == 200
        assert (await h.client.post("/hooks/orders/1")).status_code == 202
        await asyncio.wait_for(started.wait(), 5)
        stopping = asyncio.create_task(h.engine.stop())
        await asyncio.sleep(0)
        assert h.engine.state == "draining"
        for reply in (
            await h.client.get("/hooks/hello"),
            await h.client.put("/hooks/sync/2"),
        ):
            assert reply.status_code == 503
            assert reply.json()["error"]["message"] == "the engine is shutting down"
        release.set()
        assert await asyncio.wait_for(stopping, 5) is True
