"""IPython magics for workflows; `%load_ext flownb` registers them.

```
%%workflow NAME [--run] [--no-canvas] [--file PATH] [--generate]
<workflow YAML, or with --generate what the workflow should do>
```
binds NAME to a `flownb.Workflow` and shows its canvas; `--run` starts it on the kernel's
event loop without blocking later cells. With `--file PATH` the workflow is read from that
file (positions from its layout block or sidecar; `save` writes back there); the cell body
then holds nothing but comments, and the line form `%workflow NAME --file PATH` does the same.
With `--generate` the cell is an intent in plain language: `flownb.ai` generates a workflow
that validates (starting from NAME's config if it exists), writes its components, and the
result is defined as if it had been the cell (see docs/ai.md).

Re-running a cell updates the workflow already bound to NAME in place (its canvases and
observers stay bound); a running workflow restarts if its config changed.

Errors: invalid YAML or config prints `<cell>:LINE:COL: field: message` lines under the cell
(lines counted as Jupyter numbers them, the `%%workflow` line being 1) and fails the cell with
no traceback. NAME is not rebound: a new NAME stays undefined, and an existing workflow keeps
its last valid config (and keeps running it); the invalid edit is held in its `raw` and
`diagnostics`, so its canvases show the errors on the nodes.

```
%workflow run|stop|restart|status NAME
%workflow send NAME http [METHOD] /path?query ['JSON body']
%workflow send NAME topic TOPIC ['JSON payload']
%workflow send NAME KIND ACTION ['JSON data']      (pipeline, statemachine, event...)
%workflow history NAME [LIMIT] [--status ok|error]
```
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import MagicArgumentParser

from flownb.errors import FlownbError
from flownb.execution import Response
from flownb.hosting import HTTP_METHODS
from flownb.workflow import Workflow

COMMANDS = ("run", "stop", "restart", "status", "send", "history")
USAGE = (
    "usage: %%workflow NAME [--run] [--no-canvas] [--file PATH] (cell), or "
    "%workflow run|stop|restart|status|send|history NAME ..."
)


class MagicError(FlownbError):
    """A user mistake in a magic: shown as its message under the cell, not as a traceback."""

    def _render_traceback_(self) -> list[str]:
        return str(self).splitlines()


def _cell_parser() -> MagicArgumentParser:
    parser = MagicArgumentParser(prog="%%workflow", add_help=False)  # type: ignore[no-untyped-call]
    parser.add_argument("name", help="the variable the workflow is bound to")
    parser.add_argument("--run", action="store_true", help="start it on the kernel's loop")
    parser.add_argument("--no-canvas", action="store_true", help="do not draw the canvas")
    parser.add_argument("--file", metavar="PATH", help="read the workflow from this file")
    parser.add_argument(
        "--generate", action="store_true", help="the cell is an intent: generate it (flownb.ai)"
    )
    return parser


def _history_parser() -> MagicArgumentParser:
    parser = MagicArgumentParser(  # type: ignore[no-untyped-call]
        prog="%workflow history", add_help=False
    )
    parser.add_argument("name")
    parser.add_argument("limit", nargs="?", type=int, default=20)
    parser.add_argument("--status", choices=["ok", "error"])
    return parser


@magics_class
class WorkflowMagics(Magics):
    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._canvases: dict[str, Any] = {}

    @no_var_expand
    @line_cell_magic
    def workflow(self, line: str, cell: str | None = None) -> None:
        """Define (cell) or drive (line) a workflow; see `flownb.magics`."""
        try:
            words = shlex.split(line)
        except ValueError as exc:  # an unbalanced quote
            raise MagicError(f"%workflow: {exc} in {line!r}") from None
        if cell is None and words and words[0] in COMMANDS:
            self._command(words)
            return
        if cell is None and "--file" not in words:
            raise MagicError(USAGE)
        args = _cell_parser().parse_args(words)
        if args.generate:
            cell = self._generate(args, cell)
        self._define(args, cell)

    def _generate(self, args: Any, intent: str | None) -> str | None:
        """`--generate`: the cell holds an intent; a validated workflow replaces it (with
        `--file` it is written to that file, which the cell then reads)."""
        from flownb.ai.notebook import generate_cell

        existing = self._namespace().get(args.name)
        try:
            made = generate_cell(
                intent or "",
                existing=existing if isinstance(existing, Workflow) else None,
                file=args.file,
            )
        except FlownbError as exc:
            raise MagicError(f"%%workflow {args.name} --generate: {exc}") from None
        _show(made.note)
        return None if made.yaml is None else made.yaml.removesuffix("\n")

    # --- %%workflow NAME --------------------------------------------------------------------------
    def _define(self, args: Any, cell: str | None) -> None:
        name: str = args.name
        if not name.isidentifier():
            raise MagicError(f"%%workflow: {name!r} is not a valid Python name")
        if args.file and cell is not None and _has_content(cell):
            raise MagicError(
                "%%workflow: give the YAML in the cell or --file PATH, not both "
                "(with --file the cell may only hold comments)"
            )
        ns = self._namespace()
        existing = ns.get(name)
        wf = existing if isinstance(existing, Workflow) else None
        before = wf.config if wf is not None else None
        try:
            if wf is None:
                source: Any = Path(args.file) if args.file else "\n" + (cell or "")
                fresh = Workflow(source, name=name, filename="<cell>")
            else:
                fresh = wf
                if args.file:
                    wf.load(args.file)
                else:
                    # A leading newline makes line numbers match the cell's (magic line = 1).
                    wf.update("\n" + (cell or ""), filename="<cell>")
        except FlownbError as exc:
            raise MagicError(f"%%workflow {name}: {exc}") from None
        error = fresh.error
        if error is not None:
            raise MagicError(_failure(name, error.render(), existing=wf is not None))
        ns[name] = fresh
        if not args.no_canvas:
            self._draw(name, fresh)
        changed = wf is not None and fresh.config != before
        if fresh.running and changed:
            self._lifecycle(fresh, "restart")
        elif args.run and not fresh.running:
            self._lifecycle(fresh, "start")
        elif args.run:
            _show(_status_line(fresh))  # already running this config

    def _draw(self, name: str, wf: Workflow) -> None:
        """Show the canvas; the one this magic showed for NAME before is closed (re-running
        a cell replaces its output, so that canvas is gone from the page)."""
        previous = self._canvases.pop(name, None)
        if previous is not None:
            previous.close()
        try:
            canvas = wf.canvas()
        except (ImportError, FlownbError):
            _display(wf)  # says why there is no canvas
            return
        self._canvases[name] = canvas
        _display(canvas)

    # --- %workflow COMMAND NAME ... -------------------------------------------------------------
    def _command(self, words: list[str]) -> None:
        command, rest = words[0], words[1:]
        if command == "history":
            args = _history_parser().parse_args(rest)
            wf = self._workflow(args.name)
            _display(wf.history(limit=args.limit, status=args.status))
            return
        if not rest:
            raise MagicError(f"usage: %workflow {command} NAME ...")
        wf = self._workflow(rest[0])
        if command == "status":
            _show(json.dumps(wf.status(), indent=2))
        elif command == "send":
            self._send(wf, rest[1:])
        else:
            self._lifecycle(wf, command)

    def _namespace(self) -> dict[str, Any]:
        shell = self.shell
        assert shell is not None
        ns: dict[str, Any] = shell.user_ns
        return ns

    def _workflow(self, name: str) -> Workflow:
        value = self._namespace().get(name)
        if not isinstance(value, Workflow):
            raise MagicError(f"{name!r} is not a workflow; define it with %%workflow {name}")
        return value

    def _lifecycle(self, wf: Workflow, op: str) -> None:
        action = {"run": wf.start, "start": wf.start, "stop": wf.stop, "restart": wf.restart}
        try:
            task = action[op]()
        except FlownbError as exc:
            raise MagicError(f"{wf.name}: {exc}") from None
        if task is None:
            _show(_status_line(wf))
        else:
            _later(task, lambda _: _status_line(wf), f"{wf.name}: {op}…")

    def _send(self, wf: Workflow, words: list[str]) -> None:
        if len(words) < 2:
            raise MagicError(
                "usage: %workflow send NAME http [METHOD] /path ['JSON'] | "
                "topic TOPIC ['JSON'] | KIND ACTION ['JSON']"
            )
        kind, rest = words[0], words[1:]
        if kind == "http" and rest[0].upper() in HTTP_METHODS and len(rest) > 1:
            target, rest = f"{rest[0]} {rest[1]}", rest[2:]
        else:
            target, rest = rest[0], rest[1:]
        data = _json_arg(" ".join(rest)) if rest else None
        try:
            result = wf.send(kind, target, data)
        except FlownbError as exc:
            raise MagicError(f"{wf.name}: {exc}") from None
        if hasattr(result, "add_done_callback"):
            _later(result, render, f"{wf.name}: sending {kind} {target}…")
        else:
            _show(render(result))


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magics(WorkflowMagics)


# --- output ---------------------------------------------------------------------------------------
def _has_content(cell: str) -> bool:
    return any(s.strip() and not s.strip().startswith("#") for s in cell.splitlines())


def _failure(name: str, rendered: str, *, existing: bool) -> str:
    if existing:
        note = f"{name} keeps its last valid config; the edit is kept in {name}.raw"
    else:
        note = f"{name} was not defined"
    return f"{rendered}\n({note})"


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise MagicError(
            f'the data must be JSON, e.g. \'{{"user": "ada"}}\' (quoted): {exc.msg} in {text!r}'
        ) from None


def _status_line(wf: Workflow) -> str:
    status = wf.status()
    if not status["running"]:
        return f"{wf.name}: {status['state']}"
    servers = ", ".join(f"{n} {url}" for n, url in status["servers"].items())
    return f"{wf.name}: running" + (f" ({servers})" if servers else "")


def render(result: Any) -> str:
    """A trigger's result as text: an HTTP reply, a workflow Response, or JSON."""
    status = getattr(result, "status_code", None)
    if isinstance(status, int) and hasattr(result, "headers"):  # an httpx.Response
        head = f"HTTP {status} {getattr(result, 'reason_phrase', '')}".rstrip()
        try:
            body = _pretty(result.json())
        except ValueError:
            body = result.text
        return f"{head}\n{body}" if body else head
    if isinstance(result, Response):
        return f"{result.status}\n{_pretty(result.body)}"
    return _pretty(result)


def _pretty(value: Any) -> str:
    try:
        return json.dumps(value, indent=2, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _display(obj: Any, **kwargs: Any) -> Any:
    from IPython.display import display

    return display(obj, **kwargs)  # type: ignore[no-untyped-call]


def _text(text: str) -> Any:
    from IPython.display import Pretty

    return Pretty(text)  # type: ignore[no-untyped-call]


def _show(text: str) -> None:
    _display(_text(text))


def _later(future: Any, describe: Callable[[Any], str], waiting: str) -> None:
    """Show `waiting` under the cell now and replace it with the outcome when it is ready."""
    handle = _display(_text(waiting), display_id=True)

    def done(f: Any) -> None:
        if f.cancelled():
            text = f"{waiting} cancelled"
        elif f.exception() is not None:
            exc = f.exception()
            text = str(exc) if isinstance(exc, FlownbError) else f"{type(exc).__name__}: {exc}"
        else:
            text = describe(f.result())
        if handle is not None:
            handle.update(_text(text))

    future.add_done_callback(done)
