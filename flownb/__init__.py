"""flownb: a notebook-centric, event-driven workflow engine.

Workflows are YAML (modules, workflows, triggers, pipelines), validated by one pydantic model
per module type, built and run by an asyncio `Engine`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flownb.ai import generate
    from flownb.canvas import Canvas
    from flownb.components import component
    from flownb.config import Config, ModuleSpec
    from flownb.engine import Engine
    from flownb.errors import (
        BuildError,
        ConfigError,
        Diagnostic,
        ExecutionError,
        FlownbError,
        StepError,
    )
    from flownb.execution import ExecutionContext, Response
    from flownb.functions import Functions
    from flownb.loader import config_from_dict, dump_config, load_config, parse_config
    from flownb.module import Module
    from flownb.notebooks import NotebookFailed, execute
    from flownb.registry import ModuleType, Registry, default_registry, json_schema
    from flownb.stores import Stores
    from flownb.sync import SyncEngine
    from flownb.workflow import Workflow

__version__ = "0.1.0"

# Everything loads on first use: `import flownb.history` (the history's writer process, the
# CLI's commands) does not load the engine, and `flownb run` stays free of traitlets,
# ipywidgets and IPython.
_LAZY = {
    "Config": "flownb.config",
    "ModuleSpec": "flownb.config",
    "Engine": "flownb.engine",
    "BuildError": "flownb.errors",
    "ConfigError": "flownb.errors",
    "Diagnostic": "flownb.errors",
    "ExecutionError": "flownb.errors",
    "FlownbError": "flownb.errors",
    "StepError": "flownb.errors",
    "ExecutionContext": "flownb.execution",
    "Response": "flownb.execution",
    "Functions": "flownb.functions",
    "config_from_dict": "flownb.loader",
    "dump_config": "flownb.loader",
    "load_config": "flownb.loader",
    "parse_config": "flownb.loader",
    "Module": "flownb.module",
    "ModuleType": "flownb.registry",
    "Registry": "flownb.registry",
    "default_registry": "flownb.registry",
    "json_schema": "flownb.registry",
    "Stores": "flownb.stores",
    "SyncEngine": "flownb.sync",
    "Canvas": "flownb.canvas",
    "Workflow": "flownb.workflow",
    "component": "flownb.components",
    "execute": "flownb.notebooks",  # papermill runs (the notebook extra)
    "NotebookFailed": "flownb.notebooks",
    "generate": "flownb.ai",  # AI generation (the ai / copilot extras)
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flownb' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext flownb`: the `%%workflow` cell magic and the `%workflow` line magic."""
    from flownb.magics import load_ipython_extension as load

    load(ipython)


__all__ = [
    "BuildError",
    "Canvas",
    "Config",
    "ConfigError",
    "Diagnostic",
    "Engine",
    "ExecutionContext",
    "ExecutionError",
    "FlownbError",
    "Functions",
    "Module",
    "ModuleSpec",
    "ModuleType",
    "NotebookFailed",
    "Registry",
    "Response",
    "StepError",
    "Stores",
    "SyncEngine",
    "Workflow",
    "__version__",
    "component",
    "config_from_dict",
    "default_registry",
    "dump_config",
    "execute",
    "generate",
    "json_schema",
    "load_config",
    "load_ipython_extension",
    "parse_config",
]
