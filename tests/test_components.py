"""@flownb.component: notebook functions called by pipelines and handlers, replaced live."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

import flownb
from flownb import Workflow
from flownb.components import ComponentRegistry, component, registry

GREETING = """\
modules:
  - {name: server, type: http.server, config: {address: "127.0.0.1:0"}}
  - {name: router, type: http.router}
  - {name: greeter, type: http.handler, config: {function: greet}}
workflows:
  http:
    routes:
      - {method: GET, path: /greet, handler: greeter}
pipelines:
  welcome:
    - {type: call, function: greet, replace_data: true}
"""


@pytest.fixture
def components() -> ComponentRegistry:
    return ComponentRegistry()


def test_decorator_forms(components: ComponentRegistry) -> None:
    @component("named", registry=components)
    def first(data: Any) -> Any:
        return data

    @component(registry=components)
    def second(data: Any) -> Any:
        return data

    assert first.__name__ == "first", "the function is returned unchanged"
    assert list(components) == ["named", "second"]
    assert components.get("named") is first


def test_the_kernel_registry_is_what_workflows_use_by_default() -> None:
    @flownb.component
    def shout(data: Any) -> str:
        return str(data).upper()

    try:
        wf = Workflow("pipelines:\n  p: [{type: call, function: shout, replace_data: true}]\n")
        assert wf.functions is registry and "shout" in registry and wf.valid
        wf.start()
        try:
            assert wf.send("pipeline", "p", "hi") == "HI"
        finally:
            wf.stop()
    finally:
        registry.unregister("shout")


async def test_called_from_a_running_pipeline_and_handler_and_replaced_live(
    components: ComponentRegistry,
) -> None:
    @component("greet", registry=components)
    def greet(data: Any) -> dict[str, Any]:
        return {"hello": "world"}

    wf = Workflow(GREETING, functions=components)
    await wf.start()
    try:
        assert await wf.send("pipeline", "welcome", {}) == {"hello": "world"}
        assert (await wf.send("http", "GET /greet")).json() == {"hello": "world"}
        engine = wf.engine

        @component("greet", registry=components)  # the cell re-run with a new body
        async def greet_again(data: Any, ctx: Any) -> dict[str, Any]:
            return {"hello": "again", "execution": ctx.workflow}

        assert wf.engine is engine, "not restarted"
        assert await wf.send("pipeline", "welcome", {}) == {
            "hello": "again",
            "execution": "pipeline",
        }
        assert (await wf.send("http", "GET /greet")).json() == {
            "hello": "again",
            "execution": "http",
        }
    finally:
        await wf.stop()


def test_defining_the_component_after_the_workflow_clears_the_error(
    components: ComponentRegistry,
) -> None:
    wf = Workflow(GREETING, functions=components)
    assert not wf.valid and wf.config is None
    [diag] = wf.diagnostics
    assert diag["id"] == "pipeline:welcome" and diag["source"] == "engine"
    assert "unknown function 'greet'" in diag["message"]
    seen: list[str] = []
    wf.observe(lambda change: seen.append(change["name"]), names=["config", "diagnostics"])

    @component("greet", registry=components)
    def greet(data: Any) -> Any:
        return data

    assert wf.valid and wf.diagnostics == [] and sorted(seen) == ["config", "diagnostics"]


def test_watchers_are_weak(components: ComponentRegistry) -> None:
    wf = Workflow("pipelines: {}\n", functions=components)
    assert len(components._watchers) == 1
    del wf
    gc.collect()
    components.register("x", lambda data: data)
    assert components._watchers == []


@pytest.fixture(autouse=True)
def _kernel_registry_untouched() -> Iterator[None]:
    before = list(registry)
    yield
    assert list(registry) == before
