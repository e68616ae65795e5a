"""Load a config: read YAML, merge imports, validate every part, check cross-references.

All problems are collected and raised together as one `ConfigError`, each pinned to
FILE:LINE:COL and a field path. Parts are validated separately so that an error in one
module does not hide errors elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from flownb.config import Config, ModuleSpec, TriggersSpec, WorkflowsSpec
from flownb.errors import ConfigError, Diagnostic, Loc
from flownb.pydantic_errors import translate
from flownb.registry import Registry, default_registry
from flownb.validation import Parts, check_semantics
from flownb.yamlsource import Source, SourceMap, parse_yaml

SECTIONS = ("modules", "workflows", "triggers", "pipelines")


def load_config(
    path: str | os.PathLike[str],
    *,
    registry: Registry | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Load and validate a workflow file (and its imports); raises ConfigError.

    Canvas positions come from the file's `layout:` block or, if it has none, from a
    `NAME.layout.yaml` beside it (so positions can stay out of the workflow's diffs).
    """
    file = Path(path)
    env = os.environ if environ is None else environ
    source = _read(file, _display(file), env, stack=())
    sidecar = layout_path(file)
    if isinstance(source.data, dict) and "layout" not in source.data and sidecar.exists():
        side = _read(sidecar, _display(sidecar), env, stack=())
        source.diagnostics.extend(side.diagnostics)
        if side.data is not None:
            source.data["layout"] = side.data
            source.map.merge(side.map, (), ("layout",))
    config = _finish(source, registry or default_registry())
    config._path = str(file)
    return config


def layout_path(path: str | os.PathLike[str]) -> Path:
    """Where the canvas positions of a workflow file live when kept apart: NAME.layout.yaml."""
    file = Path(path)
    return file.with_name(file.name.removesuffix(file.suffix) + ".layout.yaml")


def parse_config(
    text: str,
    *,
    filename: str = "<config>",
    base_dir: str | os.PathLike[str] | None = None,
    registry: Registry | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Validate YAML text; `imports` resolve against `base_dir` (default: the cwd)."""
    env = os.environ if environ is None else environ
    source = parse_yaml(text, filename, env)
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    source = _merge_imports(source, base, env, stack=())
    return _finish(source, registry or default_registry())


def config_from_dict(data: Mapping[str, Any], *, registry: Registry | None = None) -> Config:
    """Validate an in-memory config (from the canvas, an AI answer or code)."""
    source = Source(dict(data), SourceMap(default_file="<config>"), [])
    return _finish(source, registry or default_registry())


def _display(file: Path) -> str:
    try:
        return str(file.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(file)


def _read(file: Path, name: str, environ: Mapping[str, str], stack: tuple[Path, ...]) -> Source:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return Source(
            None,
            SourceMap(default_file=name),
            [Diagnostic(name, 1, 1, (), f"cannot read file: {reason}")],
        )
    except UnicodeDecodeError:
        return Source(
            None,
            SourceMap(default_file=name),
            [Diagnostic(name, 1, 1, (), "file is not UTF-8 text")],
        )
    source = parse_yaml(text, name, environ)
    return _merge_imports(source, file.parent, environ, (*stack, file.resolve()))


def _merge_imports(
    source: Source, base: Path, environ: Mapping[str, str], stack: tuple[Path, ...]
) -> Source:
    data = source.data
    if not isinstance(data, dict) or "imports" not in data:
        return source
    imports = data.pop("imports")
    smap, diags = source.map, list(source.diagnostics)
    if not isinstance(imports, list) or not all(isinstance(i, str) for i in imports):
        diags.append(smap.diagnostic(("imports",), "imports must be a list of file paths"))
        return Source(data, smap, diags)
    merged: dict[str, Any] = {}
    merged_map = SourceMap(default_file=smap.default_file)
    for i, rel in enumerate(imports):
        file = (base / rel).resolve()
        if file in stack:
            chain = " -> ".join(p.name for p in (*stack, file))
            diags.append(smap.diagnostic(("imports", i), f"import cycle: {chain}"))
            continue
        if not file.exists():
            diags.append(smap.diagnostic(("imports", i), f"imported file {rel!r} does not exist"))
            continue
        sub = _read(file, _display(file), environ, stack)
        diags.extend(sub.diagnostics)
        if sub.data is None:
            continue
        if not isinstance(sub.data, dict):
            diags.append(sub.map.diagnostic((), "an imported file must be a mapping"))
            continue
        diags.extend(_merge_into(merged, merged_map, sub.data, sub.map, ("imports", i)))
    diags.extend(_merge_into(merged, merged_map, data, smap, None))
    merged_map.values[()] = smap.locate(())
    return Source(merged, merged_map, diags)


def _merge_into(
    into: dict[str, Any],
    into_map: SourceMap,
    data: dict[str, Any],
    data_map: SourceMap,
    import_loc: Loc | None,
) -> list[Diagnostic]:
    """Merge one file's sections into the accumulated config: modules append, maps union."""
    diags: list[Diagnostic] = []
    origin = f" (imports[{import_loc[1]}])" if import_loc else ""
    for key, value in data.items():
        if key == "modules" and isinstance(value, list) and isinstance(into.get(key, []), list):
            mods = into.setdefault("modules", [])
            into_map.values.setdefault(("modules",), data_map.locate(("modules",)))
            for j, item in enumerate(value):
                into_map.merge(data_map, ("modules", j), ("modules", len(mods)))
                mods.append(item)
            continue
        if key in ("workflows", "triggers", "pipelines", "layout") and isinstance(value, dict):
            section = into.setdefault(key, {})
            if not isinstance(section, dict):
                continue
            into_map.values.setdefault((key,), data_map.locate((key,)))
            for sub, item in value.items():
                if sub in section:
                    diags.append(
                        data_map.diagnostic(
                            (key, sub),
                            f"{key}.{sub} is defined in more than one file{origin}",
                            key=True,
                        )
                    )
                    continue
                section[sub] = item
                into_map.merge(data_map, (key, sub), (key, sub))
            continue
        if key in into:
            diags.append(
                data_map.diagnostic(
                    (key,), f"{key!r} is defined in more than one file{origin}", key=True
                )
            )
            continue
        into[key] = value
        into_map.merge(data_map, (key,), (key,))
    return diags


def _finish(source: Source, registry: Registry) -> Config:
    config, diags = validate_source(source, registry)
    if diags or config is None:
        raise ConfigError(diags)
    return config


def validate_source(source: Source, registry: Registry) -> tuple[Config | None, list[Diagnostic]]:
    """Validate parsed data part by part; returns the config (if valid) and all problems."""
    data = {} if source.data is None else source.data
    checker = _PartChecker(source.map, registry, list(source.diagnostics))
    if not isinstance(data, dict):
        checker.problem(
            (), "a config file must be a mapping with modules, workflows, triggers and pipelines"
        )
        return None, checker.diags
    top = checker.run(Config, {k: v for k, v in data.items() if k not in SECTIONS}, ())
    checker.modules(data.get("modules"))
    checker.sections("workflows", WorkflowsSpec, data.get("workflows"), checker.parts.workflows)
    checker.sections("triggers", TriggersSpec, data.get("triggers"), checker.parts.triggers)
    checker.pipelines(data.get("pipelines"))
    parts = checker.parts
    checker.diags.extend(check_semantics(parts, source.map, registry))
    if checker.diags:
        return None, _dedupe(checker.diags)
    fields: dict[str, Any] = {}
    if parts.modules:
        fields["modules"] = [parts.modules[i] for i in range(len(parts.raw_modules))]
    if parts.workflows:
        fields["workflows"] = WorkflowsSpec.model_construct(**parts.workflows)
    if parts.triggers:
        fields["triggers"] = TriggersSpec.model_construct(**parts.triggers)
    if parts.pipelines:
        fields["pipelines"] = dict(parts.pipelines)
    if top is not None and top.layout:
        fields["layout"] = top.layout
    config = Config.model_construct(**fields)
    config._source = source.map
    return config, []


class _PartChecker:
    """Validates each part of a config on its own, collecting every problem."""

    def __init__(self, smap: SourceMap, registry: Registry, diags: list[Diagnostic]) -> None:
        self.smap, self.registry, self.diags = smap, registry, diags
        self.context: dict[str, Any] = {"registry": registry}
        self.parts = Parts()

    def problem(self, loc: Loc, message: str) -> None:
        self.diags.append(self.smap.diagnostic(loc, message))

    def run(self, model: type[BaseModel], value: Any, loc: Loc) -> Any:
        try:
            return model.model_validate(value, context=self.context)
        except ValidationError as exc:
            self.diags.extend(
                translate(exc, value, loc, self.smap, registry=self.registry, root=model)
            )
            return None

    def modules(self, modules: Any) -> None:
        if modules is None:
            return
        if not isinstance(modules, list):
            self.problem(("modules",), "modules must be a list of {name, type, config}")
            return
        for i, raw in enumerate(modules):
            self.parts.raw_modules.append(raw if isinstance(raw, dict) else {})
            spec = self.run(ModuleSpec, raw, ("modules", i))
            if spec is not None:
                self.parts.modules[i] = spec

    def sections(
        self, key: str, model: type[BaseModel], section: Any, into: dict[str, Any]
    ) -> None:
        if section is None:
            return
        if not isinstance(section, dict):
            self.problem((key,), f"{key} must be a mapping keyed by kind")
            return
        for sub, value in section.items():
            validated = self.run(model, {sub: value}, (key,))
            if validated is not None and getattr(validated, sub, None) is not None:
                into[sub] = getattr(validated, sub)

    def pipelines(self, pipelines: Any) -> None:
        if pipelines is None:
            return
        if not isinstance(pipelines, dict):
            self.problem(("pipelines",), "pipelines must be a mapping of name to steps")
            return
        bare: set[Loc] = {("pipelines", n) for n, v in pipelines.items() if isinstance(v, list)}
        self.smap.insert(bare, "steps")  # shorthand: a bare list of steps
        for name, value in pipelines.items():
            spec = {"steps": value} if isinstance(value, list) else value
            validated = self.run(Config, {"pipelines": {name: spec}}, ())
            if validated is not None:
                self.parts.pipelines[name] = validated.pipelines[name]


def _dedupe(diags: list[Diagnostic]) -> list[Diagnostic]:
    return list(dict.fromkeys(diags))


def dump_config(config: Config, *, keep_env: bool = True) -> str:
    """YAML text of a config; values that came from `${VAR}` are written back as `${VAR}`."""
    data = config.model_dump(mode="json", by_alias=True, exclude_unset=True)
    data.pop("imports", None)
    source = config.source
    if keep_env and source is not None:
        for loc, (raw, expanded) in source.env.items():
            _restore(data, loc, raw, expanded)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def _restore(data: Any, loc: Loc, raw: str, expanded: str) -> None:
    """Put `raw` back at `loc` if the value there is still what expanding it gave."""
    if not loc:
        return
    node = data
    for part in loc[:-1]:
        node = _child(node, part, _MISSING)
        if node is _MISSING:
            return
    current = _child(node, loc[-1], _MISSING)
    if current is _MISSING or isinstance(current, dict | list):
        return
    if _same_scalar(current, expanded):
        node[loc[-1]] = raw


_MISSING = object()


def _child(node: Any, part: str | int, default: Any) -> Any:
    if isinstance(node, dict):
        return node.get(part, default)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return default


def _same_scalar(value: Any, text: str) -> bool:
    if isinstance(value, bool):
        return text.strip().lower() in (
            ("true", "yes", "on", "1") if value else ("false", "no", "off", "0")
        )
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(text) == float(value)
        except ValueError:
            return False
    return str(value) == text
