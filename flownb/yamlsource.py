"""YAML parsing that remembers where every value came from.

PyYAML's composer gives nodes with marks; we build plain Python data from them and keep a
`SourceMap` from field paths to file positions, so every later error (pydantic's, the
cross-reference checks', the engine's) can be reported as FILE:LINE:COL. Environment
references (`${VAR}`, `${VAR:-default}`) are expanded here and remembered, so a dump writes the
reference back instead of the secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml

from flownb.errors import Diagnostic, Loc

# libyaml's parser when PyYAML was built with it (10x faster on large files); same marks.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_ENV_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True, slots=True)
class Mark:
    file: str
    line: int  # 1-based
    col: int  # 1-based


@dataclass
class SourceMap:
    """Field path -> position of its value (and of its key, for mapping entries)."""

    values: dict[Loc, Mark] = field(default_factory=dict)
    keys: dict[Loc, Mark] = field(default_factory=dict)
    env: dict[Loc, tuple[str, str]] = field(default_factory=dict)  # raw, expanded
    default_file: str = "<config>"

    def locate(self, loc: Loc, *, key: bool = False) -> Mark:
        """The mark of `loc`, or of its nearest ancestor that has one."""
        if key and loc in self.keys:
            return self.keys[loc]
        for end in range(len(loc), -1, -1):
            mark = self.values.get(loc[:end])
            if mark is not None:
                return mark
        return Mark(self.default_file, 1, 1)

    def diagnostic(self, loc: Loc, message: str, *, key: bool = False) -> Diagnostic:
        mark = self.locate(loc, key=key)
        return Diagnostic(mark.file, mark.line, mark.col, loc, message)

    def insert(self, prefixes: set[Loc], key: str) -> None:
        """Re-key entries below each prefix (all of one length) as if `key` followed it."""
        if not prefixes:
            return
        n = len(next(iter(prefixes)))

        def moved(loc: Loc) -> Loc | None:
            return (*loc[:n], key, *loc[n:]) if len(loc) > n and loc[:n] in prefixes else None

        _rekey(self.values, moved)
        _rekey(self.keys, moved)
        _rekey(self.env, moved)

    def merge(self, other: SourceMap, src: Loc = (), dst: Loc = ()) -> None:
        """Copy `other`'s entries under `src` into this map, re-rooted at `dst`."""
        n = len(src)
        for loc, mark in other.values.items():
            if loc[:n] == src:
                self.values[dst + loc[n:]] = mark
        for loc, mark in other.keys.items():
            if loc[:n] == src:
                self.keys[dst + loc[n:]] = mark
        for loc, raw in other.env.items():
            if loc[:n] == src:
                self.env[dst + loc[n:]] = raw


V = TypeVar("V")


def _rekey(table: dict[Loc, V], moved: Callable[[Loc], Loc | None]) -> None:
    for loc in list(table):
        new = moved(loc)
        if new is not None:
            table[new] = table.pop(loc)


@dataclass
class Source:
    """Parsed data, its source map and the problems met while reading it."""

    data: Any
    map: SourceMap
    diagnostics: list[Diagnostic]


def expand_env(text: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """Expand `${VAR}` / `${VAR:-default}`; `$${` is a literal `${`. Returns (text, missing)."""
    missing: list[str] = []

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$${":
            return "${"
        name, default = m.group(1), m.group(2)
        value = environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                missing.append(name)
                return ""
            return default
        return value

    return _ENV_REF.sub(sub, text), missing


class _Builder:
    def __init__(self, filename: str, environ: Mapping[str, str]) -> None:
        self.filename = filename
        self.environ = environ
        self.map = SourceMap(default_file=filename)
        self.diagnostics: list[Diagnostic] = []

    def mark(self, node: yaml.Node) -> Mark:
        return Mark(self.filename, node.start_mark.line + 1, node.start_mark.column + 1)

    def error(self, node: yaml.Node, loc: Loc, message: str) -> None:
        m = self.mark(node)
        self.diagnostics.append(Diagnostic(m.file, m.line, m.col, loc, message))

    def build(self, loader: Any, node: yaml.Node, loc: Loc) -> Any:
        self.map.values[loc] = self.mark(node)
        if isinstance(node, yaml.MappingNode):
            loader.flatten_mapping(node)
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                raw_key = loader.construct_object(key_node, deep=True)
                if not isinstance(raw_key, str | int | float | bool):
                    self.error(key_node, loc, "mapping keys must be plain scalars")
                    continue
                key: str | int = raw_key if isinstance(raw_key, str | int) else str(raw_key)
                if key in out:
                    self.error(
                        key_node,
                        (*loc, key),
                        f"duplicate key {key!r}; the earlier value would be silently lost",
                    )
                    continue
                self.map.keys[(*loc, key)] = self.mark(key_node)
                out[key] = self.build(loader, value_node, (*loc, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(loader, item, (*loc, i)) for i, item in enumerate(node.value)]
        value = loader.construct_object(node, deep=True)
        if isinstance(value, str) and "${" in value:
            expanded, missing = expand_env(value, self.environ)
            for name in missing:
                self.error(
                    node,
                    loc,
                    f"environment variable {name} is not set; export it or write "
                    f"${{{name}:-default}}",
                )
            self.map.env[loc] = (value, expanded)
            return expanded
        return value


def parse_yaml(
    text: str, filename: str = "<config>", environ: Mapping[str, str] | None = None
) -> Source:
    """Parse one YAML document into plain data plus a source map; never raises on bad YAML."""
    builder = _Builder(filename, os.environ if environ is None else environ)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else builder.build(loader, node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        diag = Diagnostic(filename, line, col, (), f"invalid YAML: {problem}")
        return Source(None, builder.map, [diag])
    except yaml.YAMLError as exc:
        return Source(None, builder.map, [Diagnostic(filename, 1, 1, (), f"invalid YAML: {exc}")])
    finally:
        loader.dispose()
    return Source(data, builder.map, builder.diagnostics)
