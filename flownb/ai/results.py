"""What generation gives back: a validated workflow with its components, a component, ideas."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from flownb.errors import format_loc

if TYPE_CHECKING:
    from flownb.ai.deployment import Deployment
    from flownb.workflow import Workflow


@dataclass(frozen=True)
class GeneratedComponent:
    """A dynamic component's source, checked by the sandbox and run once on `test_input`."""

    name: str
    source: str
    description: str = ""
    test_input: Any = field(default_factory=dict)
    test_output: Any = None  # what the test execution returned

    @property
    def filename(self) -> str:
        return f"{self.name}.py"


@dataclass(frozen=True)
class GenerationResult:
    """A workflow that validated (schema, references, dry build) with every component it needs.

    `config` is the JSON form the canvas and `flownb.Workflow` edit; `yaml` the same as text.
    """

    yaml: str
    config: dict[str, Any]
    components: tuple[GeneratedComponent, ...]
    explanation: str
    provider: str = ""
    model: str = ""
    rounds: int = 0  # model turns taken
    fixes: int = 0  # answers sent back with their errors
    tool_calls: tuple[str, ...] = ()  # the tools the model called, in order

    def summary(self) -> str:
        modules = self.config.get("modules")
        count = len(modules) if isinstance(modules, list) else 0
        parts = [f"{count} module{'s' if count != 1 else ''}"]
        if self.components:
            parts.append("components: " + ", ".join(c.name for c in self.components))
        how = f"{self.rounds} round{'s' if self.rounds != 1 else ''}"
        if self.fixes:
            how += f", {self.fixes} fixed"
        by = f" by {self.provider} {self.model}".rstrip() if self.provider else ""
        return f"generated{by} ({how}): {'; '.join(parts)}"

    def __str__(self) -> str:
        return "\n".join(p for p in (self.summary(), self.explanation) if p)

    def save(
        self, path: str | os.PathLike[str], *, components_dir: str | os.PathLike[str] | None = None
    ) -> Deployment:
        """Write the workflow file and its components (validated again first)."""
        from flownb.ai.deployment import deploy

        return deploy(self, Path(path), components_dir=components_dir)

    def workflow(self, name: str | None = None, **options: Any) -> Workflow:
        """A new `flownb.Workflow` holding this config (components are not written)."""
        from flownb.workflow import Workflow

        return Workflow(dict(self.config), name=name or "generated", **options)


@dataclass(frozen=True)
class ComponentSpec:
    """What a component must do; `example_input` is what it is test-run on."""

    name: str
    description: str
    example_input: Any = None
    expected_output: Any = None  # a hint for the model, not checked for equality

    @classmethod
    def of(cls, spec: ComponentSpec | str) -> ComponentSpec:
        if isinstance(spec, ComponentSpec):
            return spec
        return cls(name="", description=spec)


@dataclass(frozen=True)
class Suggestion:
    """A workflow idea for a use case: an intent to hand to `generate_workflow`."""

    title: str
    description: str
    intent: str
    module_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class MissingComponent:
    """Something a config runs that does not exist yet (found by reading the config)."""

    name: str
    kind: Literal["component", "function"]
    loc: tuple[str | int, ...]  # where the config names it
    reason: str

    @property
    def where(self) -> str:
        """The config path, e.g. `modules[2].config.componentId`."""
        return format_loc(self.loc)

    @property
    def problem(self) -> str:
        return f"{self.kind} {self.name!r} {self.reason}"

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}"
