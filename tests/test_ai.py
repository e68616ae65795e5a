"""AI generation with the real `anthropic` client against the fake Messages API on loopback:
the tool loop, the registry-backed tools, validate-and-fix, components, bounds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flownb.ai import (
    Bounds,
    ComponentSpec,
    GenerationFailed,
    GenerationResult,
    Generator,
)
from flownb.ai.tools import SPECS
from flownb.errors import ConfigError
from flownb.loader import parse_config
from flownb.registry import default_registry
from flownb.testing import FakeAnthropic, Reply

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HELLO = (EXAMPLES / "hello" / "hello.yaml").read_text()
TYPO = HELLO.replace("address:", "adress:")
AI_ENV = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "FLOWNB_AI_MODEL",
    "FLOWNB_AI_PROVIDER",
    "COPILOT_CLI_PATH",
)

SCORER = """\
name = "scorer"
import math


def execute(ctx, data):
    return {"score": math.floor(data.get("value", 0) * 10)}
"""
SCORER_YAML = """\
modules:
  - name: scorer
    type: dynamic.component
    config: {componentId: scorer}
pipelines:
  score:
    - {type: call, function: scorer}
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in AI_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server
    assert server.problems == [], "the client spoke the Messages API wrongly"


async def generate(
    fake: FakeAnthropic, tmp_path: Path, intent: str = "a hello API", **options: Any
) -> GenerationResult:
    bounds = options.pop("bounds", None)
    async with fake.generator(base_dir=tmp_path, bounds=bounds) as gen:
        return await gen.generate_workflow(intent, **options)


def diagnostics(text: str) -> list[str]:
    """What `flownb validate` prints for `text`."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, filename="workflow.yaml")
    return [str(d) for d in caught.value.diagnostics]


def tool_json(request: Any, index: int = 0) -> Any:
    return json.loads(request.tool_results()[index]["content"])


# --- the tool loop ---------------------------------------------------------------------------
async def test_a_tool_loop_ends_in_a_valid_workflow(fake: FakeAnthropic, tmp_path: Path) -> None:
    fake.add(
        Reply.tool_use("list_module_types", {}),
        Reply.tools(
            ("get_module_schema", {"type": "http.server"}),
            ("get_section_schema", {"section": "workflows.http"}),
            ("get_example_workflow", {}),
        ),
        Reply.tool_use("get_example_workflow", {"name": "hello"}),
        Reply.tool_use("validate_config", {"yaml": HELLO}),
        Reply.submit_workflow(HELLO, explanation="GET /hello answers hello world."),
    )
    result = await generate(fake, tmp_path, "say hello over HTTP")
    assert result.yaml == HELLO and result.config["modules"][0]["type"] == "http.server"
    assert result.explanation == "GET /hello answers hello world."
    assert (result.rounds, result.fixes, result.provider) == (5, 0, "anthropic")
    assert (
        result.tool_calls[0] == "list_module_types" and result.tool_calls[-1] == "submit_workflow"
    )
    first = fake.requests[0]
    assert set(first.tool_names()) == {s.name for s in SPECS} | {"submit_workflow"}
    assert "say hello over HTTP" in first.last_text()
    assert "flownb" in first.body["system"]


async def test_the_tools_answer_from_the_registry(fake: FakeAnthropic, tmp_path: Path) -> None:
    fake.add(
        Reply.tool_use("list_module_types", {"category": "Messaging"}),
        Reply.tool_use("get_module_schema", {"type": "cache"}),
        Reply.tool_use("get_section_schema", {"section": "triggers.schedule"}),
        Reply.tool_use("get_example_workflow", {}),
        Reply.tool_use("validate_config", {"yaml": TYPO}),
        Reply.submit_workflow(HELLO),
    )
    await generate(fake, tmp_path)
    registry = default_registry()
    listed = tool_json(fake.requests[1])
    assert {t["type"] for t in listed["types"]} == {
        t.name for t in registry if t.category == "Messaging"
    }
    assert listed["categories"][0] == "HTTP" and len(listed["categories"]) == 10
    assert tool_json(fake.requests[2]) == registry.get("cache").schema()
    section = tool_json(fake.requests[3])
    assert "jobs" in section["properties"] and "ScheduleJob" in section["$defs"]
    examples = {e["name"] for e in tool_json(fake.requests[4])["examples"]}
    assert {"hello", "orders", "chat", "report", "payments"} <= examples
    checked = tool_json(fake.requests[5])
    assert checked == {"valid": False, "errors": diagnostics(TYPO)}


async def test_unknown_names_and_malformed_tool_input_are_answered_as_errors(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    fake.add(
        Reply.tools(
            ("get_module_schema", {"type": "http.servr"}),
            ("get_module_schema", {}),
            ("get_section_schema", {"section": "workflows.nope"}),
            ("get_example_workflow", {"name": "nope"}),
            ("deploy_everything", {}),
        ),
        Reply.submit_workflow(HELLO),
    )
    result = await generate(fake, tmp_path)
    replies = fake.requests[1].tool_results()
    assert all(r["is_error"] for r in replies)
    assert "did you mean 'http.server'" in replies[0]["content"]
    assert "'type' is a required property" in replies[1]["content"]
    assert "workflows.http" in replies[2]["content"]  # the known sections are listed
    assert "hello" in replies[3]["content"]
    assert "submit_workflow" in replies[4]["content"]  # the known tools are listed
    assert result.fixes == 0, "a bad information call is not a refused answer"


# --- validate and fix ------------------------------------------------------------------------
async def test_an_invalid_answer_goes_back_with_the_exact_errors_then_is_fixed(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    fake.add(Reply.submit_workflow(TYPO), Reply.submit_workflow(HELLO))
    result = await generate(fake, tmp_path)
    [refusal] = fake.requests[1].tool_results()
    assert refusal["is_error"] is True
    for line in diagnostics(TYPO):  # FILE:LINE:COL: path: message, as `flownb validate` says
        assert line in refusal["content"]
    assert "workflow.yaml:9:7: modules[0].config.adress" in refusal["content"]
    assert result.fixes == 1 and result.yaml == HELLO


async def test_after_the_fix_rounds_it_fails_naming_the_last_errors(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    other = HELLO.replace("type: http.router", "type: http.routr")
    fake.add(*[Reply.submit_workflow(TYPO)] * 2, Reply.submit_workflow(other))
    with pytest.raises(GenerationFailed) as caught:
        await generate(fake, tmp_path, bounds=Bounds(max_fixes=2))
    assert "after 3 answers were sent back" in str(caught.value)
    assert caught.value.errors == diagnostics(other)
    assert "http.routr" in str(caught.value)
    assert len(fake.requests) == 3 and fake.remaining == 0


async def test_the_tool_loop_is_bounded(fake: FakeAnthropic, tmp_path: Path) -> None:
    fake.add(*[Reply.tool_use("list_module_types", {})] * 3)
    with pytest.raises(GenerationFailed) as caught:
        await generate(fake, tmp_path, bounds=Bounds(max_rounds=3))
    assert "within 3 model turns" in str(caught.value)
    assert "never called submit_workflow" in str(caught.value)
    assert len(fake.requests) == 3


async def test_prose_instead_of_yaml_is_refused_and_a_fenced_answer_is_read(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    fake.add(
        Reply.text("I would use an HTTP server and a router with a hello route."),
        Reply.text(f"Here it is:\n\n```yaml\n{HELLO}```\nIt answers GET /hello."),
    )
    result = await generate(fake, tmp_path)
    refusal = fake.requests[1].last_text()
    assert "has no workflow in it" in refusal and "submit_workflow" in refusal
    assert result.yaml == HELLO and result.fixes == 1
    assert result.explanation.startswith("Here it is:") and "GET /hello" in result.explanation


async def test_malformed_submissions_are_refused_with_the_schema_problem(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    fake.add(
        Reply.tool_use("submit_workflow", {"yml": HELLO}),
        Reply.tool_use("submit_workflow", {"yaml": HELLO, "components": "scorer"}),
        Reply.text('```json\n{"yaml": "modules: [\n```'),
        Reply.text("```yaml\nmodules: [unclosed\n```"),
        Reply.submit_workflow(HELLO),
    )
    result = await generate(fake, tmp_path, bounds=Bounds(max_fixes=4))
    first, second = (r.tool_results()[0]["content"] for r in fake.requests[1:3])
    assert "'yaml' is a required property" in first
    assert "components: 'scorer' is not of type 'array'" in second
    assert "the JSON in your answer does not parse" in fake.requests[3].last_text()
    assert "workflow.yaml:2" in fake.requests[4].last_text()  # YAML errors with positions
    assert result.fixes == 4


async def test_a_cut_off_answer_is_sent_back(fake: FakeAnthropic, tmp_path: Path) -> None:
    fake.add(Reply.text("```yaml\nmodules:\n  - name: ser", stop_reason="max_tokens"))
    fake.add(Reply.submit_workflow(HELLO))
    result = await generate(fake, tmp_path)
    assert "cut off" in fake.requests[1].last_text() and result.fixes == 1


# --- components ------------------------------------------------------------------------------
async def test_components_are_checked_and_test_run_before_acceptance(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    escaping = 'name = "scorer"\nimport os\n\ndef execute(ctx, data):\n    return {}\n'
    failing = 'name = "scorer"\n\ndef execute(ctx, data):\n    return {"x": 1 / 0}\n'
    fake.add(
        Reply.submit_workflow(SCORER_YAML, components=[{"source": escaping}]),
        Reply.submit_workflow(SCORER_YAML, components=[{"source": failing}]),
        Reply.submit_workflow(SCORER_YAML),
        Reply.submit_workflow(
            SCORER_YAML, components=[{"source": SCORER, "testInput": {"value": 0.5}}]
        ),
    )
    result = await generate(fake, tmp_path, "score values")
    refusals = [r.tool_results()[0]["content"] for r in fake.requests[1:4]]
    assert "scorer.py:2:1:" in refusals[0] and "os" in refusals[0]
    assert "test run on input {} failed" in refusals[1] and "ZeroDivisionError" in refusals[1]
    assert "workflow.yaml:4:" in refusals[2] and "was not generated" in refusals[2]
    assert "modules[0].config.componentId: component 'scorer' is not in" in refusals[2]
    [component] = result.components
    assert component.name == "scorer" and component.test_output == {"score": 5}
    assert result.fixes == 3


async def test_an_existing_component_need_not_be_generated(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "scorer.py").write_text(SCORER)
    fake.add(Reply.submit_workflow(SCORER_YAML))
    result = await generate(fake, tmp_path, "score values")
    assert result.components == () and result.fixes == 0
    assert "already exist in the components directory" in fake.requests[0].last_text()


async def test_validate_component_runs_it_isolated(fake: FakeAnthropic, tmp_path: Path) -> None:
    fake.add(
        Reply.tool_use("validate_component", {"source": SCORER, "testInput": {"value": 1.2}}),
        Reply.tool_use("validate_component", {"source": "def execute(ctx, data):\n  return 1\n"}),
        Reply.submit_workflow(HELLO),
    )
    await generate(fake, tmp_path)
    assert tool_json(fake.requests[1]) == {"valid": True, "errors": [], "output": {"score": 12}}
    unnamed = tool_json(fake.requests[2])
    assert unnamed["valid"] is False and "name = " in unnamed["errors"][0]


async def test_generate_component(fake: FakeAnthropic, tmp_path: Path) -> None:
    bad = SCORER.replace("import math", "import socket")
    fake.add(Reply.submit_component(bad), Reply.submit_component(SCORER))
    async with fake.generator(base_dir=tmp_path) as gen:
        spec = ComponentSpec("scorer", "ten times the value, floored", {"value": 0.25})
        source = await gen.generate_component(spec)
    assert source == SCORER
    assert "socket" in fake.requests[1].tool_results()[0]["content"]
    assert '"value": 0.25' in fake.requests[0].last_text()


async def test_suggest_workflows_checks_the_module_types(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    idea = {"title": "Orders", "description": "an order API", "intent": "orders over HTTP"}
    fake.add(
        Reply.tool_use("submit_suggestions", {"suggestions": [{**idea, "moduleTypes": ["kafka"]}]}),
        Reply.tool_use(
            "submit_suggestions", {"suggestions": [{**idea, "moduleTypes": ["api.handler"]}]}
        ),
    )
    async with fake.generator(base_dir=tmp_path) as gen:
        [suggestion] = await gen.suggest_workflows("a shop")
    assert suggestion.intent == "orders over HTTP" and suggestion.module_types == ("api.handler",)
    assert "unknown module type 'kafka'" in fake.requests[1].tool_results()[0]["content"]


def test_identify_missing_components_reads_the_config(tmp_path: Path) -> None:
    from flownb.ai import get_generator

    config = SCORER_YAML + "  other:\n    - {type: call, function: nowhere}\n"
    config = config.replace(
        "pipelines:",
        "  - name: h\n    type: http.handler\n    config: {function: gone}\npipelines:",
    )
    gen = get_generator("anthropic", api_key="unused", base_dir=tmp_path)
    missing = gen.identify_missing_components(parse_config(config.replace("nowhere", "scorer")))
    assert [(m.name, m.kind, m.where) for m in missing] == [
        ("scorer", "component", "modules[0].config.componentId"),
        ("gone", "function", "modules[1].config.function"),
    ]
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "scorer.py").write_text(SCORER)
    assert [
        m.name for m in gen.identify_missing_components(config.replace("nowhere", "scorer"))
    ] == ["gone"]
    assert isinstance(gen, Generator)


async def test_context_and_constraints_reach_the_model(fake: FakeAnthropic, tmp_path: Path) -> None:
    fake.add(Reply.submit_workflow(HELLO))
    await generate(
        fake,
        tmp_path,
        "add a rate limit",
        context=parse_config(HELLO),
        constraints=["memory broker only", "port 9000"],
    )
    prompt = fake.requests[0].last_text()
    assert "add a rate limit" in prompt and "Start from this existing workflow" in prompt
    assert "path: /hello" in prompt
    assert "- memory broker only\n- port 9000" in prompt


async def test_an_empty_intent_is_refused_before_any_request(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    with pytest.raises(Exception, match="intent is empty"):
        await generate(fake, tmp_path, "  ")
    assert fake.requests == []
