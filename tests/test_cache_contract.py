"""The `CacheBackend` contract, one suite run against every provider: memory and Redis.

Time: the memory provider runs on a fake clock that the test moves on; Redis keeps its own
time, so its entries get short lifetimes and the test waits (polling, with a timeout) until
Redis has expired them. Each Redis test works under its own key prefix and clears it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from realservices import REDIS_URL, require

from flownb.engine import Engine
from flownb.errors import ExecutionError
from flownb.loader import parse_config
from flownb.modules.cache import Cache, CacheBackend, CacheTypeError, MemoryCache
from flownb.rediscache import RedisCache, masked


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Provider:
    name: str
    short: float  # a lifetime the test can see pass
    _make: Callable[[float | None], CacheBackend]
    _time: FakeTime | None = None
    made: list[CacheBackend] = field(default_factory=list)

    def make(self, ttl: float | None = None) -> CacheBackend:
        cache = self._make(ttl)
        self.made.append(cache)
        return cache

    async def expire(self, cache: CacheBackend, *keys: str) -> None:
        """Let `short` seconds pass, so entries living that long are gone."""
        if self._time is not None:
            self._time.now += self.short
            return
        assert isinstance(cache, RedisCache)
        names = [cache.prefix + k for k in keys]
        async with asyncio.timeout(5):
            while await cache.client.exists(*names):  # noqa: ASYNC110 - Redis keeps the time
                await asyncio.sleep(0.02)


@pytest.fixture(params=["memory", "redis"])
async def provider(request: pytest.FixtureRequest) -> AsyncIterator[Provider]:
    if request.param == "memory":
        time = FakeTime()
        yield Provider("memory", 10.0, lambda ttl: MemoryCache(clock=time, ttl=ttl), time)
        return
    require("redis")
    prefix = f"flownb-test:{os.urandom(4).hex()}:"
    found = Provider("redis", 0.15, lambda ttl: RedisCache(REDIS_URL, prefix=prefix, ttl=ttl))
    try:
        yield found
    finally:
        for cache in found.made:
            assert isinstance(cache, RedisCache)
            await cache.clear()
            await cache.aclose()


async def test_set_get_delete(provider: Provider) -> None:
    c = provider.make()
    assert await c.get("a") is None
    assert await c.get("a", "fallback") == "fallback"
    assert await c.set("a", {"n": 1, "tags": ["x"], "ok": True, "none": None}) == {
        "n": 1,
        "tags": ["x"],
        "ok": True,
        "none": None,
    }
    assert await c.get("a") == {"n": 1, "tags": ["x"], "ok": True, "none": None}
    for value in ("text", 3, 2.5, False, None, [1, {"b": 2}]):
        await c.set("v", value)
        assert await c.get("v", "missing") == value
    assert await c.delete("a") is True
    assert await c.delete("a") is False
    assert await c.get("a") is None


async def test_values_are_copied_in_and_out(provider: Provider) -> None:
    c = provider.make()
    value = {"items": [1]}
    await c.set("a", value)
    value["items"].append(2)
    got = await c.get("a")
    got["items"].append(3)
    assert await c.get("a") == {"items": [1]}


async def test_entries_expire_after_their_ttl(provider: Provider) -> None:
    c = provider.make()
    await c.set("short", 1, ttl=provider.short)
    await c.set("forever", 2, ttl=0)
    await c.set("long", 3, ttl=3600)
    await provider.expire(c, "short")
    assert await c.get("short") is None
    assert await c.get("forever") == 2 and await c.get("long") == 3


async def test_the_default_ttl_applies_unless_told_otherwise(provider: Provider) -> None:
    c = provider.make(ttl=provider.short)
    await c.set("default", 1)
    await c.set("kept", 2, ttl=0)
    await provider.expire(c, "default")
    assert await c.get("default") is None
    assert await c.get("kept") == 2


async def test_append_keeps_the_newest_items(provider: Provider) -> None:
    c = provider.make()
    assert await c.get_list("log") == []
    for i in range(5):
        items = await c.append("log", {"i": i}, max_len=3)
    assert items == [{"i": 2}, {"i": 3}, {"i": 4}]
    assert await c.get_list("log") == items
    assert await c.get("log") == items  # a list reads back with get too
    await c.set("given", [1, 2])
    assert await c.append("given", 3) == [1, 2, 3]
    await c.set("empty", [])
    assert await c.get("empty") == [] and await c.get_list("empty") == []
    assert await c.append("empty", "first") == ["first"]


async def test_lists_and_counters_refuse_other_values(provider: Provider) -> None:
    c = provider.make()
    await c.set("text", "hello")
    await c.set("real", 1.5)
    await c.append("items", 1)
    with pytest.raises(CacheTypeError):
        await c.append("text", 1)
    with pytest.raises(CacheTypeError):
        await c.get_list("text")
    for key in ("text", "real", "items"):
        with pytest.raises(CacheTypeError):
            await c.incr(key)
    assert await c.get("text") == "hello" and await c.get_list("items") == [1]


async def test_append_keeps_the_list_expiry_unless_given_a_ttl(provider: Provider) -> None:
    c = provider.make()
    await c.append("fading", "a", ttl=provider.short)
    await c.append("fading", "b")  # keeps the short expiry
    await c.append("saved", "a", ttl=provider.short)
    await c.append("saved", "b", ttl=0)  # now never expires
    await provider.expire(c, "fading")
    assert await c.get_list("fading") == []
    assert await c.get_list("saved") == ["a", "b"]


async def test_incr_counts(provider: Provider) -> None:
    c = provider.make()
    assert await c.incr("n") == 1
    assert await c.incr("n", 5) == 6
    assert await c.incr("n", -2) == 4
    assert await c.get("n") == 4
    await c.set("preset", 10)
    assert await c.incr("preset") == 11
    assert await c.incr("brief", ttl=provider.short) == 1
    await c.incr("brief")  # keeps its expiry
    await provider.expire(c, "brief")
    assert await c.get("brief") is None


async def test_clear_removes_this_caches_entries(provider: Provider) -> None:
    c = provider.make()
    await c.set("a", 1)
    await c.append("b", 1)
    await c.incr("c")
    await c.clear()
    assert await c.get("a") is None and await c.get_list("b") == [] and await c.get("c") is None


# --- Redis only: sharing, prefixes, an unreachable server ----------------------------------
async def test_redis_caches_share_entries_and_keep_to_their_prefix() -> None:
    require("redis")
    base = f"flownb-test:{os.urandom(4).hex()}:"
    one = RedisCache(REDIS_URL, prefix=base + "a:")
    two = RedisCache(REDIS_URL, prefix=base + "a:")
    other = RedisCache(REDIS_URL, prefix=base + "b:")
    try:
        await one.set("k", {"v": 1})
        await other.set("k", "mine")
        assert await two.get("k") == {"v": 1}  # another engine on the same server sees it
        await asyncio.gather(*(two.append("shared", i) for i in range(20)))
        assert sorted(await one.get_list("shared")) == list(range(20))  # atomic appends
        await one.clear()
        assert await two.get("k") is None and await other.get("k") == "mine"
    finally:
        for cache in (one, two, other):
            await cache.clear()
            await cache.aclose()


async def test_cache_module_on_redis_in_a_pipeline() -> None:
    require("redis")
    prefix = f"flownb-test:{os.urandom(4).hex()}:"
    text = f"""
modules:
  - name: cache
    type: cache
    config: {{provider: redis, url: "{REDIS_URL}", keyPrefix: "{prefix}", ttl: 1h}}
pipelines:
  visit:
    steps:
      - {{type: cache, name: count, op: incr, key: "visits:{{{{ data.user }}}}"}}
      - {{type: cache, name: seen, op: append, key: recent, value: "{{{{ data.user }}}}",
          maxLength: 2}}
      - {{type: set, target: data, values: {{count: "{{{{ steps.count }}}}",
          recent: "{{{{ steps.seen }}}}"}}}}
"""
    first, second = Engine(parse_config(text)), Engine(parse_config(text))
    await first.start()
    await second.start()
    try:
        await first.trigger_workflow("pipeline", "visit", {"user": "ann"})
        await first.trigger_workflow("pipeline", "visit", {"user": "bob"})
        out = await second.trigger_workflow("pipeline", "visit", {"user": "ann"})
        assert out["count"] == 2 and out["recent"] == ["bob", "ann"]
        health = await first.services.get("cache", Cache).health()
        assert health.status == "healthy"
    finally:
        await first.services.get("cache", Cache).clear()
        await first.stop()
        await second.stop()


async def test_an_unreachable_redis_is_a_503_and_degraded_health() -> None:
    text = """
modules:
  - name: cache
    type: cache
    config: {provider: redis, url: "redis://:hunter2@127.0.0.1:1/0", timeout: 1s}
"""
    engine = Engine(parse_config(text))
    await engine.start()
    try:
        cache = engine.services.get("cache", Cache)
        with pytest.raises(ExecutionError) as caught:
            await cache.get("k")
        assert caught.value.status == 503 and "is unavailable" in str(caught.value)
        assert "hunter2" not in str(caught.value)
        health = await cache.health()
        assert health.status == "degraded" and "hunter2" not in health.detail
    finally:
        await engine.stop()


def test_redis_settings_need_the_redis_provider() -> None:
    from flownb.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        parse_config("modules: [{name: c, type: cache, config: {url: 'redis://x'}}]")
    assert "url applies to provider: redis" in caught.value.render()


def test_passwords_are_masked() -> None:
    assert masked("redis://user:pw@host:6379/0") == "redis://user:***@host:6379/0"
    assert masked("redis://:pw@host/0") == "redis://:***@host/0"
    assert masked("redis://host:6379") == "redis://host:6379"
