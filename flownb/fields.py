"""Field types shared by every config model: names, durations, references between modules.

A reference field (`Ref("broker")`) is how a config says "this names another module that
provides a broker". The validator checks it, the engine orders the build by it, and the JSON
Schema carries it as `x-flownb-ref` so the canvas can draw the edge. It is declared once, on
the field.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from flownb.errors import Loc

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, min_length=1, max_length=128)]


def _check_cron(value: str) -> str:
    from croniter import croniter

    text = value.strip()
    if len(text.split()) not in (5, 6) or not croniter.is_valid(text):
        raise ValueError(
            f"invalid cron expression {value!r}; use five fields: minute hour day-of-month "
            "month day-of-week, e.g. '*/5 * * * *'"
        )
    return text


Cron = Annotated[
    str,
    AfterValidator(_check_cron),
    Field(description="cron expression (minute hour day month weekday), e.g. '0 3 * * *'"),
]


class Spec(BaseModel):
    """Base of every config model: unknown keys are errors (typos must not pass silently)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=False)


@dataclass(frozen=True, slots=True)
class Ref:
    """Marks a string field as the name of a module that provides service `kind`.

    `implicit`: the field may be left out when exactly one module provides `kind`.
    """

    kind: str
    implicit: bool = False

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        out = handler(schema)
        out["x-flownb-ref"] = self.kind
        if self.implicit:
            out["x-flownb-implicit"] = True
        return out


def _find_ref(annotation: Any) -> Ref | None:
    """The Ref anywhere inside a type annotation (Optional, list, dict values...)."""
    if typing.get_origin(annotation) is Annotated:
        for meta in annotation.__metadata__:
            if isinstance(meta, Ref):
                return meta
    for arg in typing.get_args(annotation):
        found = _find_ref(arg)
        if found is not None:
            return found
    return None


_REF_FIELDS: dict[type[BaseModel], dict[str, Ref]] = {}


def ref_fields(model: type[BaseModel]) -> dict[str, Ref]:
    """{attribute: Ref} for every reference field of a model class."""
    cached = _REF_FIELDS.get(model)
    if cached is None:
        cached = {}
        for attr, info in model.model_fields.items():
            ref = next((m for m in info.metadata if isinstance(m, Ref)), None)
            ref = ref or _find_ref(info.annotation)
            if ref is not None:
                cached[attr] = ref
        _REF_FIELDS[model] = cached
    return cached


def iter_refs(
    value: Any, loc: Loc = (), inherited: frozenset[str] = frozenset()
) -> Iterator[tuple[Loc, Ref, str | None]]:
    """Yield (loc, ref, name) for every reference inside a validated model tree.

    An implicit reference left out is yielded with name None for the validator to resolve,
    unless an enclosing object has a reference of the same kind, which it then falls back on
    (a subscription without a broker uses its workflow's broker).
    """
    if isinstance(value, BaseModel):
        refs = ref_fields(type(value))
        named = inherited | {ref.kind for ref in refs.values()}
        for attr, info in type(value).model_fields.items():
            child = getattr(value, attr)
            key = info.alias or attr
            if attr in refs:
                if child is not None or refs[attr].kind not in inherited:
                    yield from _ref_values(child, (*loc, key), refs[attr])
            elif child is not None:
                yield from iter_refs(child, (*loc, key), named)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from iter_refs(item, (*loc, i), inherited)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from iter_refs(item, (*loc, key), inherited)


def _ref_values(value: Any, loc: Loc, ref: Ref) -> Iterator[tuple[Loc, Ref, str | None]]:
    if isinstance(value, str):
        yield loc, ref, value
    elif value is None:
        if ref.implicit:
            yield loc, ref, None
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _ref_values(item, (*loc, i), ref)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _ref_values(item, (*loc, key), ref)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class Duration(float):
    """Seconds, written as a number or as text like `500ms`, `30s`, `1m30s`, `2h`.

    It remembers how it was written so a dump gives the same text back.
    """

    text: str

    def __new__(cls, value: float | str) -> Duration:
        if isinstance(value, str):
            text = value.strip()
            seconds = parse_duration(text)
        else:
            text, seconds = repr(value), float(value)
        if seconds < 0:
            raise ValueError("a duration cannot be negative")
        obj = super().__new__(cls, seconds)
        obj.text = text
        return obj

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def serialize(value: Duration) -> str | float:
            text = getattr(value, "text", None)
            return float(value) if text is None or text == repr(float(value)) else text

        return core_schema.no_info_plain_validator_function(
            cls._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(serialize),
        )

    @classmethod
    def _validate(cls, value: Any) -> Duration:
        if isinstance(value, Duration):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError("expected a duration such as 30, '500ms', '30s', '5m' or '1h'")
        return cls(value)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"},
            ],
            "description": "seconds, or text such as 500ms, 30s, 5m, 1h",
        }


def parse_duration(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r}; write e.g. 500ms, 30s, 5m, 1h30m")
    return total
