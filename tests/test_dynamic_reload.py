"""Hot reload: saving a file swaps versions atomically while calls run; bad saves keep the
old version; deleting unregisters; new files appear."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flownb.dynamic import ComponentRegistry, ComponentWatcher, Options, load_directory


def version(n: int, *, spin: bool = False) -> str:
    body = "    total = 0\n    for i in range(20000):\n        total += i\n" if spin else ""
    return f"name = 'calc'\ndef execute(ctx, data):\n{body}    return {{'version': {n}}}\n"


def save(path: Path, text: str) -> None:
    """Write the way editors do: a temporary file renamed over the old one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture(params=[False, True], ids=["isolated", "trusted"])
async def watched(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[ComponentRegistry, ComponentWatcher, Path]]:
    (tmp_path / "calc.py").write_text(version(1))
    registry = ComponentRegistry(Options(trusted=request.param, pool_size=2), autostart=True)
    assert load_directory(registry, tmp_path) == []
    await registry.start_all()
    watcher = ComponentWatcher(registry, tmp_path, debounce_ms=50)
    await watcher.start()
    try:
        yield registry, watcher, tmp_path
    finally:
        await watcher.stop()
        await registry.close()


async def test_save_while_calls_run(
    watched: tuple[ComponentRegistry, ComponentWatcher, Path],
) -> None:
    registry, watcher, folder = watched
    component = registry.get("calc")
    seen: list[int] = []
    failures: list[BaseException] = []
    swapped, flowing = asyncio.Event(), asyncio.Event()

    async def caller() -> None:
        while True:
            try:
                result = await component.execute({})
            except Exception as exc:
                failures.append(exc)
                return
            seen.append(result["version"])
            if len(seen) >= 8:
                flowing.set()
            if swapped.is_set():
                return
            await asyncio.sleep(0)  # a trusted call never suspends; let the watcher run

    callers = [asyncio.create_task(caller()) for _ in range(4)]
    async with asyncio.timeout(10):
        await flowing.wait()  # calls are flowing on version 1
    save(folder / "calc.py", version(2, spin=True))
    assert await watcher.wait_until(lambda: component.version == 2, timeout=10)
    swapped.set()
    await asyncio.gather(*callers)
    assert failures == []
    assert set(seen) <= {1, 2} and 1 in seen
    assert seen[-1] == 2
    assert await component.execute({}) == {"version": 2}
    assert component.state == "running"


async def test_invalid_save_keeps_old_version(
    watched: tuple[ComponentRegistry, ComponentWatcher, Path],
) -> None:
    registry, watcher, folder = watched
    component = registry.get("calc")
    save(folder / "calc.py", "name = 'calc'\nimport os\ndef execute(ctx, data):\n    return {}\n")
    assert await watcher.wait_until(lambda: component.last_error is not None, timeout=10)
    assert "calc.py:2:1: import of 'os' is not allowed" in str(component.last_error)
    assert await component.execute({}) == {"version": 1}
    info = registry.list()[0]
    assert (info.state, info.version) == ("running", 1) and info.last_error
    save(folder / "calc.py", version(3))
    assert await watcher.wait_until(lambda: component.version == 2, timeout=10)
    assert component.last_error is None
    assert await component.execute({}) == {"version": 3}


async def test_delete_unregisters_and_new_file_appears(
    watched: tuple[ComponentRegistry, ComponentWatcher, Path],
) -> None:
    registry, watcher, folder = watched
    component = registry.get("calc")
    (folder / "calc.py").unlink()
    assert await watcher.wait_until(lambda: "calc" not in registry, timeout=10)
    assert component.state == "unloaded"
    (folder / "fresh.py").write_text("def execute(ctx, data):\n    return {'fresh': True}\n")
    assert await watcher.wait_until(
        lambda: "fresh" in registry and registry.get("fresh").state == "running", timeout=10
    )
    assert await registry.execute("fresh", {}) == {"fresh": True}
