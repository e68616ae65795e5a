"""`flownb components validate FILE` and `flownb components run FILE --input JSON`.

Both return the exit code (0 ok, 1 failed) and print errors without tracebacks: problems as
`FILE:LINE:COL: message` on stderr, results as JSON on stdout.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from flownb.dynamic.contract import CheckError, Limits, Options
from flownb.dynamic.loader import load_file, validate
from flownb.dynamic.registry import ComponentRegistry
from flownb.errors import FlownbError


def validate_command(path: str) -> int:
    """Exit 0 if the component passes the static check, else 1 with every problem."""
    try:
        source = load_file(path)
        validate(source)
    except CheckError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        count = len(exc.problems)
        print(f"{path}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        return 1
    except FlownbError as exc:
        print(f"flownb: error: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: valid (component {source.name!r})")
    return 0


def _json_arg(text: str, flag: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FlownbError(f"{flag} is not valid JSON: {exc}") from None


def run_command(
    path: str,
    input_json: str = "{}",
    *,
    timeout: float | None = None,
    config_json: str = "{}",
    trusted: bool = False,
) -> int:
    """Run the component once (isolated unless `trusted`) and print its result as JSON."""
    try:
        data = _json_arg(input_json, "--input")
        config = _json_arg(config_json, "--config")
        if not isinstance(config, dict):
            raise FlownbError("--config must be a JSON object")
        limits = Limits() if timeout is None else Limits(timeout=timeout)
        options = Options(trusted=trusted, limits=limits, config=config)
        result = asyncio.run(_run_once(path, data, options))
    except CheckError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return 1
    except FlownbError as exc:
        print(f"flownb: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


async def _run_once(path: str, data: Any, options: Options) -> Any:
    registry = ComponentRegistry(options)
    component = registry.register(load_file(path))
    try:
        await component.start()
        return await component.execute(data)
    finally:
        await registry.close()
