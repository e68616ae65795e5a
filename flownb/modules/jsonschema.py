"""The `jsonschema` module: named JSON Schemas, compiled once, for `validate` steps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, Field

from flownb.errors import FlownbError, UnknownNameError
from flownb.fields import Name, Spec
from flownb.module import Module
from flownb.registry import ModuleType
from flownb.schemas import Checker, compile_schema, schema_problem

if TYPE_CHECKING:
    from flownb.engine import Engine


def _check_schema(schema: dict[str, Any]) -> dict[str, Any]:
    problem = schema_problem(schema)
    if problem is not None:
        raise ValueError(problem)
    return schema


JsonSchema = Annotated[dict[str, Any], AfterValidator(_check_schema)]


class SchemaRegistryConfig(Spec):
    schemas: dict[Name, JsonSchema] = Field(
        default_factory=dict, description="name -> JSON Schema (draft 2020-12)"
    )


class SchemaRegistry(Module[SchemaRegistryConfig]):
    """Holds the compiled checkers; `validator(name)` is what a `validate` step uses."""

    def __init__(self, name: str, config: SchemaRegistryConfig) -> None:
        super().__init__(name, config)
        self._checkers: dict[str, Checker] = {}

    async def init(self, engine: Engine) -> None:
        for schema_name, schema in self.config.schemas.items():
            try:
                self._checkers[schema_name] = compile_schema(schema)
            except FlownbError as exc:
                raise FlownbError(f"schema {schema_name!r}: {exc}") from None

    @property
    def names(self) -> list[str]:
        return list(self.config.schemas)

    def validator(self, name: str) -> Checker:
        """The checker of schema `name`: a function returning the problems of a value."""
        checker = self._checkers.get(name)
        if checker is None:  # not initialised yet (a dry `Engine.check()`), or unknown
            schema = self.config.schemas.get(name)
            if schema is None:
                raise UnknownNameError("schema", name, self.names)
            checker = self._checkers[name] = compile_schema(schema)
        return checker

    def validate(self, name: str, value: Any) -> list[dict[str, str]]:
        """The problems of `value` against schema `name` (empty when valid)."""
        return self.validator(name)(value)


TYPES: list[ModuleType] = [
    ModuleType(
        "jsonschema",
        "Infrastructure",
        "Named JSON Schemas that validate steps check data against.",
        SchemaRegistryConfig,
        SchemaRegistry,
        provides=("jsonschema",),
    ),
]
