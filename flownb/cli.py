"""The `flownb` command: run, validate, modules, components, schema, version."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from flownb import __version__
from flownb.errors import ConfigError, FlownbError

if TYPE_CHECKING:
    from flownb.config import Config


def _load(path: str) -> Config:
    from flownb.loader import load_config

    return load_config(path)


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def cmd_run(args: argparse.Namespace) -> int:
    from flownb.runner import run_service

    config = _load(args.config)
    return run_service(config, drain_timeout=args.drain_timeout)


def cmd_validate(args: argparse.Namespace) -> int:
    from flownb.engine import Engine

    try:
        config = _load(args.config)
        Engine(config).check()
    except ConfigError as exc:
        if args.json:
            print(json.dumps([d.to_dict() for d in exc.diagnostics], indent=2))
        else:
            for diag in exc.diagnostics:
                print(diag, file=sys.stderr)
            count = len(exc.diagnostics)
            print(f"{args.config}: {plural(count, 'error')}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([]))
    else:
        parts = [plural(len(config.modules), "module")]
        kinds = [k for k, v in config.workflows if v is not None]
        if kinds:
            parts.append("workflows: " + ", ".join(kinds))
        if config.pipelines:
            parts.append(plural(len(config.pipelines), "pipeline"))
        print(f"{args.config}: valid ({'; '.join(parts)})")
    return 0


def cmd_modules(args: argparse.Namespace) -> int:
    from flownb.registry import default_registry

    registry = default_registry()
    if args.json:
        print(json.dumps(registry.json_schema(), indent=2))
        return 0
    types = sorted(registry, key=lambda t: (t.category, t.name))
    if args.category:
        types = [t for t in types if t.category.lower() == args.category.lower()]
    width = max((len(t.name) for t in types), default=10)
    category = None
    for t in types:
        if t.category != category:
            category = t.category
            print(f"\n{category}")
        print(f"  {t.name:<{width}}  {t.description}")
    return 0


def cmd_components_validate(args: argparse.Namespace) -> int:
    from flownb.dynamic.cli import validate_command

    return validate_command(args.file)


def cmd_components_run(args: argparse.Namespace) -> int:
    from flownb.dynamic.cli import run_command

    return run_command(
        args.file, args.input, timeout=args.timeout, config_json=args.config, trusted=args.trusted
    )


def cmd_schema(args: argparse.Namespace) -> int:
    from flownb.schema import file_schema

    print(json.dumps(file_schema(), indent=2))
    return 0


def cmd_version(args: argparse.Namespace) -> int:
    print(f"flownb {__version__}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flownb", description="Notebook-centric workflow engine.")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a workflow config as a service")
    run.add_argument("config", help="path to the YAML config")
    run.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="seconds to let in-flight executions finish on shutdown",
    )
    run.set_defaults(fn=cmd_run)

    validate = sub.add_parser("validate", help="check a config; exit 0 if valid, 1 if not")
    validate.add_argument("config")
    validate.add_argument("--json", action="store_true", help="errors as JSON on stdout")
    validate.set_defaults(fn=cmd_validate)

    modules = sub.add_parser("modules", help="list module types (--json: with their schemas)")
    modules.add_argument("--json", action="store_true")
    modules.add_argument("--category", help="only this category")
    modules.set_defaults(fn=cmd_modules)

    components = sub.add_parser("components", help="check and run dynamic component files")
    csub = components.add_subparsers(dest="components_command", required=True, metavar="ACTION")
    cvalidate = csub.add_parser(
        "validate", help="static sandbox check; exit 0 if it passes, 1 with FILE:LINE:COL errors"
    )
    cvalidate.add_argument("file", help="component source file")
    cvalidate.set_defaults(fn=cmd_components_validate)
    crun = csub.add_parser(
        "run", help="run a component once in a limited worker; print its result as JSON"
    )
    crun.add_argument("file", help="component source file")
    crun.add_argument("--input", default="{}", help="the data, as JSON (default: {})")
    crun.add_argument("--config", default="{}", help="init(config) as a JSON object")
    crun.add_argument("--timeout", type=float, help="wall-time limit in seconds (default 5)")
    crun.add_argument("--trusted", action="store_true", help="run in-process, without limits")
    crun.set_defaults(fn=cmd_components_run)

    schema = sub.add_parser("schema", help="JSON Schema of a workflow file (for editors)")
    schema.set_defaults(fn=cmd_schema)

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(fn=cmd_version)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.fn(args))
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    except FlownbError as exc:
        print(f"flownb: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
