r"""Data transformations: the operations of `transform` steps and `data.transformer` modules.

Operations run in order on a value:
- `extract`: a JMESPath expression (`orders[?total > \`100\`].id`);
- `map`: build an object, each field from a JMESPath expression over the value;
- `filter`: keep only `fields` of an object, or the list items for which `where` holds
  (a condition over `item`);
- `convert`: change the type of fields: int, float, str, bool, json (parse), string_json (dump).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import jmespath
import orjson
from jmespath.exceptions import JMESPathError
from jmespath.visitor import TreeInterpreter
from pydantic import Field, field_validator, model_validator

from flownb.errors import ExecutionError
from flownb.fields import Spec

if TYPE_CHECKING:
    from flownb.template import Templates

Converter = Literal["int", "float", "str", "bool", "json", "string_json"]
Op = Callable[[Any], Any]


# One interpreter for every expression: `ParsedResult.search` makes one per call, and its
# method cache refers back to it, a cycle only the garbage collector frees (a collection
# every ~80 executions of a pipeline with a transform step, where there was none).
_INTERPRETER = TreeInterpreter()


def _jmes(expr: str) -> Op:
    """`expr` compiled, as a function of the value it searches."""
    try:
        parsed = jmespath.compile(expr).parsed
    except JMESPathError as exc:
        raise ValueError(f"invalid JMESPath expression {expr!r}: {exc}") from None
    return partial(_INTERPRETER.visit, parsed)


class FilterSpec(Spec):
    fields: list[str] | None = Field(None, description="keep only these fields of an object")
    where: str | None = Field(None, description="keep list items for which this holds (`item`)")

    @model_validator(mode="after")
    def _one(self) -> FilterSpec:
        if (self.fields is None) == (self.where is None):
            raise ValueError("filter takes exactly one of fields or where")
        return self


class TransformOp(Spec):
    """One operation; exactly one of its fields is set."""

    extract: str | None = Field(None, description="JMESPath expression")
    map: dict[str, str] | None = Field(None, description="field -> JMESPath expression")
    filter: FilterSpec | None = None
    convert: dict[str, Converter] | None = Field(None, description="field -> type")

    @field_validator("extract")
    @classmethod
    def _extract_ok(cls, value: str | None) -> str | None:
        if value is not None:
            _jmes(value)
        return value

    @field_validator("map")
    @classmethod
    def _map_ok(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for expr in (value or {}).values():
            _jmes(expr)
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> TransformOp:
        given = [k for k in ("extract", "map", "filter", "convert") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("each operation has exactly one of extract, map, filter, convert")
        return self


def _convert(kind: Converter, value: Any) -> Any:
    if value is None:
        return None
    if kind == "int":
        return int(float(value)) if isinstance(value, str) and "." in value else int(value)
    if kind == "float":
        return float(value)
    if kind == "str":
        return str(value)
    if kind == "bool":
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if kind == "json":
        return orjson.loads(value) if isinstance(value, str | bytes) else value
    return orjson.dumps(value).decode()


def compile_op(op: TransformOp, templates: Templates) -> Op:
    if op.extract is not None:
        return _jmes(op.extract)
    if op.map is not None:
        fields = [(k, _jmes(v)) for k, v in op.map.items()]
        return lambda value: {k: search(value) for k, search in fields}
    if op.filter is not None:
        if op.filter.fields is not None:
            keep = list(op.filter.fields)

            def pick(value: Any) -> Any:
                if not isinstance(value, dict):
                    raise ExecutionError("filter.fields needs an object", status=400)
                return {k: value[k] for k in keep if k in value}

            return pick
        assert op.filter.where is not None
        cond = templates.condition(op.filter.where)

        def where(value: Any) -> Any:
            if not isinstance(value, list):
                raise ExecutionError("filter.where needs a list", status=400)
            return [item for item in value if cond({"item": item})]

        return where
    assert op.convert is not None
    conversions = list(op.convert.items())

    def convert(value: Any) -> Any:
        if not isinstance(value, dict):
            raise ExecutionError("convert needs an object", status=400)
        out = dict(value)
        for field, kind in conversions:
            if field in out:
                try:
                    out[field] = _convert(kind, out[field])
                except (TypeError, ValueError, orjson.JSONDecodeError) as exc:
                    raise ExecutionError(
                        f"cannot convert field {field!r} to {kind}: {exc}", status=400
                    ) from None
        return out

    return convert


def compile_ops(ops: list[TransformOp], templates: Templates) -> Op:
    """One function applying the operations in order."""
    fns = [compile_op(op, templates) for op in ops]

    def apply(value: Any) -> Any:
        for fn in fns:
            value = fn(value)
        return value

    return apply
