"""The canvas' AI prompt box in a real JupyterLab in real Chromium: the intent typed in the
box reaches the kernel, which generates against the fake Anthropic API (started in the
kernel, on loopback), validates, and applies the result; the canvas redraws it."""

from __future__ import annotations

import json

from playwright.sync_api import Page, expect

from tests.browser.conftest import ARTIFACTS, Lab, open_notebook, run_cell, visible_panel

HELLO = """modules:
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
      body: {hello: world}
"""
BYE = HELLO.replace("/hello", "/bye").replace("greet", "bye")

CELLS = [
    "%load_ext flownb",
    "import os\n"
    "from flownb.testing import FakeAnthropic, Reply\n"
    f"fake = FakeAnthropic([Reply.submit_workflow({BYE!r}, explanation='Says bye.')]).start()\n"
    "os.environ.update(fake.env())",
    "%%workflow hello\n" + HELLO,
    "import json\nprint(json.dumps({'routes': hello.raw['workflows']['http']['routes'], "
    "'asked': fake.requests[0].last_text() if fake.requests else ''}))",
]


def test_the_prompt_box_generates_through_the_kernel(lab: Lab, page: Page) -> None:
    open_notebook(page, lab, lab.notebook("ai-prompt.ipynb", CELLS))
    for index in range(3):
        run_cell(page, index)
    canvas = visible_panel(page).locator('[data-testid="flownb-canvas"]')
    expect(canvas.locator('.react-flow__node[data-id="pipeline:greet"]')).to_be_visible(
        timeout=30_000
    )
    canvas.locator('[data-testid="toolbar-ai"]').click()
    canvas.locator('[data-testid="ai-prompt-input"]').fill("say bye instead of hello")
    canvas.locator('[data-testid="ai-prompt-generate"]').click()
    status = canvas.locator('[data-testid="ai-prompt-status"]')
    expect(status).to_have_attribute("data-status", "done", timeout=30_000)
    expect(canvas.locator('[data-testid="ai-prompt-explanation"]')).to_have_text("Says bye.")
    expect(canvas.locator('.react-flow__node[data-id="pipeline:bye"]')).to_be_visible()
    expect(canvas.locator('.react-flow__node[data-id="pipeline:greet"]')).to_have_count(0)
    ARTIFACTS.mkdir(exist_ok=True)
    canvas.screenshot(path=str(ARTIFACTS / "ai-prompt-done.png"))
    out = run_cell(page, 3)
    seen = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    assert seen["routes"] == [{"method": "GET", "path": "/bye", "handler": "bye"}]
    assert "say bye instead of hello" in seen["asked"] and "path: /hello" in seen["asked"]
