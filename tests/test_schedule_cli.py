"""`flownb schedule`: notebook jobs run as a service, each run in the durable history."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from flownb.historydb import open_history

KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}


def setup(folder: Path, *cells: str, **config: object) -> Path:
    """report.ipynb (parameters cell, then `cells`) and jobs.yaml with one job, `report`."""
    nb = new_notebook(metadata=KERNEL)
    params = new_code_cell("n = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(new_code_cell(c) for c in cells)]
    nbformat.write(nb, str(folder / "report.ipynb"))
    job = {"notebook": "report.ipynb", "interval": "1h", **config}
    modules = [{"name": "report", "type": "notebook.job", "config": job}]
    (folder / "jobs.yaml").write_text(json.dumps({"modules": modules}))
    return folder / "jobs.yaml"


def records(url: str) -> list[dict[str, object]]:
    async def read() -> list[dict[str, object]]:
        store = open_history(url)
        try:
            return [r.to_dict() for r in await store.query(workflow="notebook")]
        finally:
            await store.aclose()

    return asyncio.run(read())


def schedule(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flownb", "schedule", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_once_runs_each_job_and_records_it(tmp_path: Path) -> None:
    setup(tmp_path, "print(1 / (n - 1))")
    jobs = {
        "report": {"notebook": "report.ipynb", "interval": "1h", "parameters": {"n": 2}},
        "broken": {"notebook": "report.ipynb", "interval": "1h"},  # n = 1: division by zero
    }
    modules = [{"name": k, "type": "notebook.job", "config": v} for k, v in jobs.items()]
    (tmp_path / "jobs.yaml").write_text(json.dumps({"modules": modules}))
    url = f"sqlite:///{tmp_path / 'history.db'}"
    done = schedule("jobs.yaml", "--once", "--history", url, cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # one of the runs failed
    assert "Traceback" not in done.stderr
    lines = [s for s in done.stderr.splitlines() if s.startswith("flownb: ")]
    [ok] = [s for s in lines if s.startswith("flownb: report:")]
    assert ok.startswith("flownb: report: ok in ") and ok.endswith("/report.ipynb")
    [failed] = [s for s in lines if s.startswith("flownb: broken:")]
    assert failed.startswith("flownb: broken: failed after ")
    assert "cell 2 (In [2]: print(1 / (n - 1))) failed: ZeroDivisionError" in failed
    by_job = {r["action"]: r for r in records(url)}
    assert by_job["report"]["status"] == "ok" and by_job["broken"]["status"] == "error"
    assert "ZeroDivisionError" in str(by_job["broken"]["error"])
    output = json.loads(str(by_job["report"]["output"]))["output"]
    assert Path(output).is_file() and Path(output).parent.parent == tmp_path / "runs" / "report"

    listed = subprocess.run(
        [sys.executable, "-m", "flownb", "history", "--workflow", "notebook", "--db", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # what `flownb history` shows of the runs
    assert listed.returncode == 0, listed.stderr
    assert "notebook: broken" in listed.stdout and "notebook: report" in listed.stdout
    assert "ZeroDivisionError" in listed.stdout

    only = schedule("jobs.yaml", "--once", "--job", "report", "--history", url, cwd=tmp_path)
    assert only.returncode == 0, only.stderr
    assert [r["action"] for r in records(url)] == ["report", "broken", "report"]

    nothing = tmp_path / "empty.yaml"
    nothing.write_text("pipelines:\n  p:\n    - {type: log, message: hi}\n")
    empty = schedule("empty.yaml", "--once", "--history", url, cwd=tmp_path)
    assert empty.returncode == 1 and "Traceback" not in empty.stderr
    assert "empty.yaml has no notebook.job modules to schedule" in empty.stderr
    unknown = schedule("jobs.yaml", "--once", "--job", "reprot", "--history", url, cwd=tmp_path)
    assert unknown.returncode == 1
    assert "no notebook.job named 'reprot' (jobs: report, broken)" in unknown.stderr


def test_service_runs_on_its_timetable_and_stops_on_sigterm(tmp_path: Path) -> None:
    setup(tmp_path, "print(n)", runOnStart=True)
    url = f"sqlite:///{tmp_path / 'history.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "flownb", "schedule", "jobs.yaml", "--history", url],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while not any("report: ok in" in s for s in seen):
            assert time.monotonic() < deadline, "no run reported:\n" + "".join(seen)
            line = proc.stderr.readline()
            assert line, "flownb schedule ended early:\n" + "".join(seen)
            seen.append(line)
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, rest
    assert any("report: report.ipynb, next run" in s for s in seen)
    assert "flownb: SIGTERM: stopping" in rest and "flownb: stopped" in rest
    assert [r["status"] for r in records(url)] == ["ok"]


def test_a_long_run_shows_a_progress_bar_in_a_terminal(tmp_path: Path) -> None:
    setup(tmp_path, "import time\ntime.sleep(2.5)", "print(n)")
    url = f"sqlite:///{tmp_path / 'history.db'}"
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # rows, cols
    proc = subprocess.Popen(
        [sys.executable, "-m", "flownb", "schedule", "jobs.yaml", "--once", "--history", url],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
    )
    os.close(terminal)
    screen = b""
    try:
        while True:
            ready, _, _ = select.select([controller], [], [], 120)
            assert ready, "no output on the terminal"
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the process closed the terminal
                break
            if not chunk:
                break
            screen += chunk
    finally:
        os.close(controller)
        proc.wait(timeout=60)
    text = screen.decode("utf-8", "replace")
    assert proc.returncode == 0, text
    assert re.search(r"report \d{4}-\d\d-\d\d \d\d:\d\d: +\d+%\|.*\| \d/3 ", text), text
    assert "flownb: report: ok in" in text
