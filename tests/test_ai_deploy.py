"""Deploying generated work (files, a running notebook workflow, hot reload of components)
and `flownb generate` on the command line, all against the fake Messages API."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from flownb import Workflow
from flownb.ai import GenerationResult, NotDeployed, deploy
from flownb.ai.results import GeneratedComponent
from flownb.cli import main
from flownb.loader import load_config
from flownb.testing import FakeAnthropic, Reply, run_engine

GOLDEN = Path(__file__).resolve().parent / "ai_golden"
SCORING = yaml.safe_load((GOLDEN / "scoring-component.yaml").read_text())
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HELLO = (EXAMPLES / "hello" / "hello.yaml").read_text()

SCORE_YAML = """\
modules:
  - name: scorer
    type: dynamic.component
    config: {componentId: scorer, watch: true}
pipelines:
  score:
    - {type: call, function: scorer, replace_data: true}
"""


def scorer(version: int) -> str:
    return f'name = "scorer"\n\ndef execute(ctx, data):\n    return {{"version": {version}}}\n'


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "FLOWNB_AI_MODEL",
        "FLOWNB_AI_PROVIDER",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")  # no Copilot CLI: `auto` means Anthropic


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropic]:
    """The fake API, with ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL pointing at it."""
    with FakeAnthropic() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        yield server
    assert server.problems == []


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.02)


async def generated(fake: FakeAnthropic, tmp_path: Path, reply: Reply) -> GenerationResult:
    fake.add(reply)
    async with fake.generator(base_dir=tmp_path) as gen:
        return await gen.generate_workflow("score purchases")


# --- files -------------------------------------------------------------------------------------
async def test_a_deployed_file_runs_with_its_component(fake: FakeAnthropic, tmp_path: Path) -> None:
    reply = Reply.submit_workflow(SCORING["answer"], components=SCORING["components"])
    result = await generated(fake, tmp_path, reply)
    target = tmp_path / "shop" / "scoring.yaml"
    deployment = deploy(result, target)
    assert deployment.config_path == target and target.read_text() == result.yaml
    assert deployment.components == (tmp_path / "shop" / "components" / "scorer.py",)
    purchases = {"purchases": [{"category": "books", "amount": 30}, {"amount": 5}]}
    config = load_config(target, environ={"SCORE_ADDRESS": "127.0.0.1:0"})
    async with run_engine(config) as h:
        reply_ = await h.client.post("/score", json=purchases)
    assert reply_.status_code == 200, reply_.text
    assert reply_.json()["totals"] == {"books": 30.0} and reply_.json()["score"] > 0


def test_an_invalid_result_is_never_deployed(tmp_path: Path) -> None:
    bad = HELLO.replace("address:", "adress:")
    result = GenerationResult(bad, yaml.safe_load(bad), (), "")
    with pytest.raises(NotDeployed) as caught:
        deploy(result, tmp_path / "app.yaml")
    assert "modules[0].config.adress" in str(caught.value)
    escaping = GeneratedComponent("scorer", 'name = "scorer"\nimport os\n')
    result = GenerationResult(SCORE_YAML, yaml.safe_load(SCORE_YAML), (escaping,), "")
    with pytest.raises(NotDeployed, match=r"scorer\.py:2:1"):
        deploy(result, tmp_path / "app.yaml")
    assert list(tmp_path.iterdir()) == [], "nothing was written"


# --- a running notebook workflow -----------------------------------------------------------------
async def test_deploying_to_a_running_workflow_restarts_it_on_the_new_config(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    wf = Workflow(SCORE_YAML.replace("scorer", "first"), name="app", base_dir=tmp_path)
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "first.py").write_text(scorer(0).replace('"scorer"', '"first"'))
    wf.save(tmp_path / "app.yaml")
    await wf.start()
    try:
        assert (await wf.send("pipeline", "score", {})) == {"version": 0}
        result = await generated(
            fake, tmp_path, Reply.submit_workflow(SCORE_YAML, components=[{"source": scorer(1)}])
        )
        deployment = deploy(result, wf)
        assert deployment.restarted and wf.raw["modules"][0]["name"] == "scorer"
        await wf.wait()
        assert wf.running and (await wf.send("pipeline", "score", {})) == {"version": 1}

        # Only the component changes: no restart, the component watcher hot-reloads it.
        again = await generated(
            fake, tmp_path, Reply.submit_workflow(SCORE_YAML, components=[{"source": scorer(2)}])
        )
        revision = wf.revision
        deployment = deploy(again, wf)
        assert not deployment.restarted and wf.revision == revision + 1

        async def reloaded() -> bool:
            return bool(await wf.send("pipeline", "score", {}) == {"version": 2})

        await eventually(reloaded)
    finally:
        await wf.stop()


# --- flownb generate ------------------------------------------------------------------------------
def test_cli_writes_the_file_and_its_components(
    fake: FakeAnthropic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add(
        Reply.tool_use("list_module_types", {}),
        Reply.submit_workflow(
            SCORE_YAML, components=[{"source": scorer(1)}], explanation="Scores."
        ),
    )
    target = tmp_path / "app.yaml"
    assert main(["generate", "score things", "-o", str(target)]) == 0
    out = capsys.readouterr()
    assert out.out == "" and "generated by anthropic" in out.err and "Scores." in out.err
    assert target.read_text() == SCORE_YAML
    assert (tmp_path / "components" / "scorer.py").read_text() == scorer(1)
    assert main(["validate", str(target)]) == 0


def test_cli_prints_yaml_to_stdout_with_context_and_constraints(
    fake: FakeAnthropic,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    existing = tmp_path / "hello.yaml"
    existing.write_text(HELLO)
    fake.add(Reply.submit_workflow(HELLO))
    args = [
        "generate",
        "add a goodbye route",
        "--context",
        str(existing),
        "--constraint",
        "GET only",
    ]
    assert main([*args, "--model", "claude-test"]) == 0
    assert capsys.readouterr().out == HELLO
    prompt = fake.requests[0].last_text()
    assert "path: /hello" in prompt and "- GET only" in prompt
    assert fake.requests[0].body["model"] == "claude-test"


def test_cli_without_a_key_says_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", "a hello API", "-o", str(tmp_path / "app.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("flownb: error: no AI provider is configured: set ANTHROPIC_API_KEY")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "app.yaml").exists()


def test_cli_reports_the_last_errors_when_generation_fails(
    fake: FakeAnthropic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = HELLO.replace("address:", "adress:")
    fake.add(*[Reply.submit_workflow(bad)] * 4)
    assert main(["generate", "a hello API", "-o", str(tmp_path / "app.yaml")]) == 1
    err = capsys.readouterr().err
    assert "no valid workflow after 4 answers" in err and "modules[0].config.adress" in err
    assert "Traceback" not in err and not (tmp_path / "app.yaml").exists()


def test_cli_reports_api_failures(
    fake: FakeAnthropic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add(*[Reply.server_error(500)] * 3)
    assert main(["generate", "a hello API"]) == 1
    err = capsys.readouterr().err
    assert "flownb: error: the Anthropic API answered 500" in err and "Traceback" not in err
