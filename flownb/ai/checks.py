"""Checking generated work with the real thing: the engine's validator and the sandbox.

A config is validated as `flownb validate` does it (schema, references, a dry build of the
engine) and then read for what it runs that does not exist (components, functions). A
component passes the sandbox's static check and then runs once, isolated in a limited worker
process, on a test input. Errors come back as the exact lines a user would see
(`workflow.yaml:12:7: modules[1].config.address: ...`), which is what a model is sent to fix.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from flownb.ai.results import GeneratedComponent, MissingComponent
from flownb.config import Config
from flownb.dynamic.contract import DEFAULT_IMPORTS, CheckError, Limits, Options
from flownb.errors import BuildError, ConfigError, FlownbError, Loc
from flownb.functions import Functions
from flownb.registry import Registry, default_registry

FILENAME = "workflow.yaml"
DYNAMIC = "dynamic.component"


@dataclass
class Checker:
    """Validates configs and components for one deployment target.

    `base_dir` is where the workflow file lives (or will): `dynamic.component` modules look
    their components up relative to it. `functions` are the target's Python functions (a
    notebook's components); `environ` is what `${VAR}` expands from.
    """

    registry: Registry = field(default_factory=default_registry)
    functions: Functions | None = None
    environ: Mapping[str, str] | None = None
    base_dir: Path = field(default_factory=Path.cwd)
    components_dir: Path | None = None  # overrides each module's `directory`
    limits: Limits = field(default_factory=lambda: Limits(timeout=5.0))

    # --- configs ---------------------------------------------------------------------------
    def config(
        self, text: str, components: Iterable[str] = (), *, filename: str = FILENAME
    ) -> tuple[Config | None, list[str]]:
        """The validated config and no errors, or None and every error found."""
        from flownb.engine import Engine
        from flownb.loader import parse_config

        env = os.environ if self.environ is None else self.environ
        try:
            config = parse_config(
                text, filename=filename, base_dir=self.base_dir, registry=self.registry, environ=env
            )
        except ConfigError as exc:
            return None, [str(d) for d in exc.diagnostics]
        try:
            Engine(config, registry=self.registry, functions=self._functions()).check()
        except ConfigError as exc:
            return None, [str(d) for d in exc.diagnostics]
        except BuildError as exc:
            return None, [f"{filename}: module {exc.module!r}: {exc}"]
        except FlownbError as exc:
            return None, [f"{filename}: {exc}"]
        except Exception as exc:  # a module factory's own bug is still the answer's problem
            return None, [f"{filename}: {type(exc).__name__}: {exc}"]
        missing = self.missing(config, components)
        if missing:
            return None, [str(config.diagnostic(m.loc, m.problem)) for m in missing]
        return config, []

    def _functions(self) -> Functions:
        """A copy of the target's functions: a dry build must not change the real registry."""
        source = self.functions
        if source is None:
            return Functions()
        return Functions({name: source.get(name) for name in source})

    # --- what a config runs that does not exist --------------------------------------------
    def missing(self, config: Config, components: Iterable[str] = ()) -> list[MissingComponent]:
        """Components and functions the config names that are neither given nor found."""
        given = set(components)
        found: list[MissingComponent] = []
        module_names = {m.name for m in config.modules}
        for i, spec in enumerate(config.modules):
            if spec.type == DYNAMIC:
                problem = self._component_problem(spec.config, given, ("modules", i, "config"))
                if problem is not None:
                    found.append(problem)
            for loc, name in _function_names(spec.config, ("modules", i, "config")):
                if not self._function_known(name, module_names):
                    found.append(_missing_function(name, loc))
        for pname, pipeline in config.pipelines.items():
            for loc, name in _function_names(pipeline, ("pipelines", pname)):
                if not self._function_known(name, module_names):
                    found.append(_missing_function(name, loc))
        return found

    def _component_problem(self, config: Any, given: set[str], loc: Loc) -> MissingComponent | None:
        component_id = getattr(config, "component_id", None)
        path = getattr(config, "path", None)
        if component_id is not None:
            if component_id in given:
                return None
            folder = self.components_dir or self.base_dir / str(config.directory)
            if component_id in component_names(folder):
                return None
            return MissingComponent(
                component_id,
                "component",
                (*loc, "componentId"),
                f"is not in {_shown(folder)}/ and was not generated",
            )
        if path is not None:
            file = self.base_dir / str(path)
            if file.is_file() or file.stem in given:
                return None
            return MissingComponent(
                file.stem, "component", (*loc, "path"), f"file {path} does not exist"
            )
        return None

    def _function_known(self, name: str, modules: set[str]) -> bool:
        if name in modules or (self.functions is not None and name in self.functions):
            return True
        if ":" in name:
            try:
                (self.functions or Functions()).get(name)
            except FlownbError:
                return False
            return True
        return False

    # --- components ------------------------------------------------------------------------
    async def component(
        self, source: str, *, name: str | None = None, test_input: Any = None, description: str = ""
    ) -> tuple[GeneratedComponent | None, list[str]]:
        """The checked component and its test output, or None and every problem."""
        from flownb.dynamic.contract import declared_name
        from flownb.dynamic.loader import load_string
        from flownb.dynamic.registry import ComponentRegistry

        declared = declared_name(source)
        wanted = name or declared
        if not wanted:
            return None, ['<component>:1:1: add `name = "..."` at the top (the component\'s name)']
        if name and declared and declared != name:
            return None, [f"{name}.py:1:1: the source declares name = {declared!r}, not {name!r}"]
        origin = f"{wanted}.py"
        data = {} if test_input is None else test_input
        registry = ComponentRegistry(
            Options(trusted=False, imports=DEFAULT_IMPORTS, limits=self.limits),
            services=_echo_service,
        )
        try:
            component = registry.register(load_string(source, wanted, origin))
            await component.start()
            output = await component.execute(data)
        except CheckError as exc:
            return None, exc.lines()
        except FlownbError as exc:
            return None, [f"{origin}: test run on input {_short(data)} failed: {exc}"]
        finally:
            await registry.close()
        return GeneratedComponent(wanted, source, description, data, output), []


async def _echo_service(name: str, data: Any, parent: Any) -> Any:
    """Stands in for `services.call` in a test run: gives the data back."""
    return data


def component_names(folder: Path) -> set[str]:
    """The names the component files of `folder` declare (empty if it does not exist)."""
    from flownb.dynamic.loader import component_files, load_file

    if not folder.is_dir():
        return set()
    names = set()
    for file in component_files(folder):
        try:
            names.add(load_file(file).name)
        except FlownbError:
            continue
    return names


def _function_names(value: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    """(location, name) of every Python function a model tree names: `call` steps'
    `function` and handler modules' `function` (locations use the YAML keys)."""
    from flownb.handlers import HandlerConfig
    from flownb.steps.call import CallStep

    if isinstance(value, CallStep | HandlerConfig) and value.function is not None:
        yield (*loc, "function"), value.function
    if isinstance(value, BaseModel):
        for key, info in type(value).model_fields.items():
            yield from _function_names(getattr(value, key), (*loc, info.alias or key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _function_names(item, (*loc, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _function_names(item, (*loc, str(key)))


def _missing_function(name: str, loc: Loc) -> MissingComponent:
    return MissingComponent(
        name,
        "function",
        loc,
        "is not defined (not a registered function, a dynamic.component module or "
        "an importable package.module:attr)",
    )


def _shown(folder: Path) -> str:
    try:
        return str(folder.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(folder)


def _short(value: Any, limit: int = 200) -> str:
    import json

    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
