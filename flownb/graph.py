"""Node ids of the canvas graph, for the Python side (the rules are in docs/canvas.md).

The canvas and the kernel derive ids from the config with the same rules, so neither sends
a map: a diagnostic's field path names the node or edge it is pinned to, and an execution's
handler names the node whose live status it changes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from flownb.errors import Diagnostic, Loc

CONFIG = "config"
"""The id of anything not pinned to a node or an edge (the canvas shows it as a banner)."""

# workflows.<kind>.<list>[i] -> the edge prefix of its items
EDGE_LISTS: dict[tuple[str, str], str] = {
    ("http", "routes"): "route",
    ("messaging", "subscriptions"): "subscription",
    ("messaging", "producers"): "producer",
    ("statemachine", "hooks"): "hook",
    ("scheduler", "jobs"): "job",
    ("event", "handlers"): "eventHandler",
}

# triggers.<kind>.<list>[i] -> trigger:<kind>:i
TRIGGER_ITEMS: dict[str, str] = {"http": "routes", "schedule": "jobs", "event": "subscriptions"}


def module_id(name: str) -> str:
    return f"module:{name}"


def pipeline_id(name: str) -> str:
    return f"pipeline:{name}"


def trigger_id(kind: str, index: int) -> str:
    return f"trigger:{kind}:{index}"


def _module_names(config: Mapping[str, Any]) -> list[str]:
    modules = config.get("modules")
    if not isinstance(modules, list):
        return []
    return [m["name"] for m in modules if isinstance(m, dict) and isinstance(m.get("name"), str)]


def node_ids(config: Mapping[str, Any]) -> list[str]:
    """Every node of a config (JSON form, as the canvas edits it), in file order."""
    ids = [module_id(name) for name in _module_names(config)]
    pipelines = config.get("pipelines")
    if isinstance(pipelines, dict):
        ids.extend(pipeline_id(str(name)) for name in pipelines)
    triggers = config.get("triggers")
    if isinstance(triggers, dict):
        for kind, items_key in TRIGGER_ITEMS.items():
            section = triggers.get(kind)
            items = section.get(items_key) if isinstance(section, dict) else None
            if isinstance(items, list):
                ids.extend(trigger_id(kind, i) for i in range(len(items)))
    return ids


def handler_id(name: str, module_names: Collection[str]) -> str:
    """A handler is the module of that name if there is one, else the pipeline."""
    return module_id(name) if name in module_names else pipeline_id(name)


def handler_ids(config: Mapping[str, Any]) -> dict[str, str]:
    """Handler name (what `ExecutionContext.node` holds) -> node id, for live views."""
    ids = {name: module_id(name) for name in _module_names(config)}
    pipelines = config.get("pipelines")
    if isinstance(pipelines, dict):
        for name in pipelines:
            ids.setdefault(str(name), pipeline_id(str(name)))
    return ids


def loc_id(loc: Loc, config: Mapping[str, Any]) -> str:
    """The node or edge a field path belongs to; `config` for anything else."""
    if len(loc) < 2:
        return CONFIG
    head, second = loc[0], loc[1]
    if head == "modules" and isinstance(second, int):
        modules = config.get("modules")
        if isinstance(modules, list) and 0 <= second < len(modules):
            item = modules[second]
            name = item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str):
                return module_id(name)
        return CONFIG
    if head == "pipelines" and isinstance(second, str):
        return pipeline_id(second)
    if len(loc) >= 4 and isinstance(second, str) and isinstance(loc[3], int):
        index = loc[3]
        if head == "workflows":
            edge = EDGE_LISTS.get((second, str(loc[2])))
            if edge is not None:
                return f"{edge}:{index}"
        if head == "triggers" and TRIGGER_ITEMS.get(second) == loc[2]:
            return trigger_id(second, index)
    return CONFIG


def diagnostic_dict(diag: Diagnostic, config: Mapping[str, Any], source: str) -> dict[str, Any]:
    """A diagnostic as the canvas reads it: `{id, path, loc, message, source}`."""
    return {
        "id": loc_id(diag.loc, config),
        "path": diag.path,
        "loc": list(diag.loc),
        "message": diag.message,
        "source": source,
    }
