"""JSON Schema checking with the `jsonschema` library, compiled once per schema."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from flownb.errors import FlownbError

Checker = Callable[[Any], list[dict[str, str]]]


def compile_schema(schema: dict[str, Any]) -> Checker:
    """A function returning the problems of a value (empty when valid)."""
    try:
        validator_cls = Draft202012Validator
        validator_cls.check_schema(schema)
    except SchemaError as exc:
        raise FlownbError(f"invalid JSON Schema: {exc.message}") from None
    validator = validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER)

    def check(value: Any) -> list[dict[str, str]]:
        if validator.is_valid(value):
            return []
        return [
            {"path": "/" + "/".join(str(p) for p in err.absolute_path), "message": err.message}
            for err in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        ]

    return check
