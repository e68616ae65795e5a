"""Run every benchmark in turn (what `make bench` does); each records bench/results/*.json."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
SCRIPTS = [
    "pipeline.py",
    "build.py",
    "rss.py",
    "components.py",
    "canvas.py",
    "http_vs_nodered.py",
    "database.py",
    "brokers.py",
    "history.py",
    "history_writes.py",
    "http_observability.py",
]


def main() -> int:
    failed = []
    for script in SCRIPTS:
        print(f"== {script}", flush=True)
        if subprocess.run(
            [sys.executable, str(HERE / script)], cwd=HERE.parent, check=False
        ).returncode:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
