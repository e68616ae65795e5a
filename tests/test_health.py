"""Health: module checks aggregated (healthy, degraded, unhealthy with 503), checks that hang
or raise, /ready until started and while draining, /live, and the built-in modules' checks."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import httpx
from pydantic import Field

from flownb.engine import Engine
from flownb.fields import Spec
from flownb.health import Check
from flownb.loader import parse_config
from flownb.module import Module
from flownb.modules import BUILTIN_TYPES
from flownb.registry import ModuleType, Registry
from flownb.testing import run_engine


class ProbeConfig(Spec):
    status: Literal["healthy", "degraded", "unhealthy", "hang", "raise", "none"] = "healthy"
    detail: str = Field("", description="what the check says")


class Probe(Module[ProbeConfig]):
    async def health(self) -> Check | None:
        status = self.config.status
        if status == "none":
            return None
        if status == "hang":
            await asyncio.Event().wait()
        if status == "raise":
            raise RuntimeError("probe exploded")
        return Check(status, self.config.detail)


def registry() -> Registry:
    probe = ModuleType("test.probe", "Infrastructure", "reports a set health", ProbeConfig, Probe)
    return Registry([*BUILTIN_TYPES, probe])


def config(*statuses: str, extra: str = "") -> str:
    probes = "".join(
        f"  - {{name: p{i}, type: test.probe, config: {{status: {s}, detail: d{i}}}}}\n"
        for i, s in enumerate(statuses)
    )
    return f"""
modules:
  - {{name: server, type: http.server, config: {{address: "127.0.0.1:0"}}}}
  - {{name: router, type: http.router}}
  - {{name: probes, type: health.checker, config: {{timeout: 0.2s{extra}}}}}
{probes}
workflows:
  http:
    routes: [{{method: GET, path: /work, handler: work}}]
pipelines:
  work: [{{type: respond, body: {{done: true}}}}]
"""


async def health_of(*statuses: str) -> tuple[int, dict[str, Any]]:
    async with run_engine(config(*statuses), registry=registry()) as h:
        reply = await h.client.get("/health")
        return reply.status_code, reply.json()


async def test_all_healthy() -> None:
    status, body = await health_of("healthy", "none")
    assert status == 200 and body["status"] == "healthy" and body["state"] == "running"
    assert body["checks"]["p0"] == {"status": "healthy", "detail": "d0"}
    assert "p1" not in body["checks"], "a module with nothing to check is left out"
    assert body["checks"]["server"]["status"] == "healthy"


async def test_degraded_is_still_200() -> None:
    status, body = await health_of("healthy", "degraded")
    assert status == 200 and body["status"] == "degraded"


async def test_unhealthy_is_503() -> None:
    status, body = await health_of("degraded", "unhealthy")
    assert status == 503 and body["status"] == "unhealthy"
    assert body["checks"]["p1"] == {"status": "unhealthy", "detail": "d1"}


async def test_checks_that_hang_or_raise_are_unhealthy() -> None:
    status, body = await health_of("hang", "raise")
    assert status == 503
    assert "did not answer within 0.2s" in body["checks"]["p0"]["detail"]
    assert "probe exploded" in body["checks"]["p1"]["detail"]


async def test_live_and_ready_while_running() -> None:
    async with run_engine(config("healthy"), registry=registry()) as h:
        ready = await h.client.get("/ready")
        live = await h.client.get("/live")
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")
    assert (live.status_code, live.json()) == (200, {"status": "alive"})


async def test_ready_is_503_while_draining_and_the_rest_still_serves() -> None:
    """With drainDelay the server keeps listening while /ready says 503 (load balancers)."""
    reg = registry()
    engine = Engine(
        parse_config(config("healthy", extra=", drainDelay: 3s"), registry=reg), registry=reg
    )
    await engine.start()
    url = engine.modules["server"].url  # type: ignore[attr-defined]
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        assert (await client.get("/ready")).status_code == 200
        stopping = asyncio.create_task(engine.stop(timeout=1))
        await asyncio.sleep(0)  # let stop() begin: it sets the state before awaiting anything
        assert engine.state == "draining"
        ready = await client.get("/ready")
        work = await client.get("/work")
        live = await client.get("/live")
    assert await stopping
    assert (ready.status_code, ready.json()["state"]) == (503, "draining")
    assert work.status_code == 503, "routes refuse new work while draining"
    assert live.status_code == 200


async def test_ready_is_503_before_start() -> None:
    from flownb.health import ready

    reg = registry()
    engine = Engine(parse_config(config("healthy"), registry=reg), registry=reg)
    assert not ready(engine)
    report = await engine.health()
    assert report.status == "unhealthy" and report.http_status == 503


async def test_a_dynamic_component_reports_its_state(tmp_path: Any) -> None:
    (tmp_path / "comp.py").write_text("def execute(ctx, data):\n    return {'ok': True}\n")
    text = f"""
modules:
  - {{name: comp, type: dynamic.component, config: {{path: {tmp_path / "comp.py"}, trusted: true}}}}
"""
    engine = Engine(parse_config(text))
    await engine.start()
    try:
        report = await engine.health()
        assert report.checks["comp"].status == "healthy"
        await engine.modules["comp"].component.stop()  # type: ignore[attr-defined]
        report = await engine.health()
        assert report.checks["comp"].status == "unhealthy"
    finally:
        await engine.stop()
