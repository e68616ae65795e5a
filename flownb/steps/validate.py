"""`validate`: check a value against a JSON Schema (inline or from a `jsonschema` module)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, model_validator

from flownb.errors import ValidationFailed
from flownb.execution import ExecutionContext
from flownb.fields import Ref
from flownb.pipeline import StepFn, StepSpec
from flownb.schemas import compile_schema

if TYPE_CHECKING:
    from flownb.engine import Engine


class ValidateStep(StepSpec):
    type: Literal["validate"] = "validate"
    schema_: dict[str, Any] | None = Field(None, alias="schema", description="inline JSON Schema")
    module: Annotated[str | None, Ref("jsonschema")] = Field(
        None, description="jsonschema module holding named schemas"
    )
    ref: str | None = Field(None, description="schema name inside `module`")
    input: Any = Field("{{ data }}", description="what to validate (default: the data)")

    @model_validator(mode="after")
    def _one_source(self) -> ValidateStep:
        if (self.schema_ is None) == (self.module is None):
            raise ValueError("give either an inline schema or module + ref")
        if self.module is not None and not self.ref:
            raise ValueError("ref names the schema inside the jsonschema module")
        return self

    def compile(self, engine: Engine) -> StepFn:
        if self.schema_ is not None:
            check = compile_schema(self.schema_)
        else:
            from flownb.modules.jsonschema import SchemaRegistry

            assert self.module is not None and self.ref is not None
            check = engine.services.get(self.module, SchemaRegistry).validator(self.ref)
        value = engine.templates.value(self.input)

        async def run(ctx: ExecutionContext) -> Any:
            data = value(ctx.scope)
            problems = check(data)
            if problems:
                raise ValidationFailed(
                    "input is invalid: "
                    + "; ".join(f"{p['path']}: {p['message']}" for p in problems[:5]),
                    details=problems,
                )
            return data

        return run
