"""The hello HTTP benchmark with metrics and history on and off.

Four servers run `examples/hello/hello.yaml` in turn, each pinned to CPU 0 (wrk on CPU 1,
`wrk -t1 -c50 -d10s` after a 3 s warm-up): `plain` (the engine alone, as `flownb run` served
before metrics and history), `metrics` (the engine counting requests and executions),
`metrics+history` (an `EngineService` recording every execution into a SQLite history
written by its writer process, as `flownb run` does), and
`flownb run` as it runs by default (metrics, SQLite history, management API). Rounds
alternate the servers; the best round of each is kept.

    python bench/http_observability.py [--duration 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import record
from http_vs_nodered import pin, require_wrk, wait_for, wrk

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "hello" / "hello.yaml"
ADDRESS = "127.0.0.1:18095"
MODES = ("plain", "metrics", "metrics+history", "flownb run")


async def serve(mode: str, folder: str) -> None:
    """Serve the hello example until terminated (the server side of one mode)."""
    import signal

    from flownb import Engine, load_config
    from flownb.historydb import SqlHistory
    from flownb.metrics import Metrics
    from flownb.service import EngineService

    config = load_config(HELLO)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    if mode == "metrics+history":
        store = SqlHistory(f"sqlite:///{folder}/history.db", writer="process")
        service = EngineService(config, history=store)
        await service.start()
        await stop.wait()
        await service.stop()
        await store.aclose()
        return
    engine = Engine(config, metrics=Metrics() if mode == "metrics" else None)
    await engine.start()
    await stop.wait()
    await engine.stop()


def start(mode: str, folder: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HELLO_ADDRESS": ADDRESS, "FLOWNB_DATA_DIR": folder}
    if mode == "flownb run":
        command = [sys.executable, "-m", "flownb", "--log-level", "WARNING", "run", str(HELLO)]
        env["FLOWNB_API_ADDRESS"] = "127.0.0.1:0"
    else:
        command = [sys.executable, __file__, "--serve", mode, "--folder", folder]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve", choices=MODES)
    parser.add_argument("--folder")
    args = parser.parse_args()
    if args.serve:
        import uvloop

        uvloop.run(serve(args.serve, args.folder))
        return
    require_wrk()
    url = f"http://{ADDRESS}/hello?n=1"
    best: dict[str, dict[str, Any]] = {}
    for _ in range(args.rounds):
        for mode in MODES:
            with tempfile.TemporaryDirectory() as folder:
                proc = start(mode, folder)
                try:
                    wait_for(url)
                    pin(proc.pid, 0)
                    result = wrk(url, args.duration)
                finally:
                    proc.terminate()
                    proc.wait(timeout=60)
            if result["requests_per_second"] > best.get(mode, {}).get("requests_per_second", 0):
                best[mode] = result
    plain = best["plain"]["requests_per_second"]
    for mode in MODES:
        best[mode]["loss_percent"] = round((1 - best[mode]["requests_per_second"] / plain) * 100, 1)
        print(
            f"{mode:16} {best[mode]['requests_per_second']:>9,.0f} req/s  "
            f"p50 {best[mode]['p50_ms']} ms  p99 {best[mode]['p99_ms']} ms  "
            f"({best[mode]['loss_percent']}% below plain)"
        )
    print(f"-> {record('http_observability', {'duration': args.duration, **best})}")


if __name__ == "__main__":
    main()
