"""The `data.transformer` module and `transform` steps that use its named pipelines."""

from __future__ import annotations

import pytest

from flownb.engine import Engine
from flownb.errors import ConfigError, StepError, UnknownNameError
from flownb.loader import parse_config
from flownb.modules.transformer import DataTransformer

CONFIG = """
modules:
  - name: shape
    type: data.transformer
    config:
      pipelines:
        big_orders:
          - extract: "orders[?total > `100`]"
          - filter: {where: "item.status != 'cancelled'"}
        summary:
          - map: {id: id, customer: customer.name, total: total}
          - convert: {total: float, id: str}
        public:
          - filter: {fields: [id, total]}
pipelines:
  report:
    - {type: transform, transformer: shape, pipeline: big_orders}
  summarise:
    - {type: transform, transformer: shape, pipeline: summary, output: summary}
    - {type: transform, transformer: shape, pipeline: public, input: "{{ vars.summary }}",
       replace_data: false, name: public}
    - {type: set, values: {public: "{{ steps.public }}"}, target: data}
"""

ORDERS = {
    "orders": [
        {"id": 1, "total": 50, "status": "paid"},
        {"id": 2, "total": 150, "status": "paid"},
        {"id": 3, "total": 250, "status": "cancelled"},
        {"id": 4, "total": 300, "status": "new"},
    ]
}


async def test_named_pipelines_run_from_transform_steps() -> None:
    async with Engine(parse_config(CONFIG)) as engine:
        big = await engine.trigger_workflow("pipeline", "report", ORDERS)
        assert [o["id"] for o in big] == [2, 4]
        out = await engine.trigger_workflow(
            "pipeline", "summarise", {"id": 9, "customer": {"name": "Ada"}, "total": "12.5"}
        )
    assert out == {
        "id": "9",
        "customer": "Ada",
        "total": 12.5,
        "public": {"id": "9", "total": 12.5},
    }


async def test_module_transforms_directly() -> None:
    async with Engine(parse_config(CONFIG)) as engine:
        shape = engine.modules["shape"]
        assert isinstance(shape, DataTransformer)
        assert shape.transform("public", {"id": 1, "total": 2, "secret": 3}) == {
            "id": 1,
            "total": 2,
        }
        assert sorted(shape.names) == ["big_orders", "public", "summary"]
        with pytest.raises(UnknownNameError, match="did you mean 'summary'"):
            shape.pipeline("sumary")


async def test_a_failing_operation_fails_the_step_with_400() -> None:
    async with Engine(parse_config(CONFIG)) as engine:
        with pytest.raises(StepError) as info:
            await engine.trigger_workflow("pipeline", "summarise", {"id": 1, "total": "lots"})
    assert info.value.status == 400
    assert "cannot convert field 'total' to float" in str(info.value)


async def test_an_unknown_pipeline_fails_the_build() -> None:
    text = CONFIG.replace("pipeline: big_orders}", "pipeline: big}")
    with pytest.raises(ConfigError, match="unknown transformer pipeline 'big'"):
        await Engine(parse_config(text)).start()


@pytest.mark.parametrize(
    ("pipelines", "message"),
    [
        ("{p: [{extract: 'orders[?'}]}", "invalid JMESPath expression"),
        ("{p: [{map: {a: b}, extract: c}]}", "exactly one of extract, map, filter, convert"),
        ("{p: [{convert: {a: decimal}}]}", "convert"),
        ("{p: [{filter: {}}]}", "filter takes exactly one of fields or where"),
    ],
)
def test_bad_operations_are_config_errors(pipelines: str, message: str) -> None:
    text = f"""
modules:
  - {{name: shape, type: data.transformer, config: {{pipelines: {pipelines}}}}}
"""
    with pytest.raises(ConfigError, match=message):
        parse_config(text)


def test_a_dry_check_compiles_transform_steps_without_init() -> None:
    Engine(parse_config(CONFIG)).check()
