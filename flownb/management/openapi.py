"""The OpenAPI 3.1 document of the management API, generated from its operations table.

Schemas come from the pydantic models (`flownb.management.models`) through pydantic's JSON
Schema generation, so the document, the request checks and the replies cannot drift apart.
Every operation requires the bearer token (`security`), which the document says globally.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from flownb import __version__
from flownb.http.reply import JSON

if TYPE_CHECKING:
    from flownb.management.routes import Operation

REF = "#/components/schemas/{model}"
Mode = Literal["validation", "serialization"]
Refs = dict[tuple[Any, Mode], dict[str, Any]]


def _models(operations: list[Operation]) -> list[tuple[type[BaseModel], Mode]]:
    found: dict[tuple[type[BaseModel], Mode], None] = {}
    for op in operations:
        if op.query is not None:
            found[(op.query, "validation")] = None
        if isinstance(op.body, type):
            found[(op.body, "validation")] = None
        for _, model in op.replies.values():
            if model is not None:
                found[(model, "serialization")] = None
    return list(found)


def _parameters(op: Operation, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": p}}
        for name, p in op.params.items()
    ]
    if op.query is not None:
        schema = op.query.model_json_schema(by_alias=True, ref_template=REF)
        required = set(schema.get("required", []))
        for name, given in schema.get("properties", {}).items():
            prop = dict(given)
            description = prop.pop("description", None)
            prop.pop("title", None)
            param: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": prop,
            }
            if description:
                param["description"] = description
            out.append(param)
        schemas.update(schema.get("$defs", {}))
    return out


def _request_body(op: Operation, refs: Refs) -> dict[str, Any]:
    if op.body == "config":
        return {
            "required": True,
            "description": "a workflow config: a JSON object, or YAML text",
            "content": {
                JSON: {"schema": {"type": "object"}},
                "application/yaml": {"schema": {"type": "object"}},
            },
        }
    assert isinstance(op.body, type)
    return {
        "required": op.body_required,
        "content": {JSON: {"schema": refs[(op.body, "validation")]}},
    }


def _responses(op: Operation, refs: Refs) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, (description, model) in sorted(op.replies.items()):
        reply: dict[str, Any] = {"description": description}
        success = 200 <= status < 300
        if model is not None:
            content = {JSON: {"schema": refs[(model, "serialization")]}}
            if success:
                for media in op.also:  # YAML text of a mapping (the config)
                    content[media] = {"schema": {"type": "object"}}
            reply["content"] = content
        elif status != 204:
            schema: dict[str, Any] = {"type": "object"} if op.media == JSON else {"type": "string"}
            reply["content"] = {op.media: {"schema": schema}}
        out[str(status)] = reply
    # The HTTP server itself answers 400 in plain text, before any route runs, to a request
    # line or headers it cannot read (malformed, or longer than 8 KB).
    unreadable = {"text/plain": {"schema": {"type": "string"}}}
    if "400" in out:
        out["400"].setdefault("content", {}).update(unreadable)
    else:
        out["400"] = {"description": "the request could not be read", "content": unreadable}
    return dict(sorted(out.items()))


def document(operations: list[Operation]) -> dict[str, Any]:
    """The OpenAPI document for `operations`."""
    refs, defs = models_json_schema(_models(operations), by_alias=True, ref_template=REF)
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        item: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": [op.tag],
            "x-scope": op.scope,
            "responses": _responses(op, refs),
        }
        parameters = _parameters(op, schemas)
        if parameters:
            item["parameters"] = parameters
        if op.body is not None:
            item["requestBody"] = _request_body(op, refs)
        paths.setdefault(op.path, {})[op.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flownb management API",
            "version": __version__,
            "description": "Config, reloads, history, components, dead letters, metrics and "
            "health of a running flownb service. Every route needs a bearer token; the read "
            "token cannot change anything (x-scope: write).",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
