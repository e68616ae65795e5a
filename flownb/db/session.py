"""Running statements on one connection: what a single call and a transaction share.

A `Session` wraps one SQLAlchemy connection inside one transaction. The `database.workflow`
module opens one per call (each call is its own transaction) or hands one out for
`async with db.transaction() as tx:` so several statements commit or roll back together.
Rows come back as plain dicts; a statement that changes rows gives an `ExecResult`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flownb.db.statements import (
    Params,
    Prepared,
    Statement,
    StatementError,
    build_delete,
    build_insert,
    build_select,
    build_update,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult
    from sqlalchemy.ext.asyncio import AsyncConnection
    from sqlalchemy.sql.expression import Executable

Row = dict[str, Any]


@dataclass(slots=True)
class ExecResult:
    """What a statement changed. `last_insert_id` is set for inserts on SQLite and MariaDB
    (use `returning` on PostgreSQL); `rows` holds rows a RETURNING clause gave back."""

    rows_affected: int
    last_insert_id: Any = None
    rows: list[Row] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rowsAffected": self.rows_affected,
            "lastInsertId": self.last_insert_id,
        }
        if self.rows is not None:
            out["rows"] = self.rows
        return out


def _rows(result: CursorResult[Any], limit: int) -> list[Row]:
    keys = list(result.keys())
    found = result.fetchmany(limit + 1) if limit else result.fetchall()
    if limit and len(found) > limit:
        raise StatementError(
            f"the query returned more than maxRows ({limit}) rows; add a LIMIT, or raise "
            "maxRows on the database module"
        )
    return [dict(zip(keys, row, strict=True)) for row in found]


class Session:
    """Statements on one connection, in its transaction."""

    __slots__ = ("conn", "max_rows", "prepared")

    def __init__(self, conn: AsyncConnection, prepared: Prepared, max_rows: int) -> None:
        self.conn = conn
        self.prepared = prepared
        self.max_rows = max_rows

    def _statement(self, sql: str | Statement) -> Statement:
        return sql if isinstance(sql, Statement) else self.prepared.get(sql)

    async def query(self, sql: str | Statement, params: Params = None) -> list[Row]:
        """Rows of a SELECT (or of any statement returning rows) as dicts."""
        stmt = self._statement(sql)
        result = await self.conn.execute(stmt.clause, stmt.bind(params))
        if not result.returns_rows:
            raise StatementError("the statement returned no rows; run it with execute instead")
        return _rows(result, self.max_rows)

    async def query_one(self, sql: str | Statement, params: Params = None) -> Row | None:
        """The first row, or None."""
        stmt = self._statement(sql)
        result = await self.conn.execute(stmt.clause, stmt.bind(params))
        if not result.returns_rows:
            raise StatementError("the statement returned no rows; run it with execute instead")
        row = result.first()
        return None if row is None else dict(row._mapping)

    async def execute(self, sql: str | Statement, params: Params = None) -> ExecResult:
        """Run a statement that changes data (INSERT, UPDATE, DELETE, DDL)."""
        stmt = self._statement(sql)
        result = await self.conn.execute(stmt.clause, stmt.bind(params))
        return self._outcome(result, stmt.is_insert)

    async def insert(
        self,
        table: str,
        values: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        returning: Sequence[str] = (),
    ) -> ExecResult:
        """Insert one row (an object) or several (a list of objects with the same columns)."""
        stmt, rows = build_insert(table, values, returning)
        result = await self.conn.execute(stmt, rows[0] if len(rows) == 1 else rows)
        out = self._outcome(result, len(rows) == 1)
        if len(rows) > 1 and out.rows_affected < 0:
            out.rows_affected = len(rows)
        return out

    async def update(
        self,
        table: str,
        values: Mapping[str, Any],
        where: Mapping[str, Any] | None,
        *,
        all_rows: bool = False,
    ) -> ExecResult:
        """Set `values` on the rows matching `where` ({column: value}; a list means IN)."""
        return await self._run(build_update(table, values, where, all_rows=all_rows))

    async def delete(
        self, table: str, where: Mapping[str, Any] | None, *, all_rows: bool = False
    ) -> ExecResult:
        return await self._run(build_delete(table, where, all_rows=all_rows))

    async def select(
        self,
        table: str,
        where: Mapping[str, Any] | None = None,
        *,
        columns: Sequence[str] = (),
        order_by: Sequence[str] = (),
        limit: int | None = None,
    ) -> list[Row]:
        stmt = build_select(table, where, columns=columns, order_by=order_by, limit=limit)
        return _rows(await self.conn.execute(stmt), self.max_rows)

    async def _run(self, stmt: Executable) -> ExecResult:
        return self._outcome(await self.conn.execute(stmt), False)

    def _outcome(self, result: CursorResult[Any], is_insert: bool) -> ExecResult:
        rows = _rows(result, self.max_rows) if result.returns_rows else None
        last = None
        if is_insert and getattr(self.conn.dialect, "postfetch_lastrowid", False):
            last = result.lastrowid
        return ExecResult(result.rowcount, last, rows)
