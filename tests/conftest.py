"""Shared fixtures: a small registry of test module types that record their lifecycle."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from pydantic import Field

from flownb.engine import Engine
from flownb.execution import ExecutionContext
from flownb.fields import Cron, Ref, Spec
from flownb.module import Module
from flownb.registry import ModuleType, Registry


class RecorderConfig(Spec):
    fail_in: str | None = Field(None, alias="failIn", description="phase that raises")
    uses: Annotated[str | None, Ref("thing")] = None
    schedule: Cron | None = None


class Recorder(Module[RecorderConfig]):
    """A module that records every lifecycle call in a shared journal."""

    journal: list[str]

    async def init(self, engine: Engine) -> None:
        self.journal = engine.services.get("journal", list)
        self.dependency = engine.services.get(self.config.uses) if self.config.uses else None
        self._phase("init")

    def _phase(self, phase: str) -> None:
        self.journal.append(f"{phase}:{self.name}")
        if self.config.fail_in == phase:
            raise RuntimeError(f"{phase} exploded")

    async def start(self) -> None:
        self._phase("start")

    async def drain(self) -> None:
        self.journal.append(f"drain:{self.name}")

    async def stop(self) -> None:
        self._phase("stop")


class EchoConfig(Spec):
    prefix: str = ""


class Echo(Module[EchoConfig]):
    async def handle(self, ctx: ExecutionContext, data: Any) -> Any:
        return {"echo": data, "prefix": self.config.prefix, "execution": ctx.id}


def make_registry() -> Registry:
    return Registry(
        [
            ModuleType(
                "test.thing",
                "Infrastructure",
                "records its lifecycle",
                RecorderConfig,
                Recorder,
                provides=("thing",),
            ),
            ModuleType(
                "test.echo", "HTTP", "echoes its input", EchoConfig, Echo, provides=("handler",)
            ),
            ModuleType(
                "test.broker",
                "Messaging",
                "a broker stand-in",
                EchoConfig,
                Echo,
                provides=("broker",),
            ),
        ]
    )


@pytest.fixture
def registry() -> Registry:
    return make_registry()


@pytest.fixture(autouse=True, scope="session")
def _management_api_on_a_free_port() -> Iterator[None]:
    """`flownb run` in tests serves its management API on a free port, not 127.0.0.1:8700
    (several test processes run at once on this machine)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("FLOWNB_API_ADDRESS", "127.0.0.1:0")
    yield
    patch.undo()
