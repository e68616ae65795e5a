"""The workflow-kind contract: wire a `workflows.<kind>` section into the engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

if TYPE_CHECKING:
    from flownb.engine import Engine

S = TypeVar("S")


class Workflow(Generic[S]):
    """One `workflows.<kind>` section at run time.

    `configure` runs at build (after every module's init), `start`/`stop` with the engine,
    and `trigger` is what `Engine.trigger_workflow(kind, action, data)` calls.
    """

    kind: ClassVar[str]

    def __init__(self, engine: Engine, spec: S) -> None:
        self.engine = engine
        self.spec = spec

    async def configure(self) -> None:
        """Wire routes, subscriptions, hooks... Runs once at build."""

    async def start(self) -> None:
        """Begin consuming (after every module has started)."""

    async def stop(self) -> None:
        """Release what `start` took."""

    async def trigger(self, action: str, data: Any, *, request_id: str | None = None) -> Any:
        raise NotImplementedError(f"workflow {self.kind!r} cannot be triggered")
