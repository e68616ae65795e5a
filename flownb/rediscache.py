"""The Redis cache provider: the `CacheBackend` contract on a Redis server.

Entries are JSON under `<keyPrefix><key>`; lists are Redis lists (one JSON item each), so an
append is one atomic step whichever engine makes it; counters are Redis integers. Expiry is
Redis' own (`PX`), so every engine sharing the server sees the same entries expire. Operations
that must look at a key's type and expiry and change it together (append, incr) are small Lua
scripts, atomic on the server. `maxSize` does not apply: bound Redis with its `maxmemory`
policy. `clear()` removes only this cache's keys (its prefix).

An empty list cannot be a Redis list; it is stored as the JSON text `[]` and read back as one.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from flownb.errors import ExecutionError, FlownbError

if TYPE_CHECKING:
    import redis.asyncio as aioredis

# ARGV: value, max length (0: none), ttl given (ms; -1: not given, 0: never), ttl of a new key
_APPEND = """
local key = KEYS[1]
local kind = redis.call('TYPE', key).ok
local keep = -1
if kind == 'string' then
  if redis.call('GET', key) ~= '[]' then
    return redis.error_reply('WRONGTYPE the key holds a value, not a list')
  end
  keep = redis.call('PTTL', key)
  redis.call('DEL', key)
elseif kind ~= 'none' and kind ~= 'list' then
  return redis.error_reply('WRONGTYPE the key holds a ' .. kind .. ', not a list')
end
redis.call('RPUSH', key, ARGV[1])
local maxlen = tonumber(ARGV[2])
if maxlen > 0 then redis.call('LTRIM', key, -maxlen, -1) end
local given = tonumber(ARGV[3])
if given > 0 then
  redis.call('PEXPIRE', key, given)
elseif given == 0 then
  redis.call('PERSIST', key)
elseif kind == 'none' then
  local fresh = tonumber(ARGV[4])
  if fresh > 0 then redis.call('PEXPIRE', key, fresh) end
elseif keep > 0 then
  redis.call('PEXPIRE', key, keep)
end
return redis.call('LRANGE', key, 0, -1)
"""

# ARGV: amount, ttl given (ms; -1: not given, 0: never), ttl of a new key
_INCR = """
local key = KEYS[1]
local existed = redis.call('EXISTS', key)
local total = redis.call('INCRBY', key, ARGV[1])
local given = tonumber(ARGV[2])
if given > 0 then
  redis.call('PEXPIRE', key, given)
elseif given == 0 then
  redis.call('PERSIST', key)
elseif existed == 0 then
  local fresh = tonumber(ARGV[3])
  if fresh > 0 then redis.call('PEXPIRE', key, fresh) end
end
return total
"""

# ARGV: ttl (ms; 0: never), then the items
_SET_LIST = """
local key = KEYS[1]
redis.call('DEL', key)
for i = 2, #ARGV do redis.call('RPUSH', key, ARGV[i]) end
local ttl = tonumber(ARGV[1])
if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
return 1
"""

_EMPTY_LIST = b"[]"


def masked(url: str) -> str:
    """`url` with its password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        raise ExecutionError(f"cache values must be JSON: {exc}", status=400) from None


class RedisCache:
    """A `CacheBackend` on Redis. `ttl` is the default lifetime (None or 0: no expiry)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        ttl: float | None = None,
        timeout: float = 5.0,
        name: str = "cache",
    ) -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError:
            raise FlownbError(
                "the redis cache provider needs the redis package: pip install 'flownb[redis]'"
            ) from None
        self.url, self.prefix, self.ttl = url, prefix, ttl
        self.source = f"cache {name!r} ({masked(url)})"
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout
        )
        self._append = self.client.register_script(_APPEND)
        self._incr = self.client.register_script(_INCR)
        self._set_list = self.client.register_script(_SET_LIST)

    async def aclose(self) -> None:
        await self.client.aclose()

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _lifetime(self, ttl: float | None) -> int:
        """Milliseconds for a new entry (0: never expires)."""
        ttl = self.ttl if ttl is None else ttl
        return _ms(ttl) if ttl else 0

    @staticmethod
    def _given(ttl: float | None) -> int:
        """An explicitly given ttl in ms for the scripts: -1 not given, 0 never."""
        if ttl is None:
            return -1
        return _ms(ttl) if ttl else 0

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a Redis call, turning its failures into flownb errors."""
        from redis import exceptions as errors

        from flownb.modules.cache import CacheTypeError

        try:
            return await fn(*args, **kwargs)
        except errors.ResponseError as exc:
            text = str(exc)
            if "WRONGTYPE" in text or "not an integer" in text or "out of range" in text:
                kind = "not a counter" if "integer" in text or "range" in text else "not a list"
                raise CacheTypeError(f"{self.source}: the entry is {kind}") from None
            raise ExecutionError(f"{self.source}: {text}") from None
        except (errors.ConnectionError, errors.TimeoutError, OSError) as exc:
            raise ExecutionError(
                f"{self.source} is unavailable: {exc or type(exc).__name__}", status=503
            ) from None

    async def get(self, key: str, default: Any = None) -> Any:
        from flownb.modules.cache import CacheTypeError

        try:
            raw = await self._call(self.client.get, self._key(key))
        except CacheTypeError:  # the key holds a list
            return await self.get_list(key)
        return default if raw is None else orjson.loads(raw)

    async def set(self, key: str, value: Any, ttl: float | None = None) -> Any:
        lifetime = self._lifetime(ttl)
        if isinstance(value, list) and value:
            items = [_dumps(item) for item in value]
            await self._call(self._set_list, keys=[self._key(key)], args=[lifetime, *items])
        else:
            await self._call(self.client.set, self._key(key), _dumps(value), px=lifetime or None)
        return value

    async def delete(self, key: str) -> bool:
        return bool(await self._call(self.client.delete, self._key(key)))

    async def append(
        self, key: str, value: Any, max_len: int | None = None, ttl: float | None = None
    ) -> list[Any]:
        args = [_dumps(value), max_len or 0, self._given(ttl), self._lifetime(ttl)]
        items = await self._call(self._append, keys=[self._key(key)], args=args)
        return [orjson.loads(item) for item in items]

    async def get_list(self, key: str) -> list[Any]:
        from flownb.modules.cache import CacheTypeError

        try:
            items = await self._call(self.client.lrange, self._key(key), 0, -1)
        except CacheTypeError:
            raw = await self._call(self.client.get, self._key(key))
            if raw == _EMPTY_LIST:
                return []
            raise
        return [orjson.loads(item) for item in items]

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        args = [amount, self._given(ttl), self._lifetime(ttl)]
        return int(await self._call(self._incr, keys=[self._key(key)], args=args))

    async def clear(self) -> None:
        batch: list[bytes] = []
        async for key in self.client.scan_iter(match=self._escaped_prefix() + "*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                await self._call(self.client.unlink, *batch)
                batch = []
        if batch:
            await self._call(self.client.unlink, *batch)

    def _escaped_prefix(self) -> str:
        """The prefix with glob characters escaped, for SCAN MATCH."""
        return "".join("\\" + c if c in "*?[]\\" else c for c in self.prefix)

    async def ping(self) -> None:
        await self._call(self.client.ping)
