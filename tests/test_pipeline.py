"""The pipeline runner: the fields every step has (if, skip_if, on_error, timeout, output, name)
and how a pipeline's result is made."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flownb.engine import Engine
from flownb.errors import ConfigError, ExecutionError, StepError
from flownb.execution import ExecutionContext, Response
from flownb.loader import parse_config


async def run(text: str, name: str, data: Any = None, **functions: Any) -> Any:
    async with Engine(parse_config(text), functions=functions) as engine:
        return await engine.trigger_workflow("pipeline", name, data)


async def test_the_result_is_the_final_data_without_a_respond_step() -> None:
    text = """
pipelines:
  p:
    - {type: set, values: {b: 2}, target: data}
    - {type: set, values: {c: "{{ data.a + data.b }}"}, target: data}
"""
    assert await run(text, "p", {"a": 1}) == {"a": 1, "b": 2, "c": 3}


async def test_respond_ends_the_pipeline_and_is_the_result() -> None:
    text = """
pipelines:
  p:
    - {type: respond, status: 201, body: {done: true}}
    - {type: call, function: never}
"""

    def never(data: Any) -> None:
        raise AssertionError("steps after respond must not run")

    result = await run(text, "p", {}, never=never)
    assert result == Response(201, {"done": True}, {})


@pytest.mark.parametrize(
    ("fields", "data", "ran"),
    [
        ("if: '{{ data.n > 1 }}'", {"n": 2}, True),
        ("if: data.n > 1", {"n": 1}, False),
        ("skip_if: data.n > 1", {"n": 2}, False),
        ("skip_if: data.n > 1", {"n": 0}, True),
        ("if: data.n > 0, skip_if: data.n > 5", {"n": 3}, True),
        ("if: data.n > 0, skip_if: data.n > 5", {"n": 6}, False),
        ("if: false", {"n": 1}, False),
        ("skip_if: true", {"n": 1}, False),
    ],
)
async def test_if_and_skip_if(fields: str, data: dict[str, Any], ran: bool) -> None:
    text = f"""
pipelines:
  p:
    - {{type: set, values: {{ran: true}}, target: data, name: maybe, {fields}}}
    - {{type: set, values: {{recorded: "{{{{ 'maybe' in steps }}}}"}}, target: data}}
"""
    out = await run(text, "p", data)
    assert out.get("ran", False) is ran
    assert out["recorded"] is ran


async def test_on_error_fail_stops_with_a_step_error() -> None:
    text = """
pipelines:
  p:
    - {type: call, function: boom, name: risky}
    - {type: set, values: {after: true}, target: data}
"""

    def boom(data: Any) -> None:
        raise ValueError("bad input")

    with pytest.raises(StepError) as info:
        await run(text, "p", {}, boom=boom)
    assert info.value.step == "risky" and info.value.status == 500
    assert str(info.value) == "step 'risky': ValueError: bad input"
    assert isinstance(info.value.__cause__, ValueError)


async def test_an_execution_error_keeps_its_status_and_details() -> None:
    text = "pipelines:\n  p: [{type: call, function: refuse}]\n"

    def refuse(data: Any) -> None:
        raise ExecutionError("not yours", status=403, details={"owner": "bob"})

    with pytest.raises(StepError) as info:
        await run(text, "p", {}, refuse=refuse)
    assert info.value.status == 403 and info.value.details == {"owner": "bob"}
    assert info.value.step == "0:call"


async def test_on_error_continue_records_the_error_and_goes_on() -> None:
    text = """
pipelines:
  p:
    - {type: call, function: boom, name: risky, on_error: continue, output: never}
    - {type: set, values: {error: "{{ steps.risky.error }}", vars: "{{ vars }}"}, target: data}
"""

    def boom(data: Any) -> None:
        raise ValueError("flaky")

    out = await run(text, "p", {}, boom=boom)
    assert out["error"] == "step 'risky': ValueError: flaky"
    assert out["vars"] == {}


async def test_on_error_pipeline_gets_vars_error_and_decides_the_reply() -> None:
    text = """
pipelines:
  p:
    - {type: set, values: {seen: before}}
    - type: validate
      name: check
      schema: {type: object, required: [id]}
      on_error: {pipeline: failed}
    - {type: respond, status: 200, body: ok}
  failed:
    - type: respond
      status: "{{ vars.error.status }}"
      body:
        message: "{{ vars.error.message }}"
        step: "{{ vars.error.step }}"
        details: "{{ vars.error.details }}"
        seen: "{{ vars.seen }}"
"""
    result = await run(text, "p", {})
    assert isinstance(result, Response) and result.status == 400
    assert result.body["step"] == "check" and result.body["seen"] == "before"
    assert result.body["details"] == [{"path": "/", "message": "'id' is a required property"}]
    assert "input is invalid" in result.body["message"]


async def test_on_error_pipeline_without_a_reply_ends_with_its_data() -> None:
    text = """
pipelines:
  p:
    - {type: call, function: boom, on_error: {pipeline: fallback}}
    - {type: set, values: {after: true}, target: data}
  fallback:
    - {type: set, values: {fallback: "{{ vars.error.step }}"}, target: data}
"""

    def boom(data: Any) -> None:
        raise RuntimeError("x")

    assert await run(text, "p", {}, boom=boom) == {"fallback": "0:call"}


async def test_timeout_fails_the_step_with_504() -> None:
    text = """
pipelines:
  p:
    - {type: call, function: slow, timeout: 20ms, name: slow}
"""
    cancelled = asyncio.Event()

    async def slow(data: Any) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(StepError) as info:
        await run(text, "p", {}, slow=slow)
    assert info.value.status == 504 and info.value.step == "slow"
    assert "timed out after 0.02s" in str(info.value)
    assert cancelled.is_set()


async def test_a_timeout_error_raised_by_the_step_itself_is_not_a_step_timeout() -> None:
    text = "pipelines:\n  p: [{type: call, function: upstream}]\n"

    def upstream(data: Any) -> None:
        raise TimeoutError("upstream took too long")

    with pytest.raises(StepError) as info:
        await run(text, "p", {}, upstream=upstream)
    assert "timed out after None" not in str(info.value)
    assert "upstream took too long" in str(info.value)


async def test_boolean_literals_are_values_not_variable_names() -> None:
    text = """
pipelines:
  p:
    - {type: set, target: data, values: {t: "{{ true }}", f: "{{ False }}", nil: "{{ none }}"}}
    - {type: set, target: data, values: {ran: true}, if: "true"}
    - {type: set, target: data, values: {skipped: true}, skip_if: "True"}
"""
    assert await run(text, "p", {}) == {"t": True, "f": False, "nil": None, "ran": True}


async def test_a_fast_step_under_its_timeout_succeeds() -> None:
    text = "pipelines:\n  p: [{type: set, values: {x: 1}, target: data, timeout: 5s}]\n"
    assert await run(text, "p", {}) == {"x": 1}


async def test_output_and_step_names_keep_results() -> None:
    text = """
pipelines:
  p:
    - {type: call, function: double, name: doubled, output: twice}
    - {type: call, function: double, input: "{{ vars.twice }}"}
    - type: set
      target: data
      values:
        named: "{{ steps.doubled }}"
        by_index: "{{ steps['1:call'] }}"
        var: "{{ vars.twice }}"
"""

    def double(n: int) -> int:
        return n * 2

    out = await run(text, "p", 3, double=double)
    assert out == {"named": 6, "by_index": 12, "var": 6}


async def test_the_execution_scope_is_visible_to_templates() -> None:
    text = """
pipelines:
  p:
    - type: set
      target: data
      values: {workflow: "{{ execution.workflow }}", action: "{{ execution.action }}",
               id: "{{ execution.id }}"}
"""
    out = await run(text, "p", {})
    assert out["workflow"] == "pipeline" and out["action"] == "p" and len(out["id"]) == 32


async def test_each_execution_gets_fresh_constants() -> None:
    text = """
pipelines:
  p:
    - {type: set, values: {items: [1, 2]}}
    - {type: call, function: mutate, input: "{{ vars.items }}", replace_data: true}
"""

    def mutate(items: list[int]) -> list[int]:
        items.append(3)
        return items

    async with Engine(parse_config(text), functions={"mutate": mutate}) as engine:
        first = await engine.trigger_workflow("pipeline", "p", {})
        second = await engine.trigger_workflow("pipeline", "p", {})
    assert first == second == [1, 2, 3]


async def test_pipelines_run_concurrently_with_separate_contexts() -> None:
    text = """
pipelines:
  p:
    - {type: set, values: {mine: "{{ data.n }}"}}
    - {type: call, function: pause}
    - {type: set, values: {n: "{{ vars.mine }}"}, target: data}
"""
    gate = asyncio.Event()
    waiting = 0
    all_waiting = asyncio.Event()

    async def pause(data: Any, ctx: ExecutionContext) -> None:
        nonlocal waiting
        waiting += 1
        if waiting == 5:
            all_waiting.set()
        await gate.wait()

    async with Engine(parse_config(text), functions={"pause": pause}) as engine:
        runs = [
            asyncio.create_task(engine.trigger_workflow("pipeline", "p", {"n": i}))
            for i in range(5)
        ]
        await asyncio.wait_for(all_waiting.wait(), 5)
        gate.set()
        results = await asyncio.gather(*runs)
    assert [r["n"] for r in results] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("{type: set, values: {a: 1}, on_error: retry}", "on_error"),
        ("{type: set, values: {a: 1}, on_error: {pipeline: nope}}", "unknown pipeline 'nope'"),
        ("{type: set, values: {a: 1}, timeout: soon}", "invalid duration 'soon'"),
        ("{type: set, values: {a: 1}, iff: x}", "unknown field 'iff'"),
        ("{type: set, values: {a: 1}, output: 'not a name'}", "output"),
        ("{type: sett, values: {a: 1}}", "unknown step type 'sett'"),
    ],
)
def test_bad_common_fields_are_config_errors(step: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(f"pipelines:\n  p: [{step}]\n")


async def test_a_bad_condition_is_reported_at_build() -> None:
    text = "pipelines:\n  p: [{type: set, values: {a: 1}, if: 'data.n >'}]\n"
    with pytest.raises(ConfigError, match="invalid expression"):
        await Engine(parse_config(text)).start()
