"""JSON Schema checking with the `jsonschema` library, compiled once per schema.

`jsonschema` is imported on first use: with its optional format packages installed (as the
Jupyter stack does) its import costs about a second, which `import flownb` should not pay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flownb.errors import FlownbError

Checker = Callable[[Any], list[dict[str, str]]]


def schema_problem(schema: dict[str, Any]) -> str | None:
    """Why `schema` is not a valid JSON Schema (2020-12), or None if it is."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        return f"invalid JSON Schema{f' at /{where}' if where else ''}: {exc.message}"
    return None


def compile_schema(schema: dict[str, Any]) -> Checker:
    """A function returning the problems of a value (empty when valid)."""
    from jsonschema import Draft202012Validator

    problem = schema_problem(schema)
    if problem is not None:
        raise FlownbError(problem)
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)

    def check(value: Any) -> list[dict[str, str]]:
        if validator.is_valid(value):
            return []
        return [
            {"path": "/" + "/".join(str(p) for p in err.absolute_path), "message": err.message}
            for err in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        ]

    return check
