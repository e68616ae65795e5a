"""The module-type registry: one source of truth, explicit, extensible by entry points."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import flownb
from flownb.errors import FlownbError, UnknownNameError
from flownb.registry import CATEGORIES, ModuleType, Registry, default_registry, json_schema
from tests.conftest import EchoConfig, make_registry


def test_unknown_type_lists_known_and_suggests() -> None:
    registry = make_registry()
    with pytest.raises(UnknownNameError) as info:
        registry.get("test.thng")
    message = str(info.value)
    assert "did you mean 'test.thing'?" in message
    assert "test.broker" in message


def test_duplicate_registration_is_refused_unless_replacing() -> None:
    registry = make_registry()
    echo = registry.get("test.echo")
    with pytest.raises(FlownbError, match="already registered"):
        registry.register(echo)
    registry.register(echo, replace=True)
    registry.unregister("test.echo")
    assert "test.echo" not in registry


def test_category_must_be_one_of_the_ten() -> None:
    assert len(CATEGORIES) == 10
    with pytest.raises(FlownbError, match="category 'Misc' is not one of"):
        ModuleType("x", "Misc", "d", EchoConfig, lambda n, c: None)  # type: ignore[arg-type,return-value]


def test_json_schema_carries_references_and_requires() -> None:
    schema = make_registry().json_schema()
    thing = schema["types"]["test.thing"]
    assert thing["category"] == "Infrastructure"
    assert thing["provides"] == ["thing"]
    assert thing["requires"] == ["thing"]
    uses = thing["configSchema"]["properties"]["uses"]
    assert uses["x-flownb-ref"] == "thing"
    assert "failIn" in thing["configSchema"]["properties"]


def test_every_builtin_type_has_a_schema_description_and_category() -> None:
    schema = json_schema()
    assert schema["categories"] == list(CATEGORIES)
    assert schema["types"], "built-in module types are registered"
    for name, entry in schema["types"].items():
        assert entry["description"], name
        assert entry["category"] in CATEGORIES, name
        assert entry["configSchema"]["type"] == "object", name


def test_default_registry_is_a_fresh_object_each_time() -> None:
    first, second = default_registry(), default_registry()
    assert first is not second
    first.unregister(first.names()[0])
    assert len(second) == len(first) + 1


def test_plugins_register_through_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "flownb_demo_plugin.py"
    package.write_text(
        "from flownb.registry import ModuleType\n"
        "from tests.conftest import Echo, EchoConfig\n"
        "TYPES = [ModuleType('demo.echo', 'Integration', 'plugin echo', EchoConfig, Echo,"
        " provides=('handler',))]\n"
    )
    dist = tmp_path / "flownb_demo_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: flownb-demo-plugin\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text("[flownb.modules]\ndemo = flownb_demo_plugin:TYPES\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry()
    assert registry.load_entry_points() == ["demo.echo"]
    assert registry.get("demo.echo").category == "Integration"
    sys.modules.pop("flownb_demo_plugin", None)


def test_public_api_is_sorted_and_importable() -> None:
    assert flownb.__all__ == sorted(flownb.__all__)
    for name in flownb.__all__:
        assert getattr(flownb, name) is not None
