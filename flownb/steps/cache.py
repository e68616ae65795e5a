"""`cache`: read or write a `cache` module entry (get, set, delete, append, list, incr)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, model_validator

from flownb.errors import StepError
from flownb.execution import ExecutionContext
from flownb.fields import Duration, Ref
from flownb.pipeline import StepFn, StepSpec

if TYPE_CHECKING:
    from flownb.engine import Engine
    from flownb.modules.cache import Cache
    from flownb.template import Compiled

CacheOp = Literal["get", "set", "delete", "append", "list", "incr"]


class CacheStep(StepSpec):
    """The step's result is the value read or written (the list for append, True/False for
    delete, the new count for incr)."""

    type: Literal["cache"] = "cache"
    cache: Annotated[str | None, Ref("cache", implicit=True)] = Field(
        None, description="cache module; optional when there is one"
    )
    op: CacheOp = Field(description="get, set, delete, append (to a list), list, incr")
    key: str = Field(description="key, or a template giving one")
    value: Any = Field(
        None, description="set/append: value or template (default: the data); incr: the amount"
    )
    ttl: Duration | None = Field(None, description="set/append/incr: lifetime of the entry")
    max_length: int | None = Field(
        None, alias="maxLength", ge=1, description="append: keep only the newest N items"
    )

    @model_validator(mode="after")
    def _fits_op(self) -> CacheStep:
        if self.max_length is not None and self.op != "append":
            raise ValueError("maxLength applies only to op: append")
        if self.ttl is not None and self.op not in ("set", "append", "incr"):
            raise ValueError(f"ttl does not apply to op: {self.op}")
        if self.value is not None and self.op in ("get", "delete", "list"):
            raise ValueError(f"value does not apply to op: {self.op}")
        return self

    def compile(self, engine: Engine) -> StepFn:
        from flownb.modules.cache import Cache

        cache = engine.services.get(engine.resolve_ref("cache", self.cache), Cache)
        key = engine.templates.value(self.key)
        ttl = None if self.ttl is None else float(self.ttl)
        label = self.name or f"cache {self.op}"
        op = self.op
        if op == "get":

            async def get(ctx: ExecutionContext) -> Any:
                return await cache.get(str(key(ctx.scope)))

            return get
        if op == "delete":

            async def delete(ctx: ExecutionContext) -> Any:
                return await cache.delete(str(key(ctx.scope)))

            return delete
        if op == "list":

            async def get_list(ctx: ExecutionContext) -> Any:
                return await cache.get_list(str(key(ctx.scope)))

            return get_list
        if op == "incr":
            return _incr(cache, key, engine.templates.value(self.value or 1), ttl, label)
        value = engine.templates.value("{{ data }}" if self.value is None else self.value)
        if op == "set":

            async def set_(ctx: ExecutionContext) -> Any:
                scope = ctx.scope
                return await cache.set(str(key(scope)), value(scope), ttl)

            return set_
        max_len = self.max_length

        async def append(ctx: ExecutionContext) -> Any:
            scope = ctx.scope
            return await cache.append(str(key(scope)), value(scope), max_len, ttl)

        return append


def _incr(cache: Cache, key: Compiled, amount: Compiled, ttl: float | None, label: str) -> StepFn:
    async def incr(ctx: ExecutionContext) -> Any:
        scope = ctx.scope
        by = _whole(amount(scope))
        if by is None:
            raise StepError(
                label, f"incr amount {amount(scope)!r} is not a whole number", status=400
            )
        return await cache.incr(str(key(scope)), by, ttl)

    return incr


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    try:
        return int(str(value).strip())
    except ValueError:
        return None
