"""JSON Schema of a whole workflow file, derived from the config models and the registry.

`modules` becomes a list discriminated by `type`, each type with its own registered config
schema, so an editor (or the canvas, or an AI tool) can check a file without running flownb.
Nothing here is written by hand: it is generated from the same models the loader validates
with.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import Field, create_model

from flownb.config import Config
from flownb.fields import Name, Spec
from flownb.registry import Registry, default_registry


class _ModuleSchemaBase(Spec):
    name: Name
    depends_on: list[Name] = Field(default_factory=list, alias="dependsOn")


def _model_name(type_name: str) -> str:
    return "Module_" + re.sub(r"[^A-Za-z0-9]", "_", type_name)


def file_schema(registry: Registry | None = None) -> dict[str, Any]:
    """The JSON Schema (2020-12) of a workflow file for the types in `registry`."""
    registry = registry or default_registry()
    variants: list[Any] = []
    for module_type in sorted(registry, key=lambda t: t.name):
        variants.append(
            create_model(
                _model_name(module_type.name),
                __base__=_ModuleSchemaBase,
                __doc__=module_type.description,
                type=(Literal[module_type.name], ...),  # type: ignore[arg-type]
                config=(module_type.config, Field(default_factory=dict)),
            )
        )
    if not variants:
        return Config.model_json_schema(by_alias=True)
    modules = Annotated[Union[tuple(variants)], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007
    model = create_model(
        "WorkflowFile",
        __base__=Config,
        __doc__="A flownb workflow file.",
        modules=(list[modules], Field(default_factory=list)),  # type: ignore[valid-type]
    )
    schema: dict[str, Any] = _allow_env_refs(model.model_json_schema(by_alias=True))
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


ENV_REF = {"type": "string", "pattern": r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}$"}


def _allow_env_refs(node: Any) -> Any:
    """Numbers and booleans may also be written as `${VAR}`: the loader expands them."""
    if isinstance(node, list):
        return [_allow_env_refs(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _allow_env_refs(value) for key, value in node.items()}
    if out.get("type") in ("integer", "number", "boolean"):
        return {"anyOf": [out, ENV_REF]}
    return out
