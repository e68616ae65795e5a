"""flownb: a notebook-centric, event-driven workflow engine.

Workflows are YAML (modules, workflows, triggers, pipelines), validated by one pydantic model
per module type, built and run by an asyncio `Engine`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
from flownb.registry import ModuleType, Registry, default_registry, json_schema
from flownb.stores import Stores
from flownb.sync import SyncEngine

if TYPE_CHECKING:
    from flownb.ai import generate
    from flownb.canvas import Canvas
    from flownb.components import component
    from flownb.notebooks import NotebookFailed, execute
    from flownb.workflow import Workflow

__version__ = "0.1.0"

# The notebook pieces load on first use: `import flownb` and `flownb run` stay free of
# traitlets, ipywidgets and IPython.
_LAZY = {
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
