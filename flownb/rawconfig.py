"""The config as the canvas and the notebook edit it: JSON, `${VAR}` kept as written.

`raw` (the editable form) never holds expanded secrets; `expand` makes the copy that is
validated, remembering where each reference was so a dump writes it back. Positions (the
layout) are `{node id: {x, y}}`, kept apart from the config.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from flownb.config import Position
from flownb.errors import Diagnostic, Loc
from flownb.yamlsource import Source, SourceMap, expand_env

Problem = tuple[Diagnostic, str]  # a diagnostic and its source: "schema" or "engine"


def plain(value: Any) -> Any:
    """JSON-compatible data: YAML dates become ISO text, keys become strings."""
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def raw_of(source: Source) -> dict[str, Any]:
    """The parsed data as JSON with each expanded `${VAR}` put back as written."""
    raw = plain(source.data)
    if not isinstance(raw, dict):
        return {}
    for loc, (text, _) in source.map.env.items():
        set_at(raw, loc, text)
    return raw


def set_at(data: Any, loc: Loc, value: Any) -> None:
    if not loc:
        return
    node = data
    for part in loc[:-1]:
        node = child(node, part)
        if node is None:
            return
    if child(node, loc[-1]) is not None:
        node[loc[-1]] = value


def child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def expand(
    raw: Mapping[str, Any],
    environ: Mapping[str, str],
    filename: str,
    positions: SourceMap | None = None,
) -> Source:
    """A copy of `raw` with `${VAR}` expanded, remembering where (so dumps write them back)."""
    if positions is not None:
        smap = SourceMap(
            dict(positions.values), dict(positions.keys), default_file=positions.default_file
        )
    else:
        smap = SourceMap(default_file=filename)
    diags: list[Diagnostic] = []

    def walk(node: Any, loc: Loc) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, (*loc, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, (*loc, i)) for i, v in enumerate(node)]
        if isinstance(node, str) and "${" in node:
            expanded, missing = expand_env(node, environ)
            for name in missing:
                message = (
                    f"environment variable {name} is not set; export it or write "
                    f"${{{name}:-default}}"
                )
                diags.append(smap.diagnostic(loc, message))
            smap.env[loc] = (node, expanded)
            return expanded
        return node

    return Source(walk(dict(raw), ()), smap, diags)


def clean_layout(value: Any, smap: SourceMap) -> tuple[dict[str, Any], list[Problem]]:
    """Positions as `{id: {x, y}}` with numbers; anything else is reported."""
    if not isinstance(value, dict):
        diag = smap.diagnostic(("layout",), "layout must map node ids to {x, y}")
        return {}, [(diag, "schema")]
    layout: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, pos in value.items():
        xy = as_point(pos)
        if xy is None:
            message = f"layout of {key!r} needs numbers x and y, e.g. {{x: 100, y: 40}}"
            problems.append((smap.diagnostic(("layout", str(key)), message), "schema"))
        else:
            layout[str(key)] = xy
    return layout, problems


def as_point(pos: Any) -> dict[str, Any] | None:
    if not isinstance(pos, Mapping):
        return None
    x, y = pos.get("x"), pos.get("y")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y))
    return {"x": x, "y": y} if numbers else None


def merge_layout(layout: Mapping[str, Any], changes: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = dict(layout)
    for key, pos in (changes or {}).items():
        if pos is None:
            merged.pop(key, None)
            continue
        xy = as_point(pos)
        if xy is None:
            raise ValueError(f"layout of {key!r} needs numbers x and y, got {pos!r}")
        merged[str(key)] = xy
    return merged


def layout_model(layout: Mapping[str, Any]) -> dict[str, Position]:
    return {k: Position.model_construct(x=v["x"], y=v["y"]) for k, v in layout.items()}
