"""The config model tree: one pydantic model for the whole workflow file.

```yaml
imports: [other.yaml]          # merged in before validation
modules:   [{name, type, config, dependsOn}]
workflows: {http, messaging, statemachine, event, scheduler, integration}
triggers:  {http, schedule, event}
pipelines: {NAME: {steps: [...]}}
```

A module's `config` is validated by the model its type registered (see `flownb.registry`);
the registry comes from the validation context, else the default one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import (
    BaseModel,
    Field,
    GetJsonSchemaHandler,
    PrivateAttr,
    SerializeAsAny,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from flownb.errors import Diagnostic, Loc, unknown_name_message
from flownb.fields import Name, Spec
from flownb.steps import AnyStep
from flownb.triggers.event import EventTriggerSpec
from flownb.triggers.http import HttpTriggerSpec
from flownb.triggers.schedule import ScheduleTriggerSpec
from flownb.workflows.event import EventWorkflowSpec
from flownb.workflows.http import HttpWorkflowSpec
from flownb.workflows.integration import IntegrationWorkflowSpec
from flownb.workflows.messaging import MessagingWorkflowSpec
from flownb.workflows.scheduler import SchedulerWorkflowSpec
from flownb.workflows.statemachine import StateMachineWorkflowSpec

if TYPE_CHECKING:
    from flownb.registry import Registry
    from flownb.yamlsource import SourceMap


def registry_from(info: ValidationInfo) -> Registry:
    context = info.context or {}
    registry = context.get("registry")
    if registry is None:
        from flownb.registry import default_registry

        registry = default_registry()
        if isinstance(info.context, dict):
            info.context["registry"] = registry
    return registry


class ModuleSpec(Spec):
    name: Name
    type: str = Field(description="registered module type, e.g. http.server")
    config: SerializeAsAny[BaseModel] | dict[str, Any] = Field(
        default_factory=dict, validate_default=True
    )
    depends_on: list[Name] = Field(default_factory=list, alias="dependsOn")

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str, info: ValidationInfo) -> str:
        registry = registry_from(info)
        if value not in registry:
            raise ValueError(unknown_name_message("module type", value, registry.names()))
        return value

    @field_validator("config", mode="before")
    @classmethod
    def _typed_config(cls, value: Any, info: ValidationInfo) -> Any:
        type_name = info.data.get("type")
        if type_name is None:  # the type itself was invalid; that error is enough
            return value if isinstance(value, dict) else {}
        model = registry_from(info).get(type_name).config
        if isinstance(value, model):
            return value
        return model.model_validate({} if value is None else value, context=info.context)

    @model_validator(mode="after")
    def _always_dump_type(self) -> ModuleSpec:
        self.model_fields_set.add("type")
        return self


class PipelineSpec(Spec):
    description: str = ""
    steps: list[AnyStep] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _bare_list(cls, value: Any) -> Any:
        return {"steps": value} if isinstance(value, list) else value

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """Either {description, steps} or, shorthand, the bare list of steps."""
        ref = handler(schema)
        steps = handler.resolve_ref_schema(ref)["properties"]["steps"]
        return {"anyOf": [ref, steps]}


class WorkflowsSpec(Spec):
    http: HttpWorkflowSpec | None = None
    messaging: MessagingWorkflowSpec | None = None
    statemachine: StateMachineWorkflowSpec | None = None
    event: EventWorkflowSpec | None = None
    scheduler: SchedulerWorkflowSpec | None = None
    integration: IntegrationWorkflowSpec | None = None


class TriggersSpec(Spec):
    http: HttpTriggerSpec | None = None
    schedule: ScheduleTriggerSpec | None = None
    event: EventTriggerSpec | None = None


class Position(Spec):
    x: float
    y: float


class Config(Spec):
    """A whole workflow file. Load it with `flownb.load_config`, not by hand."""

    imports: list[str] = Field(default_factory=list, description="other YAML files to merge in")
    modules: list[ModuleSpec] = Field(default_factory=list)
    workflows: WorkflowsSpec = Field(default_factory=WorkflowsSpec)
    triggers: TriggersSpec = Field(default_factory=TriggersSpec)
    pipelines: dict[Name, PipelineSpec] = Field(default_factory=dict)
    layout: dict[str, Position] = Field(
        default_factory=dict,
        description="canvas positions by node id (module:NAME, pipeline:NAME, "
        "trigger:KIND:INDEX); no effect on what the workflow does",
    )

    _source: SourceMap | None = PrivateAttr(default=None)
    _path: str | None = PrivateAttr(default=None)

    @property
    def source(self) -> SourceMap | None:
        """Where each value came from (file, line, column), when loaded from YAML."""
        return self._source

    @property
    def path(self) -> str | None:
        return self._path

    def diagnostic(self, loc: Loc, message: str, *, key: bool = False) -> Diagnostic:
        """A problem found after loading (at build), pinned to its file position if known."""
        if self._source is None:
            return Diagnostic(self._path or "<config>", 1, 1, loc, message)
        return self._source.diagnostic(loc, message, key=key)

    def module(self, name: str) -> ModuleSpec:
        for spec in self.modules:
            if spec.name == name:
                return spec
        from flownb.errors import UnknownNameError

        raise UnknownNameError("module", name, [m.name for m in self.modules])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Config):
            return NotImplemented
        return self.model_dump(by_alias=True) == other.model_dump(by_alias=True)

    __hash__ = None  # type: ignore[assignment]
