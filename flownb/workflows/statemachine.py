"""`workflows.statemachine`: definitions, transition hooks and resource mappings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from flownb.errors import ConfigError, Diagnostic, ExecutionError, FlownbError, Loc
from flownb.fields import Name, Ref, Spec
from flownb.workflows.base import Workflow

if TYPE_CHECKING:
    from flownb.engine import Engine
    from flownb.execution import ExecutionContext
    from flownb.modules.statemachine import StateMachineEngine


class StateSpec(Spec):
    description: str = ""
    is_final: bool = Field(False, alias="isFinal")
    is_error: bool = Field(False, alias="isError")
    data: dict[str, Any] = Field(default_factory=dict)


class TransitionSpec(Spec):
    from_state: str | list[str] = Field(alias="fromState", description="state or states")
    to_state: str = Field(alias="toState")
    condition: str | None = Field(
        None,
        description="guard expression over `instance`, `data`; the transition is refused "
        "when false",
    )
    auto_transform: bool = Field(
        False,
        alias="autoTransform",
        description="fire automatically as soon as the instance is in fromState and the "
        "condition holds",
    )
    data: dict[str, Any] = Field(default_factory=dict, description="merged into instance data")

    @property
    def from_states(self) -> list[str]:
        return [self.from_state] if isinstance(self.from_state, str) else list(self.from_state)


class DefinitionSpec(Spec):
    name: Name
    description: str = ""
    initial_state: str = Field(alias="initialState")
    states: dict[str, StateSpec]
    transitions: dict[str, TransitionSpec] = Field(default_factory=dict)


class HookSpec(Spec):
    """Runs `handler` inside a transition; if it fails, the transition is rolled back."""

    workflow_type: str | None = Field(None, alias="workflowType", description="definition name")
    transitions: list[str] = Field(default_factory=list)
    from_states: list[str] = Field(default_factory=list, alias="fromStates")
    to_states: list[str] = Field(default_factory=list, alias="toStates")
    handler: Annotated[str, Ref("handler")]


class ResourceMappingSpec(Spec):
    resource_type: str = Field(alias="resourceType")
    state_machine: str = Field(alias="stateMachine", description="definition name")
    instance_id_key: str = Field("id", alias="instanceIDKey")


class StateMachineWorkflowSpec(Spec):
    engine: Annotated[str | None, Ref("statemachine", implicit=True)] = None
    definitions: list[DefinitionSpec] = Field(default_factory=list)
    hooks: list[HookSpec] = Field(default_factory=list)
    resource_mappings: list[ResourceMappingSpec] = Field(
        default_factory=list, alias="resourceMappings"
    )


# --- runtime -----------------------------------------------------------------------------

_CONTROL_KEYS = frozenset({"machine", "workflowType", "resourceType", "data"})


class StateMachineWorkflow(Workflow[StateMachineWorkflowSpec]):
    """Registers definitions, hooks and mappings on the engine module; runs create/transition.

    `trigger("create", data)` creates an instance; any other action is a transition name.
    The machine comes from `data.machine` / `data.workflowType`, else the resource mapping of
    `data.resourceType`, else the only definition (a transition may also find its instance in
    any machine). The instance id is `data[instanceIDKey]` (mapping) or `data.id`; the
    instance data / transition input is `data.data` when it is an object, else the rest of
    `data` without those control keys.
    """

    kind = "statemachine"

    def __init__(self, engine: Engine, spec: StateMachineWorkflowSpec) -> None:
        super().__init__(engine, spec)
        self.machine: StateMachineEngine | None = None

    async def configure(self) -> None:
        from flownb.modules.statemachine import DefinitionError, StateMachineEngine

        engine = self.engine
        name = engine.resolve_ref("statemachine", self.spec.engine)
        machine = engine.services.get(name, StateMachineEngine)
        diags: list[Diagnostic] = []
        base: Loc = ("workflows", "statemachine")
        for i, definition in enumerate(self.spec.definitions):
            try:
                machine.add_definition(definition)
            except DefinitionError as exc:
                diags.append(self._diagnostic((*base, "definitions", i, *exc.loc), str(exc)))
        for i, hook in enumerate(self.spec.hooks):
            try:
                machine.add_hook(hook, engine.handler(hook.handler))
            except FlownbError as exc:
                diags.append(self._diagnostic((*base, "hooks", i, "handler"), str(exc)))
        if diags:
            raise ConfigError(diags)
        for mapping in self.spec.resource_mappings:
            machine.add_mapping(mapping)
        self.machine = machine

    def _diagnostic(self, loc: Loc, message: str) -> Diagnostic:
        return self.engine.config.diagnostic(loc, message)

    async def trigger(self, action: str, data: Any, *, request_id: str | None = None) -> Any:
        machine = self.machine
        if machine is None:
            raise FlownbError("workflows.statemachine is used before the engine built it")
        if not isinstance(data, dict):
            raise ExecutionError(
                f"statemachine action {action!r} needs an object, got {type(data).__name__}",
                status=400,
            )

        async def run(ctx: ExecutionContext) -> dict[str, Any]:
            name, id_key = self._target(machine, data)
            payload = _payload(data, id_key)
            if action == "create":
                created = await machine.create(name, _id(data.get(id_key)), payload, parent=ctx)
                return created.to_dict()
            instance_id = _id(data.get(id_key))
            if instance_id is None:
                raise ExecutionError(
                    f"statemachine action {action!r} needs the instance id in data.{id_key}",
                    status=400,
                )
            moved = await machine.transition(instance_id, action, payload, machine=name, parent=ctx)
            return moved.to_dict()

        ctx = await self.engine.execute("statemachine", action, data, run, request_id=request_id)
        return ctx.result

    @staticmethod
    def _target(machine: StateMachineEngine, data: dict[str, Any]) -> tuple[str | None, str]:
        """(machine name or None, key of the instance id) for a trigger's data."""
        name = data.get("machine") or data.get("workflowType")
        resource = data.get("resourceType")
        mapping = machine.mapping_for(str(resource)) if resource is not None else None
        if resource is not None and mapping is None and name is None:
            raise ExecutionError(
                f"no resourceMappings entry for resourceType {resource!r}; add one to "
                "workflows.statemachine.resourceMappings or give data.machine",
                status=400,
            )
        if mapping is not None:
            return (str(name) if name else mapping.state_machine), mapping.instance_id_key
        return (str(name) if name else None), "id"


def _id(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _payload(data: dict[str, Any], id_key: str) -> dict[str, Any]:
    if "data" in data:
        inner = data["data"]
        if not isinstance(inner, dict):
            raise ExecutionError(
                f"data.data must be an object, got {type(inner).__name__}", status=400
            )
        return inner
    return {k: v for k, v in data.items() if k not in _CONTROL_KEYS and k != id_key}
