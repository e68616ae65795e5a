"""SQL statements from config and data, with no way for a value to become SQL.

Two rules hold everywhere. Values are always bound parameters: SQL text written in a config is
never templated, and `?` / `:name` placeholders carry the values. Identifiers that the
insert/update/delete/select helpers put into SQL (table and column names, which may come from
data, e.g. the keys of an object to insert) must match `IDENTIFIER` and are then quoted by the
dialect; anything else is refused before a statement is built.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from flownb.errors import ExecutionError

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnClause, ColumnElement, TextClause
    from sqlalchemy.sql.expression import Executable, TableClause

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
Params = Mapping[str, Any] | Sequence[Any] | None


class InvalidIdentifier(ExecutionError):
    """A table or column name that is not a plain identifier (it could carry SQL)."""

    status = 400


class StatementError(ExecutionError):
    """A statement that cannot be run as asked (wrong parameters, empty insert...)."""

    status = 400


def check_identifier(name: object, what: str = "column") -> str:
    """`name` if it is a plain identifier (letters, digits, _; not starting with a digit)."""
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
        raise InvalidIdentifier(
            f"invalid {what} name {shown}: use letters, digits and _ only, starting with a "
            "letter or _ (at most 63 characters)"
        )
    return name


def table_clause(name: object, columns: Sequence[str] = ()) -> TableClause:
    """A table by name (`table` or `schema.table`), each part checked; the dialect quotes it."""
    import sqlalchemy as sa

    if not isinstance(name, str):
        check_identifier(name, "table")
    parts = str(name).split(".")
    if len(parts) > 2:
        raise InvalidIdentifier(f"invalid table name {name!r}: write table or schema.table")
    table = check_identifier(parts[-1], "table")
    schema = check_identifier(parts[0], "schema") if len(parts) == 2 else None
    cols: list[ColumnClause[Any]] = [sa.column(check_identifier(c)) for c in columns]
    return sa.table(table, *cols, schema=schema)


def bind_value(value: Any) -> Any:
    """Objects and lists are sent as JSON text (what JSON columns and drivers accept)."""
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


# --- SQL text written in a config ---------------------------------------------------------------
_SKIP = re.compile(
    r"""'(?:[^']|'')*'          # 'string' ('' escapes a quote)
      | "(?:[^"]|"")*"          # "identifier"
      | `[^`]*`                 # `identifier` (MySQL)
      | --[^\n]*                # line comment
      | /\*.*?\*/               # block comment
      | \$(?P<tag>[A-Za-z_]*)\$.*?\$(?P=tag)\$   # $$dollar quoted$$ (PostgreSQL)
      | \?                      # a positional placeholder
    """,
    re.S | re.X,
)


def positional_to_named(sql: str) -> tuple[str, int]:
    """Rewrite `?` placeholders (outside strings and comments) as `:p1`, `:p2`...

    Returns the new text and the number of placeholders.
    """
    count = 0
    out: list[str] = []
    pos = 0
    for m in _SKIP.finditer(sql):
        if m.group(0) != "?":
            continue
        count += 1
        out.append(sql[pos : m.start()])
        out.append(f":p{count}")
        pos = m.end()
    if not count:
        return sql, 0
    out.append(sql[pos:])
    return "".join(out), count


@dataclass(frozen=True, slots=True)
class Statement:
    """SQL text prepared once: the clause, and how its parameters are given.

    `positional` is the number of `?` placeholders (parameters come as a list); otherwise the
    parameters are named (`:name`, given as an object) and `names` lists them.
    """

    sql: str
    clause: TextClause
    positional: int
    names: frozenset[str]
    is_insert: bool = False

    def bind(self, params: Params) -> dict[str, Any]:
        """The parameters as the named binds of `clause`, checked against the placeholders."""
        if params is None:
            params = () if self.positional else {}
        if self.positional:
            if isinstance(params, Mapping | str | bytes):
                raise StatementError(
                    f"this statement has {self.positional} '?' placeholder(s): give params as "
                    "a list"
                )
            values = list(params)
            if len(values) != self.positional:
                raise StatementError(
                    f"this statement has {self.positional} '?' placeholder(s) but "
                    f"{len(values)} parameter(s) were given"
                )
            return {f"p{i}": bind_value(v) for i, v in enumerate(values, 1)}
        if not isinstance(params, Mapping):
            if not self.names and not list(params):
                return {}
            raise StatementError(
                "this statement uses named placeholders (:name): give params as an object"
            )
        missing = self.names.difference(params)
        if missing:
            raise StatementError(
                f"no value for parameter(s) {', '.join(sorted(missing))}; add them to params"
            )
        return {k: bind_value(params[k]) for k in self.names}


def prepare(sql: str) -> Statement:
    """Prepare SQL text written in a config: `?` placeholders, or `:name` ones, not both."""
    import sqlalchemy as sa

    if not sql.strip():
        raise StatementError("the SQL text is empty")
    text, count = positional_to_named(sql)
    clause = sa.text(text)
    names = frozenset(clause._bindparams)
    if count and len(names) != count:
        raise StatementError(
            "use either '?' placeholders or ':name' placeholders in one statement, not both"
        )
    is_insert = sql.lstrip().lower().startswith("insert")
    return Statement(sql, clause, count, frozenset() if count else names, is_insert)


class Prepared:
    """Statements prepared from SQL text, kept by text (least recently used go first), so
    SQL passed to the module's methods is parsed once, not on every call."""

    def __init__(self, capacity: int = 256) -> None:
        self._items: OrderedDict[str, Statement] = OrderedDict()
        self._capacity = capacity

    def get(self, sql: str) -> Statement:
        found = self._items.get(sql)
        if found is None:
            found = self._items[sql] = prepare(sql)
            if len(self._items) > self._capacity:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(sql)
        return found


# --- statements built from a table name and data --------------------------------------------------
def _rows(values: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    rows = [values] if isinstance(values, Mapping) else list(values)
    if not rows or any(not isinstance(r, Mapping) for r in rows):
        raise StatementError("insert needs an object (column: value), or a list of objects")
    if not rows[0]:
        raise StatementError("insert needs at least one column")
    return rows


def _conditions(table: TableClause, where: Mapping[str, Any]) -> list[ColumnElement[bool]]:
    """`{col: value}` -> col = value; None -> IS NULL; a list -> IN (...)."""
    out: list[ColumnElement[bool]] = []
    for name, value in where.items():
        col = table.c[name]
        if value is None:
            out.append(col.is_(None))
        elif isinstance(value, list | tuple):
            out.append(col.in_([bind_value(v) for v in value]))
        else:
            out.append(col == bind_value(value))
    return out


def _checked_where(where: Mapping[str, Any] | None, all_rows: bool, verb: str) -> Mapping[str, Any]:
    if where is not None and not isinstance(where, Mapping):
        raise StatementError(f"{verb}: where must be an object (column: value)")
    if not where and not all_rows:
        raise StatementError(
            f"{verb} without a where clause would touch every row; give where, or set "
            "allRows: true if that is what you mean"
        )
    return where or {}


def _order(item: object) -> tuple[str, bool]:
    """`"name"` -> ("name", ascending); `"-name"` -> ("name", descending)."""
    text = item if isinstance(item, str) else ""
    desc = text.startswith("-")
    return check_identifier(text[1:] if desc else item), desc


def build_insert(
    table: str,
    values: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    returning: Sequence[str] = (),
) -> tuple[Executable, list[dict[str, Any]]]:
    """INSERT of one row or several (same columns); returns the statement and the rows."""
    import sqlalchemy as sa

    rows = _rows(values)
    columns = list(rows[0])
    for row in rows[1:]:
        if set(row) != set(columns):
            raise StatementError("every row of a multi-row insert needs the same columns")
    clause = table_clause(table, list(dict.fromkeys([*columns, *returning])))
    stmt: Any = sa.insert(clause)
    if returning:
        stmt = stmt.returning(*[clause.c[c] for c in returning])
    return stmt, [{c: bind_value(row[c]) for c in columns} for row in rows]


def build_update(
    table: str,
    values: Mapping[str, Any],
    where: Mapping[str, Any] | None,
    *,
    all_rows: bool = False,
) -> Executable:
    import sqlalchemy as sa

    if not isinstance(values, Mapping) or not values:
        raise StatementError("update needs values: an object (column: new value)")
    conditions = _checked_where(where, all_rows, "update")
    clause = table_clause(table, list(dict.fromkeys([*values, *conditions])))
    stmt = sa.update(clause).values({clause.c[k]: bind_value(v) for k, v in values.items()})
    return stmt.where(*_conditions(clause, conditions)) if conditions else stmt


def build_delete(
    table: str, where: Mapping[str, Any] | None, *, all_rows: bool = False
) -> Executable:
    import sqlalchemy as sa

    conditions = _checked_where(where, all_rows, "delete")
    clause = table_clause(table, list(conditions))
    stmt = sa.delete(clause)
    return stmt.where(*_conditions(clause, conditions)) if conditions else stmt


def build_select(
    table: str,
    where: Mapping[str, Any] | None = None,
    *,
    columns: Sequence[str] = (),
    order_by: Sequence[str] = (),
    limit: int | None = None,
) -> Executable:
    """SELECT columns (all by default) with equality filters; an `order_by` item starting
    with '-' sorts descending."""
    import sqlalchemy as sa

    if where is not None and not isinstance(where, Mapping):
        raise StatementError("select: where must be an object (column: value)")
    where = where or {}
    order = [_order(item) for item in order_by]
    names = dict.fromkeys([*columns, *where, *(name for name, _ in order)])
    clause = table_clause(table, list(names))
    stmt = sa.select(*[clause.c[c] for c in columns]) if columns else sa.select(sa.text("*"))
    stmt = stmt.select_from(clause)
    if where:
        stmt = stmt.where(*_conditions(clause, where))
    for name, desc in order:
        stmt = stmt.order_by(clause.c[name].desc() if desc else clause.c[name].asc())
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise StatementError(f"limit must be a whole number >= 0, not {limit!r}")
        stmt = stmt.limit(limit)
    return stmt
