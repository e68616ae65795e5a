"""One exception hierarchy for everything flownb reports to users.

User mistakes (bad config, bad input, a failing step) are reported through these types with a
message that names the place and the fix; the CLI prints them without a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Loc = tuple[str | int, ...]


def format_loc(loc: Loc) -> str:
    """`("modules", 2, "config", "port")` -> `modules[2].config.port`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem in a config file, pinned to a file position and a field path."""

    file: str
    line: int
    col: int
    loc: Loc
    message: str

    @property
    def path(self) -> str:
        return format_loc(self.loc)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.path}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "path": self.path,
            "loc": list(self.loc),
            "message": self.message,
        }


class FlownbError(Exception):
    """Base of every error flownb raises on purpose."""


class ConfigError(FlownbError):
    """A config that cannot be loaded or built; carries every problem found, not just the first."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics: list[Diagnostic] = sorted(
            diagnostics, key=lambda d: (d.file, d.line, d.col, d.path)
        )
        super().__init__(self.render())

    def render(self) -> str:
        count = len(self.diagnostics)
        head = f"{count} error{'s' if count != 1 else ''} in config"
        return "\n".join([head, *(str(d) for d in self.diagnostics)])


class UnknownNameError(FlownbError, KeyError):
    """A lookup by name failed; the message lists what is known and the closest match."""

    def __init__(self, what: str, name: str, known: Sequence[str]) -> None:
        self.what, self.name, self.known = what, name, list(known)
        super().__init__(unknown_name_message(what, name, known))

    def __str__(self) -> str:
        return str(self.args[0])


def unknown_name_message(what: str, name: str, known: Sequence[str]) -> str:
    import difflib

    msg = f"unknown {what} {name!r}"
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    if close:
        msg += f"; did you mean {close[0]!r}?"
    if known:
        shown = ", ".join(sorted(known)[:40])
        msg += f" (known: {shown})"
    else:
        msg += f" (no {what}s are defined)"
    return msg


class BuildError(FlownbError):
    """A module failed while being built, initialised, started or stopped."""

    def __init__(self, module: str, phase: str, cause: BaseException | str) -> None:
        self.module, self.phase = module, phase
        reason = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        super().__init__(f"module {module!r} failed to {phase}: {reason}")


class ExecutionError(FlownbError):
    """A workflow execution failed; `status` is the HTTP status the failure maps to."""

    status: int = 500

    def __init__(self, message: str, *, status: int | None = None, details: object = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.details = details


class StepError(ExecutionError):
    """A pipeline step failed; names the step so the user can find it in the config."""

    def __init__(
        self, step: str, message: str, *, status: int | None = None, details: object = None
    ) -> None:
        self.step = step
        super().__init__(f"step {step!r}: {message}", status=status, details=details)


class ValidationFailed(ExecutionError):
    """Input did not match a JSON Schema; maps to 400 with the list of problems."""

    status = 400


class TransitionError(ExecutionError):
    """A state-machine transition was refused (wrong state, guard false, hook failed)."""

    status = 409


class NotFoundError(ExecutionError):
    status = 404
