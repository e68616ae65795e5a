"""flownb: a notebook-centric, event-driven workflow engine.

Workflows are YAML (modules, workflows, triggers, pipelines), validated by one pydantic model
per module type, built and run by an asyncio `Engine`.
"""

from __future__ import annotations

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

__version__ = "0.1.0"

__all__ = [
    "BuildError",
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
    "Registry",
    "Response",
    "StepError",
    "Stores",
    "SyncEngine",
    "__version__",
    "config_from_dict",
    "default_registry",
    "dump_config",
    "json_schema",
    "load_config",
    "parse_config",
]
