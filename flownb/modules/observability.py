"""Observability module types: `metrics.collector` and `health.checker`.

Both serve plain HTTP endpoints on one of the workflow's own `http.server` modules, which is
where Prometheus scrapers and orchestrators' probes look (the management API serves the same
on its own port, behind a token). Their routes are answered directly, not as executions.

- `metrics.collector` turns on the engine's metrics (`flownb.metrics`) and serves them at
  `path` (default `/metrics`) in Prometheus' text format.
- `health.checker` serves `/health` (every module's check aggregated: 200 healthy or
  degraded, 503 unhealthy), `/ready` (200 only while the engine runs: 503 while it starts and
  while it drains) and `/live` (200 while the process answers). With `drainDelay`, a
  shutdown first says "not ready" for that long while everything still serves, so a load
  balancer stops sending traffic before the listener closes.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

from pydantic import Field, field_validator

from flownb.fields import Duration, Ref, Spec
from flownb.module import Module
from flownb.registry import ModuleType

if TYPE_CHECKING:
    from flownb.engine import Engine
    from flownb.http.reply import Reply
    from flownb.http.request import Request
    from flownb.http.router import Router


def _path(value: str) -> str:
    if not value.startswith("/") or "{" in value:
        raise ValueError("a path starts with '/' and has no {parameters}, e.g. /metrics")
    return value


def _mount(engine: Engine, server: str | None) -> Router:
    """A route table of its own, mounted on the workflow's http.server."""
    from flownb.http.router import Router
    from flownb.modules.http import HttpServer

    module = engine.services.get(engine.resolve_ref("http.server", server), HttpServer)
    router = Router()
    module.server.mount(router)
    return router


# --- metrics.collector -------------------------------------------------------------------------
class MetricsCollectorConfig(Spec):
    server: Annotated[str | None, Ref("http.server", implicit=True)] = Field(
        None, description="http.server serving the metrics; may be left out when there is one"
    )
    path: str = Field("/metrics", description="path Prometheus scrapes")

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        return _path(value)


class MetricsCollector(Module[MetricsCollectorConfig]):
    """Counts executions, steps, requests and module operations; serves them to Prometheus."""

    async def init(self, engine: Engine) -> None:
        from flownb.http.reply import Reply
        from flownb.metrics import CONTENT_TYPE

        metrics = engine.use_metrics()

        async def scrape(request: Request) -> Reply:
            return Reply(200, metrics.exposition(), {"Content-Type": CONTENT_TYPE})

        _mount(engine, self.config.server).add("GET", self.config.path, scrape)


# --- health.checker ----------------------------------------------------------------------------
class HealthCheckerConfig(Spec):
    server: Annotated[str | None, Ref("http.server", implicit=True)] = Field(
        None, description="http.server serving the probes; may be left out when there is one"
    )
    health_path: str = Field("/health", alias="healthPath", description="aggregated health")
    ready_path: str = Field("/ready", alias="readyPath", description="readiness probe")
    live_path: str = Field("/live", alias="livePath", description="liveness probe")
    timeout: Duration = Field(
        Duration("2s"), description="longest a module's check may take (then: unhealthy)"
    )
    details: bool = Field(
        True, description="list each module's check in /health (off: only the overall status)"
    )
    drain_delay: Duration = Field(
        Duration(0.0),
        alias="drainDelay",
        description="on shutdown, answer /ready with 503 for this long before the server "
        "stops listening (lets a load balancer take the instance out first)",
    )

    @field_validator("health_path", "ready_path", "live_path")
    @classmethod
    def _check_paths(cls, value: str) -> str:
        return _path(value)


class HealthChecker(Module[HealthCheckerConfig]):
    """Serves /health, /ready and /live for the engine it is part of."""

    async def init(self, engine: Engine) -> None:
        from flownb.health import ready
        from flownb.http.reply import json_reply

        config = self.config
        timeout, details = float(config.timeout), config.details

        async def health(request: Request) -> Reply:
            report = await engine.health(timeout)
            body = report.to_dict() if details else {"status": report.status}
            return json_reply(body, report.http_status, {"Cache-Control": "no-store"})

        async def readiness(request: Request) -> Reply:
            ok = ready(engine)
            body = {"status": "ready" if ok else "not ready", "state": engine.state}
            return json_reply(body, 200 if ok else 503, {"Cache-Control": "no-store"})

        async def liveness(request: Request) -> Reply:
            return json_reply({"status": "alive"}, 200, {"Cache-Control": "no-store"})

        router = _mount(engine, config.server)
        router.add("GET", config.health_path, health)
        router.add("GET", config.ready_path, readiness)
        router.add("GET", config.live_path, liveness)

    async def drain(self) -> None:
        """Drains before the server it depends on: hold the listener open for `drainDelay`
        while /ready already answers 503 (the engine is draining)."""
        delay = float(self.config.drain_delay)
        if delay > 0:
            await asyncio.sleep(delay)


TYPES: list[ModuleType] = [
    ModuleType(
        "metrics.collector",
        "Observability",
        "Prometheus metrics (executions, steps, HTTP requests, module operations) served on "
        "a workflow's http.server at /metrics",
        MetricsCollectorConfig,
        MetricsCollector,
        provides=("metrics",),
    ),
    ModuleType(
        "health.checker",
        "Observability",
        "health (/health: module checks aggregated, 503 when unhealthy), readiness (/ready) "
        "and liveness (/live) probes on a workflow's http.server",
        HealthCheckerConfig,
        HealthChecker,
        provides=("health",),
    ),
]
