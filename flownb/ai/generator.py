"""The generator interface, what every backend shares, and choosing a provider.

A backend only holds a conversation (`_converse`): the tasks (`flownb.ai.tasks`) answer the
tools and judge the answers, so Claude and Copilot are held to the same checks and bounds.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar, runtime_checkable

import yaml

from flownb.ai import prompts
from flownb.ai.checks import Checker, component_names
from flownb.ai.errors import NotConfigured
from flownb.ai.results import (
    ComponentSpec,
    GenerationResult,
    MissingComponent,
    Suggestion,
)
from flownb.ai.tasks import ComponentTask, SuggestionTask, Task, WorkflowTask
from flownb.ai.tools import Toolbox
from flownb.config import Config
from flownb.errors import FlownbError, UnknownNameError
from flownb.functions import Functions
from flownb.registry import Registry, default_registry

if TYPE_CHECKING:
    from flownb.workflow import Workflow

T = TypeVar("T")

PROVIDERS = ("auto", "anthropic", "copilot")
NO_PROVIDER = (
    "no AI provider is configured: set ANTHROPIC_API_KEY to an Anthropic API key "
    "(export ANTHROPIC_API_KEY=sk-ant-...), or install flownb[copilot] and sign in to the "
    "GitHub Copilot CLI; FLOWNB_AI_PROVIDER=anthropic|copilot picks one"
)


@dataclass(frozen=True)
class Bounds:
    """How long a generation may go on before it fails with the last errors."""

    max_rounds: int = 10  # model turns per task (each may call several tools)
    max_fixes: int = 3  # invalid answers sent back with their errors


@runtime_checkable
class Generator(Protocol):
    """What every AI backend offers."""

    async def generate_workflow(
        self,
        intent: str,
        context: str | Mapping[str, Any] | Config | Workflow | None = None,
        constraints: Sequence[str] | Mapping[str, Any] | str | None = None,
    ) -> GenerationResult: ...

    async def generate_component(self, spec: ComponentSpec | str) -> str: ...

    async def suggest_workflows(self, use_case: str) -> list[Suggestion]: ...

    def identify_missing_components(
        self, config: str | Mapping[str, Any] | Config
    ) -> list[MissingComponent]: ...


class BaseGenerator:
    """Tasks, checks and bounds shared by the backends; `_converse` is theirs.

    `base_dir` is where the workflow will live: `dynamic.component` modules look their
    components up in `base_dir / directory` (or `components_dir` when given). `registry`,
    `functions` and `environ` are the target's, so validation here is validation there.
    """

    provider = ""
    model = ""

    def __init__(
        self,
        *,
        registry: Registry | None = None,
        functions: Functions | None = None,
        environ: Mapping[str, str] | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        components_dir: str | os.PathLike[str] | None = None,
        examples_dir: str | os.PathLike[str] | None = None,
        bounds: Bounds | None = None,
    ) -> None:
        self.checker = Checker(
            registry=registry or default_registry(),
            functions=functions,
            environ=environ,
            base_dir=Path(base_dir) if base_dir is not None else Path.cwd(),
            components_dir=Path(components_dir) if components_dir is not None else None,
        )
        self.examples_dir = Path(examples_dir) if examples_dir is not None else None
        self.bounds = bounds or Bounds()

    def _toolbox(self) -> Toolbox:
        return Toolbox(self.checker, self.examples_dir)

    # --- the interface -----------------------------------------------------------------------
    async def generate_workflow(
        self,
        intent: str,
        context: str | Mapping[str, Any] | Config | Workflow | None = None,
        constraints: Sequence[str] | Mapping[str, Any] | str | None = None,
    ) -> GenerationResult:
        """A workflow for `intent` that validates, with every component it needs.

        `context` is an existing workflow to change (YAML, a dict, a Config or a Workflow);
        `constraints` are extra requirements ("memory broker only", "port 9000"...).
        """
        if not intent.strip():
            raise FlownbError("say what the workflow should do (the intent is empty)")
        folder = self.checker.components_dir or self.checker.base_dir / "components"
        prompt = prompts.workflow_prompt(
            intent,
            context_yaml(context),
            prompts.constraint_lines(constraints),
            sorted(component_names(folder)),
        )
        task = WorkflowTask(self._toolbox(), prompt, max_fixes=self.bounds.max_fixes)
        result = await self._run(task)
        return replace(
            result,
            provider=self.provider,
            model=self.model,
            rounds=task.rounds,
            fixes=task.fixes,
            tool_calls=tuple(task.calls),
        )

    async def generate_component(self, spec: ComponentSpec | str) -> str:
        """The source of a component that passes the sandbox check and its test run."""
        task = ComponentTask(
            self._toolbox(), ComponentSpec.of(spec), max_fixes=self.bounds.max_fixes
        )
        component = await self._run(task)
        return component.source

    async def suggest_workflows(self, use_case: str) -> list[Suggestion]:
        """Workflow ideas for a use case, each with an intent for `generate_workflow`."""
        task = SuggestionTask(
            self._toolbox(), prompts.suggest_prompt(use_case), max_fixes=self.bounds.max_fixes
        )
        return await self._run(task)

    def identify_missing_components(
        self, config: str | Mapping[str, Any] | Config
    ) -> list[MissingComponent]:
        """What `config` runs that does not exist: components not in the components directory
        and functions not registered (read from the config; no model is asked)."""
        return missing_components(config, self.checker)

    # --- the backend's part --------------------------------------------------------------------
    async def _run(self, task: Task[T]) -> T:
        await self._converse(task)
        if task.result is None:  # a backend that stopped early without saying why
            raise task.out_of_rounds(task.rounds)
        return task.result

    async def _converse(self, task: Task[Any]) -> None:
        """Talk to the model until `task.done`; raise `GenerationFailed` past the bounds."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release the client (connections); the generator may not be used afterwards."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def missing_components(
    config: str | Mapping[str, Any] | Config, checker: Checker | None = None
) -> list[MissingComponent]:
    """What `config` runs that does not exist (see `BaseGenerator.identify_missing_components`)."""
    from flownb.loader import config_from_dict, parse_config

    checker = checker or Checker()
    if isinstance(config, str):
        config = parse_config(config, registry=checker.registry, environ=checker.environ)
    elif not isinstance(config, Config):
        config = config_from_dict(config, registry=checker.registry)
    return checker.missing(config)


def context_yaml(context: str | Mapping[str, Any] | Config | Workflow | None) -> str | None:
    """An existing workflow (or any text) as the text the model is shown."""
    if context is None:
        return None
    if isinstance(context, str):
        return context
    if isinstance(context, Config):
        from flownb.loader import dump_config

        return dump_config(context)
    if isinstance(context, Mapping):
        return (
            yaml.safe_dump(dict(context), sort_keys=False, allow_unicode=True) if context else None
        )
    to_yaml = getattr(context, "to_yaml", None)
    if callable(to_yaml):  # a flownb.Workflow: the config as edited, positions left out
        text = to_yaml(layout=False)
        return str(text) if text else None
    raise TypeError(f"context must be YAML text, a dict, a Config or a Workflow, not {context!r}")


def get_generator(provider: str | None = None, **options: Any) -> BaseGenerator:
    """The generator for `provider` (default: `FLOWNB_AI_PROVIDER`, else `auto`).

    `auto` picks Anthropic when `ANTHROPIC_API_KEY` is set, else Copilot when its SDK is
    installed and its CLI can be found; with neither, `NotConfigured` says what to set.
    """
    chosen = (provider or os.environ.get("FLOWNB_AI_PROVIDER") or "auto").strip().lower()
    if chosen not in PROVIDERS:
        raise UnknownNameError("AI provider", chosen, PROVIDERS)
    if chosen == "auto":
        if options.get("api_key") or os.environ.get("ANTHROPIC_API_KEY"):
            chosen = "anthropic"
        elif copilot_configured():
            chosen = "copilot"
        else:
            raise NotConfigured(NO_PROVIDER)
    if chosen == "anthropic":
        from flownb.ai.claude import AnthropicGenerator

        return AnthropicGenerator(**options)
    from flownb.ai.copilot import CopilotGenerator

    options.pop("api_key", None)
    return CopilotGenerator(**options)


def copilot_configured() -> bool:
    """The Copilot SDK is installed and a CLI is named (`COPILOT_CLI_PATH`) or on PATH."""
    import importlib.util

    if importlib.util.find_spec("copilot") is None:
        return False
    return bool(os.environ.get("COPILOT_CLI_PATH") or shutil.which("copilot"))
