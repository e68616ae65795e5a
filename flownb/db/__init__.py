"""SQL databases behind one async API (SQLAlchemy Core): SQLite, PostgreSQL, MariaDB/MySQL.

`statements` builds SQL with bound values and checked identifiers, `urls` turns a dsn into an
async driver URL, `errors` sorts failures (unavailable, refused, bad data, constraint),
`session` runs statements on one connection. The module type is `flownb.modules.database`.
"""

from __future__ import annotations

from flownb.db.errors import DatabaseError, DatabaseUnavailable
from flownb.db.session import ExecResult, Session
from flownb.db.statements import InvalidIdentifier, Statement, StatementError, prepare

__all__ = [
    "DatabaseError",
    "DatabaseUnavailable",
    "ExecResult",
    "InvalidIdentifier",
    "Session",
    "Statement",
    "StatementError",
    "prepare",
]
