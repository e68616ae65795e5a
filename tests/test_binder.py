"""The Binder set-up, reproduced without Docker: a fresh venv, binder/requirements.txt,
binder/postBuild, then the quickstart notebook runs and JupyterLab serves it.

It installs only from the package registries (pip's and npm's caches make it quick when
warm) and runs in `make test` (marker `binder`).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"


def _sources() -> list[str]:
    """The files a clone of the repository holds (tracked or new, not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [name for name in listed if (ROOT / name).is_file()]


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> str:
    result = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_requirements_follow_the_notebook_extra() -> None:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["notebook"]
    lines = (BINDER / "requirements.txt").read_text().splitlines()
    pinned = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert sorted(pinned) == sorted(re.sub(r"\s*#.*", "", r) for r in extra)
    assert os.access(BINDER / "postBuild", os.X_OK)
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"


@pytest.mark.binder
@pytest.mark.timeout(900)
def test_binder_build_runs_the_quickstart_and_lab_opens_it(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    for name in _sources():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    assert not (repo / "flownb" / "static" / "canvas.js").exists()  # postBuild must build it

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VIRTUAL_ENV", "PYTHON", "JUPYTER", "FLOWNB", "PYTEST"))
    }
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        npm_config_prefer_offline="true",  # the npm cache, when it has the packages
        JUPYTER_PLATFORM_DIRS="1",
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
    )
    python = str(venv / "bin" / "python")
    # What repo2docker does: install the requirements, then run postBuild from the root.
    install = [python, "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"]
    _run(install, cwd=repo, env=env, timeout=600)
    _run(["bash", "binder/postBuild"], cwd=repo, env=env, timeout=600)
    assert (repo / "flownb" / "static" / "canvas.js").stat().st_size > 10_000
    assert not (repo / "extension" / "node_modules").exists()

    out = tmp_path / "quickstart.ipynb"
    cmd = [python, "-m", "flownb", "notebook", "run", "notebooks/quickstart.ipynb", str(out)]
    _run([*cmd, "-p", "greeting", "binder"], cwd=repo, env=env, timeout=300)
    nb = nbformat.read(str(out), as_version=4)
    shown = [o.get("data", {}) for c in nb.cells for o in c.get("outputs", [])]
    assert any("'hello': 'binder'" in d.get("text/plain", "") for d in shown)
    # The canvas was drawn from the bundle postBuild built (a widget view, not the fallback).
    assert any("application/vnd.jupyter.widget-view+json" in d for d in shown)

    # The launch URL: JupyterLab opens notebooks/quickstart.ipynb.
    port = _free_port()
    lab = subprocess.Popen(
        [str(venv / "bin" / "jupyter-lab"), "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         "--IdentityProvider.token=binder-test", f"--ServerApp.root_dir={repo}",
         "--allow-root"],  # CI runs as root; Binder does not
        cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/lab/tree/notebooks/quickstart.ipynb?token=binder-test"
        page = _get(url, deadline=time.monotonic() + 60)
        assert "jupyter-config-data" in page
        api = f"http://127.0.0.1:{port}/api/contents/notebooks/quickstart.ipynb?token=binder-test"
        assert '"name": "quickstart.ipynb"' in _get(api, deadline=time.monotonic() + 10)
    finally:
        lab.terminate()
        lab.wait(timeout=30)


def _get(url: str, *, deadline: float) -> str:
    """GET `url`, retrying while the server is still starting."""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.read().decode("utf-8")
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
