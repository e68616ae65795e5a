"""`workflows.statemachine`: definitions, transition hooks and resource mappings."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from flownb.fields import Name, Ref, Spec


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
