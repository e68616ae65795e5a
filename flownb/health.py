"""Health: each module's own check, aggregated into one answer for probes and operators.

A module reports its health by overriding `Module.health()` and returning a `Check`
(healthy, degraded or unhealthy, with a short detail); modules with nothing to check return
None and are left out. `engine_health` runs every check at once, each under a timeout (a
check that hangs or raises counts as unhealthy), and aggregates: unhealthy if any module is,
or if the engine is not running; degraded if any module is; healthy otherwise. `/health`
answers 503 when unhealthy, 200 otherwise; `/ready` 503 until the engine has started and
while it drains; `/live` 200 while the process can answer at all.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from flownb.engine import Engine
    from flownb.module import Module

Status = Literal["healthy", "degraded", "unhealthy"]
_RANK: dict[Status, int] = {"healthy": 0, "degraded": 1, "unhealthy": 2}


@dataclass(frozen=True, slots=True)
class Check:
    """One module's health. `detail` says why when it is not healthy."""

    status: Status
    detail: str = ""

    @classmethod
    def healthy(cls, detail: str = "") -> Check:
        return cls("healthy", detail)

    @classmethod
    def degraded(cls, detail: str) -> Check:
        return cls("degraded", detail)

    @classmethod
    def unhealthy(cls, detail: str) -> Check:
        return cls("unhealthy", detail)


@dataclass
class Report:
    """The aggregated health of an engine: its state and every module's check."""

    status: Status
    state: str
    checks: dict[str, Check] = field(default_factory=dict)

    @property
    def http_status(self) -> int:
        return 503 if self.status == "unhealthy" else 200

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "state": self.state,
            "checks": {
                name: {"status": c.status, "detail": c.detail} for name, c in self.checks.items()
            },
        }


def worst(statuses: list[Status]) -> Status:
    return max(statuses, key=_RANK.__getitem__, default="healthy")


async def _check(module: Module[Any], timeout: float) -> Check | None:
    try:
        async with asyncio.timeout(timeout):
            return await module.health()
    except TimeoutError:
        return Check.unhealthy(f"the check did not answer within {timeout:g}s")
    except Exception as exc:
        return Check.unhealthy(f"the check failed: {type(exc).__name__}: {exc}")


async def engine_health(engine: Engine, timeout: float = 2.0) -> Report:
    """Run every module's check at once and aggregate them."""
    modules = list(engine.modules.values())
    results = await asyncio.gather(*(_check(m, timeout) for m in modules))
    checks = {m.name: c for m, c in zip(modules, results, strict=True) if c is not None}
    statuses = [c.status for c in checks.values()]
    if engine.state not in ("running", "draining"):
        statuses.append("unhealthy")
    return Report(worst(statuses), engine.state, checks)


def ready(engine: Engine | None) -> bool:
    """Ready for traffic: started, and not draining."""
    return engine is not None and engine.state == "running"
