"""Deploying a generated workflow: components into the components directory, then the config.

The result is validated again against the target first (its registry, functions and
environment; components through the sandbox's static check): a result that does not
validate there raises `NotDeployed` and nothing is written. Components are written first,
atomically (a hot-reload watcher never sees half a file), so the config never names a
component that is not there.

- A `flownb.Workflow` (notebook): the config is applied with `Workflow.update`; if the
  workflow runs and its config changed, it restarts on the new one. A component whose
  module has `watch: true` is hot-reloaded on its own when only its source changed.
- A path: the workflow file is written. A service already running that file (`flownb run`)
  keeps its config until it is restarted.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flownb.ai.checks import DYNAMIC, Checker
from flownb.ai.errors import NotDeployed
from flownb.ai.results import GeneratedComponent, GenerationResult
from flownb.config import Config

if TYPE_CHECKING:
    from flownb.workflow import Workflow


@dataclass(frozen=True)
class Deployment:
    """Where a result went."""

    target: str
    config_path: Path | None
    components: tuple[Path, ...]
    restarted: bool = False

    def __str__(self) -> str:
        parts = [f"deployed to {self.target}"]
        if self.components:
            parts.append("components: " + ", ".join(str(p) for p in self.components))
        if self.restarted:
            parts.append("restarting on the new config")
        return "; ".join(parts)


def deploy(
    result: GenerationResult,
    target: Workflow | str | os.PathLike[str],
    *,
    components_dir: str | os.PathLike[str] | None = None,
) -> Deployment:
    """Validate `result` for `target`, write its components, apply its config."""
    if isinstance(target, str | os.PathLike):
        path = Path(target)
        written = deploy_components(result, path, components_dir=components_dir)
        write_atomic(path, result.yaml)
        return Deployment(str(path), path, written)
    return _to_workflow(result, target, components_dir)


def deploy_components(
    result: GenerationResult,
    target: Workflow | str | os.PathLike[str] | None = None,
    *,
    components_dir: str | os.PathLike[str] | None = None,
) -> tuple[Path, ...]:
    """Validate `result` for `target` (None: a file in the current directory) and write only
    its components, where the modules naming them look; returns the files written."""
    checker = checker_for(target, components_dir)
    shown = str(target or Path.cwd())
    if target is not None and not isinstance(target, str | os.PathLike):
        shown = f"workflow {target.name!r}"
    config = _validated(result, checker, shown)
    return _write_components(result.components, _component_files(config, result, checker))


def checker_for(
    target: Workflow | str | os.PathLike[str] | None,
    components_dir: str | os.PathLike[str] | None = None,
) -> Checker:
    """Checks as the target would make them: its registry, functions, environment, folder."""
    folder = Path(components_dir) if components_dir is not None else None
    if target is None or isinstance(target, str | os.PathLike):
        base = Path(target).resolve().parent if target is not None else Path.cwd()
        return Checker(base_dir=base, components_dir=folder)
    return Checker(
        registry=target.registry,
        functions=target.functions,
        environ=getattr(target, "_environ", None),  # the workflow's own `environ=`, if any
        base_dir=target.path.resolve().parent if target.path is not None else Path.cwd(),
        components_dir=folder,
    )


def _to_workflow(
    result: GenerationResult, wf: Workflow, components_dir: str | os.PathLike[str] | None
) -> Deployment:
    target = f"workflow {wf.name!r}"
    written = deploy_components(result, wf, components_dir=components_dir)
    before, previous = wf.config, dict(wf.raw)
    wf.update(result.yaml, filename="<generated>")
    if not wf.valid:  # the workflow saw something the check did not: put the old one back
        errors = [str(d) for d in wf.error.diagnostics] if wf.error is not None else []
        wf.update(previous, filename="<previous>")
        raise NotDeployed(target, errors)
    restarted = bool(wf.running and wf.config != before)
    if restarted:
        wf.restart()
    return Deployment(target, wf.path, written, restarted)


def _validated(result: GenerationResult, checker: Checker, target: str) -> Config:
    from flownb.dynamic.loader import load_string, validate
    from flownb.errors import FlownbError

    errors: list[str] = []
    for component in result.components:
        try:
            validate(load_string(component.source, component.name, component.filename))
        except FlownbError as exc:
            errors.extend(str(exc).splitlines())
    config, problems = checker.config(result.yaml, [c.name for c in result.components])
    errors.extend(problems)
    if errors or config is None:
        raise NotDeployed(target, errors)
    return config


def _component_files(config: Config, result: GenerationResult, checker: Checker) -> dict[str, Path]:
    """Where each generated component goes: where the module naming it looks for it."""
    default = checker.components_dir or checker.base_dir / "components"
    files = {c.name: default / c.filename for c in result.components}
    for spec in config.modules:
        if spec.type != DYNAMIC:
            continue
        module: Any = spec.config
        if module.component_id in files and checker.components_dir is None:
            files[module.component_id] = (
                checker.base_dir / module.directory / f"{module.component_id}.py"
            )
        elif module.path is not None and Path(module.path).stem in files:
            files[Path(module.path).stem] = checker.base_dir / module.path
    return files


def _write_components(
    components: Iterable[GeneratedComponent], files: dict[str, Path]
) -> tuple[Path, ...]:
    written = []
    for component in components:
        file = files[component.name]
        write_atomic(file, component.source)
        written.append(file)
    return tuple(written)


def write_atomic(path: Path, text: str) -> None:
    """Write atomically: a watcher sees the old file or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    os.replace(tmp, path)
