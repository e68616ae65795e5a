"""A real JupyterLab in real Chromium, offline: the fixtures every browser test uses.

JupyterLab is started by the test on 127.0.0.1 with a token and a temporary root; Chromium is
Debian's (`/usr/bin/chromium`, installed by `make test` when missing), never a downloaded one.
Every request that is not to loopback is aborted and recorded; a test fails if any was tried.
Screenshots go to `test-artifacts/`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Browser, Page, Playwright, Route, sync_playwright

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Lab:
    """A running JupyterLab: its URL, token and root directory."""

    url: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]

    def notebook(self, name: str, cells: list[str]) -> str:
        """Write a notebook with these code cells; returns its path relative to the root."""
        nb = {
            "cells": [
                {
                    "cell_type": "code",
                    "execution_count": None,
                    "id": uuid.uuid4().hex[:8],
                    "metadata": {},
                    "outputs": [],
                    "source": source,
                }
                for source in cells
            ],
            "metadata": {
                "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        (self.root / name).write_text(json.dumps(nb))
        return name

    def open_url(self, notebook: str) -> str:
        workspace = uuid.uuid4().hex[:10]
        return f"{self.url}/lab/workspaces/{workspace}/tree/{notebook}?reset&token={self.token}"


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("lab")
    home = tmp_path_factory.mktemp("lab-home")
    settings = home / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    # Start the notebook's own kernel without asking (the "Select Kernel" dialog otherwise
    # comes up, or not, depending on how fast the session starts).
    notebook = home / "settings" / "@jupyterlab" / "notebook-extension"
    notebook.mkdir(parents=True)
    (notebook / "tracker.jupyterlab-settings").write_text('{"autoStartDefaultKernel": true}')
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        str(Path(sys.executable).with_name("jupyter-lab")),
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # CI machines run tests as root
    with (home / "jupyter.log").open("wb") as log:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1):
                break
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.3)
    else:
        process.kill()
        pytest.fail("JupyterLab did not start: " + (home / "jupyter.log").read_text()[-3000:])
    if process.poll() is not None:
        pytest.fail("JupyterLab exited: " + (home / "jupyter.log").read_text()[-3000:])
    try:
        yield Lab(url, token, root, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def playwright() -> Iterator[Playwright]:
    """Per test: Playwright's sync API runs an event loop while it is open, which would
    stop later asyncio tests in the same session from running theirs."""
    with sync_playwright() as p:
        yield p


@pytest.fixture
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: `make test` installs Debian's chromium package")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@dataclass
class Offline:
    """Requests that were aborted because they left the machine."""

    blocked: list[str] = field(default_factory=list)

    def route(self, route: Route) -> None:
        host = urlparse(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOOPBACK:
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    offline = Offline()
    context.route("**/*", offline.route)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    page.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))
    try:
        yield page
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        name = request.node.name.replace("/", "_")
        with contextlib.suppress(Exception):  # the page may be gone: the screenshot is a bonus
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        (ARTIFACTS / f"{name}.console.log").write_text("\n".join(console))
        context.close()
    assert offline.blocked == [], f"requests left the machine: {offline.blocked}"


def visible_panel(page: Page) -> Any:
    """The notebook panel on screen (JupyterLab keeps hidden ones in the DOM)."""
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")


def run_cell(page: Page, index: int, timeout: float = 60_000) -> str:
    """Run code cell `index` with Shift+Enter, retrying a dropped key press; returns its output."""
    panel = visible_panel(page)
    cell = panel.locator(".jp-CodeCell").nth(index)
    prompt = cell.locator(".jp-InputPrompt")
    for _ in range(3):
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Escape")
        page.keyboard.press("Shift+Enter")
        try:
            page.wait_for_function(
                "el => /\\[(\\*|\\d+)\\]/.test(el.textContent)",
                arg=prompt.element_handle(),
                timeout=5_000,
            )
            break
        except Exception:  # the first key press on a fresh server can be dropped
            continue
    page.wait_for_function(
        "el => /\\[\\d+\\]/.test(el.textContent)", arg=prompt.element_handle(), timeout=timeout
    )
    return str(cell.locator(".jp-OutputArea").inner_text())


def open_notebook(page: Page, lab: Lab, notebook: str) -> None:
    page.goto(lab.open_url(notebook))
    panel = visible_panel(page)
    panel.locator(".jp-CodeCell").first.wait_for(timeout=60_000)
    # JupyterLab may ask which kernel to start (it depends on how fast the session comes up):
    # take the notebook's own, the preselected one.
    dialog = page.locator(".jp-Dialog")
    idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    deadline = time.monotonic() + 60
    settled = 0  # polls in a row with the kernel idle and no dialog open
    while time.monotonic() < deadline:
        if dialog.count() and "Select Kernel" in dialog.inner_text():
            dialog.locator(".jp-mod-accept").click()
            settled = 0
        elif idle.count():
            settled += 1
            if settled >= 5:  # a second: the dialog can still come up just after "idle"
                return
        else:
            settled = 0
        page.wait_for_timeout(200)
    pytest.fail("the notebook's kernel did not become idle")
