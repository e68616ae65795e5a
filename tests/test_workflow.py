"""flownb.Workflow: sources, edits (valid and not), observers, saving, running in the kernel."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from flownb import Workflow
from flownb.errors import BuildError, ConfigError, FlownbError
from flownb.execution import Response
from flownb.functions import Functions
from flownb.loader import parse_config
from flownb.workflow import PatchError, RevisionConflict, split_http_target

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HELLO = EXAMPLES / "hello" / "hello.yaml"
CHAT = EXAMPLES / "chat" / "chat.yaml"
EPHEMERAL = {"HELLO_ADDRESS": "127.0.0.1:0", "CHAT_ADDRESS": "127.0.0.1:0"}

PIPELINE = """\
pipelines:
  double:
    - {type: set, name: doubled, target: vars, values: {n: "{{ data.n * 2 }}"}}
    - {type: call, name: check, function: check, input: "{{ vars.n }}", replace_data: true}
  boom:
    - {type: call, name: explode, function: explode}
"""


def check(n: Any) -> dict[str, Any]:
    return {"n": n}


def explode(_: Any) -> None:
    raise ValueError("kaboom")


FUNCTIONS = Functions({"check": check, "explode": explode})


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 5.0) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.01)


def recorder(wf: Workflow, *names: str) -> list[str]:
    seen: list[str] = []
    wf.observe(lambda change: seen.append(change["name"]), names=list(names))
    return seen


# --- sources -------------------------------------------------------------------------------------
def test_built_from_yaml_dict_config_and_path_alike() -> None:
    text = HELLO.read_text()
    from_yaml = Workflow(text, environ=EPHEMERAL)
    from_path = Workflow(HELLO, environ=EPHEMERAL)
    from_str_path = Workflow(str(HELLO), environ=EPHEMERAL)
    from_dict = Workflow(from_yaml.raw, environ=EPHEMERAL)
    from_config = Workflow(parse_config(text, environ=EPHEMERAL), environ=EPHEMERAL)
    for wf in (from_yaml, from_path, from_str_path, from_dict, from_config):
        assert wf.valid, wf.diagnostics
        assert wf.config == from_yaml.config
    for wf in (from_path, from_str_path, from_dict):
        assert wf.raw == from_yaml.raw, "as written"
    # A Config has no text to keep: its raw is the dump, references written back.
    assert from_config.raw["modules"][0]["config"]["address"].startswith("${HELLO_ADDRESS")
    assert from_path.name == "hello" and from_path.path == HELLO
    assert from_yaml.path is None


def test_env_references_stay_in_raw_and_expand_in_config() -> None:
    wf = Workflow(HELLO, environ={"HELLO_ADDRESS": "127.0.0.1:9999"})
    assert wf.raw["modules"][0]["config"]["address"] == "${HELLO_ADDRESS:-127.0.0.1:8080}"
    assert wf.config is not None
    assert wf.config.modules[0].config.address == "127.0.0.1:9999"  # type: ignore[union-attr]
    assert "${HELLO_ADDRESS:-127.0.0.1:8080}" in wf.to_yaml()
    assert "9999" not in wf.to_yaml()


def test_a_secret_edited_on_the_canvas_is_still_a_reference() -> None:
    wf = Workflow(HELLO, environ={**EPHEMERAL, "PREFIX": "/s3cret"})
    op = {"op": "add", "path": "/modules/1/config", "value": {"prefix": "${PREFIX}"}}
    wf.apply_patch([op])
    assert wf.valid, wf.diagnostics
    assert wf.config is not None and wf.config.modules[1].config.prefix == "/s3cret"  # type: ignore[union-attr]
    assert wf.raw["modules"][1]["config"]["prefix"] == "${PREFIX}"
    assert "s3cret" not in wf.to_yaml()


def test_missing_env_variable_is_a_diagnostic_on_the_node() -> None:
    server = {"name": "s", "type": "http.server", "config": {"address": "${NOPE:-}x${NOPE}"}}
    wf = Workflow({"modules": [server]}, environ={})
    assert not wf.valid
    [diag] = [d for d in wf.diagnostics if "NOPE" in d["message"]]
    assert diag["id"] == "module:s" and "NOPE is not set" in diag["message"]


def test_layout_inline_block_and_sidecar(tmp_path: Path) -> None:
    inline = tmp_path / "inline.yaml"
    inline.write_text(HELLO.read_text() + "layout:\n  module:server: {x: 10, y: 20}\n")
    wf = Workflow(inline, environ=EPHEMERAL)
    assert wf.layout == {"module:server": {"x": 10, "y": 20}}
    assert "layout" not in wf.raw
    assert wf.config is not None and wf.config.layout["module:server"].x == 10

    side = tmp_path / "side.yaml"
    side.write_text(HELLO.read_text())
    (tmp_path / "side.layout.yaml").write_text("pipeline:hello: {x: 1.5, y: 2}\n")
    wf = Workflow(side, environ=EPHEMERAL)
    assert wf.layout == {"pipeline:hello": {"x": 1.5, "y": 2}}


def test_bad_layout_is_reported_not_dropped() -> None:
    wf = Workflow("layout:\n  module:a: {x: left}\n")
    assert not wf.valid
    assert wf.error is not None and "<config>:2:" in wf.error.render()
    assert wf.diagnostics[0]["path"] == "layout.module:a"


# --- edits ---------------------------------------------------------------------------------------
def test_valid_patch_updates_config_and_fires_observers() -> None:
    wf = Workflow(HELLO, environ=EPHEMERAL)
    seen = recorder(wf, "config", "raw", "revision", "diagnostics", "layout")
    revision = wf.apply_patch(
        [{"op": "replace", "path": "/workflows/http/routes/0/path", "value": "/hi"}],
        base=wf.revision,
    )
    assert revision == 1 == wf.revision
    assert wf.config is not None and wf.config.workflows.http is not None
    assert wf.config.workflows.http.routes[0].path == "/hi"
    assert sorted(seen) == ["config", "raw", "revision"]


def test_invalid_edit_is_kept_in_raw_and_pinned_to_the_node() -> None:
    wf = Workflow(HELLO, environ=EPHEMERAL)
    valid = wf.config
    seen = recorder(wf, "config", "raw", "diagnostics")
    wf.apply_patch([{"op": "replace", "path": "/modules/1/type", "value": "http.routr"}])
    assert wf.raw["modules"][1]["type"] == "http.routr"
    assert wf.config is valid, "the last valid config stays"
    assert sorted(seen) == ["diagnostics", "raw"]
    [diag] = [d for d in wf.diagnostics if d["path"] == "modules[1].type"]
    assert diag["id"] == "module:router" and diag["source"] == "schema"
    assert "did you mean 'http.router'" in diag["message"]
    wf.apply_patch([{"op": "replace", "path": "/modules/1/type", "value": "http.router"}])
    assert wf.valid and wf.diagnostics == []
    assert seen[-2:] == ["raw", "diagnostics"], "the same config as before: no config change"
    wf.apply_patch([{"op": "replace", "path": "/modules/1/name", "value": "r"}])
    assert not wf.valid, "dependsOn and the route still name 'router'"
    wf.apply_patch([{"op": "replace", "path": "/modules/1/name", "value": "router"}])
    wf.apply_patch([{"op": "add", "path": "/modules/1/config", "value": {"prefix": "/api"}}])
    assert wf.valid and seen[-1] == "config"


@pytest.mark.parametrize(
    ("op", "node"),
    [
        ({"op": "replace", "path": "/workflows/http/routes/0/handler", "value": "nope"}, "route:0"),
        (
            {"op": "add", "path": "/pipelines/hello/0/body", "value": "{{ unclosed"},
            "pipeline:hello",
        ),
        (
            {
                "op": "add",
                "path": "/triggers",
                "value": {
                    "http": {"routes": [{"path": "/t", "workflow": "pipeline", "action": "x"}]}
                },
            },
            "trigger:http:0",
        ),
        ({"op": "add", "path": "/bogus", "value": 1}, "config"),
    ],
)
def test_diagnostics_name_the_node_or_edge(op: dict[str, Any], node: str) -> None:
    wf = Workflow(HELLO, environ=EPHEMERAL)
    wf.apply_patch([op])
    assert not wf.valid
    assert node in {d["id"] for d in wf.diagnostics}, wf.diagnostics


def test_dry_build_errors_come_from_the_engine() -> None:
    wf = Workflow("pipelines:\n  p: [{type: call, function: missing}]\n", functions={})
    [diag] = wf.diagnostics
    assert diag["id"] == "pipeline:p" and diag["source"] == "engine"
    assert "unknown function 'missing'" in diag["message"]


def test_stale_revision_is_refused_and_changes_nothing() -> None:
    wf = Workflow(HELLO, environ=EPHEMERAL)
    wf.apply_patch([], layout={"module:server": {"x": 1, "y": 1}})
    before = (dict(wf.raw), dict(wf.layout), wf.revision)
    with pytest.raises(RevisionConflict) as info:
        wf.apply_patch([{"op": "remove", "path": "/modules/1"}], base=0)
    assert info.value.current == 1
    assert (dict(wf.raw), dict(wf.layout), wf.revision) == before


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "remove", "path": "/modules/7"}],
        [{"op": "frobnicate", "path": "/modules"}],
        [{"op": "replace", "path": "", "value": [1, 2]}],
    ],
)
def test_malformed_patch_is_refused(ops: list[dict[str, Any]]) -> None:
    wf = Workflow(HELLO, environ=EPHEMERAL)
    raw = dict(wf.raw)
    with pytest.raises(PatchError):
        wf.apply_patch(ops)
    assert wf.raw == raw and wf.revision == 0


def test_a_move_changes_only_the_layout() -> None:
    wf = Workflow(HELLO, environ=EPHEMERAL)
    config = wf.config
    seen = recorder(wf, "config", "raw", "layout", "revision", "diagnostics")
    wf.apply_patch(
        [], layout={"module:server": {"x": 5, "y": 6}, "module:router": {"x": 1, "y": 2}}
    )
    wf.apply_patch([], layout={"module:router": None})
    assert wf.layout == {"module:server": {"x": 5, "y": 6}}
    assert wf.config is config and config is not None
    assert set(config.layout) == {"module:server"}
    assert seen == ["layout", "revision", "layout", "revision"]
    assert wf.validate() == [] and wf.config is config and len(seen) == 4
    with pytest.raises(PatchError):
        wf.apply_patch([], layout={"module:server": {"x": "far"}})


def test_python_side_changes_bump_the_revision() -> None:
    wf = Workflow(HELLO, environ=EPHEMERAL)
    seen = recorder(wf, "config", "revision")
    wf.update("pipelines:\n  p: [{type: log, message: hi}]\n")
    assert wf.revision == 1 and list(wf.config.pipelines) == ["p"]  # type: ignore[union-attr]
    wf.config = parse_config(HELLO.read_text(), environ=EPHEMERAL)
    assert wf.revision == 2 and "hello" in wf.raw["pipelines"]
    assert wf.raw["modules"][0]["config"]["address"].startswith("${HELLO_ADDRESS")
    wf.layout = {"pipeline:hello": {"x": 3, "y": 4}}
    assert wf.revision == 3
    assert sorted(seen) == ["config", "config", "revision", "revision", "revision"]


def test_unparsable_yaml_keeps_raw_and_reports_the_line() -> None:
    wf = Workflow(HELLO, environ=EPHEMERAL)
    raw = dict(wf.raw)
    wf.update("modules:\n  - name: a\n    type: [\n", filename="<cell>")
    assert wf.raw == raw and wf.revision == 0 and wf.config is not None
    assert wf.error is not None
    assert wf.error.diagnostics[0].file == "<cell>" and wf.error.diagnostics[0].line == 4
    assert wf.diagnostics[0]["id"] == "config"


def test_validation_errors_carry_yaml_positions() -> None:
    wf = Workflow("modules:\n  - name: a\n    type: http.srever\n", filename="<cell>")
    assert wf.error is not None
    assert "<cell>:3:11: modules[0].type: unknown module type 'http.srever'" in wf.error.render()
    assert wf.validate() == wf.diagnostics  # positions survive a re-validation


# --- saving --------------------------------------------------------------------------------------
def test_save_with_sidecar_round_trips(tmp_path: Path) -> None:
    wf = Workflow(HELLO.read_text(), environ=EPHEMERAL)
    with pytest.raises(FlownbError, match="pass save"):
        wf.save()
    wf.apply_patch([], layout={"module:server": {"x": 10, "y": 20}})
    path = wf.save(tmp_path / "hello.yaml")
    assert path == wf.path and (tmp_path / "hello.layout.yaml").exists()
    text = path.read_text()
    assert "layout" not in yaml.safe_load(text) and "${HELLO_ADDRESS" in text
    again = Workflow(path, environ=EPHEMERAL)
    assert again.raw == wf.raw and again.layout == wf.layout and again.config == wf.config


def test_save_inline_and_none(tmp_path: Path) -> None:
    wf = Workflow(HELLO, environ=EPHEMERAL)
    wf.apply_patch([], layout={"pipeline:hello": {"x": 1, "y": 2}})
    path = wf.save(tmp_path / "inline.yaml", layout="inline")
    assert yaml.safe_load(path.read_text())["layout"] == {"pipeline:hello": {"x": 1, "y": 2}}
    assert not (tmp_path / "inline.layout.yaml").exists()
    again = Workflow(path, environ=EPHEMERAL)
    assert again.layout == wf.layout
    again.apply_patch([{"op": "replace", "path": "/workflows/http/routes/0/path", "value": "/x"}])
    again.save()  # back to its own file, inline as loaded
    assert "/x" in path.read_text() and "layout:" in path.read_text()
    bare = wf.save(tmp_path / "bare.yaml", layout="none")
    assert "layout" not in yaml.safe_load(bare.read_text())
    assert not (tmp_path / "bare.layout.yaml").exists()


# --- running -------------------------------------------------------------------------------------
async def test_start_returns_at_once_and_other_tasks_keep_running() -> None:
    wf = Workflow(HELLO, environ=EPHEMERAL)
    ticks = 0
    stop_ticking = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop_ticking.is_set():
            ticks += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(ticker())
    running = recorder(wf, "running")
    task = wf.start()
    assert task is not None and not task.done(), "start() only schedules"
    assert not wf.running
    await task
    assert wf.running and running == ["running"] and ticks > 0
    status = wf.status()
    assert status["state"] == "running" and status["servers"]["server"].startswith("http://")
    reply = await wf.send("http", "GET /hello?n=1")
    assert isinstance(reply, httpx.Response) and reply.json() == {"hello": "world", "q": "1"}
    before = ticks
    await wf.stop()
    assert not wf.running and wf.status()["state"] == "stopped"
    assert ticks > before
    stop_ticking.set()
    await other


async def test_lifecycle_calls_run_in_order() -> None:
    wf = Workflow(HELLO, environ=EPHEMERAL)
    wf.start()
    wf.stop()
    wf.start()
    await wf.wait()
    assert wf.running
    wf.update(HELLO.read_text().replace("/hello", "/hi"))
    assert wf.status()["stale"]
    await wf.restart()
    assert not wf.status()["stale"]
    assert (await wf.send("http", "GET /hi")).status_code == 200
    await wf.stop()


async def test_send_topic_and_pipeline_to_the_chat_example() -> None:
    wf = Workflow(CHAT, environ=EPHEMERAL)
    await wf.start()
    try:
        sent = await wf.send("topic", "chat.in", {"room": "r1", "user": "ada", "text": "hi"})
        assert sent["topic"] == "chat.in" and sent["id"]

        async def archived() -> Any:
            reply = await wf.send("http", "GET /rooms/r1/messages")
            return reply.json()["messages"]

        [message] = await eventually(archived)
        assert message["user"] == "ada" and "at" in message
        posted = await wf.send("http", "POST /rooms/r2/messages", {"user": "bob", "text": "yo"})
        assert posted.status_code == 202
        stats = await wf.send("pipeline", "room-stats", {})
        assert isinstance(stats, Response) and stats.status == 200
    finally:
        await wf.stop()


async def test_history_records_status_duration_and_steps() -> None:
    wf = Workflow(PIPELINE, functions=FUNCTIONS)
    await wf.start()
    try:
        assert await wf.send("pipeline", "double", {"n": 21}) == {"n": 42}
        with pytest.raises(FlownbError, match="kaboom"):
            await wf.send("pipeline", "boom", {})
    finally:
        await wf.stop()
    table = wf.history()
    assert list(table["status"]) == ["error", "ok"]
    assert {"duration_ms", "step:doubled", "step:check", "step:explode"} <= set(table.columns)
    ok = table[table["status"] == "ok"].iloc[0]
    assert ok["action"] == "double" and ok["node"] == "double" and ok["step:check"] >= 0
    assert [s["name"] for s in ok["steps"]] == ["doubled", "check"]
    errors = wf.history(status="error")
    assert len(errors) == 1 and "kaboom" in errors.iloc[0]["error"]
    assert wf.inspect("pipeline:double")["output"] == {"n": 42}


def test_blocking_mode_outside_an_event_loop() -> None:
    wf = Workflow(HELLO, environ=EPHEMERAL)
    assert wf.start() is None and wf.running
    try:
        reply = wf.send("http", "GET /hello?n=2")
        assert reply.json() == {"hello": "world", "q": "2"}
        assert wf.send("pipeline", "hello", {}).status == 200
        assert wf.status()["inflight"] == 0
    finally:
        assert wf.stop() is None
    assert not wf.running


async def test_starting_an_invalid_workflow_fails_and_never_builds() -> None:
    wf = Workflow("modules:\n  - {name: a, type: nope}\n")
    with pytest.raises(ConfigError, match="unknown module type 'nope'"):
        await wf.start()
    assert wf.engine is None and not wf.running
    with pytest.raises(FlownbError, match="not running"):
        wf.send("pipeline", "x")


async def test_a_failed_start_is_pinned_to_the_module() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        wf = Workflow(HELLO, environ={"HELLO_ADDRESS": f"127.0.0.1:{port}"})
        with pytest.raises(BuildError):
            await wf.start()
    assert not wf.running
    assert [d["id"] for d in wf.diagnostics] == ["module:server"]
    assert wf.diagnostics[0]["source"] == "engine"


def test_send_targets() -> None:
    assert split_http_target("GET /hello?n=1") == ("GET", "/hello?n=1")
    assert split_http_target("post /orders") == ("POST", "/orders")
    assert split_http_target("/x") == ("GET", "/x")
    with pytest.raises(FlownbError, match="starts with '/'"):
        split_http_target("GET hello")


def test_repr_says_what_it_holds() -> None:
    wf = Workflow(HELLO, environ=EPHEMERAL)
    assert repr(wf) == "<Workflow 'hello' revision 0: 2 modules, 1 pipeline; valid; stopped>"
    summary = Workflow("modules: 3\n", filename="<cell>").summary()
    assert summary.splitlines() == [
        "<Workflow 'workflow' revision 0: 0 modules, 0 pipelines; 1 error; stopped>",
        "<cell>:1:10: modules: modules must be a list of {name, type, config}",
    ]
