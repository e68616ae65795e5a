"""The management API's queries, bodies and replies: the one source of its OpenAPI document.

Field names are snake_case in Python and camelCase on the wire. Inputs refuse unknown fields,
in bodies and in query strings alike: a typo is a 422 naming it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$"  # a component's name (also its file name)
ID_PATTERN = r"^[A-Za-z0-9_.\-]{1,128}$"
TYPE_PATTERN = r"^[A-Za-z0-9_.\-]{1,128}$"


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Body(ApiModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Query(ApiModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


# --- errors -------------------------------------------------------------------------------------
class ErrorDetail(ApiModel):
    status: int
    message: str
    request_id: str
    details: Any = None


class ErrorOut(ApiModel):
    """Every failure has this shape."""

    error: ErrorDetail


# --- status -------------------------------------------------------------------------------------
class ModuleRef(ApiModel):
    name: str
    type: str


class ReloadOut(ApiModel):
    revision: int
    summary: str = Field(description="one line: modules +added -removed ~changed; ...")
    changes: dict[str, dict[str, list[str]]]
    drained: bool = Field(description="every execution of the old config finished in time")
    seconds: float
    at: float


class HistoryInfo(ApiModel):
    enabled: bool
    database: str | None = None
    queued: int = 0
    dropped: int = 0
    last_error: str | None = None


class StatusOut(ApiModel):
    version: str
    state: str
    engine_state: str
    revision: int
    config: str | None
    started_at: float | None
    uptime_seconds: float
    modules: list[ModuleRef]
    workflows: list[str]
    pipelines: list[str]
    servers: dict[str, str]
    inflight: int
    last_reload: ReloadOut | None
    history: HistoryInfo


# --- config -------------------------------------------------------------------------------------
class ConfigQuery(Query):
    format: Literal["json", "yaml"] = Field("json", description="the reply's format")


class ConfigOut(ApiModel):
    revision: int
    path: str | None
    config: dict[str, Any] = Field(description="the running config; `${VAR}` kept as written")


class PutConfigQuery(Query):
    reload: bool = Field(True, description="apply the new config now (false: only validate)")
    save: bool = Field(False, description="also write it to the service's config file")


class DiagnosticOut(ApiModel):
    path: str
    message: str
    file: str | None = None
    line: int | None = None
    col: int | None = None


class ValidateOut(ApiModel):
    valid: bool
    errors: list[DiagnosticOut]
    summary: str


class PutConfigOut(ApiModel):
    valid: bool
    reloaded: bool
    saved: bool
    summary: str
    changes: dict[str, dict[str, list[str]]]
    reload: ReloadOut | None


class ReloadIn(Body):
    reason: str | None = Field(None, max_length=500, description="recorded in the audit log")


# --- module types -------------------------------------------------------------------------------
class ModuleTypesOut(ApiModel):
    categories: list[str]
    types: dict[str, dict[str, Any]]


class ModuleTypeOut(ApiModel):
    type: str
    category: str
    description: str
    provides: list[str]
    requires: list[str]
    config_schema: dict[str, Any]


# --- executions ---------------------------------------------------------------------------------
class ExecutionsQuery(Query):
    workflow: str | None = Field(None, max_length=200, description="workflow type, e.g. http")
    status: Literal["ok", "error"] | None = None
    action: str | None = Field(None, max_length=500)
    request_id: str | None = Field(None, max_length=200)
    before: float | None = Field(None, description="only executions started before (epoch s)")
    limit: int = Field(50, ge=1, le=500)


class StepOut(ApiModel):
    name: str
    status: str
    duration_ms: float
    error: str | None
    input: str | None
    output: str | None


class ExecutionOut(ApiModel):
    id: str
    trigger: str
    workflow: str
    action: str
    status: str
    started: float
    duration_ms: float
    node: str | None
    request_id: str | None
    error: str | None
    input: str | None
    output: str | None
    steps: list[StepOut]


class ExecutionsOut(ApiModel):
    executions: list[ExecutionOut]


class AuditQuery(Query):
    before: float | None = None
    limit: int = Field(50, ge=1, le=500)


class AuditEventOut(ApiModel):
    id: str
    at: float
    actor: str
    action: str
    target: str
    summary: str
    details: dict[str, Any]


class AuditOut(ApiModel):
    events: list[AuditEventOut]


# --- components ---------------------------------------------------------------------------------
class ComponentOut(ApiModel):
    name: str
    state: str = Field(
        description="running, stopped, error..., or `unloaded`: a file no module runs"
    )
    version: int
    origin: str
    trusted: bool
    reason: str | None
    last_error: str | None
    module: str | None = Field(description="the dynamic.component module running it")


class ComponentDetail(ComponentOut):
    source: str


class ComponentsOut(ApiModel):
    components: list[ComponentOut]
    directory: str


class ComponentIn(Body):
    source: str = Field(max_length=1_000_000, description="the component's Python source")


# --- dead letters -------------------------------------------------------------------------------
class DeadLettersQuery(Query):
    kind: str | None = Field(None, max_length=100)
    source: str | None = Field(None, max_length=200)
    include_replayed: bool = False
    limit: int = Field(100, ge=1, le=1000)


class DeadLetterOut(ApiModel):
    id: str
    kind: str
    source: str
    target: str
    payload: Any
    error: str
    attempts: int
    headers: dict[str, str]
    created: float
    replayed: float | None


class DeadLettersOut(ApiModel):
    dead_letters: list[DeadLetterOut]


class ReplayQuery(Query):
    force: bool = Field(False, description="replay a letter that was replayed before")


class ReplayOut(ApiModel):
    dead_letter: DeadLetterOut
    outcome: Any = Field(None, description="what the replayer returned (e.g. the reply status)")


# --- probes -------------------------------------------------------------------------------------
class CheckOut(ApiModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    detail: str


class HealthOut(ApiModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    state: str
    checks: dict[str, CheckOut]


class ProbeOut(ApiModel):
    status: str
    state: str
