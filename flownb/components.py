"""Notebook functions as workflow components: `@flownb.component("name")`.

```python
@flownb.component("greet")
def greet(data):
    return {"hello": data["name"]}
```

makes `greet` callable from a pipeline (`{type: call, function: greet}`) and from handler
modules (`function: greet`). Components live in `registry`, one explicit registry per kernel
(process) that every `flownb.Workflow` uses unless given its own `functions=`. Re-running
the cell registers the new function under the same name, and a running workflow calls the
new one from its next execution on (steps and handlers look names up on every call).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from flownb.functions import Functions

log = logging.getLogger("flownb.components")

F = TypeVar("F", bound=Callable[..., Any])


class ComponentRegistry(Functions):
    """`Functions` that tells watchers (workflows) when a name is (re)registered.

    A workflow whose dry build failed on an unknown function validates again when that
    function appears, so defining the component after the workflow cell clears the error.
    """

    def __init__(self, items: Mapping[str, Callable[..., Any]] | None = None) -> None:
        self._watchers: list[weakref.WeakMethod[Callable[[str], None]]] = []
        super().__init__(items)

    def watch(self, callback: Callable[[str], None]) -> None:
        """Call `callback(name)` after each change; held weakly (a bound method)."""
        self._watchers.append(weakref.WeakMethod(callback))

    def unwatch(self, callback: Callable[[str], None]) -> None:
        self._watchers = [w for w in self._watchers if w() not in (None, callback)]

    def register(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        super().register(name, fn)
        self._changed(name)
        return fn

    def unregister(self, name: str) -> None:
        super().unregister(name)
        self._changed(name)

    def _changed(self, name: str) -> None:
        alive: list[weakref.WeakMethod[Callable[[str], None]]] = []
        for ref in getattr(self, "_watchers", ()):
            callback = ref()
            if callback is None:
                continue
            alive.append(ref)
            try:
                callback(name)
            except Exception:
                log.exception("component watcher %r failed", callback)
        self._watchers = alive


registry = ComponentRegistry()
"""The kernel's components: what `@component` registers into and workflows call by default."""
_kernel_registry = registry


@overload
def component(name: F, *, registry: Functions | None = None) -> F: ...


@overload
def component(
    name: str | None = None, *, registry: Functions | None = None
) -> Callable[[F], F]: ...


def component(
    name: str | F | None = None, *, registry: Functions | None = None
) -> F | Callable[[F], F]:
    """Register the decorated function as a component named `name` (default: its own name).

    Use as `@component("name")`, `@component()` or `@component`; `registry` defaults to
    `flownb.components.registry`. Returns the function unchanged.
    """
    target = registry if registry is not None else _kernel_registry
    if callable(name):
        fn = name
        target.register(fn.__name__, fn)
        return fn

    def decorate(fn: F) -> F:
        target.register(name or fn.__name__, fn)
        return fn

    return decorate
