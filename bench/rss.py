"""Idle memory of `flownb run` on the hello example.

Target: < 80 MB resident. Starts the service as it runs by default (metrics, the SQLite
execution history, the management API), waits until it answers, makes a few requests, lets
it idle for two seconds, then reads VmRSS from /proc.

    python bench/rss.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import record
from http_vs_nodered import rss_mb, wait_for

ROOT = Path(__file__).resolve().parent.parent
ADDRESS = "127.0.0.1:18090"


def main() -> None:
    url = f"http://{ADDRESS}/hello?n=1"
    data = tempfile.TemporaryDirectory()  # the history database and the API tokens
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flownb",
            "--log-level",
            "WARNING",
            "run",
            str(ROOT / "examples" / "hello" / "hello.yaml"),
        ],
        env={
            **os.environ,
            "HELLO_ADDRESS": ADDRESS,
            "FLOWNB_DATA_DIR": data.name,
            "FLOWNB_API_ADDRESS": "127.0.0.1:0",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(url)
        for _ in range(100):
            with urllib.request.urlopen(url) as reply:
                reply.read()
        time.sleep(2)
        rss = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        data.cleanup()
    result = {"rss_mb": rss, "target_mb": 80, "config": "examples/hello/hello.yaml"}
    path = record("rss", result)
    print(f"idle RSS of flownb run (hello): {rss} MB -> {path}")


if __name__ == "__main__":
    main()
