"""One generation as a task: instructions, tools, and the validate-and-fix bookkeeping.

A backend (Claude, Copilot) holds the conversation; the task answers every tool call and
judges every answer. An answer arrives through the task's submit tool (or, failing that, as
prose the task reads YAML/JSON/Python out of); it is validated with the real checks, and an
invalid one is refused with the exact errors for the model to fix. After `max_fixes` refusals
the task gives up with `GenerationFailed` naming the last errors; nothing unvalidated is ever
a result.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import yaml

from flownb.ai import prompts
from flownb.ai.errors import GenerationFailed
from flownb.ai.results import ComponentSpec, GeneratedComponent, GenerationResult, Suggestion
from flownb.ai.tools import Toolbox, ToolReply, ToolSpec
from flownb.errors import unknown_name_message

T = TypeVar("T")

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_SECTIONS = ("modules", "workflows", "triggers", "pipelines")


class Task(Generic[T]):
    """Base of the three tasks; subclasses define the submit tool and how to judge answers."""

    what = "answer"
    system = ""
    submit: ToolSpec

    def __init__(self, toolbox: Toolbox, prompt: str, *, max_fixes: int = 3) -> None:
        self.toolbox, self.prompt, self.max_fixes = toolbox, prompt, max_fixes
        self.result: T | None = None
        self.rounds = 0
        self.fixes = 0
        self.errors: list[str] = []
        self.calls: list[str] = []

    @property
    def done(self) -> bool:
        return self.result is not None

    @property
    def specs(self) -> list[ToolSpec]:
        return [*self.toolbox.specs, self.submit]

    # --- the conversation's two inputs: tool calls and prose -------------------------------
    async def call(self, name: str, data: Any) -> ToolReply:
        """Answer one tool call (a refused submission counts as a fix round)."""
        self.calls.append(name)
        spec = next((s for s in self.specs if s.name == name), None)
        if spec is None:
            known = [s.name for s in self.specs]
            return ToolReply(unknown_name_message("tool", name, known), is_error=True)
        problems = spec.input_problems(data)
        if problems:
            if name == self.submit.name:
                return self.refuse([f"{name} input: {p}" for p in problems])
            return ToolReply(
                f"{name}: the input does not match its schema: " + "; ".join(problems), True
            )
        if name == self.submit.name:
            return await self.judge(data)
        return await self.toolbox.call(name, data)

    async def answer_text(self, text: str, *, truncated: bool = False) -> ToolReply:
        """The model answered in prose instead of calling the submit tool: read it anyway."""
        if truncated:
            return self.refuse(
                [
                    f"your answer was cut off (max_tokens); call {self.submit.name} with a "
                    "shorter answer"
                ]
            )
        data, problems = self.read_text(text)
        if data is None:
            return self.refuse(problems)
        return await self.judge(data)

    # --- judging ---------------------------------------------------------------------------
    async def judge(self, data: dict[str, Any]) -> ToolReply:
        result, errors = await self.accept(data)
        if errors or result is None:
            return self.refuse(errors or [f"the {self.what} was not accepted"])
        self.result = result
        return ToolReply(f"Accepted: the {self.what} is valid.")

    def refuse(self, errors: Sequence[str]) -> ToolReply:
        self.fixes += 1
        self.errors = list(errors)
        lines = [f"Refused: the {self.what} is not valid.", *self.errors]
        lines.append(f"Fix every error and call {self.submit.name} again.")
        return ToolReply("\n".join(lines), is_error=True)

    def check_bounds(self) -> None:
        """Raise once more answers were refused than `max_fixes` allows."""
        if self.fixes > self.max_fixes:
            raise GenerationFailed(
                f"no valid {self.what} after {self.fixes} answers were sent back with their "
                f"errors (at most {self.max_fixes} fix rounds)",
                self.errors,
            )

    def out_of_rounds(self, rounds: int) -> GenerationFailed:
        reason = f"no valid {self.what} within {rounds} model turns"
        if not self.errors:
            reason += f" (the model never called {self.submit.name})"
        return GenerationFailed(reason, self.errors)

    async def accept(self, data: dict[str, Any]) -> tuple[T | None, list[str]]:
        raise NotImplementedError

    def read_text(self, text: str) -> tuple[dict[str, Any] | None, list[str]]:
        raise NotImplementedError


class WorkflowTask(Task[GenerationResult]):
    what = "workflow"
    system = prompts.WORKFLOW_SYSTEM
    submit = ToolSpec(
        "submit_workflow",
        "Submit the finished workflow: the whole YAML file, every component it needs, and a "
        "short explanation. It is validated; a refusal lists the exact errors to fix.",
        {
            "type": "object",
            "properties": {
                "yaml": {"type": "string", "description": "the whole workflow file"},
                "components": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "source": {"type": "string"},
                            "description": {"type": "string"},
                            "testInput": {"description": "data to test-run it on"},
                        },
                        "required": ["source"],
                        "additionalProperties": False,
                    },
                },
                "explanation": {"type": "string"},
            },
            "required": ["yaml"],
            "additionalProperties": False,
        },
    )

    async def accept(self, data: dict[str, Any]) -> tuple[GenerationResult | None, list[str]]:
        text: str = data["yaml"]
        errors: list[str] = []
        components: list[GeneratedComponent] = []
        for item in data.get("components") or []:
            component, problems = await self.toolbox.checker.component(
                item["source"],
                name=item.get("name") or None,
                test_input=item.get("testInput"),
                description=item.get("description", ""),
            )
            errors.extend(problems)
            if component is not None:
                if any(c.name == component.name for c in components):
                    errors.append(
                        f"{component.name}.py: two components are named {component.name!r}"
                    )
                components.append(component)
        names = [c.name for c in components]
        config, problems = self.toolbox.checker.config(text, names)
        errors.extend(problems)
        if errors or config is None:
            return None, errors
        raw = yaml.safe_load(text)
        result = GenerationResult(
            yaml=text if text.endswith("\n") else text + "\n",
            config=raw if isinstance(raw, dict) else {},
            components=tuple(components),
            explanation=str(data.get("explanation") or "").strip(),
        )
        return result, []

    def read_text(self, text: str) -> tuple[dict[str, Any] | None, list[str]]:
        blocks = _fences(text)
        prose = _FENCE.sub("", text).strip()
        for lang, body in blocks:
            if lang == "json":
                try:
                    value = json.loads(body)
                except ValueError as exc:
                    return None, [f"the JSON in your answer does not parse: {exc}"]
                if isinstance(value, dict) and isinstance(value.get("yaml"), str):
                    return value, []
        found = [body for lang, body in blocks if lang in ("yaml", "yml")]
        if not found and not blocks and _looks_like_workflow(text):
            found, prose = [text], ""
        if not found:
            return None, [
                "your answer has no workflow in it: call submit_workflow with the whole YAML "
                "file (prose alone cannot be validated)"
            ]
        components = [
            {"source": body} for lang, body in blocks if lang in ("python", "py") and body.strip()
        ]
        return {"yaml": found[-1], "components": components, "explanation": prose}, []


class ComponentTask(Task[GeneratedComponent]):
    what = "component"
    system = prompts.COMPONENT_SYSTEM
    submit = ToolSpec(
        "submit_component",
        "Submit the finished component: its Python source and a test input it must run on. "
        "It is checked and test-run; a refusal lists the exact errors to fix.",
        {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "source": {"type": "string"},
                "testInput": {"description": "data to test-run it on (JSON)"},
            },
            "required": ["source"],
            "additionalProperties": False,
        },
    )

    def __init__(self, toolbox: Toolbox, spec: ComponentSpec, *, max_fixes: int = 3) -> None:
        prompt = prompts.component_prompt(
            spec.name, spec.description, spec.example_input, spec.expected_output
        )
        super().__init__(toolbox, prompt, max_fixes=max_fixes)
        self.spec = spec

    async def accept(self, data: dict[str, Any]) -> tuple[GeneratedComponent | None, list[str]]:
        test_input = data.get("testInput")
        if test_input is None:
            test_input = self.spec.example_input
        component, errors = await self.toolbox.checker.component(
            data["source"],
            name=self.spec.name or data.get("name") or None,
            test_input=test_input,
            description=self.spec.description,
        )
        return component, errors

    def read_text(self, text: str) -> tuple[dict[str, Any] | None, list[str]]:
        sources = [body for lang, body in _fences(text) if lang in ("python", "py")]
        if not sources:
            return None, [
                "your answer has no component in it: call submit_component with the source"
            ]
        return {"source": sources[-1]}, []


class SuggestionTask(Task[list[Suggestion]]):
    what = "list of suggestions"
    system = prompts.SUGGEST_SYSTEM
    submit = ToolSpec(
        "submit_suggestions",
        "Submit 3 to 5 workflow ideas for the use case.",
        {
            "type": "object",
            "properties": {
                "suggestions": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {
                            "title": {"type": "string"},
                            "description": {"type": "string"},
                            "intent": {"type": "string"},
                            "moduleTypes": {"type": "array", "items": {"type": "string"}},
                        },
                        "required": ["title", "description", "intent"],
                        "additionalProperties": False,
                    },
                }
            },
            "required": ["suggestions"],
            "additionalProperties": False,
        },
    )

    async def accept(self, data: dict[str, Any]) -> tuple[list[Suggestion] | None, list[str]]:
        registry = self.toolbox.checker.registry
        errors: list[str] = []
        found: list[Suggestion] = []
        for i, item in enumerate(data["suggestions"]):
            types = tuple(item.get("moduleTypes") or ())
            for name in types:
                if name not in registry:
                    where = f"suggestions[{i}].moduleTypes"
                    errors.append(
                        f"{where}: {unknown_name_message('module type', name, registry.names())}"
                    )
            found.append(Suggestion(item["title"], item["description"], item["intent"], types))
        return (None, errors) if errors else (found, [])

    def read_text(self, text: str) -> tuple[dict[str, Any] | None, list[str]]:
        for lang, body in _fences(text):
            if lang == "json":
                try:
                    value = json.loads(body)
                except ValueError as exc:
                    return None, [f"the JSON in your answer does not parse: {exc}"]
                if isinstance(value, list):
                    value = {"suggestions": value}
                if isinstance(value, dict):
                    problems = self.submit.input_problems(value)
                    return (None, problems) if problems else (value, [])
        return None, ["your answer has no suggestions in it: call submit_suggestions"]


def _fences(text: str) -> list[tuple[str, str]]:
    return [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]


def _looks_like_workflow(text: str) -> bool:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return isinstance(value, dict) and any(k in value for k in _SECTIONS)
