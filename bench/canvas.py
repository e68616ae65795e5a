"""Browser benchmark of the canvas: time to first render and to interactive, and the frame time
while dragging a node, on a generated config (500 nodes by default), in Debian's Chromium.

    python bench/canvas.py [--nodes 500] [--runs 3]

Builds the standalone benchmark page (`npm run --prefix extension build -- --bench`, the same
canvas bundle plus a page that generates the config), serves it from 127.0.0.1 (every other
request is aborted and counted) and records the medians in bench/results/canvas.json.
Targets: interactive < 1.5 s, drag frames < 50 ms.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import shutil
import statistics
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from common import record
from playwright.sync_api import Route, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "extension" / "bench" / "dist"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve() -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(Quiet, directory=str(DIST))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def run_once(page: Any, url: str, nodes: int) -> dict[str, float]:
    page.goto(f"{url}?nodes={nodes}")
    page.wait_for_function("window.flownbBench?.interactiveMs !== undefined", timeout=60_000)
    bench = page.evaluate(
        "({f: window.flownbBench.firstRenderMs, i: window.flownbBench.interactiveMs})"
    )
    target = page.locator('.react-flow__node[data-id="module:api-10"]')
    box = target.bounding_box()
    assert box is not None, "the node to drag is not on screen"
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.evaluate("window.flownbBench.startFrames()")
    for step in range(1, 121):
        page.mouse.move(x + step * 2, y + step)
        page.evaluate("new Promise(requestAnimationFrame)")
    frames = page.evaluate("window.flownbBench.stopFrames()")
    page.mouse.up()
    moved = target.bounding_box()
    if moved is None or moved["x"] < box["x"] + 100:
        page.screenshot(path=str(DIST / "drag-failed.png"))
        raise AssertionError(f"the drag did not move the node: {box} -> {moved}")
    frames = frames[1:] or [0.0]
    return {
        "firstRenderMs": round(bench["f"], 1),
        "interactiveMs": round(bench["i"], 1),
        "dragFrameMeanMs": round(statistics.mean(frames), 1),
        "dragFrameP95Ms": round(sorted(frames)[int(0.95 * (len(frames) - 1))], 1),
        "dragFrameMaxMs": round(max(frames), 1),
        "dragFrames": len(frames),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    subprocess.run(
        ["npm", "run", "--prefix", str(ROOT / "extension"), "build", "--", "--bench"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    server, url = serve()
    blocked: list[str] = []

    def guard(route: Route) -> None:
        host = urlparse(route.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    runs = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.route("**/*", guard)
        for _ in range(args.runs):
            runs.append(run_once(page, url, args.nodes))
        browser.close()
    server.shutdown()
    result = {
        "nodes": args.nodes,
        "runs": runs,
        "median": {k: statistics.median(r[k] for r in runs) for k in runs[0]},
        "blockedRequests": blocked,
    }
    result["targets"] = {"interactive_ms": 1500, "drag_frame_ms": 50}
    path = record("canvas", result)
    print(json.dumps(result["median"], indent=1), "->", path)
    return 1 if blocked else 0


if __name__ == "__main__":
    sys.exit(main())
