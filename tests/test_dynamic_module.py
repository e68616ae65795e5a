"""`dynamic.component` in real workflows: an HTTP route, a pipeline `call` step, services
through `requires`, `provides` aliases, config errors, lookup by id and reload in an engine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flownb.engine import Engine
from flownb.errors import BuildError, ConfigError
from flownb.loader import parse_config
from flownb.testing import run_engine

SCORER = """
name = "scorer"
import math
svc = {}

def init(config, services):
    svc["s"] = services
    svc["weight"] = config["weight"]

async def execute(ctx, data):
    checked = await svc["s"].call("normalise", {"value": data["value"]})
    return {
        "score": math.floor(checked["value"] * svc["weight"]),
        "workflow": ctx["workflow"],
        "component": ctx["component"],
    }
"""

CONFIG = """
modules:
  - name: server
    type: http.server
    config: {{address: "127.0.0.1:0"}}
  - name: router
    type: http.router
  - name: scorer
    type: dynamic.component
    config:
      path: {path}
      trusted: {trusted}
      config: {{weight: 10}}
      requires: [normalise]
      provides: [scoring]
workflows:
  http:
    server: server
    router: router
    routes:
      - {{method: POST, path: /score, handler: scorer}}
      - {{method: POST, path: /pipeline, handler: rate}}
pipelines:
  normalise:
    - type: transform
      operations:
        - map: {{value: value}}
  rate:
    - type: call
      function: scorer
      output: scored
    - type: respond
      body: {{rated: "{{{{ vars.scored.score }}}}"}}
"""


@pytest.mark.parametrize("trusted", [False, True], ids=["isolated", "trusted"])
async def test_route_and_pipeline_call_a_component(tmp_path: Path, trusted: bool) -> None:
    (tmp_path / "scorer.py").write_text(SCORER)
    text = CONFIG.format(path=tmp_path / "scorer.py", trusted=str(trusted).lower())
    async with run_engine(text) as h:
        client = h.client
        reply = await client.post("/score", json={"value": 0.57})
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"score": 5, "workflow": "http", "component": "scorer"}
        reply = await client.post("/pipeline", json={"value": 0.91})
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"rated": 9}
        assert h.engine.handler("scoring") is h.engine.module("scorer")  # provides alias


async def test_limit_violation_fails_the_request_and_the_route_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "spin.py").write_text(
        "def execute(ctx, data):\n    while data.get('spin'):\n        pass\n    return {'ok': 1}\n"
    )
    text = f"""
modules:
  - {{name: server, type: http.server, config: {{address: "127.0.0.1:0"}}}}
  - {{name: router, type: http.router}}
  - name: spin
    type: dynamic.component
    config: {{path: {tmp_path / "spin.py"}, cpuSeconds: 0.3}}
  - name: slow
    type: dynamic.component
    config: {{path: {tmp_path / "spin.py"}, cpuSeconds: 30, timeout: 300ms}}
workflows:
  http:
    routes:
      - {{method: POST, path: /spin, handler: spin}}
      - {{method: POST, path: /slow, handler: slow}}
"""
    async with run_engine(text) as h:
        reply = await h.client.post("/spin", json={"spin": True})
        assert reply.status_code == 500  # the reason is logged, not shown to the caller
        assert "component 'spin': exceeded the CPU time limit of 0.3 s" in caplog.text
        reply = await h.client.post("/slow", json={"spin": True})
        assert reply.status_code == 504
        assert "exceeded the wall-time limit of 0.3 s" in reply.json()["error"]["message"]
        for path in ("/spin", "/slow"):
            reply = await h.client.post(path, json={})
            assert reply.json() == {"ok": 1}


async def test_component_id_lookup_in_directory(tmp_path: Path) -> None:
    folder = tmp_path / "components"
    folder.mkdir()
    (folder / "a.py").write_text("name = 'alpha'\ndef execute(ctx, data):\n    return {'a': 1}\n")
    (folder / "b.py").write_text("name = 'beta'\ndef execute(ctx, data):\n    return {'b': 2}\n")
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "modules:\n  - name: c\n    type: dynamic.component\n"
        "    config: {componentId: beta, trusted: true}\n"
        "pipelines:\n  run:\n    - {type: call, function: c, replace_data: true}\n"
    )
    engine = Engine.from_file(flow)
    async with engine:
        assert await engine.trigger_workflow("pipeline", "run", {}) == {"b": 2}
    flow.write_text(flow.read_text().replace("beta", "gamma"))
    with pytest.raises(BuildError, match=r"unknown component .*'gamma'.*known: alpha, beta"):
        await Engine.from_file(flow).start()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{path: x.py, componentId: y}", "set exactly one of componentId or path"),
        ("{}", "set exactly one of componentId or path"),
        ("{path: x.py, cpuSeconds: 0}", "cpuSeconds: Input should be greater than 0"),
        ("{path: x.py, poolSize: 0}", "poolSize: Input should be greater than or equal to 1"),
        ("{path: x.py, timeout: soon}", "timeout"),
        ("{path: x.py, trusted: yes, sandbox: off}", "sandbox"),
    ],
)
def test_config_errors_are_reported_by_the_validator(config: str, message: str) -> None:
    text = f"modules:\n  - name: c\n    type: dynamic.component\n    config: {config}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    rendered = caught.value.render()
    assert message in rendered, rendered
    assert "<config>:4:" in rendered


def test_unknown_required_handler() -> None:
    text = """
modules:
  - name: c
    type: dynamic.component
    config: {path: x.py, requires: [nowhere]}
"""
    with pytest.raises(ConfigError, match="unknown handler or pipeline 'nowhere'"):
        parse_config(text)


async def test_source_failing_the_check_fails_the_build_with_line_and_column(
    tmp_path: Path,
) -> None:
    (tmp_path / "evil.py").write_text("import os\ndef execute(ctx, data):\n    return {}\n")
    path = tmp_path / "evil.py"
    text = f"modules:\n  - {{name: evil, type: dynamic.component, config: {{path: {path}}}}}\n"
    engine = Engine(parse_config(text))
    with pytest.raises(BuildError, match=r"evil\.py:1:1: import of 'os' is not allowed"):
        await engine.start()
    assert engine.state == "failed"


async def test_watch_reloads_inside_the_engine(tmp_path: Path) -> None:
    source = tmp_path / "live.py"
    source.write_text("def execute(ctx, data):\n    return {'v': 1}\n")
    text = f"""
modules:
  - name: live
    type: dynamic.component
    config: {{path: {source}, watch: true}}
"""
    async with run_engine(text) as h:
        module = h.engine.module("live")
        call = h.engine.functions.resolve("live")
        from flownb.execution import ExecutionContext

        ctx = ExecutionContext(h.engine, "test", "live", {})
        assert await call({}, ctx) == {"v": 1}
        tmp = source.with_name(".live.tmp")
        tmp.write_text("def execute(ctx, data):\n    return {'v': 2}\n")
        os.replace(tmp, source)
        watcher = module._watcher  # type: ignore[attr-defined]
        assert await watcher.wait_until(lambda: module.component.version == 2, timeout=10)
        assert await call({}, ctx) == {"v": 2}
