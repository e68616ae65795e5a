"""flownb vs Node-RED on the same flow, same client, same run.

Flow on both sides: GET /hello?n=1 -> build {"hello": "world", "q": n} -> JSON reply
(flownb: examples/hello/hello.yaml; Node-RED: the kit in ../shared/bench/nodered/).
Each server is pinned to CPU 0 and wrk to CPU 1; after a 3 s warm-up, `wrk -t1 -c50 -d10s
--latency` loads each in turn. Prints req/s, p50, p99, RSS and the ratios.
Targets: flownb >= 3x Node-RED's req/s with a lower p99.

Needs wrk (Debian: apt-get install wrk) and the Node-RED kit (installs Node-RED with npm on
first use).

    python bench/http_vs_nodered.py [--duration 10] [--kit ../shared/bench/nodered]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import record

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_KIT = ROOT.parent / "shared" / "bench" / "nodered"
FLOWNB_ADDRESS = "127.0.0.1:18080"
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wait_for(url: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {seconds:g}s")


def pin(pid: int, core: int) -> None:
    if shutil.which("taskset"):
        subprocess.run(
            ["taskset", "-a", "-cp", str(core), str(pid)], check=False, capture_output=True
        )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def to_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(f"cannot read latency {text!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def require_wrk() -> None:
    """Stop with what to install when the load generator is missing."""
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")


def wrk(url: str, duration: int) -> dict[str, float]:
    base = ["taskset", "-c", "1"] if shutil.which("taskset") else []
    subprocess.run([*base, "wrk", "-t1", "-c50", "-d3s", url], check=True, capture_output=True)
    out = subprocess.run(
        [*base, "wrk", "-t1", "-c50", f"-d{duration}s", "--latency", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    # The latency distribution's lines ("     99%    4.45ms"), not a "+/- Stdev" column.
    p50 = to_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = to_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests_per_second": round(rps),
        "p50_ms": round(p50, 3),
        "p99_ms": round(p99, 3),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--kit", type=Path, default=DEFAULT_KIT)
    args = parser.parse_args()
    require_wrk()
    kit = args.kit / "run.sh"
    if not kit.exists():
        raise SystemExit(f"Node-RED kit not found at {args.kit}")

    flownb_url = f"http://{FLOWNB_ADDRESS}/hello?n=1"
    data = tempfile.TemporaryDirectory()  # the history database and the API tokens
    env = {
        **os.environ,
        "HELLO_ADDRESS": FLOWNB_ADDRESS,
        "FLOWNB_DATA_DIR": data.name,
        "FLOWNB_API_ADDRESS": "127.0.0.1:0",
    }
    flownb_proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flownb",
            "--log-level",
            "WARNING",
            "run",
            str(ROOT / "examples" / "hello" / "hello.yaml"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(flownb_url)
        pin(flownb_proc.pid, 0)
        subprocess.run(["bash", str(kit), "start"], check=True)
        nodered_url = subprocess.run(
            ["bash", str(kit), "url"], check=True, capture_output=True, text=True
        ).stdout.strip()
        wait_for(nodered_url)
        home = Path(os.environ.get("NODERED_HOME", Path.home() / ".cache" / "flownb-nodered"))
        nodered_pid = int((home / "nodered.pid").read_text())
        pin(nodered_pid, 0)
        with urllib.request.urlopen(flownb_url) as a, urllib.request.urlopen(nodered_url) as b:
            same = a.read().replace(b" ", b"") == b.read().replace(b" ", b"")
        flownb = wrk(flownb_url, args.duration) | {"rss_mb": rss_mb(flownb_proc.pid)}
        nodered = wrk(nodered_url, args.duration) | {"rss_mb": rss_mb(nodered_pid)}
    finally:
        flownb_proc.terminate()
        flownb_proc.wait(timeout=30)
        subprocess.run(["bash", str(kit), "stop"], check=False)

    ratio = flownb["requests_per_second"] / nodered["requests_per_second"]
    result = {
        "client": f"wrk -t1 -c50 -d{args.duration}s --latency (after 3 s warm-up), "
        "server on CPU 0, client on CPU 1",
        "same_reply_body": same,
        "flownb": flownb,
        "nodered": nodered,
        "rps_ratio": round(ratio, 2),
        "p99_ratio": round(flownb["p99_ms"] / nodered["p99_ms"], 2),
        "targets": {"rps_ratio_min": 3.0, "p99": "lower than Node-RED's"},
    }
    path = record("http_vs_nodered", result)
    print(f"{'':10} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'RSS MB':>8}")
    for name, row in (("flownb", flownb), ("Node-RED", nodered)):
        print(
            f"{name:10} {row['requests_per_second']:>10,} {row['p50_ms']:>8} "
            f"{row['p99_ms']:>8} {row['rss_mb']:>8}"
        )
    print(
        f"ratio: {ratio:.2f}x req/s, p99 {result['p99_ratio']}x; identical replies: {same} "
        f"-> {path}"
    )


if __name__ == "__main__":
    main()
