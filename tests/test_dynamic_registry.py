"""Loading components (string, file, directory), the registry and the lifecycle states.

The contract tests run against both runtimes (isolated workers and trusted in-process):
they must behave the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flownb.dynamic import (
    CheckError,
    ComponentError,
    ComponentRegistry,
    DataError,
    Options,
    load_directory,
    load_file,
    load_string,
)
from flownb.errors import FlownbError, UnknownNameError

LIFECYCLE = """
name = "life"
seen = {"events": []}
svc = {}

def init(config, services):
    seen["events"].append("init")
    seen["config"] = config
    svc["s"] = services

async def start():
    seen["events"].append("start")
    await svc["s"].call("journal", {"event": "start"})

async def stop():
    await svc["s"].call("journal", {"event": "stop"})

async def execute(ctx, data):
    echoed = await svc["s"].call("echo", {"twice": data["n"] * 2})
    data["mutated"] = True
    return {
        "events": seen["events"],
        "config": seen["config"],
        "echoed": echoed,
        "ctx": ctx,
        "services": list(svc["s"].names),
    }
"""


class Journal:
    """What the registry's components reach through `services.call`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def __call__(self, name: str, data: Any, parent: Any) -> Any:
        self.calls.append((name, data))
        if name == "echo":
            return {"echo": data}
        return None


@pytest.fixture(params=[False, True], ids=["isolated", "trusted"])
def trusted(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


async def test_lifecycle_and_contract(trusted: bool) -> None:
    journal = Journal()
    registry = ComponentRegistry(
        Options(trusted=trusted, config={"rate": 2}),
        services=journal,
        requires=["echo", "journal"],
    )
    component = registry.register(load_string(LIFECYCLE))
    assert component.state == "loaded"
    try:
        await component.init()
        assert component.state == "initialized"
        await component.start()
        assert component.state == "running"
        data = {"n": 4}
        result = await component.execute(data, {"executionId": "e1", "workflow": "w"})
        assert data == {"n": 4}  # the component got a copy
        assert result == {
            "events": ["init", "start"],
            "config": {"rate": 2},
            "echoed": {"echo": {"twice": 8}},
            "ctx": {"executionId": "e1", "workflow": "w"},
            "services": ["echo", "journal"],
        }
    finally:
        await registry.close()
    assert component.state == "stopped"
    assert journal.calls == [
        ("journal", {"event": "start"}),
        ("echo", {"twice": 8}),
        ("journal", {"event": "stop"}),
    ]


async def test_service_not_in_requires_is_refused(trusted: bool) -> None:
    text = (
        "svc = {}\ndef init(config, services):\n    svc['s'] = services\n"
        "async def execute(ctx, data):\n    return await svc['s'].call('secret', {})\n"
    )
    registry = ComponentRegistry(Options(trusted=trusted), services=Journal(), requires=["echo"])
    component = registry.register(load_string(text, name="nosy"))
    await component.start()
    try:
        with pytest.raises(ComponentError, match="'secret' is not in this component's requires"):
            await component.execute({})
    finally:
        await registry.close()


async def test_data_must_be_json(trusted: bool) -> None:
    text = "def execute(ctx, data):\n    return data\n"
    registry = ComponentRegistry(Options(trusted=trusted))
    component = registry.register(load_string(text, name="echo"))
    await component.start()
    try:
        with pytest.raises(DataError, match=r"input\.when is not JSON-compatible \(an object\)"):
            await component.execute({"when": object()})
        with pytest.raises(DataError, match=r"input\.tags is not JSON-compatible \(a set\)"):
            await component.execute({"tags": {1}})
        with pytest.raises(DataError, match="must return a dict"):
            await component.execute([1, 2])
        assert await component.execute({"ok": [1, "a", None, 2.5]}) == {"ok": [1, "a", None, 2.5]}
    finally:
        await registry.close()


async def test_errors_name_the_component_and_line(trusted: bool) -> None:
    text = "def execute(ctx, data):\n    x = 1\n    return {'v': data['missing']}\n"
    registry = ComponentRegistry(Options(trusted=trusted))
    component = registry.register(load_string(text, name="broken"))
    await component.start()
    try:
        with pytest.raises(
            ComponentError, match=r"component 'broken': KeyError: 'missing' \(line 3\)"
        ):
            await component.execute({})
        assert component.state == "running"  # an exception in user code is not fatal
        with pytest.raises(ComponentError, match="line 3"):
            await component.execute({})
    finally:
        await registry.close()


async def test_init_failure_is_error_state_with_reason(trusted: bool) -> None:
    text = (
        "def init(config, services):\n    raise ValueError('no key')\n"
        "def execute(ctx, data):\n    return {}\n"
    )
    registry = ComponentRegistry(Options(trusted=trusted))
    component = registry.register(load_string(text, name="failing"))
    with pytest.raises(ComponentError, match="ValueError: no key"):
        await component.start()
    assert component.state == "error"
    assert component.reason is not None and "no key" in component.reason
    with pytest.raises(ComponentError, match="is not running"):
        await component.execute({})
    await registry.close()


def test_load_string_needs_a_name() -> None:
    assert load_string("name = 'a'\n").name == "a"
    assert load_string("name = 'a'\n", name="b").name == "b"
    with pytest.raises(FlownbError, match="needs a name"):
        load_string("def execute(ctx, data):\n    return {}\n")


def test_load_file_names(tmp_path: Path) -> None:
    (tmp_path / "score.py").write_text("def execute(ctx, data):\n    return {}\n")
    (tmp_path / "named.py").write_text("name = 'ranker'\n")
    assert load_file(tmp_path / "score.py").name == "score"
    source = load_file(tmp_path / "named.py")
    assert (source.name, source.path) == ("ranker", (tmp_path / "named.py").resolve())
    with pytest.raises(FlownbError, match="does not exist"):
        load_file(tmp_path / "nope.py")


def test_load_directory_registers_good_and_lists_bad(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("def execute(ctx, data):\n    return {}\n")
    (tmp_path / "b.py").write_text("import os\ndef execute(ctx, data):\n    return {}\n")
    (tmp_path / "_private.py").write_text("import os\n")
    (tmp_path / "notes.txt").write_text("not a component")
    registry = ComponentRegistry()
    problems = load_directory(registry, tmp_path)
    assert [p.origin for p in problems] == [str((tmp_path / "b.py").resolve())]
    listed = {i.name: (i.state, i.reason) for i in registry.list()}
    assert listed["a"] == ("loaded", None)
    assert listed["b"][0] == "error"
    assert "b.py:1:1: import of 'os' is not allowed" in str(listed["b"][1])
    assert set(listed) == {"a", "b"}


async def test_register_get_unregister() -> None:
    registry = ComponentRegistry(Options(trusted=True))
    source = load_string("def execute(ctx, data):\n    return {}\n", name="alpha")
    component = registry.register(source)
    assert registry.get("alpha") is component and "alpha" in registry and len(registry) == 1
    with pytest.raises(FlownbError, match="already registered"):
        registry.register(source)
    with pytest.raises(UnknownNameError, match="did you mean 'alpha'"):
        registry.get("alpah")
    await component.start()
    await registry.unregister("alpha")
    assert component.state == "unloaded"
    assert registry.list() == []
    with pytest.raises(CheckError):
        registry.register(load_string("import os\n", name="beta"))
    assert [(i.name, i.state) for i in registry.list()] == [("beta", "error")]


async def test_replace_swaps_or_keeps_old(trusted: bool) -> None:
    registry = ComponentRegistry(Options(trusted=trusted))
    v1 = "def execute(ctx, data):\n    return {'v': 1}\n"
    component = registry.register(load_string(v1, name="ver"))
    await component.start()
    try:
        bad = load_string("import os\ndef execute(ctx, data):\n    return {'v': 2}\n", name="ver")
        assert await component.replace(bad) is False
        assert component.last_error is not None and ":1:1: import of 'os'" in component.last_error
        assert await component.execute({}) == {"v": 1}
        failing = "def init(c, s):\n    raise ValueError('boom')\n"
        failing += "def execute(ctx, data):\n    return {}\n"
        assert await component.replace(load_string(failing, name="ver")) is False
        assert "boom" in str(component.last_error)
        assert await component.execute({}) == {"v": 1}
        v3 = load_string("def execute(ctx, data):\n    return {'v': 3}\n", name="ver")
        assert await component.replace(v3) is True
        assert (component.version, component.last_error, component.state) == (2, None, "running")
        assert await component.execute({}) == {"v": 3}
    finally:
        await registry.close()


def test_info_to_dict() -> None:
    registry = ComponentRegistry()
    registry.register(load_string("def execute(ctx, data):\n    return {}\n", name="x"))
    assert registry.list()[0].to_dict() == {
        "name": "x",
        "state": "loaded",
        "reason": None,
        "version": 1,
        "origin": "<string>",
        "trusted": False,
        "lastError": None,
    }
