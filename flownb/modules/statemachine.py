"""`statemachine.engine`: instances that move between states through guarded transitions.

A transition is all or nothing: the guard (`condition`) must hold, then every matching hook
runs against the *candidate* instance; only when all of them succeed is the instance written
(with an optimistic version check) and the event published. A failing hook leaves the stored
instance exactly as it was. Transitions of one instance are serialised by a per-instance lock,
and transitions marked `autoTransform` fire on their own once their source state is reached.

Hook results: a hook may return a dict with a `data` mapping (or a `Response` whose body is
such a dict); it is merged into the instance data, and later hooks see it. A hook that hands
its input back unchanged (a pipeline without `respond` does) merges nothing.

Automatic transitions have no caller input: their condition sees `data` = {} and should test
`instance.data`. If the out-transitions of a state include several automatic ones, the first
(in definition order) whose condition holds fires. When an automatic transition's hook
fails, the steps already taken stay committed, the failure is appended to the instance's
history (`error`) and logged, and the call that started the chain still succeeds.

Events (config `events`): each committed transition, automatic ones included, is published
as `{type: "<machine>.<transition>", instanceId, machine, transition, fromState, toState,
data}` where `data` is the instance data after the transition. Creating an instance is not a
transition and publishes nothing. Publishing happens after the commit, so a broker failure is
logged and does not undo the transition (delivery is at most once, not transactional).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from flownb.errors import (
    ExecutionError,
    FlownbError,
    Loc,
    NotFoundError,
    TransitionError,
    unknown_name_message,
)
from flownb.execution import ExecutionContext, Response, new_id
from flownb.fields import Ref, Spec
from flownb.module import Handler, Module
from flownb.registry import ModuleType
from flownb.stores import ConflictError, Instance
from flownb.template import TemplateSyntaxError

if TYPE_CHECKING:
    from flownb.engine import Engine
    from flownb.health import Check
    from flownb.modules.eventbus import EventBus
    from flownb.modules.messaging import MessageBroker
    from flownb.template import Compiled
    from flownb.workflows.statemachine import (
        DefinitionSpec,
        HookSpec,
        ResourceMappingSpec,
        TransitionSpec,
    )

log = logging.getLogger("flownb.statemachine")

Key = tuple[str, str]
Announcements = list[dict[str, Any]]
"""Committed transition events waiting for the instance lock to be released (eventbus)."""


class TransitionEventsSpec(Spec):
    """Where committed transitions are published as events."""

    broker: Annotated[str | None, Ref("broker", implicit=True)] = Field(
        None, description="messaging.broker; optional when there is one"
    )
    topic: str = Field(
        "statemachine.transitions",
        min_length=1,
        description="topic every committed transition is published to, as JSON "
        "{type: '<machine>.<transition>', instanceId, machine, transition, fromState, "
        "toState, data (the instance data after the transition)}",
    )


class StateMachineEngineConfig(Spec):
    description: str = Field("", description="what the machines of this engine are for")
    max_history: int = Field(
        100, alias="maxHistory", ge=0, description="transitions kept per instance (oldest dropped)"
    )
    max_auto_steps: int = Field(
        32,
        alias="maxAutoSteps",
        ge=1,
        le=10_000,
        description="automatic transitions one call may fire before it is stopped as a loop",
    )
    events: TransitionEventsSpec | None = Field(
        None, description="publish every committed transition to a broker topic"
    )
    eventbus: Annotated[str | None, Ref("eventbus")] = Field(
        None, description="eventbus module that also announces transitions in-process"
    )


@dataclass(slots=True)
class _Hook:
    spec: HookSpec
    handler: Handler


@dataclass(slots=True)
class _Transition:
    """One transition, compiled: its guard and the hooks that apply per source state."""

    name: str
    spec: TransitionSpec
    from_states: frozenset[str]
    guard: Compiled | None
    hooks: dict[str, list[_Hook]] = field(default_factory=dict)


@dataclass(slots=True)
class _Machine:
    spec: DefinitionSpec
    transitions: dict[str, _Transition]
    auto_from: dict[str, list[_Transition]]


class DefinitionError(FlownbError):
    """A definition the engine cannot run; `loc` is the field, relative to the definition."""

    def __init__(self, loc: Loc, message: str) -> None:
        self.loc = loc
        super().__init__(message)


class _Slot:
    __slots__ = ("lock", "owner", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.owner: asyncio.Task[Any] | None = None
        self.users = 0


class InstanceLocks:
    """One asyncio.Lock per instance, dropped as soon as nobody holds or waits for it."""

    def __init__(self) -> None:
        self._slots: dict[Key, _Slot] = {}

    def __len__(self) -> int:
        return len(self._slots)

    @asynccontextmanager
    async def hold(self, key: Key) -> AsyncIterator[None]:
        task = asyncio.current_task()
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        elif task is not None and slot.owner is task:
            # A hook (same task) transitioning its own instance would wait on itself forever.
            raise TransitionError(
                f"instance {key[1]!r} of {key[0]!r} is in the middle of a transition whose "
                "hook tries to transition it again; use autoTransform or return data instead"
            )
        slot.users += 1
        try:
            async with slot.lock:
                slot.owner = task
                try:
                    yield
                finally:
                    slot.owner = None
        finally:
            slot.users -= 1
            if slot.users == 0:
                del self._slots[key]


class StateMachineEngine(Module[StateMachineEngineConfig]):
    """Runs the machines the `statemachine` workflow registers; instances live in a StateStore."""

    def __init__(self, name: str, config: StateMachineEngineConfig) -> None:
        super().__init__(name, config)
        self.definitions: dict[str, DefinitionSpec] = {}
        self._machines: dict[str, _Machine] = {}
        self._hooks: list[_Hook] = []
        self._mappings: dict[str, ResourceMappingSpec] = {}
        self._locks = InstanceLocks()
        self._broker: MessageBroker | None = None
        self._bus: EventBus | None = None
        self._topic = config.events.topic if config.events else ""
        self._engine: Engine | None = None

    # --- wiring ---------------------------------------------------------------------------
    async def init(self, engine: Engine) -> None:
        self._engine = engine
        events = self.config.events
        if events is not None:
            from flownb.modules.messaging import MessageBroker

            self._broker = engine.services.get(
                engine.resolve_ref("broker", events.broker), MessageBroker
            )
        if self.config.eventbus is not None:
            from flownb.modules.eventbus import EventBus

            self._bus = engine.services.get(self.config.eventbus, EventBus)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise FlownbError(f"state machine engine {self.name!r} is used before init")
        return self._engine

    async def health(self) -> Check | None:
        """Its instance store answers a read."""
        from flownb.health import Check

        try:
            await self.engine.stores.state.list(limit=1)
        except Exception as exc:
            return Check.unhealthy(f"the instance store failed: {type(exc).__name__}: {exc}")
        return Check.healthy(f"{len(self._machines)} machines")

    def add_definition(self, spec: DefinitionSpec) -> None:
        """Register a machine; guards compile now so a bad expression fails the build."""
        if spec.name in self._machines:
            raise FlownbError(f"state machine {spec.name!r} is defined twice")
        templates = self.engine.templates
        transitions: dict[str, _Transition] = {}
        auto_from: dict[str, list[_Transition]] = {}
        for name, t in spec.transitions.items():
            try:
                guard = None if t.condition is None else templates.condition(t.condition)
            except TemplateSyntaxError as exc:
                raise DefinitionError(("transitions", name, "condition"), str(exc)) from None
            compiled = _Transition(name, t, frozenset(t.from_states), guard)
            transitions[name] = compiled
            if t.auto_transform:
                for state in t.from_states:
                    auto_from.setdefault(state, []).append(compiled)
        machine = _Machine(spec, transitions, auto_from)
        self._machines[spec.name] = machine
        self.definitions[spec.name] = spec
        for hook in self._hooks:
            _attach(machine, hook)

    def add_hook(self, spec: HookSpec, handler: Handler) -> None:
        """Run `handler` inside every transition that matches the hook's filters."""
        hook = _Hook(spec, handler)
        self._hooks.append(hook)
        for machine in self._machines.values():
            _attach(machine, hook)

    def add_mapping(self, spec: ResourceMappingSpec) -> None:
        self._mappings[spec.resource_type] = spec

    def mapping_for(self, resource_type: str) -> ResourceMappingSpec | None:
        return self._mappings.get(resource_type)

    # --- queries ----------------------------------------------------------------------
    async def get(self, instance_id: str, machine: str | None = None) -> Instance:
        if machine is None and len(self._machines) != 1:
            return await self._find(instance_id)
        name = self._machine(machine).spec.name
        found = await self.engine.stores.state.get(name, instance_id)
        if found is None:
            raise NotFoundError(f"state machine {name!r} has no instance {instance_id!r}")
        return found

    async def list(self, machine: str | None = None, state: str | None = None) -> list[Instance]:
        if machine is not None:
            self._machine(machine)
        return await self.engine.stores.state.list(machine, state)

    # --- commands ---------------------------------------------------------------------
    async def create(
        self,
        machine: str | None,
        instance_id: str | None,
        data: dict[str, Any],
        *,
        parent: ExecutionContext | None = None,
    ) -> Instance:
        """A new instance in the initial state, then whatever automatic transitions apply."""
        m = self._machine(machine)
        name = m.spec.name
        iid = instance_id or new_id()
        payload = _mapping(data, "instance data")
        store = self.engine.stores.state
        local: Announcements = []
        try:
            async with self._locks.hold((name, iid)):
                if await store.get(name, iid) is not None:
                    raise ConflictError(f"state machine {name!r} already has an instance {iid!r}")
                instance = Instance(iid, name, m.spec.initial_state, dict(payload))
                instance = await store.put(instance, expected_version=None)
                return await self._run_auto(m, instance, parent=parent, local=local)
        finally:
            await self._tell_bus(local)

    async def transition(
        self,
        instance_id: str,
        transition: str,
        data: dict[str, Any] | None = None,
        *,
        machine: str | None = None,
        parent: ExecutionContext | None = None,
    ) -> Instance:
        """Fire `transition` on the instance; raises TransitionError when it is refused."""
        if machine is None and len(self._machines) != 1:
            machine = (await self._find(instance_id)).machine
        m = self._machine(machine)
        t = m.transitions.get(transition)
        if t is None:
            known = unknown_name_message("transition", transition, list(m.transitions))
            raise ExecutionError(f"state machine {m.spec.name!r}: {known}", status=400)
        payload = _mapping({} if data is None else data, "transition data")
        local: Announcements = []
        try:
            async with self._locks.hold((m.spec.name, instance_id)):
                current = await self.engine.stores.state.get(m.spec.name, instance_id)
                if current is None:
                    raise NotFoundError(
                        f"state machine {m.spec.name!r} has no instance {instance_id!r}"
                    )
                instance = await self._fire(m, t, current, payload, parent=parent, local=local)
                return await self._run_auto(m, instance, parent=parent, local=local)
        finally:
            await self._tell_bus(local)

    # --- the transition pipeline ------------------------------------------------------
    async def _fire(
        self,
        m: _Machine,
        t: _Transition,
        instance: Instance,
        data: dict[str, Any],
        *,
        parent: ExecutionContext | None,
        local: Announcements,
        auto: bool = False,
    ) -> Instance:
        """Check, run hooks on a candidate, then commit. Nothing is written on failure."""
        from_state, to_state = instance.state, t.spec.to_state
        if from_state not in t.from_states:
            raise TransitionError(_wrong_state(m, t, instance))
        if t.guard is not None and not auto and not self._guard(t, instance, data):
            raise TransitionError(
                f"transition {t.name!r} refused for instance {instance.id!r}: "
                f"guard {t.spec.condition!r} is false"
            )
        new_data = {**instance.data, **_copy(t.spec.data), **data}
        for hook in t.hooks.get(from_state, ()):
            merged = await self._run_hook(hook, t, instance, new_data, data, parent=parent)
            if merged:
                new_data.update(merged)
        entry: dict[str, Any] = {
            "transition": t.name,
            "from": from_state,
            "to": to_state,
            "at": time.time(),
            "dataKeys": sorted(data),
        }
        if auto:
            entry["auto"] = True
        candidate = Instance(
            instance.id,
            instance.machine,
            to_state,
            new_data,
            instance.version,
            instance.created,
            instance.updated,
            _bounded([*instance.history, entry], self.config.max_history),
        )
        committed = await self.engine.stores.state.put(candidate, expected_version=instance.version)
        event = _event(committed, t.name, from_state, to_state)
        await self._publish(event, parent)
        if self._bus is not None:
            local.append(event)
        return committed

    def _guard(self, t: _Transition, instance: Instance, data: dict[str, Any]) -> bool:
        assert t.guard is not None
        scope = {
            "instance": {
                "id": instance.id,
                "machine": instance.machine,
                "state": instance.state,
                "data": instance.data,
            },
            "data": data,
            "transition": t.name,
        }
        try:
            return bool(t.guard(scope))
        except Exception as exc:
            raise TransitionError(
                f"guard {t.spec.condition!r} of transition {t.name!r} could not be evaluated "
                f"for instance {instance.id!r}: {exc}"
            ) from exc

    async def _run_hook(
        self,
        hook: _Hook,
        t: _Transition,
        instance: Instance,
        new_data: dict[str, Any],
        data: dict[str, Any],
        *,
        parent: ExecutionContext | None,
    ) -> dict[str, Any] | None:
        given = dict(data)
        payload = {
            "instance": {
                "id": instance.id,
                "machine": instance.machine,
                "state": t.spec.to_state,
                "data": dict(new_data),
            },
            "transition": t.name,
            "fromState": instance.state,
            "toState": t.spec.to_state,
            "data": given,
        }
        where = f"transition {t.name!r} of instance {instance.id!r} rolled back"
        try:
            ctx = await self.engine.run_handler(
                hook.handler,
                payload,
                workflow="statemachine",
                action=t.name,
                request_id=parent.request_id if parent else None,
            )
        except ExecutionError as exc:
            raise TransitionError(
                f"{where}: hook {hook.spec.handler!r} failed: {exc}",
                status=exc.status,
                details=exc.details,
            ) from exc
        except Exception as exc:
            raise TransitionError(
                f"{where}: hook {hook.spec.handler!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        return _hook_data(ctx.result, given, f"{where}: hook {hook.spec.handler!r}")

    async def _run_auto(
        self,
        m: _Machine,
        instance: Instance,
        *,
        parent: ExecutionContext | None,
        local: Announcements,
    ) -> Instance:
        """Fire automatic transitions until none applies; bounded to stop loops."""
        limit = self.config.max_auto_steps
        steps = 0
        while True:
            t = self._next_auto(m, instance)
            if t is None:
                return instance
            if steps >= limit:
                raise TransitionError(
                    f"instance {instance.id!r} of {m.spec.name!r} took {limit} automatic "
                    f"transitions in one call and {t.name!r} would fire again from "
                    f"{instance.state!r}; check the autoTransform conditions for a loop "
                    "(or raise maxAutoSteps)"
                )
            steps += 1
            try:
                instance = await self._fire(
                    m, t, instance, {}, parent=parent, local=local, auto=True
                )
            except TransitionError as exc:
                log.warning("automatic transition %r stopped: %s", t.name, exc)
                return await self._record_failure(instance, t, exc)

    def _next_auto(self, m: _Machine, instance: Instance) -> _Transition | None:
        for t in m.auto_from.get(instance.state, ()):
            if t.guard is None:
                return t
            try:
                if self._guard(t, instance, {}):
                    return t
            except TransitionError as exc:
                log.warning("%s; treated as false", exc)
        return None

    async def _record_failure(
        self, instance: Instance, t: _Transition, exc: TransitionError
    ) -> Instance:
        entry = {
            "transition": t.name,
            "from": instance.state,
            "to": t.spec.to_state,
            "at": time.time(),
            "dataKeys": [],
            "auto": True,
            "error": str(exc),
        }
        failed = instance.copy()
        failed.history = _bounded([*instance.history, entry], self.config.max_history)
        return await self.engine.stores.state.put(failed, expected_version=instance.version)

    async def _publish(self, event: dict[str, Any], parent: ExecutionContext | None) -> None:
        """Send a committed transition to the broker (inside the instance lock, so in order).

        The commit stands even if publishing fails; the failure is logged.
        """
        if self._broker is None:
            return
        headers = {"request-id": parent.request_id} if parent and parent.request_id else {}
        try:
            await self._broker.publish(self._topic, event, headers)
        except Exception:
            log.exception("publishing transition %s to %r failed", event["type"], self._topic)

    async def _tell_bus(self, events: Announcements) -> None:
        """Announce committed transitions in-process, after the instance lock is released.

        Eventbus callbacks run inline; outside the lock they may transition the same instance.
        """
        if self._bus is None:
            return
        for event in events:
            await self._bus.publish(event["type"], event, source=self.name)

    # --- lookups ----------------------------------------------------------------------
    def _machine(self, name: str | None) -> _Machine:
        if name is None:
            if len(self._machines) == 1:
                return next(iter(self._machines.values()))
            raise ExecutionError(
                "name the state machine: "
                + (
                    f"several are defined ({', '.join(self._machines)})"
                    if self._machines
                    else "none is defined in workflows.statemachine.definitions"
                ),
                status=400,
            )
        found = self._machines.get(name)
        if found is None:
            raise NotFoundError(unknown_name_message("state machine", name, list(self._machines)))
        return found

    async def _find(self, instance_id: str) -> Instance:
        """Look an instance up in every machine; the id must name exactly one."""
        store = self.engine.stores.state
        hits = [
            found
            for name in self._machines
            if (found := await store.get(name, instance_id)) is not None
        ]
        if not hits:
            raise NotFoundError(f"no state machine has an instance {instance_id!r}")
        if len(hits) > 1:
            raise ExecutionError(
                f"instance id {instance_id!r} exists in several state machines "
                f"({', '.join(h.machine for h in hits)}); name the machine",
                status=409,
            )
        return hits[0]


def _event(instance: Instance, transition: str, from_state: str, to_state: str) -> dict[str, Any]:
    return {
        "type": f"{instance.machine}.{transition}",
        "instanceId": instance.id,
        "machine": instance.machine,
        "transition": transition,
        "fromState": from_state,
        "toState": to_state,
        "data": instance.data,
    }


def _bounded(history: list[dict[str, Any]], keep: int) -> list[dict[str, Any]]:
    return history[-keep:] if keep else []


def _attach(machine: _Machine, hook: _Hook) -> None:
    """Add `hook` to every (transition, source state) of `machine` its filters match."""
    spec = hook.spec
    if spec.workflow_type is not None and spec.workflow_type != machine.spec.name:
        return
    for t in machine.transitions.values():
        if spec.transitions and t.name not in spec.transitions:
            continue
        if spec.to_states and t.spec.to_state not in spec.to_states:
            continue
        for state in t.spec.from_states:
            if not spec.from_states or state in spec.from_states:
                t.hooks.setdefault(state, []).append(hook)


def _wrong_state(m: _Machine, t: _Transition, instance: Instance) -> str:
    allowed = ", ".join(repr(s) for s in t.spec.from_states)
    state = instance.state
    final = " (a final state)" if m.spec.states.get(state) and m.spec.states[state].is_final else ""
    return (
        f"cannot apply transition {t.name!r} to instance {instance.id!r} of {m.spec.name!r}: "
        f"it is in state {state!r}{final}; {t.name!r} is allowed from {allowed}"
    )


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ExecutionError(f"{what} must be an object, got {type(value).__name__}", status=400)
    return value


def _copy(value: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(value) if value else {}


def _hook_data(result: Any, given: dict[str, Any], who: str) -> dict[str, Any] | None:
    """The `data` a hook returned to merge, or None; its own input handed back is not merged."""
    if isinstance(result, Response):
        result = result.body
    if not isinstance(result, dict):
        return None
    merged = result.get("data")
    if merged is None or merged is given:
        return None
    if not isinstance(merged, dict):
        raise TransitionError(
            f"{who} returned data of type {type(merged).__name__}; return {{'data': {{...}}}} "
            "with an object to merge into the instance"
        )
    return merged


def _factory(name: str, config: StateMachineEngineConfig) -> StateMachineEngine:
    return StateMachineEngine(name, config)


TYPES: list[ModuleType] = [
    ModuleType(
        "statemachine.engine",
        "State Machine",
        "Runs state machines: guarded transitions, hooks that roll back on failure, "
        "automatic transitions, optimistic versions and transition events.",
        StateMachineEngineConfig,
        _factory,
        provides=("statemachine",),
    ),
]
