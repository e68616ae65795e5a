"""The canvas in a real JupyterLab in real Chromium, bound to a workflow in the kernel.

One notebook, one story: draw a `%%workflow`, edit it on the canvas (palette drop, property
edit, new connection) and check after each step that Python sees the change; run it, send a
request, see the node turn ok; export YAML and check it equals the kernel's config. No request
may leave the machine (the `page` fixture fails the test otherwise).
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import ARTIFACTS, Lab, open_notebook, run_cell, visible_panel

HELLO = """%%workflow hello
modules:
  - name: server
    type: http.server
    config: {address: "127.0.0.1:0"}
  - name: router
    type: http.router
workflows:
  http:
    routes:
      - {method: GET, path: /hello, handler: greet}
pipelines:
  greet:
    - type: respond
      body: {hello: world, q: "{{ request.query.n }}"}
"""

CELLS = [
    "%load_ext flownb",
    HELLO,
    # 2: what Python sees of the workflow, as one JSON line the test can read back
    "import json\nprint(json.dumps({'raw': hello.raw, 'layout': hello.layout, "
    "'revision': hello.revision, 'valid': hello.valid}))",
    "%workflow run hello",
    "%workflow send hello http GET /hello?n=7",
]


def kernel_view(page: Page) -> dict[str, Any]:
    """Run the inspection cell and parse what Python printed."""
    out = run_cell(page, 2)
    line = next(line for line in out.splitlines() if line.startswith("{"))
    return json.loads(line)  # type: ignore[no-any-return]


def node(canvas: Locator, node_id: str) -> Locator:
    return canvas.locator(f'.react-flow__node[data-id="{node_id}"]')


def drag(page: Page, source: Locator, target_x: float, target_y: float) -> None:
    box = source.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(target_x, target_y, steps=12)
    page.mouse.up()


def test_canvas_edits_reach_python_and_the_run_lights_up(lab: Lab, page: Page) -> None:
    open_notebook(page, lab, lab.notebook("canvas.ipynb", CELLS))
    run_cell(page, 0)
    run_cell(page, 1)
    canvas = visible_panel(page).locator('[data-testid="flownb-canvas"]')
    expect(canvas).to_be_visible(timeout=30_000)
    expect(canvas.locator(".react-flow__node")).to_have_count(3, timeout=30_000)
    for node_id in ("module:server", "module:router", "pipeline:greet"):
        expect(node(canvas, node_id)).to_be_visible()
    expect(canvas.locator('[data-testid="rf__edge-route:0"]')).to_have_count(1)
    start = kernel_view(page)
    assert start["valid"] and [m["name"] for m in start["raw"]["modules"]] == ["server", "router"]

    # 1. a palette item dropped on the canvas becomes a module in Python
    canvas.locator('[data-testid="palette-search"]').fill("cache")
    item = canvas.locator('[data-testid="palette-item-cache"]')
    pane = canvas.locator(".react-flow__pane")
    pane_box = pane.bounding_box()
    assert pane_box is not None
    item.drag_to(pane, target_position={"x": pane_box["width"] * 0.75, "y": 60})
    expect(canvas.locator(".react-flow__node")).to_have_count(4, timeout=10_000)
    seen = kernel_view(page)
    added = [m for m in seen["raw"]["modules"] if m["type"] == "cache"]
    assert len(added) == 1, seen["raw"]["modules"]
    cache = added[0]["name"]
    assert f"module:{cache}" in seen["layout"], "the drop position reached Python"
    assert seen["revision"] > start["revision"]

    # 2. a property edited in the panel reaches the module's config
    node(canvas, f"module:{cache}").click()
    field = canvas.locator('[data-testid="field-config.ttl"]')
    field.fill("5m")
    field.press("Enter")
    expect(canvas.locator('[data-testid="field-error-config.ttl"]')).to_have_count(0)
    seen = kernel_view(page)
    assert next(m for m in seen["raw"]["modules"] if m["name"] == cache)["config"] == {"ttl": "5m"}

    # an invalid value is refused in the panel and never reaches Python
    field = canvas.locator('[data-testid="field-config.maxSize"]')
    field.fill("-3")
    field.press("Enter")
    expect(canvas.locator('[data-testid="field-error-config.maxSize"]')).to_be_visible()
    seen = kernel_view(page)
    assert "maxSize" not in next(m for m in seen["raw"]["modules"] if m["name"] == cache)["config"]
    page.keyboard.press("Escape")

    # 3. connecting two nodes adds the entry the pair implies (module -> module: dependsOn)
    source = node(canvas, f"module:{cache}").locator(".react-flow__handle.source")
    target = node(canvas, "module:server").locator(".react-flow__handle.target")
    target_box = target.bounding_box()
    assert target_box is not None
    drag(
        page,
        source,
        target_box["x"] + target_box["width"] / 2,
        target_box["y"] + target_box["height"] / 2,
    )
    expect(canvas.locator(f'[data-testid="rf__edge-dependsOn:{cache}:server"]')).to_have_count(
        1, timeout=10_000
    )
    seen = kernel_view(page)
    assert next(m for m in seen["raw"]["modules"] if m["name"] == cache)["dependsOn"] == ["server"]
    assert seen["valid"]

    # undo and redo from the keyboard reach Python too
    canvas.locator(".react-flow__pane").click(position={"x": 20, "y": 20})
    page.keyboard.press("Control+z")
    expect(canvas.locator(f'[data-testid="rf__edge-dependsOn:{cache}:server"]')).to_have_count(0)
    seen = kernel_view(page)
    assert not next(m for m in seen["raw"]["modules"] if m["name"] == cache).get("dependsOn")
    canvas.locator(".react-flow__pane").click(position={"x": 20, "y": 20})
    page.keyboard.press("Control+Shift+z")
    expect(canvas.locator(f'[data-testid="rf__edge-dependsOn:{cache}:server"]')).to_have_count(1)

    # an edit the engine refuses is kept and shown on its node, and never reaches the engine
    node(canvas, "module:server").click()
    field = canvas.locator('[data-testid="field-config.address"]')
    field.fill("nonsense")
    field.press("Enter")
    marker = canvas.locator('[data-testid="diagnostic-module:server"]')
    expect(marker).to_be_visible(timeout=10_000)
    seen = kernel_view(page)
    assert seen["raw"]["modules"][0]["config"]["address"] == "nonsense"
    assert seen["valid"] is False
    field = canvas.locator('[data-testid="field-config.address"]')
    field.fill("127.0.0.1:0")
    field.press("Enter")
    expect(marker).to_have_count(0, timeout=10_000)
    assert kernel_view(page)["valid"]
    page.keyboard.press("Escape")

    # 4. run in the kernel, send a request, the handler's node turns ok
    run_cell(page, 3)
    expect(canvas.locator('[data-testid="running"]')).to_be_visible(timeout=30_000)
    run_cell(page, 4)  # the reply replaces a placeholder when it arrives
    reply = visible_panel(page).locator(".jp-CodeCell").nth(4).locator(".jp-OutputArea")
    expect(reply).to_contain_text("world", timeout=10_000)
    assert "7" in reply.inner_text()
    status = canvas.locator('[data-testid="status-pipeline:greet"]')
    expect(status).to_have_attribute("data-status", "ok", timeout=10_000)

    ARTIFACTS.mkdir(exist_ok=True)
    canvas.screenshot(path=str(ARTIFACTS / "canvas-running.png"))

    # 5. the exported YAML is the kernel's config
    canvas.locator('[data-testid="toolbar-export"]').click()
    exported = canvas.locator('[data-testid="export-yaml"]').input_value()
    assert yaml.safe_load(exported) == {
        k: v for k, v in kernel_view(page)["raw"].items() if k != "layout"
    }
