"""Dynamic components: user Python code, statically checked, sandboxed, limited, hot-reloaded.

A component is a Python source defining `execute(ctx, data) -> dict` (and optionally `name`,
`init(config, services)`, `start()`, `stop()`). `checker` rejects escape routes before
anything runs; `sandbox` guards what runs; `pool` runs untrusted code in worker processes
with CPU, memory, wall-time, output, file and process limits; `registry` tracks lifecycle
states and swaps versions atomically; `watcher` reloads on save. The engine sees a component
through the `dynamic.component` module type (`flownb.modules.dynamic`).

This package must stay importable without the engine: worker processes import parts of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flownb.dynamic.contract import (
        DEFAULT_IMPORTS,
        CheckError,
        ComponentError,
        DataError,
        LimitExceeded,
        Limits,
        Options,
        Problem,
        Source,
    )
    from flownb.dynamic.loader import load_directory, load_file, load_string, validate
    from flownb.dynamic.registry import Component, ComponentInfo, ComponentRegistry
    from flownb.dynamic.watcher import ComponentWatcher

# Exports are imported on first use: a worker process imports `flownb.dynamic.worker` and
# must not pay for asyncio, watchfiles and the registry it never uses.
_HOME = {
    "DEFAULT_IMPORTS": "contract",
    "CheckError": "contract",
    "ComponentError": "contract",
    "DataError": "contract",
    "LimitExceeded": "contract",
    "Limits": "contract",
    "Options": "contract",
    "Problem": "contract",
    "Source": "contract",
    "load_directory": "loader",
    "load_file": "loader",
    "load_string": "loader",
    "validate": "loader",
    "Component": "registry",
    "ComponentInfo": "registry",
    "ComponentRegistry": "registry",
    "ComponentWatcher": "watcher",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'flownb.dynamic' has no attribute {name!r}")
    return getattr(importlib.import_module(f"flownb.dynamic.{home}"), name)


__all__ = [
    "DEFAULT_IMPORTS",
    "CheckError",
    "Component",
    "ComponentError",
    "ComponentInfo",
    "ComponentRegistry",
    "ComponentWatcher",
    "DataError",
    "LimitExceeded",
    "Limits",
    "Options",
    "Problem",
    "Source",
    "load_directory",
    "load_file",
    "load_string",
    "validate",
]
