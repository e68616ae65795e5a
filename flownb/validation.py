"""Cross-reference checks that no single model can make on its own.

Runs on whatever parts of a config validated, so one broken module does not hide a dangling
reference elsewhere: duplicate names, references (by kind, through `Ref` fields), dependency
cycles, state-machine states and transitions, trigger actions, integration step links.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from flownb.config import ModuleSpec, PipelineSpec
from flownb.errors import Diagnostic, Loc
from flownb.fields import Ref, iter_refs
from flownb.registry import Registry
from flownb.workflows.statemachine import StateMachineWorkflowSpec
from flownb.yamlsource import SourceMap


@dataclass
class Parts:
    """The validated pieces of a config (missing where a piece failed validation)."""

    raw_modules: list[dict[str, Any]] = field(default_factory=list)
    modules: dict[int, ModuleSpec] = field(default_factory=dict)
    workflows: dict[str, Any] = field(default_factory=dict)
    triggers: dict[str, Any] = field(default_factory=dict)
    pipelines: dict[str, PipelineSpec] = field(default_factory=dict)


class _Checker:
    def __init__(self, parts: Parts, smap: SourceMap, registry: Registry) -> None:
        self.parts, self.smap, self.registry = parts, smap, registry
        self.diags: list[Diagnostic] = []
        self.types: dict[str, str | None] = {}
        self._providers: dict[str, list[str]] | None = None
        for raw in parts.raw_modules:
            name = raw.get("name")
            if isinstance(name, str) and name not in self.types:
                type_name = raw.get("type")
                self.types[name] = type_name if type_name in registry else None

    def error(self, loc: Loc, message: str, *, key: bool = False) -> None:
        self.diags.append(self.smap.diagnostic(loc, message, key=key))

    def providers(self, kind: str) -> list[str]:
        if self._providers is None:
            self._providers = {}
            for n, t in self.types.items():
                for provided in self.registry.get(t).provides if t is not None else ():
                    self._providers.setdefault(provided, []).append(n)
        return list(self._providers.get(kind, []))

    # --- names -------------------------------------------------------------------------
    def check_names(self) -> None:
        seen: dict[str, int] = {}
        for i, raw in enumerate(self.parts.raw_modules):
            name = raw.get("name")
            if not isinstance(name, str):
                continue
            if name in seen:
                self.error(
                    ("modules", i, "name"),
                    f"duplicate module name {name!r} (first used by modules[{seen[name]}])",
                )
            else:
                seen[name] = i
        for name in self.parts.pipelines:
            if name in self.types:
                self.error(
                    ("pipelines", name),
                    f"pipeline {name!r} has the same name as a module; rename one",
                    key=True,
                )

    # --- references ----------------------------------------------------------------------
    def all_refs(self) -> Iterator[tuple[Loc, Ref, str | None]]:
        for i, spec in self.parts.modules.items():
            yield from iter_refs(spec.config, ("modules", i, "config"))
        for kind, spec in self.parts.workflows.items():
            yield from iter_refs(spec, ("workflows", kind))
        for kind, spec in self.parts.triggers.items():
            yield from iter_refs(spec, ("triggers", kind))
        for name, pipe in self.parts.pipelines.items():
            yield from iter_refs(pipe, ("pipelines", name))

    def check_refs(self) -> None:
        for i, spec in self.parts.modules.items():
            for j, dep in enumerate(spec.depends_on):
                if dep not in self.types:
                    self._unknown(("modules", i, "dependsOn", j), "module", dep, list(self.types))
                elif dep == spec.name:
                    self.error(
                        ("modules", i, "dependsOn", j), f"module {dep!r} cannot depend on itself"
                    )
        for loc, ref, name in self.all_refs():
            self.check_ref(loc, ref, name)

    def check_ref(self, loc: Loc, ref: Ref, name: str | None) -> None:
        kind = ref.kind
        if kind == "pipeline":
            if name is not None and name not in self.parts.pipelines:
                self._unknown(loc, "pipeline", name, list(self.parts.pipelines))
            return
        if name is None:
            found = self.providers(kind)
            if len(found) != 1:
                self._implicit(loc, kind, found)
            return
        if kind == "handler" and name in self.parts.pipelines:
            return
        type_name = self.types.get(name, "")
        if name not in self.types:
            candidates = self.providers(kind)
            if kind == "handler":
                candidates += list(self.parts.pipelines)
            self._unknown(
                loc, kind if kind != "handler" else "handler or pipeline", name, candidates
            )
        elif type_name and kind not in self.registry.get(type_name).provides:
            offer = ", ".join(self.registry.providers_of(kind)) or "none registered"
            self.error(
                loc,
                f"module {name!r} is a {type_name}, which does not provide "
                f"{kind!r} (types that do: {offer})",
            )

    def _unknown(self, loc: Loc, what: str, name: str, known: list[str]) -> None:
        msg = f"unknown {what} {name!r}"
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        if close:
            msg += f"; did you mean {close[0]!r}?"
        elif known:
            msg += f" (defined: {', '.join(sorted(known))})"
        else:
            msg += f" (none is defined; add a {what})"
        self.error(loc, msg)

    def _implicit(self, loc: Loc, kind: str, found: list[str]) -> None:
        key = loc[-1]
        if not found:
            types = ", ".join(self.registry.providers_of(kind)) or kind
            self.error(
                loc[:-1], f"no module provides {kind!r}; add one (type: {types}) or set {key!r}"
            )
        else:
            self.error(
                loc[:-1],
                f"{key!r} is required because several modules provide {kind!r}: {', '.join(found)}",
            )

    # --- cycles --------------------------------------------------------------------------
    def check_cycles(self) -> None:
        graph: dict[str, list[str]] = {n: [] for n in self.types}
        index: dict[str, int] = {}
        for i, spec in self.parts.modules.items():
            index.setdefault(spec.name, i)
            deps = graph.setdefault(spec.name, [])
            deps.extend(d for d in spec.depends_on if d in self.types)
            for _, ref, name in iter_refs(spec.config):
                if name is not None and name in self.types and ref.kind != "pipeline":
                    deps.append(name)
        for cycle in find_cycles(graph):
            first = cycle[0]
            loc: Loc = ("modules", index.get(first, 0), "dependsOn")
            self.error(loc, "dependency cycle: " + " -> ".join([*cycle, first]))
        pipes: dict[str, list[str]] = {}
        for name, pipe in self.parts.pipelines.items():
            pipes[name] = [n for _, r, n in iter_refs(pipe) if r.kind == "pipeline" and n]
        for cycle in find_cycles(pipes):
            self.error(
                ("pipelines", cycle[0]),
                "pipelines call each other in a loop: " + " -> ".join([*cycle, cycle[0]]),
                key=True,
            )

    # --- state machines ----------------------------------------------------------------
    def check_statemachine(self) -> None:
        sm = self.parts.workflows.get("statemachine")
        if not isinstance(sm, StateMachineWorkflowSpec):
            return
        base: Loc = ("workflows", "statemachine")
        names: dict[str, int] = {}
        for d, definition in enumerate(sm.definitions):
            dloc = (*base, "definitions", d)
            if definition.name in names:
                self.error((*dloc, "name"), f"duplicate state machine {definition.name!r}")
            names.setdefault(definition.name, d)
            states = list(definition.states)
            if definition.initial_state not in definition.states:
                self._state(dloc, ("initialState",), definition.initial_state, states)
            for t_name, t in definition.transitions.items():
                tloc = (*dloc, "transitions", t_name)
                for k, state in enumerate(t.from_states):
                    if state not in definition.states:
                        sub = ("fromState",) if isinstance(t.from_state, str) else ("fromState", k)
                        self._state(tloc, sub, state, states)
                if t.to_state not in definition.states:
                    self._state(tloc, ("toState",), t.to_state, states)
            for s_name, s in definition.states.items():
                if s.is_final and any(
                    s_name in t.from_states for t in definition.transitions.values()
                ):
                    self.error(
                        (*dloc, "states", s_name),
                        f"final state {s_name!r} has outgoing transitions",
                        key=True,
                    )
        for h, hook in enumerate(sm.hooks):
            hloc = (*base, "hooks", h)
            defs = sm.definitions
            if hook.workflow_type is not None:
                if hook.workflow_type not in names:
                    self._unknown(
                        (*hloc, "workflowType"), "state machine", hook.workflow_type, list(names)
                    )
                    continue
                defs = [sm.definitions[names[hook.workflow_type]]]
            all_transitions = {t for d in defs for t in d.transitions}
            all_states = {s for d in defs for s in d.states}
            for k, t_name in enumerate(hook.transitions):
                if t_name not in all_transitions:
                    self._unknown(
                        (*hloc, "transitions", k), "transition", t_name, sorted(all_transitions)
                    )
            for key, values in (("fromStates", hook.from_states), ("toStates", hook.to_states)):
                for k, state in enumerate(values):
                    if state not in all_states:
                        self._unknown((*hloc, key, k), "state", state, sorted(all_states))
        for r, mapping in enumerate(sm.resource_mappings):
            if mapping.state_machine not in names:
                self._unknown(
                    (*base, "resourceMappings", r, "stateMachine"),
                    "state machine",
                    mapping.state_machine,
                    list(names),
                )

    def _state(self, loc: Loc, sub: Loc, state: str, states: list[str]) -> None:
        self._unknown((*loc, *sub), "state", state, states)

    # --- workflow-specific links -----------------------------------------------------
    def check_workflow_links(self) -> None:
        event = self.parts.workflows.get("event")
        if event is not None:
            ids = [p.pattern_id for p in event.patterns]
            for h, handler in enumerate(event.handlers):
                if handler.pattern_id not in ids:
                    self._unknown(
                        ("workflows", "event", "handlers", h, "patternId"),
                        "pattern",
                        handler.pattern_id,
                        ids,
                    )
        integration = self.parts.workflows.get("integration")
        if integration is not None:
            connectors = [c.name for c in integration.connectors]
            steps = [s.name for s in integration.steps]
            for s, step in enumerate(integration.steps):
                sloc = ("workflows", "integration", "steps", s)
                if step.connector not in connectors:
                    self._unknown((*sloc, "connector"), "connector", step.connector, connectors)
                for key, target in (("onSuccess", step.on_success), ("onError", step.on_error)):
                    if target is not None and target not in steps:
                        self._unknown((*sloc, key), "integration step", target, steps)
        http = self.parts.workflows.get("http")
        if http is not None:
            seen: dict[tuple[str, str], int] = {}
            for r, route in enumerate(http.routes):
                for method in route.methods:
                    route_key = (method, route.path)
                    if route_key in seen:
                        self.error(
                            ("workflows", "http", "routes", r, "path"),
                            f"{method} {route.path} is already routed by routes[{seen[route_key]}]",
                        )
                    seen.setdefault(route_key, r)

    # --- triggers ------------------------------------------------------------------------
    def check_triggers(self) -> None:
        for kind, spec in self.parts.triggers.items():
            items = (
                spec.routes
                if kind == "http"
                else (spec.jobs if kind == "schedule" else spec.subscriptions)
            )
            key = {"http": "routes", "schedule": "jobs", "event": "subscriptions"}[kind]
            for i, item in enumerate(items):
                self.check_action(("triggers", kind, key, i), item.workflow, item.action)

    def check_action(self, loc: Loc, workflow: str, action: str) -> None:
        if workflow == "pipeline":
            if action not in self.parts.pipelines:
                self._unknown((*loc, "action"), "pipeline", action, list(self.parts.pipelines))
            return
        spec = self.parts.workflows.get(workflow)
        if spec is None:
            self.error((*loc, "workflow"), f"workflows.{workflow} is not defined in this config")
            return
        known: list[str] | None = None
        if workflow == "statemachine":
            known = ["create", *sorted({t for d in spec.definitions for t in d.transitions})]
        elif workflow == "http":
            known = [*self.providers("handler"), *self.parts.pipelines]
        elif workflow == "scheduler":
            known = [job.job for job in spec.jobs]
        elif workflow == "integration":
            known = ["run", *(s.name for s in spec.steps)]
        elif workflow == "event":
            known = sorted({t for p in spec.patterns for t in p.event_types})
        if known is not None and action not in known:
            self._unknown((*loc, "action"), f"{workflow} action", action, known)


def find_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Cycles found by an iterative depth-first search (deep chains must not overflow)."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    seen: set[frozenset[str]] = set()
    for root in graph:
        if root in state:
            continue
        path: list[str] = [root]
        iters = [iter(graph.get(root, []))]
        state[root] = 1
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
                continue
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :]
                key = frozenset(cycle)
                if key not in seen:
                    seen.add(key)
                    cycles.append(cycle)
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(graph.get(nxt, [])))
    return cycles


def check_semantics(parts: Parts, smap: SourceMap, registry: Registry) -> list[Diagnostic]:
    checker = _Checker(parts, smap, registry)
    checker.check_names()
    checker.check_refs()
    checker.check_cycles()
    checker.check_statemachine()
    checker.check_workflow_links()
    checker.check_triggers()
    return checker.diags
