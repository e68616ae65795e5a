"""The whole-file JSON Schema: generated from the models, accepts every example."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from flownb.schema import file_schema

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*/*.yaml"))


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = file_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_every_example_is_valid(validator: Draft202012Validator, path: Path) -> None:
    errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == []


def test_module_configs_are_checked_by_type(validator: Draft202012Validator) -> None:
    data = {"modules": [{"name": "s", "type": "http.server", "config": {"adress": "x"}}]}
    assert not validator.is_valid(data)
    data["modules"][0]["config"] = {"address": "127.0.0.1:0", "maxBodyBytes": "${LIMIT}"}
    assert validator.is_valid(data), "numbers may be written as ${VAR}"
    data["modules"][0]["type"] = "http.servr"
    assert not validator.is_valid(data)


def test_schema_command_prints_it() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "flownb", "schema"], check=True, capture_output=True, text=True
    ).stdout
    schema = json.loads(out)
    assert schema["$schema"].endswith("2020-12/schema")
    assert "modules" in schema["properties"]
