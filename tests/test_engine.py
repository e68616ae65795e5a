"""The engine lifecycle: build order, injection, phases named in errors, drain, sync wrapper."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from flownb.engine import Engine
from flownb.errors import BuildError, ConfigError, FlownbError, StepError
from flownb.execution import ExecutionContext
from flownb.loader import parse_config
from flownb.registry import Registry
from flownb.sync import SyncEngine

CHAIN = """
modules:
  - {name: c, type: test.thing, config: {uses: b}}
  - {name: a, type: test.thing}
  - {name: b, type: test.thing, dependsOn: [a]}
"""


def engine_for(text: str, registry: Registry, **kwargs: Any) -> tuple[Engine, list[str]]:
    journal: list[str] = []
    engine = Engine(
        parse_config(text, registry=registry),
        registry=registry,
        services={"journal": journal},
        **kwargs,
    )
    return engine, journal


async def test_build_order_follows_dependencies_and_stop_reverses(registry: Registry) -> None:
    engine, journal = engine_for(CHAIN, registry)
    await engine.start()
    assert engine.state == "running"
    assert journal == ["init:a", "init:b", "init:c", "start:a", "start:b", "start:c"]
    c = engine.module("c")
    assert c.dependency is engine.module("b")  # type: ignore[attr-defined]
    journal.clear()
    assert await engine.stop() is True
    assert journal == ["drain:c", "drain:b", "drain:a", "stop:c", "stop:b", "stop:a"]
    assert engine.state == "stopped"


@pytest.mark.parametrize("phase", ["init", "start"])
async def test_failures_name_the_module_and_phase(registry: Registry, phase: str) -> None:
    text = CHAIN.replace(
        "{name: b, type: test.thing,", f"{{name: b, type: test.thing, config: {{failIn: {phase}}},"
    )
    engine, journal = engine_for(text, registry)
    with pytest.raises(
        BuildError, match=f"module 'b' failed to {phase}: RuntimeError: {phase} exploded"
    ):
        await engine.start()
    assert engine.state == "failed"
    if phase == "start":
        assert journal[-1] == "stop:a", "modules already started are stopped again"


async def test_stop_failure_is_logged_and_the_rest_still_stop(
    registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    text = CHAIN.replace(
        "{name: b, type: test.thing,", "{name: b, type: test.thing, config: {failIn: stop},"
    )
    engine, journal = engine_for(text, registry)
    await engine.start()
    await engine.stop()
    assert journal[-3:] == ["stop:c", "stop:b", "stop:a"]
    assert "module 'b' stop failed during shutdown" in caplog.text


PIPE = """
pipelines:
  greet:
    - type: set
      values: {who: "{{ data.name | default('world') }}"}
    - type: respond
      body: {hello: "{{ vars.who }}", execution: "{{ execution.id }}"}
  slow:
    - type: call
      function: wait
  boom:
    - type: call
      function: explode
"""


class Gate:
    """A function the pipeline awaits until the test opens the gate."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, data: Any) -> str:
        self.entered.set()
        await self.release.wait()
        return "done"


def explode(data: Any) -> None:
    raise ValueError("bad input")


async def test_trigger_workflow_runs_a_pipeline_with_unique_execution_ids(
    registry: Registry,
) -> None:
    engine = Engine(
        parse_config(PIPE, registry=registry),
        registry=registry,
        functions={"wait": Gate(), "explode": explode},
    )
    async with engine:
        first = await engine.trigger_workflow("pipeline", "greet", {"name": "ada"})
        second = await engine.trigger_workflow("pipeline", "greet")
    assert first.body["hello"] == "ada" and second.body["hello"] == "world"
    assert len(first.body["execution"]) == 32
    assert first.body["execution"] != second.body["execution"]


async def test_errors_carry_the_step_and_observers_see_everything(registry: Registry) -> None:
    seen: list[tuple[str, ...]] = []

    class Observer:
        def execution_started(self, ctx: ExecutionContext) -> None:
            seen.append(("start", ctx.action))

        def step_finished(
            self, ctx: ExecutionContext, step: str, status: str, duration: float, error: Any
        ) -> None:
            seen.append(("step", step, status))

        def execution_finished(self, ctx: ExecutionContext) -> None:
            seen.append(("end", ctx.action, ctx.status))

    engine = Engine(
        parse_config(PIPE, registry=registry),
        registry=registry,
        functions={"wait": Gate(), "explode": explode},
        observers=[Observer()],
    )
    async with engine:
        with pytest.raises(StepError, match="step '0:call': ValueError: bad input"):
            await engine.trigger_workflow("pipeline", "boom", {})
        await engine.trigger_workflow("pipeline", "greet", {})
    assert seen == [
        ("start", "boom"),
        ("step", "0:call", "error"),
        ("end", "boom", "error"),
        ("start", "greet"),
        ("step", "0:set", "ok"),
        ("step", "1:respond", "ok"),
        ("end", "greet", "ok"),
    ]


async def test_observers_that_look_at_no_step_cost_no_call_and_no_trace(
    registry: Registry,
) -> None:
    seen: list[tuple[str, ...]] = []

    class Ends:
        steps = False

        def execution_started(self, ctx: ExecutionContext) -> None:
            seen.append(("start", str(ctx.trace)))

        def step_finished(self, *args: Any) -> None:
            raise AssertionError("not called")

        def execution_finished(self, ctx: ExecutionContext) -> None:
            seen.append(("end", ctx.status))

    class Reader:  # reads the trace when the execution ends
        traces = True

        def execution_started(self, ctx: ExecutionContext) -> None:
            pass

        def step_finished(self, *args: Any) -> None:
            raise AssertionError("not called")

        def execution_finished(self, ctx: ExecutionContext) -> None:
            seen.append(("trace", *(row[0] for row in ctx.trace or ())))

    engine = Engine(
        parse_config(PIPE, registry=registry),
        registry=registry,
        functions={"wait": Gate(), "explode": explode},
        observers=[Ends()],
    )
    async with engine:
        assert not engine.observers.per_step and not engine.observers.tracing
        await engine.trigger_workflow("pipeline", "greet", {})
        engine.observers.add(Reader())
        assert engine.observers.tracing and not engine.observers.per_step
        await engine.trigger_workflow("pipeline", "greet", {})
    assert seen == [
        ("start", "None"),
        ("end", "ok"),
        ("start", "[]"),
        ("end", "ok"),
        ("trace", "0:set", "1:respond"),
    ]


async def test_graceful_stop_drains_in_flight_executions(registry: Registry) -> None:
    gate = Gate()
    engine = Engine(
        parse_config(PIPE, registry=registry),
        registry=registry,
        functions={"wait": gate, "explode": explode},
    )
    await engine.start()
    running = asyncio.create_task(engine.trigger_workflow("pipeline", "slow", {}))
    await asyncio.wait_for(gate.entered.wait(), 5)
    stopping = asyncio.create_task(engine.stop(timeout=5))
    await asyncio.sleep(0)
    assert engine.state == "draining"
    with pytest.raises(FlownbError, match="not accepting work"):
        await engine.trigger_workflow("pipeline", "greet", {})
    assert not stopping.done()
    gate.release.set()
    assert await asyncio.wait_for(running, 5) is not None
    assert await asyncio.wait_for(stopping, 5) is True
    assert engine.state == "stopped"


async def test_drain_timeout_gives_up(registry: Registry) -> None:
    gate = Gate()
    engine = Engine(
        parse_config(PIPE, registry=registry),
        registry=registry,
        functions={"wait": gate, "explode": explode},
    )
    await engine.start()
    running = asyncio.create_task(engine.trigger_workflow("pipeline", "slow", {}))
    await asyncio.wait_for(gate.entered.wait(), 5)
    assert await engine.stop(timeout=0.05) is False
    gate.release.set()
    await running


async def test_engine_shares_a_running_loop_without_blocking_it(registry: Registry) -> None:
    """Like a Jupyter kernel: the loop keeps serving other tasks while the engine runs."""
    engine = Engine(
        parse_config(PIPE, registry=registry),
        registry=registry,
        functions={"wait": Gate(), "explode": explode},
    )
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await engine.start()
    before = ticks
    results = await asyncio.gather(
        *(engine.trigger_workflow("pipeline", "greet", {"name": str(i)}) for i in range(50))
    )
    await engine.stop()
    task.cancel()
    assert ticks > before
    assert [r.body["hello"] for r in results] == [str(i) for i in range(50)]


def test_sync_engine_runs_in_its_own_thread(registry: Registry) -> None:
    config = parse_config(PIPE, registry=registry)
    with SyncEngine(
        config, registry=registry, functions={"wait": Gate(), "explode": explode}
    ) as wf:
        assert wf.engine.state == "running"
        assert wf.trigger("pipeline", "greet", {"name": "sync"}).body["hello"] == "sync"
        assert any(t.name == "flownb-engine" for t in threading.enumerate())
    assert wf._thread is None


async def test_template_errors_are_config_errors_with_location(registry: Registry) -> None:
    text = "pipelines:\n  p:\n    - type: set\n      values: {x: '{{ data. }}'}\n"
    engine = Engine(parse_config(text, registry=registry, filename="t.yaml"), registry=registry)
    with pytest.raises(ConfigError, match=r"t.yaml:2:3: pipelines.p: .*invalid expression"):
        await engine.build()


async def test_unknown_workflow_kind_lists_the_known(registry: Registry) -> None:
    engine = Engine(
        parse_config(PIPE, registry=registry),
        registry=registry,
        functions={"wait": Gate(), "explode": explode},
    )
    async with engine:
        with pytest.raises(FlownbError, match=r"unknown workflow 'htp'.*known: pipeline"):
            await engine.trigger_workflow("htp", "x")
