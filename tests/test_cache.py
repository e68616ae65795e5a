"""The `cache` module (memory provider) and the `cache` pipeline step."""

from __future__ import annotations

from typing import Any

import pytest

from flownb.clock import ManualClock
from flownb.engine import Engine
from flownb.errors import ConfigError, StepError
from flownb.loader import parse_config
from flownb.modules.cache import Cache, CacheTypeError, MemoryCache


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


def cache(time: FakeTime, **kwargs: Any) -> MemoryCache:
    return MemoryCache(clock=time, **kwargs)


async def test_set_get_delete(time: FakeTime) -> None:
    c = cache(time)
    assert await c.get("a") is None
    assert await c.get("a", "fallback") == "fallback"
    assert await c.set("a", {"n": 1}) == {"n": 1}
    assert await c.get("a") == {"n": 1}
    assert await c.delete("a") is True
    assert await c.delete("a") is False
    assert await c.get("a") is None


async def test_values_are_copied_in_and_out(time: FakeTime) -> None:
    c = cache(time)
    value = {"items": [1]}
    await c.set("a", value)
    value["items"].append(2)
    got = await c.get("a")
    got["items"].append(3)
    assert await c.get("a") == {"items": [1]}


async def test_entries_expire_after_their_ttl(time: FakeTime) -> None:
    c = cache(time, ttl=10.0)
    await c.set("default", 1)
    await c.set("short", 2, ttl=2)
    await c.set("forever", 3, ttl=0)
    time.now += 2
    assert await c.get("short") is None
    assert await c.get("default") == 1
    time.now += 8
    assert await c.get("default") is None
    assert await c.delete("default") is False
    time.now += 10_000
    assert await c.get("forever") == 3


async def test_least_recently_used_entries_are_evicted(time: FakeTime) -> None:
    c = cache(time, max_size=3)
    for key in "abc":
        await c.set(key, key)
    await c.get("a")  # a is now the most recently used
    await c.set("d", "d")
    assert len(c) == 3
    assert await c.get("b") is None
    assert [await c.get(k) for k in "acd"] == ["a", "c", "d"]


async def test_append_keeps_the_newest_items(time: FakeTime) -> None:
    c = cache(time)
    for n in range(5):
        result = await c.append("recent", n, max_len=3)
    assert result == [2, 3, 4]
    assert await c.get_list("recent") == [2, 3, 4]
    assert await c.get_list("missing") == []
    await c.set("text", "hello")
    with pytest.raises(CacheTypeError, match="holds a str, not a list"):
        await c.append("text", 1)
    with pytest.raises(CacheTypeError):
        await c.get_list("text")


async def test_append_keeps_the_list_expiry_unless_given_a_ttl(time: FakeTime) -> None:
    c = cache(time)
    await c.append("events", 1, ttl=10)
    time.now += 5
    await c.append("events", 2)
    time.now += 5
    assert await c.get_list("events") == []
    await c.append("events", 3, ttl=10)
    time.now += 5
    await c.append("events", 4, ttl=10)
    time.now += 9
    assert await c.get_list("events") == [3, 4]


async def test_incr_counts_and_refuses_non_numbers(time: FakeTime) -> None:
    c = cache(time)
    assert await c.incr("hits") == 1
    assert await c.incr("hits", 5) == 6
    assert await c.incr("hits", -2) == 4
    await c.set("name", "x")
    with pytest.raises(CacheTypeError, match="not a counter"):
        await c.incr("name")
    await c.clear()
    assert len(c) == 0


async def test_module_uses_config_and_the_engine_clock() -> None:
    clock = ManualClock(5000)
    config = parse_config(
        """
modules:
  - {name: sessions, type: cache, config: {ttl: 30s, maxSize: 2}}
"""
    )
    engine = Engine(config, clock=clock)
    await engine.start()
    try:
        module = engine.modules["sessions"]
        assert isinstance(module, Cache)
        await module.set("a", 1)
        await module.set("b", 2)
        await module.set("c", 3)
        assert await module.get("a") is None  # evicted
        clock.advance(30)
        assert await module.get("b") is None  # expired
    finally:
        await engine.stop()


# --- the cache step -----------------------------------------------------------------------

PIPELINES = """
modules:
  - {name: store, type: cache, config: {ttl: 1m}}
pipelines:
  remember:
    - {type: cache, op: set, key: "user:{{ data.id }}", output: saved}
    - {type: cache, op: get, key: "user:{{ data.id }}", name: read}
    - {type: cache, op: incr, key: visits, name: visits}
    - {type: cache, op: incr, key: visits, value: "{{ data.weight }}", name: weighted}
    - type: cache
      op: append
      key: recent
      value: "{{ data.id }}"
      maxLength: 2
      name: recent
    - {type: cache, op: list, key: recent, name: listed}
    - {type: set, values: {steps: "{{ steps }}", saved: "{{ vars.saved }}"}, target: data}
  forget:
    - {type: cache, cache: store, op: delete, key: "user:{{ data.id }}", name: deleted}
    - {type: cache, op: get, key: "user:{{ data.id }}", name: after}
    - {type: set, values: {steps: "{{ steps }}"}, target: data}
  short:
    - {type: cache, op: set, key: temp, value: "{{ data }}", ttl: 5s}
  read_temp:
    - {type: cache, op: get, key: temp, name: temp}
    - {type: set, values: {temp: "{{ steps.temp }}"}, target: data}
  bad_incr:
    - {type: cache, op: incr, key: visits, value: lots}
"""


async def test_cache_step_operations_in_a_pipeline() -> None:
    clock = ManualClock(0)
    engine = Engine(parse_config(PIPELINES), clock=clock)
    await engine.start()
    try:
        out = await engine.trigger_workflow("pipeline", "remember", {"id": 7, "weight": 3})
        steps = out["steps"]
        assert out["saved"] == {"id": 7, "weight": 3}
        assert steps["read"] == {"id": 7, "weight": 3}
        assert steps["visits"] == 1 and steps["weighted"] == 4
        assert steps["recent"] == [7] and steps["listed"] == [7]
        for user in (8, 9):
            out = await engine.trigger_workflow("pipeline", "remember", {"id": user, "weight": 1})
        assert out["steps"]["listed"] == [8, 9]
        assert out["steps"]["visits"] == 7 and out["steps"]["weighted"] == 8
        gone = await engine.trigger_workflow("pipeline", "forget", {"id": 7})
        assert gone["steps"]["deleted"] is True and gone["steps"]["after"] is None

        await engine.trigger_workflow("pipeline", "short", {"v": 1})
        assert (await engine.trigger_workflow("pipeline", "read_temp", {}))["temp"] == {"v": 1}
        clock.advance(5)
        assert (await engine.trigger_workflow("pipeline", "read_temp", {}))["temp"] is None

        with pytest.raises(StepError) as info:
            await engine.trigger_workflow("pipeline", "bad_incr", {})
        assert info.value.status == 400 and "'lots' is not a whole number" in str(info.value)
    finally:
        await engine.stop()


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("{type: cache, op: get, key: k, maxLength: 3}", "maxLength applies only to op: append"),
        ("{type: cache, op: list, key: k, ttl: 5s}", "ttl does not apply to op: list"),
        ("{type: cache, op: delete, key: k, value: 1}", "value does not apply to op: delete"),
        ("{type: cache, op: fetch, key: k}", "op"),
        ("{type: cache, op: get}", "key"),
    ],
)
def test_misused_cache_steps_are_config_errors(step: str, message: str) -> None:
    text = f"""
modules:
  - {{name: store, type: cache}}
pipelines:
  p: [{step}]
"""
    with pytest.raises(ConfigError, match=message):
        parse_config(text)


def test_the_cache_must_be_named_when_there_are_several() -> None:
    text = """
modules:
  - {name: a, type: cache}
  - {name: b, type: cache}
pipelines:
  p: [{type: cache, op: get, key: k}]
"""
    with pytest.raises(ConfigError, match="several modules provide 'cache': a, b"):
        parse_config(text)
