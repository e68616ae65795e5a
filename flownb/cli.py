"""The `flownb` command: run, validate, modules, components, notebook, schedule, generate,
schema, version."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

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
    from flownb.fields import parse_duration
    from flownb.historydb import Retention
    from flownb.logs import configure
    from flownb.runner import run_service

    configure(args.log_level, json=args.log_json)
    config = _load(args.config)
    max_age = None if args.history_max_age == "0" else parse_duration(args.history_max_age)
    retention = Retention(max_age=max_age, max_records=args.history_max_records or None)
    return run_service(
        config,
        drain_timeout=args.drain_timeout,
        data_dir=args.data_dir,
        history=False if args.no_history else args.history_db,
        retention=retention,
        api_address=False if args.no_api else args.api_address,
        capture=args.history_capture,
    )


def _run_options(run: argparse.ArgumentParser) -> None:
    """`flownb run`'s options for the history, the management API and logs."""
    run.add_argument(
        "--data-dir",
        help="where the history and the API tokens live (default: $FLOWNB_DATA_DIR or .flownb)",
    )
    run.add_argument(
        "--history-db",
        metavar="URL",
        help="history database (default: $FLOWNB_HISTORY_DB or DATA_DIR/history.db), e.g. "
        "postgresql://user@127.0.0.1:5432/flownb",
    )
    run.add_argument("--no-history", action="store_true", help="record no execution history")
    run.add_argument(
        "--history-capture",
        choices=["steps", "io", "none"],
        default="steps",
        help="data kept per execution: every step's input and output (default), only the "
        "execution's, or none (timings and statuses are always kept)",
    )
    run.add_argument(
        "--history-max-age",
        default="14d",
        metavar="DURATION",
        help="delete executions older than this (default 14d; 0 keeps them)",
    )
    run.add_argument(
        "--history-max-records",
        type=int,
        default=100_000,
        metavar="N",
        help="keep at most the newest N executions (default 100000; 0 keeps them all)",
    )
    run.add_argument(
        "--api-address",
        metavar="HOST:PORT",
        help="management API address (default: $FLOWNB_API_ADDRESS or 127.0.0.1:8700)",
    )
    run.add_argument("--no-api", action="store_true", help="do not serve the management API")
    run.add_argument(
        "--log-json", action="store_true", help="JSON log lines with execution and request ids"
    )


def cmd_history(args: argparse.Namespace) -> int:
    from flownb.history_cli import history_command

    return history_command(
        workflow=args.workflow,
        status=args.status,
        limit=args.limit,
        as_json=args.json,
        db=args.db,
        data_dir=args.data_dir,
    )


def _history_parser(sub: Any) -> None:
    history = sub.add_parser("history", help="recent executions from the history database")
    history.add_argument("--workflow", help="only this workflow type (http, messaging, ...)")
    history.add_argument("--status", choices=["ok", "error"], help="only these")
    history.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    history.add_argument("--json", action="store_true", help="records with their steps, as JSON")
    history.add_argument("--db", metavar="URL", help="history database (default: the data dir's)")
    history.add_argument("--data-dir", help="default: $FLOWNB_DATA_DIR or .flownb")
    history.set_defaults(fn=cmd_history)


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


def cmd_notebook_run(args: argparse.Namespace) -> int:
    from flownb.notebooks import run_command

    return run_command(
        args.input,
        args.output,
        parameters=args.parameter,
        parameters_file=args.parameters_file,
        serve=args.serve,
        until_executions=args.until_executions,
        until=args.until,
        cwd=args.cwd,
        kernel=args.kernel,
        cell_timeout=args.cell_timeout,
        progress=args.progress,
        log_output=args.log_output,
    )


def cmd_schedule(args: argparse.Namespace) -> int:
    from flownb.schedule import run_schedule

    config = _load(args.config)
    return run_schedule(
        config,
        once=args.once,
        jobs=args.job or (),
        history_url=args.history,
        data_dir=args.data_dir,
        drain_timeout=args.drain_timeout,
    )


def _dead_letter_place(args: argparse.Namespace) -> Any:
    from flownb.deadletters_cli import Where

    return Where(config=args.config, history=args.history, data_dir=args.data_dir)


def cmd_deadletters_list(args: argparse.Namespace) -> int:
    from flownb.deadletters_cli import list_command

    return list_command(
        _dead_letter_place(args),
        kind=args.kind,
        source=args.source,
        include_replayed=args.all,
        limit=args.limit,
        as_json=args.json,
    )


def cmd_deadletters_replay(args: argparse.Namespace) -> int:
    from flownb.deadletters_cli import replay_command

    return replay_command(_dead_letter_place(args), args.id, force=args.force)


def _deadletters_parser(sub: Any) -> None:
    """`flownb deadletters list | replay ID`."""
    dead = sub.add_parser("deadletters", help="list and replay dead letters (failed webhooks)")
    dsub = dead.add_subparsers(dest="deadletters_command", required=True, metavar="ACTION")
    dlist = dsub.add_parser("list", help="dead letters, newest first")
    dlist.add_argument("--kind", help="only this kind, e.g. webhook")
    dlist.add_argument("--source", help="only those of this module")
    dlist.add_argument("--all", action="store_true", help="include replayed ones")
    dlist.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    dlist.add_argument("--json", action="store_true", help="as JSON")
    dlist.set_defaults(fn=cmd_deadletters_list)
    dreplay = dsub.add_parser("replay", help="send a dead letter again; exit 0 once delivered")
    dreplay.add_argument("id", help="the dead letter's id")
    dreplay.add_argument("--force", action="store_true", help="replay one replayed before")
    dreplay.set_defaults(fn=cmd_deadletters_replay)
    for action in (dlist, dreplay):
        action.add_argument("--config", help="the workflow config (needed to replay)")
        action.add_argument("--history", metavar="URL", help="history database (default: data dir)")
        action.add_argument("--data-dir", metavar="DIR", help="data directory (default: ./.flownb)")


def cmd_schema(args: argparse.Namespace) -> int:
    from flownb.schema import file_schema

    print(json.dumps(file_schema(), indent=2))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from flownb.ai.cli import generate_command

    return generate_command(
        args.intent,
        output=args.output,
        context=args.context,
        constraints=args.constraint or (),
        provider=args.provider,
        model=args.model,
        components_dir=args.components_dir,
    )


def _generate_parser(sub: Any) -> None:
    """`flownb generate "INTENT" [-o FILE]` (flownb.ai)."""
    gen = sub.add_parser(
        "generate", help="generate a validated workflow from plain language (AI; needs a key)"
    )
    gen.add_argument("intent", help="what the workflow should do, in plain language")
    gen.add_argument("-o", "--output", metavar="FILE", help="write the YAML here (default: stdout)")
    gen.add_argument("--context", metavar="FILE", help="an existing workflow to change")
    gen.add_argument(
        "--constraint", action="append", metavar="TEXT", help="an extra requirement (repeatable)"
    )
    gen.add_argument("--provider", help="auto (default), anthropic or copilot")
    gen.add_argument("--model", help="the model (default: FLOWNB_AI_MODEL, else a current one)")
    gen.add_argument(
        "--components-dir", metavar="DIR", help="where components go (default: components/)"
    )
    gen.set_defaults(fn=cmd_generate)


def cmd_version(args: argparse.Namespace) -> int:
    print(f"flownb {__version__}")
    return 0


def _headless_parsers(sub: Any) -> None:
    """`flownb notebook run` and `flownb schedule`."""
    notebook = sub.add_parser("notebook", help="run notebooks headless (papermill)")
    nsub = notebook.add_subparsers(dest="notebook_command", required=True, metavar="ACTION")
    nrun = nsub.add_parser(
        "run", help="run IN.ipynb top to bottom into OUT.ipynb; exit 1 naming a failing cell"
    )
    nrun.add_argument("input", metavar="IN.ipynb")
    nrun.add_argument("output", metavar="OUT.ipynb")
    nrun.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        metavar=("KEY", "VALUE"),
        help="set a name of the parameters cell; VALUE is JSON if it parses, else text",
    )
    nrun.add_argument("-f", "--parameters-file", metavar="FILE", help="parameters from YAML")
    nrun.add_argument("--serve", metavar="DURATION", help="wf.serve(...) cells serve this long")
    nrun.add_argument("--until-executions", type=int, metavar="N", help="... or until N executions")
    nrun.add_argument("--until", metavar="EXPR", help="... or until EXPR holds after one")
    nrun.add_argument("--cwd", help="the kernel's folder (default: the notebook's)")
    nrun.add_argument("--kernel", help="Jupyter kernel name (default: the notebook's)")
    nrun.add_argument("--cell-timeout", type=float, metavar="SECONDS", help="per cell")
    nrun.add_argument(
        "--progress",
        choices=["auto", "bar", "json", "none"],
        default="auto",
        help="a bar on a terminal (auto), always, JSON lines on stdout, or nothing",
    )
    nrun.add_argument("--log-output", action="store_true", help="echo cell outputs to stderr")
    nrun.set_defaults(fn=cmd_notebook_run)

    sched = sub.add_parser(
        "schedule", help="run the notebook.job modules of a config; runs go to the history"
    )
    sched.add_argument("config", help="path to the YAML config")
    sched.add_argument("--once", action="store_true", help="run each job once now, then exit")
    sched.add_argument("--job", action="append", metavar="NAME", help="with --once: only these")
    sched.add_argument("--history", metavar="URL", help="history database (default: data dir)")
    sched.add_argument("--data-dir", metavar="DIR", help="data directory (default: ./.flownb)")
    sched.add_argument(
        "--drain-timeout", type=float, default=30.0, help="seconds to let runs finish on stop"
    )
    sched.set_defaults(fn=cmd_schedule)


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
    _run_options(run)
    run.set_defaults(fn=cmd_run)
    _history_parser(sub)

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

    _headless_parsers(sub)
    _generate_parser(sub)

    _deadletters_parser(sub)

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
