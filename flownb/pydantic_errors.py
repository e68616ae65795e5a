"""Turn pydantic validation errors into config diagnostics users can act on.

Pydantic's locations include the tags of discriminated unions (`steps.0.respond.status`);
we map them back onto the data actually written, find the file position, and rewrite the
messages: "unknown field 'adress'; did you mean 'address'?" instead of "Extra inputs are not
permitted".
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from flownb.errors import Diagnostic, Loc
from flownb.registry import Registry
from flownb.yamlsource import SourceMap

_MAX_SHOWN = 60


def translate(
    exc: ValidationError,
    data: Any,
    prefix: Loc,
    smap: SourceMap,
    *,
    registry: Registry,
    root: type[BaseModel],
) -> list[Diagnostic]:
    """Diagnostics for `exc`, raised validating `data` (found at `prefix`) as `root`."""
    merged: dict[Loc, tuple[bool, list[str], str]] = {}
    for err in exc.errors(include_url=False):
        loc, at_key, message, got = _describe(err, data, registry, root)
        _, messages, _ = merged.setdefault((*prefix, *loc), (at_key, [], got))
        if message not in messages:
            messages.append(message)
    return [
        smap.diagnostic(loc, _join(messages) + got, key=at_key)
        for loc, (at_key, messages, got) in merged.items()
    ]


def _join(messages: list[str]) -> str:
    """Union members fail separately; say it once: 'Input should be a string, or a boolean'."""
    lead = "Input should be "
    if len(messages) > 1 and all(m.startswith(lead) for m in messages):
        return lead + ", or ".join(m[len(lead) :] for m in messages)
    return "; ".join(messages)


def _data_loc(data: Any, loc: tuple[Any, ...]) -> tuple[Loc, Any, Any]:
    """Drop union tags and `[key]` markers; returns (loc in data, parent value, last value)."""
    clean: list[str | int] = []
    node, parent = data, None
    for i, part in enumerate(loc):
        if part == "[key]":
            continue
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        ):
            parent, node = node, node[part]
            clean.append(part)
        elif isinstance(node, dict) and isinstance(part, str) and node.get("type") == part:
            continue  # discriminated-union tag
        elif node is not None and not isinstance(node, dict | list):
            break  # the rest names union members of a scalar value
        elif i == len(loc) - 1 or isinstance(node, dict):
            clean.append(part)
            parent, node = node, None
        else:
            continue  # function-validator or union member names
    return tuple(clean), parent, node


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _describe(
    err: ErrorDetails, data: Any, registry: Registry, root: type[BaseModel]
) -> tuple[Loc, bool, str, str]:
    """(loc in the data, point at the key?, message, ' (got VALUE)' or '')."""
    kind = err["type"]
    loc, parent, value = _data_loc(data, tuple(err["loc"]))
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return loc, False, f"missing required field {loc[-1]!r}" if loc else "missing value", ""
    if kind == "extra_forbidden":
        field = str(loc[-1]) if loc else "?"
        known = _known_fields(data, loc[:-1], registry, root)
        msg = f"unknown field {field!r}"
        close = difflib.get_close_matches(field, known, n=1, cutoff=0.6)
        if close:
            msg += f"; did you mean {close[0]!r}?"
        elif known:
            msg += f" (allowed: {', '.join(known)})"
        return loc, True, msg, ""
    if kind == "union_tag_invalid":
        tag = str(ctx.get("tag", value))
        expected = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
        msg = f"unknown step type {tag!r}"
        close = difflib.get_close_matches(tag, expected, n=1, cutoff=0.6)
        if close:
            msg += f"; did you mean {close[0]!r}?"
        msg += f" (known: {', '.join(expected)})"
        return (*loc, "type"), False, msg, ""
    if kind == "union_tag_not_found":
        return loc, False, f"missing field {ctx.get('discriminator', 'type')!r}", ""
    message = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    got = ""
    shown = value is not None or (isinstance(parent, dict) and loc and loc[-1] in parent)
    if (
        kind not in ("value_error", "assertion_error")
        and not isinstance(value, dict | list)
        and shown
    ):
        got = f" (got {_short(value)})"
    return loc, False, message, got


def _known_fields(data: Any, loc: Loc, registry: Registry, root: type[BaseModel]) -> list[str]:
    """Field names allowed at `loc`, found by walking the model classes along the data."""
    from flownb.config import ModuleSpec

    ann: Any = root
    node = data
    for part in loc:
        model = _as_model(ann, node)
        if model is ModuleSpec and part == "config" and isinstance(node, dict):
            type_name = node.get("type")
            if not isinstance(type_name, str) or type_name not in registry:
                return []
            ann, node = registry.get(type_name).config, node.get("config")
            continue
        if model is not None:
            field = _field(model, part)
            if field is None:
                return []
            ann = field
        else:
            ann = _element(ann)
            if ann is None:
                return []
        node = (
            node.get(part)
            if isinstance(node, dict)
            else (
                node[part]
                if isinstance(node, list) and isinstance(part, int) and part < len(node)
                else None
            )
        )
    model = _as_model(ann, node)
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def _field(model: type[BaseModel], key: Any) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info.annotation
    return None


def _strip(ann: Any) -> list[Any]:
    origin = typing.get_origin(ann)
    if origin is typing.Annotated:
        return _strip(typing.get_args(ann)[0])
    if origin in (typing.Union, types.UnionType):
        return [x for arg in typing.get_args(ann) for x in _strip(arg)]
    return [ann]


def _as_model(ann: Any, node: Any) -> type[BaseModel] | None:
    models = [a for a in _strip(ann) if isinstance(a, type) and issubclass(a, BaseModel)]
    if not models:
        return None
    if len(models) > 1 and isinstance(node, dict) and "type" in node:
        for m in models:
            field = m.model_fields.get("type")
            if field is not None and field.default == node["type"]:
                return m
    return models[0]


def _element(ann: Any) -> Any:
    for a in _strip(ann):
        origin = typing.get_origin(a)
        if origin is list:
            return typing.get_args(a)[0]
        if origin is dict:
            return typing.get_args(a)[1]
    return None
