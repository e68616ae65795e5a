"""The tools a model calls while it writes a workflow: all read the registry or run the checks.

Nothing here restates a module type's fields: `list_module_types` and `get_module_schema`
give what `flownb.registry` holds, `get_section_schema` cuts the whole-file JSON Schema
(`flownb.schema.file_schema`), `get_example_workflow` reads the shipped examples, and the two
`validate_*` tools run `checks.Checker` (the engine's validator and a dry build; the sandbox
and an isolated test run).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flownb.ai.checks import Checker
from flownb.errors import FlownbError, unknown_name_message


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the model sees it: name, what it is for, and its input's JSON Schema."""

    name: str
    description: str
    input_schema: dict[str, Any]

    def input_problems(self, data: Any) -> list[str]:
        """Where `data` breaks the input schema (a model may send anything)."""
        from jsonschema import Draft202012Validator  # slow to import: on first use

        validator = Draft202012Validator(self.input_schema)
        problems = []
        for error in sorted(validator.iter_errors(data), key=lambda e: list(e.path)):
            where = ".".join(str(p) for p in error.path) or "input"
            problems.append(f"{where}: {error.message}")
        return problems


@dataclass(frozen=True)
class ToolReply:
    """What a tool call answers: text for the model, and whether it is an error."""

    text: str
    is_error: bool = False

    @classmethod
    def json(cls, value: Any, *, is_error: bool = False) -> ToolReply:
        return cls(json.dumps(value, indent=1, ensure_ascii=False, default=str), is_error)


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


_STRING = {"type": "string"}
SECTIONS = ("workflows", "triggers", "pipelines")

SPECS = (
    ToolSpec(
        "list_module_types",
        "Every module type that can be used, by category: type, description, the service kinds "
        "it provides and those its config refers to. Call this first.",
        _object({"category": {"type": "string", "description": "only this category"}}),
    ),
    ToolSpec(
        "get_module_schema",
        "The JSON Schema of one module type's `config` (field names, types, defaults, "
        "descriptions). Call it for every type you use; write fields exactly as named there.",
        _object(
            {"type": {"type": "string", "description": "a module type, e.g. http.server"}},
            ("type",),
        ),
    ),
    ToolSpec(
        "get_section_schema",
        "The JSON Schema of a top-level section: `workflows` (or `workflows.KIND`, e.g. "
        "workflows.http), `triggers` (or `triggers.KIND`) or `pipelines` (pipeline steps).",
        _object({"section": {"type": "string"}}, ("section",)),
    ),
    ToolSpec(
        "get_example_workflow",
        "A working example workflow file (YAML). Without `name`, the list of examples and what "
        "each shows.",
        _object({"name": {"type": "string", "description": "an example's name, e.g. hello"}}),
    ),
    ToolSpec(
        "validate_config",
        "Validate workflow YAML exactly as `flownb validate` does (schema, references, a dry "
        "build of the engine) and check that every component and function it runs exists. "
        "Answers {valid, errors}; each error is FILE:LINE:COL: path: message.",
        _object(
            {
                "yaml": {"type": "string", "description": "the whole workflow file"},
                "components": {
                    "type": "array",
                    "items": _STRING,
                    "description": "names of components you will submit with it",
                },
            },
            ("yaml",),
        ),
    ),
    ToolSpec(
        "validate_component",
        "Check a dynamic component's Python source with the sandbox's static check, then run "
        "`execute(ctx, testInput)` once in an isolated, limited worker. Answers {valid, errors, "
        "output}.",
        _object(
            {
                "source": {"type": "string", "description": "the component's Python source"},
                "testInput": {"description": "the data to run it on (JSON)"},
            },
            ("source",),
        ),
    ),
)


def examples_dir() -> Path | None:
    """The example workflows: shipped in the package, or in a source checkout beside it."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "examples", here.parent / "examples"):
        if candidate.is_dir() and any(candidate.glob("*/*.yaml")):
            return candidate
    return None


class Toolbox:
    """Runs the tools of `SPECS` for one generation, against one `Checker`."""

    specs = SPECS

    def __init__(self, checker: Checker, examples: Path | None = None) -> None:
        self.checker = checker
        self.examples = examples if examples is not None else examples_dir()
        self._file_schema: dict[str, Any] | None = None

    def __contains__(self, name: object) -> bool:
        return any(spec.name == name for spec in self.specs)

    async def call(self, name: str, data: dict[str, Any]) -> ToolReply:
        try:
            if name == "list_module_types":
                return ToolReply.json(self.list_module_types(data.get("category")))
            if name == "get_module_schema":
                return ToolReply.json(self.checker.registry.get(data["type"]).schema())
            if name == "get_section_schema":
                return ToolReply.json(self.section_schema(data["section"]))
            if name == "get_example_workflow":
                return self.example(data.get("name"))
            if name == "validate_config":
                _, errors = self.checker.config(data["yaml"], data.get("components") or ())
                return ToolReply.json({"valid": not errors, "errors": errors})
            if name == "validate_component":
                component, errors = await self.checker.component(
                    data["source"], test_input=data.get("testInput")
                )
                output = component.test_output if component is not None else None
                return ToolReply.json({"valid": not errors, "errors": errors, "output": output})
        except FlownbError as exc:
            return ToolReply(str(exc), is_error=True)
        known = [spec.name for spec in self.specs]
        return ToolReply(unknown_name_message("tool", name, known), is_error=True)

    def list_module_types(self, category: str | None = None) -> dict[str, Any]:
        schema = self.checker.registry.json_schema()
        types = [
            {k: info[k] for k in ("type", "category", "description", "provides", "requires")}
            for info in schema["types"].values()
            if category is None or info["category"].lower() == category.lower()
        ]
        return {"categories": schema["categories"], "types": types}

    def section_schema(self, section: str) -> dict[str, Any]:
        """The schema of `section` (`workflows`, `workflows.http`...) with the $defs it uses."""
        if self._file_schema is None:
            from flownb.schema import file_schema

            self._file_schema = file_schema(self.checker.registry)
        whole = self._file_schema
        parts = section.split(".")
        if parts[0] not in SECTIONS or len(parts) > 2:
            raise FlownbError(unknown_name_message("section", section, _section_names(whole)))
        node = _deref(whole["properties"][parts[0]], whole)
        if len(parts) == 2:
            props = node.get("properties", {})
            if parts[1] not in props:
                raise FlownbError(unknown_name_message("section", section, _section_names(whole)))
            node = _deref(props[parts[1]], whole)
        defs = whole.get("$defs", {})
        used = _reachable(node, defs)
        return {**node, "$defs": {name: defs[name] for name in sorted(used)}} if used else node

    def example(self, name: str | None) -> ToolReply:
        files = sorted(self.examples.glob("*/*.yaml")) if self.examples is not None else []
        if name is None:
            listing = [{"name": f.stem, "about": _header(f)} for f in files]
            return ToolReply.json({"examples": listing})
        for file in files:
            if name in (file.stem, file.parent.name):
                return ToolReply(file.read_text(encoding="utf-8"))
        known = [f.stem for f in files]
        return ToolReply(unknown_name_message("example", name, known), is_error=True)


def _header(file: Path) -> str:
    """The first comment line of an example (what it shows)."""
    for line in file.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def _section_names(whole: dict[str, Any]) -> list[str]:
    names = list(SECTIONS)
    for section in ("workflows", "triggers"):
        node = _deref(whole["properties"][section], whole)
        names += [f"{section}.{kind}" for kind in node.get("properties", {})]
    return names


def _deref(node: dict[str, Any], whole: dict[str, Any]) -> dict[str, Any]:
    """Follow a `$ref` (also one inside `anyOf` with null) to its definition."""
    ref = node.get("$ref")
    if ref is None and "anyOf" in node:
        refs = [n for n in node["anyOf"] if "$ref" in n]
        if len(refs) == 1:
            ref = refs[0]["$ref"]
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        found: dict[str, Any] = whole["$defs"][ref.removeprefix("#/$defs/")]
        return found
    return node


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            yield ref.removeprefix("#/$defs/")
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _reachable(node: Any, defs: dict[str, Any]) -> set[str]:
    seen: set[str] = set()
    todo = list(_refs(node))
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        todo.extend(_refs(defs[name]))
    return seen
