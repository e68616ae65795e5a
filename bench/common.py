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


def cpu_seconds(pid: int | None) -> float:
    """User and system CPU seconds of a process so far (Linux' /proc; 0 elsewhere)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_seconds() -> float:
    """CPU seconds so far of the local PostgreSQL server's processes, all of them."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().startswith("postgres"):
                total += cpu_seconds(int(entry.name))
        except OSError:
            continue  # ended meanwhile
    return total
