"""The trigger contract: something outside (HTTP, time, messages) that starts executions.

Every trigger ends in `Engine.trigger_workflow(workflow, action, data)`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

if TYPE_CHECKING:
    from flownb.engine import Engine

S = TypeVar("S")


class Trigger(Generic[S]):
    kind: ClassVar[str]

    def __init__(self, engine: Engine, spec: S) -> None:
        self.engine = engine
        self.spec = spec

    async def configure(self) -> None:
        """Register routes or subscriptions; runs at build."""

    async def start(self) -> None:
        """Begin firing (timers start here)."""

    async def stop(self) -> None:
        """Stop firing; called first on shutdown so no new work is accepted."""
