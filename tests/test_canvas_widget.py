"""flownb.Canvas bound to a Workflow, with a recording comm in place of the front end.

Messages are checked as ipywidgets would send them (`{"method": "update", "state": ...}`);
canvas events arrive the way ipyreact sends them (a custom message with `event_name`).
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flownb.canvas as canvas_module
from flownb import Workflow
from flownb.canvas import BundleMissing, Canvas
from flownb.functions import Functions

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HELLO = EXAMPLES / "hello" / "hello.yaml"
EPHEMERAL = {"HELLO_ADDRESS": "127.0.0.1:0"}
_ids = itertools.count()


class RecordingComm:
    """Stands in for the kernel comm: records what the widget sends, delivers what we send."""

    kernel = "recording"

    def __init__(self) -> None:
        self.comm_id = f"recording-{next(_ids)}"
        self.sent: list[dict[str, Any]] = []
        self.handler: Any = None

    def send(self, data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
        self.sent.append(data)

    def on_msg(self, callback: Any) -> None:
        self.handler = callback

    def close(self, *args: Any, **kwargs: Any) -> None:
        pass

    def updates(self) -> list[dict[str, Any]]:
        """The state updates sent, oldest first."""
        return [m["state"] for m in self.sent if m.get("method") == "update"]

    def event(self, name: str, data: Any) -> None:
        """What ipyreact sends when the canvas calls the prop `name(data)`."""
        content = {"event_name": name, "data": data}
        self.handler({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})


@pytest.fixture
def bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The built canvas bundle, or a stand-in ES module when it is not built yet."""
    path = canvas_module.BUNDLE
    if not path.is_file():
        path = tmp_path / "canvas.js"
        path.write_text("export function Canvas() { return null; }\n")
        monkeypatch.setattr(canvas_module, "BUNDLE", path)
    return path


def bound(wf: Workflow) -> tuple[Canvas, RecordingComm]:
    canvas = Canvas(wf)
    comm = RecordingComm()
    canvas.comm = comm
    return canvas, comm


@pytest.fixture
def hello(bundle: Path) -> Iterator[tuple[Workflow, Canvas, RecordingComm]]:
    wf = Workflow(HELLO, environ=EPHEMERAL)
    canvas, comm = bound(wf)
    yield wf, canvas, comm
    canvas.close()


def test_canvas_starts_with_the_workflow_and_the_schema(
    hello: tuple[Workflow, Canvas, RecordingComm],
) -> None:
    wf, canvas, _ = hello
    assert canvas._module == "flownb-canvas" and canvas._type == "Canvas"
    assert "flownb-canvas" in canvas._dependencies
    assert canvas.config == wf.raw and canvas.positions == wf.layout
    assert canvas.revision == wf.revision and canvas.diagnostics == [] and not canvas.running
    assert "http.server" in canvas.schema["types"] and "HTTP" in canvas.schema["categories"]
    assert canvas.schema["file"]["$schema"].endswith("2020-12/schema")
    assert set(canvas._event_names) >= {"patch", "validate", "inspect", "save"}


def test_python_side_update_sends_the_config(
    hello: tuple[Workflow, Canvas, RecordingComm],
) -> None:
    wf, canvas, comm = hello
    wf.update(HELLO.read_text().replace("/hello", "/hi"))
    [state] = comm.updates()
    assert set(state) == {"config", "revision"}
    assert state["config"]["workflows"]["http"]["routes"][0]["path"] == "/hi"
    assert state["revision"] == 1 == canvas.revision


def test_a_python_side_move_sends_only_positions(
    hello: tuple[Workflow, Canvas, RecordingComm],
) -> None:
    wf, _, comm = hello
    wf.layout = {"module:server": {"x": 1, "y": 2}}
    [state] = comm.updates()
    assert set(state) == {"positions", "revision"}
    assert state["positions"] == {"module:server": {"x": 1, "y": 2}}


def test_a_canvas_move_reaches_python_and_sends_back_only_the_revision(
    hello: tuple[Workflow, Canvas, RecordingComm],
) -> None:
    wf, canvas, comm = hello
    seen: list[str] = []
    wf.observe(lambda c: seen.append(c["name"]), names=["layout", "config", "raw"])
    comm.event("patch", {"base": 0, "ops": [], "layout": {"module:router": {"x": 40, "y": 50}}})
    assert wf.layout == {"module:router": {"x": 40, "y": 50}} and seen == ["layout"]
    assert comm.updates() == [{"revision": 1}]
    assert canvas.positions == wf.layout, "the trait follows, without being sent"


def test_a_canvas_edit_updates_the_workflow_without_an_echo(
    hello: tuple[Workflow, Canvas, RecordingComm],
) -> None:
    wf, _, comm = hello
    changes: list[Any] = []
    wf.observe(lambda c: changes.append(c["new"]), names=["config"])
    op = {"op": "replace", "path": "/workflows/http/routes/0/path", "value": "/hey"}
    comm.event("patch", {"base": 0, "ops": [op], "layout": {}})
    assert wf.raw["workflows"]["http"]["routes"][0]["path"] == "/hey"
    assert len(changes) == 1 and changes[0].workflows.http.routes[0].path == "/hey"
    assert comm.updates() == [{"revision": 1}]
    # Two quick edits: the second is made on base + 1 without waiting (docs/canvas.md).
    comm.event("patch", {"base": 1, "ops": [{**op, "value": "/a"}], "layout": {}})
    comm.event("patch", {"base": 2, "ops": [{**op, "value": "/b"}], "layout": {}})
    assert wf.revision == 3 and wf.raw["workflows"]["http"]["routes"][0]["path"] == "/b"


def test_an_invalid_canvas_edit_comes_back_as_diagnostics(
    hello: tuple[Workflow, Canvas, RecordingComm],
) -> None:
    wf, _, comm = hello
    valid = wf.config
    op = {"op": "replace", "path": "/modules/0/config/address", "value": "nowhere"}
    comm.event("patch", {"base": 0, "ops": [op], "layout": {}})
    assert wf.config is valid and wf.raw["modules"][0]["config"]["address"] == "nowhere"
    [state] = comm.updates()
    assert set(state) == {"diagnostics", "revision"}
    [diag] = state["diagnostics"]
    assert diag["id"] == "module:server" and diag["path"] == "modules[0].config.address"


def test_a_stale_canvas_edit_is_refused_and_the_state_resent(
    hello: tuple[Workflow, Canvas, RecordingComm],
) -> None:
    wf, _, comm = hello
    wf.update(HELLO.read_text())  # a Python-side change: revision 1
    comm.sent.clear()
    op = {"op": "remove", "path": "/pipelines/hello"}
    comm.event("patch", {"base": 0, "ops": [op], "layout": {}})
    assert "hello" in wf.raw["pipelines"] and wf.revision == 1
    state, bump = comm.updates()
    assert set(state) == {"config", "positions", "revision", "diagnostics"}
    assert bump == {"reloads": 1}, "the canvas learns to reload even if nothing else changed"
    comm.sent.clear()
    comm.event("patch", {"base": 1, "ops": [{"op": "remove", "path": "/nope/0"}], "layout": {}})
    state, bump = comm.updates()
    assert set(state) == {"config", "positions", "revision", "diagnostics"}
    assert bump == {"reloads": 2}


def test_other_canvases_of_the_workflow_get_the_edit(bundle: Path) -> None:
    wf = Workflow(HELLO, environ=EPHEMERAL)
    (first, first_comm), (second, second_comm) = bound(wf), bound(wf)
    op = {"op": "add", "path": "/pipelines/hello/0/status", "value": 201}
    first_comm.event(
        "patch", {"base": 0, "ops": [op], "layout": {"pipeline:hello": {"x": 1, "y": 1}}}
    )
    assert first_comm.updates() == [{"revision": 1}]
    [state] = second_comm.updates()
    assert set(state) == {"config", "positions", "revision"}
    assert state["config"]["pipelines"]["hello"][0]["status"] == 201
    first.close()
    wf.update(HELLO.read_text())
    assert len(first_comm.updates()) == 1, "a closed canvas is no longer told"
    assert len(second_comm.updates()) == 2
    second.close()


def test_validate_inspect_and_save_events(
    hello: tuple[Workflow, Canvas, RecordingComm], tmp_path: Path
) -> None:
    wf, canvas, comm = hello
    comm.event("validate", {})
    assert comm.updates() == []  # nothing changed
    comm.event("inspect", {"id": "pipeline:hello"})
    assert canvas.inspection == {
        "id": "pipeline:hello",
        "input": None,
        "output": None,
        "error": None,
        "at": None,
    }
    wf.save(tmp_path / "saved.yaml")
    comm.event("patch", {"base": 0, "ops": [], "layout": {"module:server": {"x": 7, "y": 8}}})
    comm.event("save", {})
    assert "module:server" in (tmp_path / "saved.layout.yaml").read_text()
    (tmp_path / "saved.layout.yaml").unlink()
    (tmp_path / "saved.layout.yaml").mkdir()  # saving now fails: reported on the canvas
    comm.event("save", {})
    assert "cannot save" in canvas.diagnostics[-1]["message"]


async def test_live_stats_are_throttled(bundle: Path) -> None:
    text = "pipelines:\n  work: [{type: call, function: work}]\n"
    wf = Workflow(text, functions=Functions({"work": lambda data: data}))
    canvas, comm = bound(wf)
    await wf.start()
    assert comm.updates()[-1] == {"running": True}
    comm.sent.clear()
    assert wf.live.interval == 0.1, "at most 10 pushes a second"
    started = time.perf_counter()
    for i in range(5000):
        await wf.send("pipeline", "work", {"i": i})
        if i % 500 == 0:
            await asyncio.sleep(0.05)  # spread the burst over several push intervals
    elapsed = time.perf_counter() - started
    await wf.stop()
    stats = [s["stats"] for s in comm.updates() if "stats" in s]
    assert 2 <= len(stats) <= elapsed / 0.1 + 2, (len(stats), elapsed)
    merged: dict[str, Any] = {}
    for delta in stats:
        merged.update(delta)
    final = merged["pipeline:work"]
    assert final["executions"] == 5000 and final["errors"] == 0 and final["status"] == "ok"
    assert final["avgMs"] >= 0 and final["lastMs"] >= 0
    comm.event("inspect", {"id": "pipeline:work"})
    assert canvas.inspection["input"] == {"i": 4999} and canvas.inspection["at"].endswith("Z")
    canvas.close()


async def test_stats_show_errors_and_inspection_truncates(bundle: Path) -> None:
    def fail(data: Any) -> Any:
        raise RuntimeError("no luck")

    text = (
        "pipelines:\n"
        "  bad: [{type: call, function: fail}]\n"
        "  big: [{type: set, target: data, values: {blob: '{{ data.s }}'}}]\n"
    )
    wf = Workflow(text, functions=Functions({"fail": fail}))
    canvas, comm = bound(wf)
    await wf.start()
    try:
        with pytest.raises(Exception, match="no luck"):
            await wf.send("pipeline", "bad", {})
        await wf.send("pipeline", "big", {"s": "x" * 50_000})
    finally:
        await wf.stop()
    merged: dict[str, Any] = {}
    for state in comm.updates():
        merged.update(state.get("stats", {}))
    assert merged["pipeline:bad"]["status"] == "error" and merged["pipeline:bad"]["errors"] == 1
    comm.event("inspect", {"id": "pipeline:bad"})
    assert "RuntimeError: no luck" in canvas.inspection["error"]
    comm.event("inspect", {"id": "pipeline:big"})
    output = canvas.inspection["output"]
    assert isinstance(output, str) and output.endswith("bytes)") and len(output) < 10_100
    canvas.close()


def test_a_workflow_displays_as_its_canvas(bundle: Path) -> None:
    wf = Workflow(HELLO, environ=EPHEMERAL)
    bundle = wf._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"]
    assert data["text/plain"].startswith("<Workflow 'hello'")
    assert isinstance(wf.canvas(), Canvas)


def test_missing_bundle_names_the_build_command(tmp_path: Path) -> None:
    wf = Workflow(HELLO, environ=EPHEMERAL)
    with pytest.raises(BundleMissing, match=r"make setup.*npm run --prefix extension build"):
        Canvas(wf, bundle=tmp_path / "missing.js")


def test_missing_ipyreact_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ipyreact", None)
    monkeypatch.delitem(sys.modules, "flownb.canvas")
    with pytest.raises(ImportError, match=r"pip install 'flownb\[notebook\]'"):
        importlib.import_module("flownb.canvas")
    bundle = Workflow(HELLO, environ=EPHEMERAL)._repr_mimebundle_()
    assert "no canvas" in bundle["text/plain"] and "flownb[notebook]" in bundle["text/plain"]


def test_node_and_edge_ids_follow_docs_canvas_md() -> None:
    from flownb import graph

    chat = Workflow(EXAMPLES / "chat" / "chat.yaml", environ={"CHAT_ADDRESS": "127.0.0.1:0"})
    ids = graph.node_ids(chat.raw)
    assert ids[:3] == ["module:server", "module:router", "module:bus"]
    assert "pipeline:post-message" in ids and len(ids) == 7 + 6
    handlers = graph.handler_ids(chat.raw)
    assert handlers["stamp"] == "module:stamp" and handlers["room-stats"] == "pipeline:room-stats"
    config = {"modules": [{"name": "a"}], "triggers": {"schedule": {"jobs": [{}, {}]}}}
    assert graph.node_ids(config) == ["module:a", "trigger:schedule:0", "trigger:schedule:1"]
    cases = {
        ("modules", 0, "config", "x"): "module:a",
        ("modules", 5): "config",
        ("pipelines", "p", "steps", 0): "pipeline:p",
        ("workflows", "http", "routes", 2, "path"): "route:2",
        ("workflows", "messaging", "subscriptions", 1): "subscription:1",
        ("workflows", "messaging", "producers", 0, "name"): "producer:0",
        ("workflows", "statemachine", "hooks", 3): "hook:3",
        ("workflows", "scheduler", "jobs", 0, "job"): "job:0",
        ("workflows", "event", "handlers", 1, "patternId"): "eventHandler:1",
        ("workflows", "statemachine", "definitions", 0): "config",
        ("triggers", "http", "routes", 0, "action"): "trigger:http:0",
        ("triggers", "event", "subscriptions", 4): "trigger:event:4",
        ("triggers", "schedule", "routes", 0): "config",
        ("layout", "module:a"): "config",
    }
    for loc, expected in cases.items():
        assert graph.loc_id(loc, config) == expected, loc
