"""`workflows.integration`: steps calling external systems through named connectors."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from flownb.fields import Duration, Name, Spec


class ConnectorSpec(Spec):
    name: Name
    type: Literal["http", "webhook"]
    config: dict[str, Any] = Field(default_factory=dict)


class IntegrationStepSpec(Spec):
    name: Name
    connector: str
    action: str = Field(description="for http: 'METHOD /path'; for webhook: 'send'")
    input: dict[str, Any] = Field(default_factory=dict, description="templated request data")
    transform: str | None = Field(None, description="expression applied to the response")
    on_success: str | None = Field(None, alias="onSuccess", description="next step name")
    on_error: str | None = Field(None, alias="onError", description="step to run on failure")
    retry_count: int = Field(0, alias="retryCount", ge=0)
    retry_delay: Duration = Field(Duration(1.0), alias="retryDelay")


class IntegrationWorkflowSpec(Spec):
    connectors: list[ConnectorSpec] = Field(default_factory=list)
    steps: list[IntegrationStepSpec] = Field(default_factory=list)
