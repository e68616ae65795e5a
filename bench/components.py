"""Dynamic components: per-call overhead (isolated and trusted) and save-to-live reload time.

Targets: isolated p50 <= 300 us, trusted <= 20 us per call, reload <= 1 s.

- Per call: `Component.execute` on a component whose `execute` only reads one field and
  returns a dict, so the time is the overhead: JSON check and copy both ways, the ctx view,
  and for isolated components the frame to the worker process and back. Calls are back to
  back on one task after a warm-up; each is timed on its own for p50/p99.
- Reload: a watched directory; a new version is written (temporary file renamed over the
  old one, as editors save); the time runs from the rename to the first call that returns
  the new version (the registry's swap is awaited through the watcher, then one call).

    python bench/components.py [--calls 20000] [--reloads 10] [--loop asyncio|uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import record

from flownb.dynamic import ComponentRegistry, ComponentWatcher, Options, load_directory
from flownb.dynamic.registry import Component

SOURCE = "name = 'echo'\ndef execute(ctx, data):\n    return {'n': data['n'], 'v': VERSION}\n"


def source(version: int) -> str:
    return SOURCE.replace("VERSION", str(version))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def per_call(trusted: bool, calls: int, pool_size: int = 1) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="flownb-bench-"))
    (folder / "echo.py").write_text(source(1))
    registry = ComponentRegistry(Options(trusted=trusted, pool_size=pool_size))
    load_directory(registry, folder)
    component = registry.get("echo")
    await component.start()
    try:
        data = {"n": 1}
        assert await component.execute(data) == {"n": 1, "v": 1}
        for _ in range(min(2000, calls)):
            await component.execute(data)
        timings: list[float] = []
        clock = time.perf_counter_ns
        started = clock()
        for i in range(calls):
            data = {"n": i}
            t0 = clock()
            await component.execute(data)
            timings.append((clock() - t0) / 1000)
        total = (clock() - started) / 1e9
    finally:
        await registry.close()
    return {
        "calls": calls,
        "p50_us": round(percentile(timings, 0.5), 1),
        "p99_us": round(percentile(timings, 0.99), 1),
        "mean_us": round(statistics.fmean(timings), 1),
        "calls_per_s": round(calls / total),
    }


async def reload_latency(trusted: bool, reloads: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="flownb-bench-"))
    path = folder / "echo.py"
    path.write_text(source(1))
    registry = ComponentRegistry(Options(trusted=trusted), autostart=True)
    load_directory(registry, folder)
    await registry.start_all()
    component: Component = registry.get("echo")
    watcher = ComponentWatcher(registry, folder)
    await watcher.start()
    times: list[float] = []
    try:
        for version in range(2, reloads + 2):
            tmp = folder / ".echo.tmp"
            tmp.write_text(source(version))
            before = component.version
            saved = time.perf_counter()
            os.replace(tmp, path)
            assert await watcher.wait_until(lambda b=before: component.version > b, timeout=10)
            assert (await component.execute({"n": 0}))["v"] == version
            times.append(time.perf_counter() - saved)
    finally:
        await watcher.stop()
        await registry.close()
    return {
        "reloads": reloads,
        "median_s": round(statistics.median(times), 3),
        "max_s": round(max(times), 3),
        "debounce_ms": watcher.debounce_ms,
    }


async def main(calls: int, reloads: int) -> dict[str, Any]:
    return {
        "isolated": await per_call(False, calls),
        "trusted": await per_call(True, calls * 5),
        "reload_isolated": await reload_latency(False, reloads),
        "reload_trusted": await reload_latency(True, reloads),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--reloads", type=int, default=10)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        result = uvloop.run(main(args.calls, args.reloads))
    else:
        result = asyncio.run(main(args.calls, args.reloads))
    result["loop"] = args.loop
    result["targets"] = {"isolated_p50_us": 300, "trusted_us": 20, "reload_s": 1.0}
    print(record(f"components_{args.loop}", result))
    for key, value in result.items():
        print(f"{key}: {value}")
