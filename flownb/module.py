"""The module contract: a named, configured part with an init -> start -> stop lifecycle.

Modules find each other through `Services` by name (dependency injection by service name);
the engine registers every module under its own name before calling `init`, in dependency
order, so a module's dependencies are always initialised first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

from flownb.errors import FlownbError, UnknownNameError

if TYPE_CHECKING:
    from flownb.engine import Engine
    from flownb.execution import ExecutionContext
    from flownb.health import Check

C = TypeVar("C", bound=BaseModel)
T = TypeVar("T")


class Module(Generic[C]):
    """Base class of every module. Subclasses override the lifecycle methods they need."""

    def __init__(self, name: str, config: C) -> None:
        self.name = name
        self.config = config

    async def init(self, engine: Engine) -> None:
        """Resolve dependencies (via `engine.services`) and prepare; nothing runs yet."""

    async def start(self) -> None:
        """Begin work: bind sockets, start consumers and timers."""

    async def drain(self) -> None:
        """Stop accepting new work (close listeners, pause consumers); in-flight work goes on.

        Called on every module before the engine waits for in-flight executions to finish.
        """

    async def stop(self) -> None:
        """Stop work and release resources; called in reverse dependency order."""

    async def health(self) -> Check | None:
        """This module's health for `/health` (`flownb.health`): override to check what it
        depends on (a connection, a store, a worker). None (the default) means nothing to
        check; keep it quick, it runs under a timeout."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


@runtime_checkable
class Handler(Protocol):
    """Anything that turns an execution's input into a result: handler modules, pipelines."""

    async def handle(self, ctx: ExecutionContext, data: Any) -> Any: ...


class Services:
    """Name -> service object. Every module is registered under its name."""

    def __init__(self) -> None:
        self._items: dict[str, object] = {}

    def register(self, name: str, service: object) -> None:
        if name in self._items:
            raise FlownbError(f"service {name!r} is already registered")
        self._items[name] = service

    def get(self, name: str, kind: type[T] | None = None) -> T:
        """The service called `name`, checked to be a `kind` when one is given."""
        try:
            service = self._items[name]
        except KeyError:
            raise UnknownNameError("service", name, list(self._items)) from None
        if kind is not None and not isinstance(service, kind):
            raise FlownbError(
                f"service {name!r} is a {type(service).__name__}, not a {kind.__name__}"
            )
        return service  # type: ignore[return-value]

    def find(self, kind: type[T]) -> list[tuple[str, T]]:
        return [(n, s) for n, s in self._items.items() if isinstance(s, kind)]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)
