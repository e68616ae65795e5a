"""`db_query` / `db_exec`: read and write a `database.workflow` module from a pipeline.

SQL text in a config is never templated: values go in `params` (a list for `?` placeholders,
an object for `:name` ones), which may hold templates. The helpers (`table` with `where`,
`values`...) build the SQL themselves; table and column names are checked to be plain
identifiers (they may come from data, e.g. the keys of the object to insert) and quoted by
the dialect. `DbRead` and `DbWrite` are also what the integration workflow's `database`
connector validates its steps' input with.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from flownb.db.statements import Statement, StatementError, check_identifier, prepare, table_clause
from flownb.errors import FlownbError
from flownb.execution import ExecutionContext
from flownb.fields import Ref, Spec
from flownb.pipeline import StepFn, StepSpec
from flownb.template import is_template

if TYPE_CHECKING:
    from flownb.db.session import Session
    from flownb.engine import Engine
    from flownb.modules.database import Database
    from flownb.template import Compiled, Templates

Scope = dict[str, Any]
Op = Callable[["Session", Scope], Awaitable[Any]]

_NOT_TEMPLATED = (
    "SQL text is never templated (a value would become SQL): use ? or :name placeholders "
    "and put the values, templates included, in params"
)


def _plain_sql(value: str) -> str:
    if is_template(value):
        raise ValueError(_NOT_TEMPLATED)
    return value


def _table_name(value: str) -> str:
    if not is_template(value):
        try:
            table_clause(value)
        except FlownbError as exc:
            raise ValueError(str(exc)) from None
    return value


def _column(name: str) -> str:
    try:
        check_identifier(name.removeprefix("-"))
    except FlownbError as exc:
        raise ValueError(str(exc)) from None
    return name


PlainSql = Annotated[str, AfterValidator(_plain_sql)]
TableName = Annotated[str, AfterValidator(_table_name)]
Column = Annotated[str, AfterValidator(_column)]


class DbRead(Spec):
    """A read: SQL text with params, or a table with equality filters."""

    query: PlainSql | None = Field(
        None, description="SQL with ? or :name placeholders (never templated)"
    )
    params: Any = Field(
        None, description="values: a list for ?, an object for :name; templates allowed"
    )
    table: TableName | None = Field(
        None, description="table (or schema.table) to read, instead of SQL"
    )
    where: Any = Field(
        None, description="{column: value} filters (a list means IN); templates allowed"
    )
    columns: list[Column] = Field(default_factory=list, description="columns to read; default all")
    order_by: list[Column] = Field(
        default_factory=list, alias="orderBy", description="columns to sort by; -name: descending"
    )
    limit: int | str | None = Field(None, description="most rows to read (number or template)")

    @model_validator(mode="after")
    def _one_source(self) -> DbRead:
        if (self.query is None) == (self.table is None):
            raise ValueError("give either query (SQL) or table")
        if self.query is not None:
            extra = [k for k in ("where", "limit") if getattr(self, k) is not None]
            if extra or self.columns or self.order_by:
                raise ValueError("where, columns, orderBy and limit go with table, not query")
        elif self.params is not None:
            raise ValueError("params go with query; with table, filter with where")
        return self


class DbWrite(Spec):
    """A write: SQL text with params, or an insert / update / delete on a table."""

    query: PlainSql | None = Field(
        None, description="SQL with ? or :name placeholders (never templated)"
    )
    params: Any = Field(
        None, description="values: a list for ?, an object for :name; templates allowed"
    )
    op: Literal["insert", "update", "delete"] | None = Field(
        None, description="helper to run on table, instead of SQL"
    )
    table: TableName | None = Field(None, description="table (or schema.table) for op")
    values: Any = Field(
        None,
        description="insert: an object or a list of objects; update: the new values; "
        "templates allowed (default for insert: the data)",
    )
    where: Any = Field(None, description="update/delete: {column: value} filters (a list means IN)")
    all_rows: bool = Field(
        False, alias="allRows", description="update/delete every row when where is empty"
    )
    returning: list[Column] = Field(
        default_factory=list, description="insert: columns to read back (RETURNING)"
    )

    def _grouped(self) -> bool:
        """True when the writes are elsewhere (`db_exec` with `statements`)."""
        return False

    @model_validator(mode="after")
    def _fits_op(self) -> DbWrite:
        if self._grouped():
            own = [
                k
                for k in ("query", "op", "table", "values", "where", "params")
                if getattr(self, k) is not None
            ]
            if own:
                raise ValueError(f"with statements, put {', '.join(own)} inside each statement")
            return self
        if self.query is not None:
            if self.op is not None or self.table is not None:
                raise ValueError("give either query (SQL) or op with table, not both")
            if self.values is not None or self.where is not None or self.returning:
                raise ValueError("values, where and returning go with op, not query")
            return self
        if self.op is None:
            raise ValueError("give query (SQL), or op (insert, update, delete) with table")
        if self.table is None:
            raise ValueError(f"op {self.op} needs table")
        if self.params is not None:
            raise ValueError("params go with query; with op, use values and where")
        if self.op == "delete" and self.values is not None:
            raise ValueError("op delete takes where, not values")
        if self.op == "insert" and (self.where is not None or self.all_rows):
            raise ValueError("op insert takes values, not where")
        if self.op != "insert" and self.returning:
            raise ValueError("returning applies to op insert")
        if self.op == "update" and self.values is None:
            raise ValueError("op update needs values")
        if self.op != "insert" and self.where is None and not self.all_rows:
            raise ValueError(f"op {self.op} needs where (or allRows: true to change every row)")
        return self


# --- compiling --------------------------------------------------------------------------------
def _checked(stmt: Statement, params: Any) -> None:
    """Check literal params against the placeholders now, rather than on the first run."""
    if params is None or isinstance(params, str):
        if (stmt.positional or stmt.names) and params is None:
            raise StatementError("the SQL has placeholders: give their values in params")
        return
    if isinstance(params, Mapping):
        if stmt.positional:
            raise StatementError("the SQL uses ? placeholders: give params as a list")
        missing = stmt.names.difference(params)
        if missing:
            raise StatementError(f"params has no value for {', '.join(sorted(missing))}")
    elif isinstance(params, list):
        stmt.bind(params if stmt.positional else {})


def _sql(templates: Templates, sql: str, params: Any) -> tuple[Statement, Compiled]:
    stmt = prepare(sql)
    _checked(stmt, params)
    return stmt, templates.value(params)


def compile_read(spec: DbRead, templates: Templates, *, single: bool = False) -> Op:
    """`async (session, scope) -> rows` for a read; with `single`, the first row or None."""
    if spec.query is not None:
        stmt, params = _sql(templates, spec.query, spec.params)
        if single:

            async def query_one(s: Session, scope: Scope) -> Any:
                return await s.query_one(stmt, params(scope))

            return query_one

        async def query(s: Session, scope: Scope) -> Any:
            return await s.query(stmt, params(scope))

        return query
    table, where = templates.value(spec.table), templates.value(spec.where)
    limit = templates.value(1 if single and spec.limit is None else spec.limit)
    columns, order_by = list(spec.columns), list(spec.order_by)

    async def select(s: Session, scope: Scope) -> Any:
        rows = await s.select(
            table(scope), where(scope), columns=columns, order_by=order_by, limit=limit(scope)
        )
        return (rows[0] if rows else None) if single else rows

    return select


def compile_write(spec: DbWrite, templates: Templates) -> Op:
    """`async (session, scope) -> ExecResult` for a write."""
    if spec.query is not None:
        stmt, params = _sql(templates, spec.query, spec.params)

        async def execute(s: Session, scope: Scope) -> Any:
            return await s.execute(stmt, params(scope))

        return execute
    table = templates.value(spec.table)
    where, all_rows = templates.value(spec.where), spec.all_rows
    if spec.op == "insert":
        values = templates.value("{{ data }}" if spec.values is None else spec.values)
        returning = list(spec.returning)

        async def insert(s: Session, scope: Scope) -> Any:
            return await s.insert(table(scope), values(scope), returning)

        return insert
    if spec.op == "update":
        new = templates.value(spec.values)

        async def update(s: Session, scope: Scope) -> Any:
            return await s.update(table(scope), new(scope), where(scope), all_rows=all_rows)

        return update

    async def delete(s: Session, scope: Scope) -> Any:
        return await s.delete(table(scope), where(scope), all_rows=all_rows)

    return delete


def _database(engine: Engine, name: str | None) -> Database:
    from flownb.modules.database import Database

    return engine.services.get(engine.resolve_ref("database", name), Database)


# --- the steps ----------------------------------------------------------------------------------
class DbQueryStep(DbRead, StepSpec):
    """Result: `{rows, count}` (mode list) or `{row, found}` (mode single)."""

    type: Literal["db_query"] = "db_query"
    database: Annotated[str | None, Ref("database", implicit=True)] = Field(
        None, description="database.workflow module; optional when there is one"
    )
    mode: Literal["list", "single"] = Field(
        "list", description="list: every row; single: the first row (or none)"
    )

    def compile(self, engine: Engine) -> StepFn:
        session = _database(engine, self.database).session
        if self.mode == "single":
            first = compile_read(self, engine.templates, single=True)

            async def single(ctx: ExecutionContext) -> Any:
                async with session(single=True) as s:
                    row = await first(s, ctx.scope)
                return {"row": row, "found": row is not None}

            return single
        read = compile_read(self, engine.templates)

        async def many(ctx: ExecutionContext) -> Any:
            async with session(single=True) as s:
                rows = await read(s, ctx.scope)
            return {"rows": rows, "count": len(rows)}

        return many


class DbExecStep(DbWrite, StepSpec):
    """Result: `{rowsAffected, lastInsertId, rows?}`; with `statements`, `{results,
    rowsAffected}` for all of them, run in one transaction."""

    type: Literal["db_exec"] = "db_exec"
    database: Annotated[str | None, Ref("database", implicit=True)] = Field(
        None, description="database.workflow module; optional when there is one"
    )
    statements: list[DbWrite] | None = Field(
        None, description="several writes run in one transaction (all or none)"
    )

    def _grouped(self) -> bool:
        return self.statements is not None

    def compile(self, engine: Engine) -> StepFn:
        session = _database(engine, self.database).session
        if self.statements is not None:
            writes = [compile_write(w, engine.templates) for w in self.statements]

            async def many(ctx: ExecutionContext) -> Any:
                scope = ctx.scope
                results = []
                async with session() as s:
                    for write in writes:
                        results.append((await write(s, scope)).to_dict())
                total = sum(max(r["rowsAffected"], 0) for r in results)
                return {"results": results, "rowsAffected": total}

            return many
        write = compile_write(self, engine.templates)

        async def one(ctx: ExecutionContext) -> Any:
            async with session(single=True) as s:
                result = await write(s, ctx.scope)
            return result.to_dict()

        return one
