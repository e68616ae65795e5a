"""The `jsonschema` module and the `validate` step that uses it."""

from __future__ import annotations

import pytest

from flownb.engine import Engine
from flownb.errors import ConfigError, StepError, UnknownNameError, ValidationFailed
from flownb.loader import parse_config
from flownb.modules.jsonschema import SchemaRegistry

CONFIG = """
modules:
  - name: schemas
    type: jsonschema
    config:
      schemas:
        order:
          type: object
          required: [id, items]
          properties:
            id: {type: string, minLength: 1}
            email: {type: string, format: email}
            items:
              type: array
              minItems: 1
              items:
                type: object
                required: [sku, qty]
                properties:
                  sku: {type: string}
                  qty: {type: integer, minimum: 1}
        ping: {type: object}
pipelines:
  place:
    - {type: validate, module: schemas, ref: order}
    - {type: set, values: {ok: true}, target: data}
  check_item:
    - {type: validate, module: schemas, ref: order, input: "{{ vars.order }}"}
"""

VALID = {"id": "o-1", "email": "a@example.com", "items": [{"sku": "x", "qty": 2}]}


async def test_valid_input_passes_the_validate_step() -> None:
    async with Engine(parse_config(CONFIG)) as engine:
        out = await engine.trigger_workflow("pipeline", "place", VALID)
    assert out == {**VALID, "ok": True}


async def test_invalid_input_fails_with_400_and_every_problem_path() -> None:
    bad = {"id": "", "email": "not-an-email", "items": [{"sku": "x", "qty": 0}, {"qty": "2"}]}
    async with Engine(parse_config(CONFIG)) as engine:
        with pytest.raises(StepError) as info:
            await engine.trigger_workflow("pipeline", "place", bad)
    error = info.value
    assert error.status == 400
    assert isinstance(error.__cause__, ValidationFailed)
    paths = [p["path"] for p in error.details]  # type: ignore[attr-defined]
    assert paths == ["/email", "/id", "/items/0/qty", "/items/1", "/items/1/qty"]
    assert "input is invalid" in str(error) and "/id" in str(error)


async def test_registry_validates_directly() -> None:
    async with Engine(parse_config(CONFIG)) as engine:
        registry = engine.modules["schemas"]
        assert isinstance(registry, SchemaRegistry)
        assert registry.validate("order", VALID) == []
        problems = registry.validate("order", {"items": []})
        assert {p["path"] for p in problems} == {"/", "/items"}
        assert sorted(registry.names) == ["order", "ping"]
        with pytest.raises(UnknownNameError, match=r"unknown schema 'ordr'; did you mean 'order'"):
            registry.validator("ordr")


async def test_the_validate_step_raises_validation_failed_itself() -> None:
    from flownb.execution import ExecutionContext
    from flownb.steps.validate import ValidateStep

    async with Engine(parse_config(CONFIG)) as engine:
        step = ValidateStep(type="validate", module="schemas", ref="order").compile(engine)
        ctx = ExecutionContext(engine, "test", "validate", {"id": 1})
        with pytest.raises(ValidationFailed) as info:
            await step(ctx)
    assert info.value.status == 400
    assert [p["path"] for p in info.value.details] == ["/", "/id"]  # type: ignore[attr-defined]


def test_an_invalid_schema_is_a_config_error_naming_it() -> None:
    text = """
modules:
  - name: schemas
    type: jsonschema
    config:
      schemas:
        good: {type: object}
        broken: {type: objekt}
        worse: {properties: {n: {minimum: "zero"}}}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, filename="wf.yaml")
    text = str(info.value)
    assert "wf.yaml:8:" in text and "modules[0].config.schemas.broken: invalid JSON Schema" in text
    assert "wf.yaml:9:" in text
    assert "schemas.worse: invalid JSON Schema at /properties/n/minimum" in text
    assert "schemas.good" not in text


async def test_an_unknown_schema_name_fails_the_build_listing_known_ones() -> None:
    text = CONFIG.replace("ref: order}", "ref: orders}", 1)
    engine = Engine(parse_config(text, filename="wf.yaml"))
    with pytest.raises(ConfigError) as info:
        await engine.start()
    message = str(info.value)
    assert "pipelines.place" in message
    assert "unknown schema 'orders'; did you mean 'order'?" in message
    assert "known: order, ping" in message


def test_a_dry_check_compiles_validate_steps_without_init() -> None:
    Engine(parse_config(CONFIG)).check()


def test_the_validate_step_module_must_be_a_jsonschema_module() -> None:
    text = """
modules:
  - {name: c, type: cache}
pipelines:
  p: [{type: validate, module: c, ref: x}]
"""
    with pytest.raises(ConfigError, match="does not provide 'jsonschema'"):
        parse_config(text)
