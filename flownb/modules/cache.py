"""The `cache` module: key/value storage with expiry, behind one async interface.

Providers share the `CacheBackend` contract: `memory` (here) and `redis`
(`flownb.rediscache`, shared by every engine using the same server). The module picks the
provider from config and forwards to it, so pipelines (the `cache` step) and Python code use
the module the same way whatever stores the data. Expired entries are never returned. Values
are JSON data (objects, lists, text, numbers, booleans, null).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import Field, model_validator

from flownb.errors import ExecutionError
from flownb.fields import Duration, Spec
from flownb.module import Module
from flownb.registry import ModuleType

if TYPE_CHECKING:
    from flownb.engine import Engine
    from flownb.health import Check


class CacheConfig(Spec):
    provider: Literal["memory", "redis"] = Field(
        "memory", description="where entries are kept: this process, or a Redis server"
    )
    ttl: Duration | None = Field(None, description="default lifetime of an entry; none: no expiry")
    max_size: int = Field(
        10_000,
        alias="maxSize",
        ge=1,
        description="memory: entries kept; the least recently used go first",
    )
    url: str | None = Field(
        None,
        description="redis: server URL, e.g. ${REDIS_URL} (default redis://127.0.0.1:6379/0)",
    )
    key_prefix: str | None = Field(
        None,
        alias="keyPrefix",
        description="redis: prefix of this cache's keys (default flownb:NAME:)",
    )
    timeout: Duration = Field(
        Duration("5s"), description="redis: longest wait to connect or for an answer"
    )

    @model_validator(mode="after")
    def _redis_only(self) -> CacheConfig:
        if self.provider != "redis":
            given = [k for k in ("url", "key_prefix") if getattr(self, k) is not None]
            if given:
                names = ", ".join("keyPrefix" if k == "key_prefix" else k for k in given)
                raise ValueError(f"{names} applies to provider: redis")
        return self


class CacheBackend(Protocol):
    """What every cache provider implements.

    `ttl` is in seconds: None means the configured default, 0 means the entry never expires.
    """

    async def get(self, key: str, default: Any = None) -> Any: ...

    async def set(self, key: str, value: Any, ttl: float | None = None) -> Any: ...

    async def delete(self, key: str) -> bool: ...

    async def append(
        self, key: str, value: Any, max_len: int | None = None, ttl: float | None = None
    ) -> list[Any]: ...

    async def get_list(self, key: str) -> list[Any]: ...

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int: ...

    async def clear(self) -> None: ...


class CacheTypeError(ExecutionError):
    """A list or counter operation on a key holding something else."""

    status = 409


_NEVER = float("inf")


def _frozen(value: Any) -> Any:
    """A private copy of containers, so callers cannot change what the cache holds."""
    return copy.deepcopy(value) if isinstance(value, dict | list) else value


class MemoryCache:
    """An LRU dict with per-entry expiry, checked on read (no background sweeper needed).

    Expired entries still take room until read or evicted; `max_size` bounds them all.
    """

    def __init__(
        self,
        *,
        max_size: int = 10_000,
        ttl: float | None = None,
        clock: Callable[[], float],
    ) -> None:
        self.max_size, self.ttl, self.clock = max_size, ttl, clock
        self._items: OrderedDict[str, tuple[Any, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def _expiry(self, ttl: float | None) -> float:
        ttl = self.ttl if ttl is None else ttl
        return _NEVER if not ttl else self.clock() + ttl

    def _live(self, key: str) -> tuple[Any, float] | None:
        entry = self._items.get(key)
        if entry is None:
            return None
        if entry[1] <= self.clock():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return entry

    def _put(self, key: str, value: Any, expires: float) -> None:
        items = self._items
        items[key] = (value, expires)
        items.move_to_end(key)
        if len(items) > self.max_size:
            items.popitem(last=False)

    async def get(self, key: str, default: Any = None) -> Any:
        entry = self._live(key)
        return default if entry is None else _frozen(entry[0])

    async def set(self, key: str, value: Any, ttl: float | None = None) -> Any:
        self._put(key, _frozen(value), self._expiry(ttl))
        return value

    async def delete(self, key: str) -> bool:
        return self._live(key) is not None and self._items.pop(key, None) is not None

    async def append(
        self, key: str, value: Any, max_len: int | None = None, ttl: float | None = None
    ) -> list[Any]:
        entry = self._live(key)
        if entry is None:
            items: list[Any] = []
            expires = self._expiry(ttl)
        else:
            items, expires = entry
            if not isinstance(items, list):
                raise CacheTypeError(
                    f"cache key {key!r} holds a {type(items).__name__}, not a list"
                )
            if ttl is not None:
                expires = self._expiry(ttl)
        items.append(_frozen(value))
        if max_len is not None and len(items) > max_len:
            del items[: len(items) - max_len]
        self._put(key, items, expires)
        return _frozen(items)  # type: ignore[no-any-return]

    async def get_list(self, key: str) -> list[Any]:
        entry = self._live(key)
        if entry is None:
            return []
        if not isinstance(entry[0], list):
            raise CacheTypeError(f"cache key {key!r} holds a {type(entry[0]).__name__}, not a list")
        return _frozen(entry[0])  # type: ignore[no-any-return]

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        entry = self._live(key)
        if entry is None:
            total, expires = amount, self._expiry(ttl)
        else:
            current, expires = entry
            if isinstance(current, bool) or not isinstance(current, int):
                raise CacheTypeError(
                    f"cache key {key!r} holds a {type(current).__name__}, not a counter"
                )
            total = current + amount
            if ttl is not None:
                expires = self._expiry(ttl)
        self._put(key, total, expires)
        return total

    async def clear(self) -> None:
        self._items.clear()


class Cache(Module[CacheConfig]):
    """The module: forwards to its provider (chosen at init), so it is a `CacheBackend` too."""

    backend: CacheBackend

    async def init(self, engine: Engine) -> None:
        config = self.config
        ttl = float(config.ttl) if config.ttl is not None else None
        if config.provider == "redis":
            from flownb.rediscache import RedisCache

            self.backend = RedisCache(
                config.url or "redis://127.0.0.1:6379/0",
                prefix=config.key_prefix
                if config.key_prefix is not None
                else f"flownb:{self.name}:",
                ttl=ttl,
                timeout=float(config.timeout),
                name=self.name,
            )
        else:
            self.backend = MemoryCache(
                max_size=config.max_size, ttl=ttl, clock=engine.clock.monotonic
            )

    async def stop(self) -> None:
        closing = getattr(self.backend, "aclose", None)
        if closing is not None:
            await closing()

    async def health(self) -> Check:
        """A Redis that does not answer is degraded (calls fail with 503 until it is back)."""
        from flownb.health import Check
        from flownb.rediscache import RedisCache

        backend = self.backend
        if not isinstance(backend, RedisCache):
            size = len(backend) if isinstance(backend, MemoryCache) else None
            return Check.healthy("memory" if size is None else f"memory, {size} entries")
        try:
            await backend.ping()
        except ExecutionError as exc:
            return Check.degraded(str(exc))
        return Check.healthy(backend.source)

    async def get(self, key: str, default: Any = None) -> Any:
        return await self.backend.get(key, default)

    async def set(self, key: str, value: Any, ttl: float | None = None) -> Any:
        return await self.backend.set(key, value, ttl)

    async def delete(self, key: str) -> bool:
        return await self.backend.delete(key)

    async def append(
        self, key: str, value: Any, max_len: int | None = None, ttl: float | None = None
    ) -> list[Any]:
        return await self.backend.append(key, value, max_len, ttl)

    async def get_list(self, key: str) -> list[Any]:
        return await self.backend.get_list(key)

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        return await self.backend.incr(key, amount, ttl)

    async def clear(self) -> None:
        await self.backend.clear()


TYPES: list[ModuleType] = [
    ModuleType(
        "cache",
        "Infrastructure",
        "Key/value cache with expiry (ttl): in memory (least-recently-used eviction) or on "
        "Redis (shared by every engine using it)",
        CacheConfig,
        Cache,
        provides=("cache",),
    ),
]
