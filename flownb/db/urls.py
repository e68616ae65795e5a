"""Database URLs: which backend a `dsn` names, its async driver, and a printable form.

Users write the URLs they know (`postgres://...`, `postgresql://...`, `mysql://...`,
`mariadb://...`, `sqlite:///file.db`, or a bare file path / `:memory:` for SQLite); flownb picks
the async driver for each, checks it is installed (naming the extra to install when not), and
never prints a password.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote

from flownb.errors import FlownbError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

Backend = Literal["sqlite", "postgres", "mysql", "mariadb"]

# backend -> (SQLAlchemy dialect+driver, driver module, extra that installs it)
DRIVERS: dict[Backend, tuple[str, str, str | None]] = {
    "sqlite": ("sqlite+aiosqlite", "aiosqlite", None),
    "postgres": ("postgresql+asyncpg", "asyncpg", "postgres"),
    "mysql": ("mysql+aiomysql", "aiomysql", "mysql"),
    "mariadb": ("mariadb+aiomysql", "aiomysql", "mysql"),
}
_SCHEMES: dict[str, Backend] = {
    "sqlite": "sqlite",
    "sqlite3": "sqlite",
    "postgres": "postgres",
    "postgresql": "postgres",
    "pgx": "postgres",
    "mysql": "mysql",
    "mariadb": "mariadb",
}
_ASYNC_DRIVERS = frozenset({"aiosqlite", "asyncpg", "aiomysql", "asyncmy"})


@dataclass(frozen=True)
class DatabaseUrl:
    backend: Backend
    url: URL

    @property
    def display(self) -> str:
        """The URL as users write it (no driver name), password masked: for logs and errors."""
        plain = self.url.set(drivername=self.url.get_backend_name())
        return unquote(plain.render_as_string(hide_password=True))

    @property
    def memory(self) -> bool:
        """An in-memory SQLite database (one connection, gone when it closes)."""
        return self.backend == "sqlite" and self.url.database in (None, "", ":memory:")


def backend_of(name: str) -> Backend:
    try:
        return _SCHEMES[name.lower()]
    except KeyError:
        known = ", ".join(sorted(set(_SCHEMES.values())))
        raise FlownbError(f"unknown database driver {name!r}; use one of: {known}") from None


def parse_dsn(dsn: str, driver: str | None = None) -> DatabaseUrl:
    """The backend and the async SQLAlchemy URL for `dsn` (checks only the text: no I/O)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    text = dsn.strip()
    if "://" not in text:  # a bare SQLite path, or :memory:
        if driver is not None and backend_of(driver) != "sqlite":
            raise FlownbError(
                f"dsn {text!r} is not a URL; for {driver} write e.g. "
                f"{driver}://user@host:port/database"
            )
        text = "sqlite:///" + text
    try:
        url = make_url(text.replace("postgres://", "postgresql://", 1))
    except ArgumentError:
        raise FlownbError(
            "dsn is not a database URL; write e.g. postgresql://user@host:5432/db, "
            "mysql://root@127.0.0.1:3306/test or sqlite:///data.db"
        ) from None
    scheme, _, given = url.drivername.partition("+")
    named = backend_of(scheme)
    backend = backend_of(driver) if driver is not None else named
    if backend != named and {backend, named} != {"mysql", "mariadb"}:
        raise FlownbError(f"driver {driver!r} does not match the dsn's scheme {scheme!r}")
    if given and given not in _ASYNC_DRIVERS:
        raise FlownbError(
            f"dsn driver {given!r} is synchronous; flownb talks to databases asynchronously: "
            f"write {scheme}://... and flownb picks {DRIVERS[backend][1]}"
        )
    dialect = DRIVERS[backend][0]
    if given:
        dialect = f"{dialect.partition('+')[0]}+{given}"
    return DatabaseUrl(backend, url.set(drivername=dialect))


def require_driver(url: DatabaseUrl) -> None:
    """Fail with the extra to install when the backend's driver is missing."""
    driver = url.url.get_driver_name()
    if importlib.util.find_spec(driver) is None:
        extra = DRIVERS[url.backend][2]
        hint = f"pip install 'flownb[{extra}]'" if extra else f"pip install {driver}"
        raise FlownbError(f"the {url.backend} database driver {driver!r} is missing: {hint}")
