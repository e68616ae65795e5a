"""The golden set: intents whose scripted answers (tests/ai_golden/*.yaml) go through the whole
generation path and are validated by the real validator; together they use all ten module
categories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from flownb.cli import main
from flownb.registry import CATEGORIES, default_registry
from flownb.testing import FakeAnthropic, Reply

GOLDEN = sorted((Path(__file__).resolve().parent / "ai_golden").glob("*.yaml"))


def load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = yaml.safe_load(path.read_text())
    return case


def module_types(case: dict[str, Any]) -> list[str]:
    return sorted({m["type"] for m in yaml.safe_load(case["answer"])["modules"]})


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "FLOWNB_AI_MODEL"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
async def test_a_golden_intent_ends_valid(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = load(path)
    answer, components = case["answer"], case.get("components", [])
    names = [c["name"] for c in components]
    types = module_types(case)
    with FakeAnthropic(
        [
            Reply.tool_use("list_module_types", {}),
            Reply.tools(*[("get_module_schema", {"type": t}) for t in types]),
            Reply.tool_use("validate_config", {"yaml": answer, "components": names}),
            Reply.submit_workflow(answer, components=components, explanation=case["intent"]),
        ]
    ) as fake:
        async with fake.generator(base_dir=tmp_path, environ={}) as gen:
            result = await gen.generate_workflow(case["intent"])
    assert fake.problems == []
    registry = default_registry()
    served = [json.loads(r["content"]) for r in fake.requests[2].tool_results()]
    assert served == [registry.get(t).schema() for t in types]
    assert json.loads(fake.requests[3].tool_results()[0]["content"]) == {
        "valid": True,
        "errors": [],
    }
    assert result.fixes == 0 and [c.name for c in result.components] == names
    # Deployed as a file, it passes `flownb validate` (components are where it looks).
    target = tmp_path / "app" / "workflow.yaml"
    deployment = result.save(target)
    assert [p.name for p in deployment.components] == [f"{n}.py" for n in names]
    capsys.readouterr()
    assert main(["validate", str(target)]) == 0, capsys.readouterr().err


def test_the_golden_set_uses_every_module_category() -> None:
    registry = default_registry()
    covered = {registry.get(t).category for path in GOLDEN for t in module_types(load(path))}
    assert covered == set(CATEGORIES), f"add a golden case for: {set(CATEGORIES) - covered}"
