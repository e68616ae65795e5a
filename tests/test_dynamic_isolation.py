"""Worker pools: calls in parallel, the engine responsive while a component spins, workers
replaced after violations and cancellations, and no process left behind."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from flownb.dynamic import (
    ComponentError,
    ComponentRegistry,
    LimitExceeded,
    Limits,
    Options,
    load_string,
)
from flownb.dynamic.pool import WorkerPool


def children() -> set[int]:
    """Live (not zombie) child processes of this test process."""
    found = set()
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[1] == me and fields[0] != "Z":
            found.add(int(entry.name))
    return found


@pytest.fixture(autouse=True)
def no_leftover_workers() -> Any:
    before = children()
    yield
    assert children() - before == set()


BARRIER = """
svc = {}
def init(config, services):
    svc["s"] = services
async def execute(ctx, data):
    await svc["s"].call("barrier", {})
    return {"n": data["n"]}
"""


async def test_pool_serves_calls_in_parallel() -> None:
    """Each call waits in the parent until both are inside a worker: one worker would hang."""
    arrived = 0
    both = asyncio.Event()

    async def barrier(name: str, data: Any, parent: Any) -> Any:
        nonlocal arrived
        arrived += 1
        if arrived == 2:
            both.set()
        await both.wait()
        return None

    registry = ComponentRegistry(Options(pool_size=2), services=barrier, requires=["barrier"])
    component = registry.register(load_string(BARRIER, name="par"))
    await component.start()
    try:
        async with asyncio.timeout(10):
            results = await asyncio.gather(component.execute({"n": 1}), component.execute({"n": 2}))
        assert results == [{"n": 1}, {"n": 2}]
    finally:
        await registry.close()


async def test_engine_stays_responsive_while_a_component_spins() -> None:
    spin = ComponentRegistry(Options(limits=Limits(cpu_seconds=30, timeout=2.0)))
    spinner = spin.register(
        load_string("def execute(ctx, data):\n    while True:\n        pass\n", name="spin")
    )
    quick = ComponentRegistry(Options())
    echo = quick.register(load_string("def execute(ctx, data):\n    return data\n", name="echo"))
    await spinner.start()
    await echo.start()
    try:
        stuck = asyncio.create_task(spinner.execute({}))
        for i in range(20):
            assert await echo.execute({"i": i}) == {"i": i}
        assert not stuck.done()  # still spinning in its own process, not blocking us
        with pytest.raises(LimitExceeded, match="wall-time limit of 2 s"):
            await stuck
    finally:
        await spin.close()
        await quick.close()


async def test_cancelled_call_replaces_the_worker() -> None:
    registry = ComponentRegistry(Options(limits=Limits(cpu_seconds=30, timeout=30)))
    source = (
        "def execute(ctx, data):\n    while data.get('spin'):\n        pass\n    return {'ok': 1}\n"
    )
    component = registry.register(load_string(source, name="cancel"))
    await component.start()
    try:
        task = asyncio.create_task(component.execute({"spin": True}))
        await asyncio.sleep(0)  # let it send the call
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await component.execute({}) == {"ok": 1}
    finally:
        await registry.close()


async def test_state_is_per_worker_and_survives_calls() -> None:
    source = "count = {'n': 0}\ndef execute(ctx, data):\n    count['n'] += 1\n    return count\n"
    registry = ComponentRegistry(Options())
    component = registry.register(load_string(source, name="count"))
    await component.start()
    try:
        assert [await component.execute({}) for _ in range(3)] == [{"n": 1}, {"n": 2}, {"n": 3}]
    finally:
        await registry.close()


async def test_load_failure_in_worker_reports_reason() -> None:
    source = "x = 1 / 0\ndef execute(ctx, data):\n    return {}\n"
    registry = ComponentRegistry(Options())
    component = registry.register(load_string(source, name="zero"))
    with pytest.raises(ComponentError, match=r"ZeroDivisionError: division by zero \(line 1\)"):
        await component.start()
    assert component.state == "error"
    await registry.close()


async def test_top_level_code_is_limited_too() -> None:
    source = "while True:\n    pass\ndef execute(ctx, data):\n    return {}\n"
    registry = ComponentRegistry(Options(limits=Limits(cpu_seconds=0.3)))
    component = registry.register(load_string(source, name="toplevel"))
    with pytest.raises(LimitExceeded, match=r"CPU time limit of 0\.3 s"):
        await component.start()
    await registry.close()


async def test_pool_close_ends_every_worker() -> None:
    source = load_string("def execute(ctx, data):\n    return {}\n", name="p")
    pool = WorkerPool(source, Options(pool_size=3))
    await pool.open()
    pids = {w.proc.pid for w in pool._workers}
    assert len(pids) == 3 and pids <= children()
    await pool.close()
    assert not pids & children()
    with pytest.raises(ComponentError, match="is stopped"):
        await pool.execute({}, {})
