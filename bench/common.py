"""Helpers shared by the benchmark scripts: CPU pinning, machine facts, result records."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def pin_to_core(core: int = 0) -> None:
    """Run this process on one core, so figures mean 'per core' and do not fight the client."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def record(name: str, result: dict[str, Any]) -> Path:
    """Write a result with its date and machine to bench/results/NAME.json."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        **result,
    }
    path.write_text(json.dumps(payload, indent=2))
    return path
