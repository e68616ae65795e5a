"""Driver and SQLAlchemy failures, sorted into what a workflow can act on.

- the database cannot be reached (refused, lost connection, server restarting, pool
  exhausted, SQLite file locked or missing): `DatabaseUnavailable`, 503; health says degraded;
- the database refuses us (bad credentials, no such database): `DatabaseError` 500, health says
  unhealthy: a config problem;
- the statement breaks a constraint: 409; carries bad data: 400 (the caller can fix both);
- anything else (SQL syntax, missing table): 500, message logged, not shown to HTTP callers.

Messages name the module and the masked URL (never a password) and keep only the driver's own
message, without SQLAlchemy's boilerplate.
"""

from __future__ import annotations

from typing import Any, Literal

from flownb.errors import ExecutionError

Health = Literal["healthy", "degraded", "unhealthy"]  # as `flownb.health.Check` says it

# SQLSTATE classes and MySQL client/server codes that mean "cannot reach the server".
_DOWN_SQLSTATE_PREFIXES = ("08", "57P")
_REFUSED_SQLSTATE_PREFIXES = ("28", "3D")
_MYSQL_DOWN = frozenset({1040, 1053, 2002, 2003, 2005, 2006, 2013, 2055})
_MYSQL_REFUSED = frozenset({1044, 1045, 1049, 1698})
_SQLITE_DOWN = ("unable to open database file", "database is locked", "disk i/o error")


class DatabaseError(ExecutionError):
    """A statement or connection failed; `kind` says which of the cases above it is."""

    status = 500
    kind: Health = "unhealthy"


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached now; retrying later may work."""

    status = 503
    kind: Health = "degraded"


def _sqlstate(orig: Any) -> str:
    for candidate in (orig, getattr(orig, "__cause__", None)):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(state, str):
            return state
    return ""


def _mysql_code(orig: Any) -> int | None:
    args = getattr(orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def driver_message(exc: BaseException) -> str:
    """The driver's own message, one line, without SQLAlchemy's '[SQL: ...]' and links."""
    orig = getattr(exc, "orig", None) or exc
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        text = f"{args[1]} (error {args[0]})"
    else:
        text = str(orig) or type(orig).__name__
    return text.strip().splitlines()[0] if text.strip() else type(orig).__name__


def translate(exc: BaseException, source: str) -> DatabaseError:
    """Map a failure from SQLAlchemy or a driver to a `DatabaseError` naming `source`."""
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, sa_exc.TimeoutError):
        return DatabaseUnavailable(
            f"{source}: no free connection in the pool in time (raise maxOpenConns, or "
            "look for slow statements)"
        )
    if isinstance(exc, OSError | ConnectionError | TimeoutError):
        reason = driver_message(exc) if str(exc) else "timed out"
        return DatabaseUnavailable(f"{source} is unavailable: {reason}")
    orig = getattr(exc, "orig", None)
    message = driver_message(exc)
    state = _sqlstate(orig)
    code = _mysql_code(orig)
    lowered = message.lower()
    if (
        getattr(exc, "connection_invalidated", False)
        or state.startswith(_DOWN_SQLSTATE_PREFIXES)
        or code in _MYSQL_DOWN
        or isinstance(exc, sa_exc.InterfaceError)
        or isinstance(getattr(orig, "__cause__", None), OSError)
        or any(text in lowered for text in _SQLITE_DOWN)
    ):
        return DatabaseUnavailable(f"{source} is unavailable: {message}")
    if state.startswith(_REFUSED_SQLSTATE_PREFIXES) or code in _MYSQL_REFUSED:
        return DatabaseError(f"{source} refused the connection: {message} (check the dsn)")
    if isinstance(exc, sa_exc.IntegrityError) or state.startswith("23"):
        return DatabaseError(f"{source}: constraint violated: {message}", status=409)
    if isinstance(exc, sa_exc.DataError) or state.startswith("22"):
        return DatabaseError(
            f"{source}: bad value: {message} (PostgreSQL does not convert text to numbers "
            "for you: convert in the template, e.g. {{ data.id | int }})"
            if "expected" in lowered or "invalid input for query argument" in lowered
            else f"{source}: bad value: {message}",
            status=400,
        )
    return DatabaseError(f"{source}: {message}")
