"""The %%workflow / %workflow magics, through IPython's own shell."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import CapturedIO, capture_output
from traitlets.config import Config as ShellConfig

import flownb.canvas as canvas_module
from flownb import Workflow
from flownb.magics import MagicError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HELLO = (EXAMPLES / "hello" / "hello.yaml").read_text()
CHAT = (EXAMPLES / "chat" / "chat.yaml").read_text()


@pytest.fixture
def shell(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[InteractiveShell]:
    for name in ("HELLO", "CHAT"):
        monkeypatch.setenv(f"{name}_ADDRESS", "127.0.0.1:0")
    if not canvas_module.BUNDLE.is_file():
        stub = tmp_path / "canvas.js"
        stub.write_text("export function Canvas() { return null; }\n")
        monkeypatch.setattr(canvas_module, "BUNDLE", stub)
    config = ShellConfig()
    config.HistoryManager.hist_file = ":memory:"
    ip = InteractiveShell.instance(config=config)
    ip.run_cell("%load_ext flownb", store_history=False)
    yield ip
    for value in list(ip.user_ns.values()):
        if isinstance(value, Workflow) and value.running:
            value.stop()
    ip.reset(new_session=False)


def run(shell: InteractiveShell, cell: str) -> tuple[Any, CapturedIO]:
    with capture_output() as out:
        result = shell.run_cell(cell, store_history=True)
    return result, out


def text(out: CapturedIO) -> str:
    """Everything the cell showed: printed text and the text of each display."""
    shown = [o.data.get("text/plain", "") for o in out.outputs]
    return out.stdout + out.stderr + "\n".join(shown)


def test_workflow_cell_binds_the_name_and_draws_the_canvas(shell: InteractiveShell) -> None:
    result, out = run(shell, "%%workflow hello\n" + HELLO)
    assert result.success, text(out)
    wf = shell.user_ns["hello"]
    assert isinstance(wf, Workflow) and wf.valid and not wf.running and wf.name == "hello"
    [shown] = out.outputs
    assert "application/vnd.jupyter.widget-view+json" in shown.data
    assert shown.data["text/plain"].startswith("<Workflow 'hello'")


def test_no_canvas(shell: InteractiveShell) -> None:
    result, out = run(shell, "%%workflow hello --no-canvas\n" + HELLO)
    assert result.success and out.outputs == [] and "hello" in shell.user_ns


def test_invalid_yaml_shows_the_line_under_the_cell(shell: InteractiveShell) -> None:
    cell = "%%workflow broken\nmodules:\n  - name: a\n    type: [http.server\n"
    result, out = run(shell, cell)
    assert isinstance(result.error_in_exec, MagicError)
    shown = text(out)
    assert "<cell>:5:1: (root): invalid YAML" in shown, shown
    assert "Traceback" not in shown and "broken was not defined" in shown
    assert "broken" not in shell.user_ns


def test_invalid_config_shows_each_problem_with_its_line(shell: InteractiveShell) -> None:
    cell = "%%workflow broken\nmodules:\n  - name: a\n    type: http.srever\n  - {name: b}\n"
    result, out = run(shell, cell)
    assert not result.success
    shown = text(out)
    assert "<cell>:4:11: modules[0].type: unknown module type 'http.srever'" in shown, shown
    assert "<cell>:5:5: modules[1]" in shown
    assert "Traceback" not in shown and "broken" not in shell.user_ns


def test_rerunning_with_an_error_keeps_the_workflow(shell: InteractiveShell) -> None:
    run(shell, "%%workflow hello --no-canvas\n" + HELLO)
    wf = shell.user_ns["hello"]
    config = wf.config
    result, out = run(
        shell, "%%workflow hello --no-canvas\n" + HELLO.replace("http.router", "nope")
    )
    assert not result.success and "hello keeps its last valid config" in text(out)
    assert shell.user_ns["hello"] is wf and wf.config is config
    assert [m["type"] for m in wf.raw["modules"]] == ["http.server", "nope"]
    assert {d["id"] for d in wf.diagnostics} == {"module:router"}
    result, _ = run(shell, "%%workflow hello --no-canvas\n" + HELLO.replace("/hello", "/hi"))
    assert result.success and shell.user_ns["hello"] is wf and wf.valid
    assert wf.config.workflows.http.routes[0].path == "/hi"


def test_file_option(shell: InteractiveShell, tmp_path: Path) -> None:
    path = tmp_path / "hello.yaml"
    path.write_text(HELLO)
    result, out = run(shell, f"%%workflow hello --no-canvas --file {path}\n# kept in the file\n")
    assert result.success, text(out)
    assert shell.user_ns["hello"].path == path
    result, out = run(shell, f"%workflow other --file {path} --no-canvas")
    assert result.success and shell.user_ns["other"].valid
    result, out = run(shell, f"%%workflow third --file {path}\nmodules: []\n")
    assert not result.success and "not both" in text(out)
    result, out = run(shell, f"%workflow missing --file {tmp_path / 'nope.yaml'}")
    assert not result.success and "cannot read workflow file" in text(out)


def test_run_status_send_history_stop(shell: InteractiveShell) -> None:
    result, out = run(shell, "%%workflow hello --run --no-canvas\n" + HELLO)
    assert result.success, text(out)
    wf = shell.user_ns["hello"]
    assert wf.running and "hello: running (server http://127.0.0.1:" in text(out)

    _, out = run(shell, "%workflow status hello")
    status = json.loads(text(out))
    assert status["state"] == "running" and status["modules"] == ["server", "router"]

    _, out = run(shell, "%workflow send hello http GET /hello?n=1")
    assert text(out).startswith("HTTP 200 OK\n")
    assert json.loads(text(out).split("\n", 1)[1]) == {"hello": "world", "q": "1"}

    _, out = run(shell, "%workflow send hello pipeline hello '{\"n\": 2}'")
    assert text(out).startswith("200\n{")

    _, out = run(shell, "%workflow history hello 5")
    [table] = out.outputs
    assert "step:0:respond" in table.data["text/plain"] and "[2 rows" in table.data["text/plain"]
    assert len(wf.history(limit=5)) == 2

    _, out = run(shell, "%workflow stop hello")
    assert not wf.running and "hello: stopped" in text(out)


def test_send_to_a_topic(shell: InteractiveShell) -> None:
    run(shell, "%%workflow chat --run --no-canvas\n" + CHAT)
    message = '{"room": "r", "user": "ada", "text": "hi"}'
    result, out = run(shell, f"%workflow send chat topic chat.in '{message}'")
    assert result.success, text(out)
    assert json.loads(text(out))["topic"] == "chat.in"


def test_rerunning_a_running_workflow_restarts_it(shell: InteractiveShell) -> None:
    run(shell, "%%workflow hello --run --no-canvas\n" + HELLO)
    wf = shell.user_ns["hello"]
    first = wf.engine
    run(shell, "%%workflow hello --no-canvas\n" + HELLO)
    assert wf.engine is first, "same config: left running as it was"
    run(shell, "%%workflow hello --no-canvas\n" + HELLO.replace("/hello", "/hi"))
    assert wf.running and wf.engine is not first
    _, out = run(shell, "%workflow send hello http /hi")
    assert "HTTP 200" in text(out)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("%workflow send ghost http GET /", "'ghost' is not a workflow"),
        ("%workflow send hello pipeline hello {not json", "the data must be JSON"),
        ("%workflow send hello http GET /hello", "is not running; start it first"),
        ("%workflow send hello", "usage: %workflow send"),
        ("%workflow frob hello", "usage: %%workflow NAME"),
        ("%workflow history hello --status maybe", "invalid choice"),
        ('%workflow send hello topic t \'{"a": 1}', "No closing quotation"),
    ],
)
def test_line_magic_mistakes(shell: InteractiveShell, line: str, message: str) -> None:
    run(shell, "%%workflow hello --no-canvas\n" + HELLO)
    result, out = run(shell, line)
    assert not result.success
    assert message in text(out), text(out)
    assert "Traceback" not in text(out)


async def test_run_on_the_kernel_loop_does_not_block(shell: InteractiveShell) -> None:
    # Inside a running loop (as in ipykernel) starting and sending are scheduled, and the
    # outcome replaces a placeholder under the cell when it is ready.
    with capture_output() as out:
        shell.run_cell_magic("workflow", "hello --run --no-canvas", HELLO)
        wf = shell.user_ns["hello"]
        assert not wf.running, "only scheduled"
        await wf.wait()
        assert wf.running
        shell.run_line_magic("workflow", "send hello http GET /hello?n=3")
        await wf.wait()
        shell.run_line_magic("workflow", "stop hello")
        await wf.wait()
    shown = [o.data["text/plain"] for o in out.outputs]
    assert shown[0] == "hello: start…" and shown[1].startswith("hello: running (server http://")
    assert shown[2] == "hello: sending http GET /hello?n=3…"
    assert shown[3].startswith("HTTP 200 OK") and '"q": "3"' in shown[3]
    assert shown[-1] == "hello: stopped" and not wf.running
