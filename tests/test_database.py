"""`database.workflow` on real SQLite, PostgreSQL and MariaDB; `db_query` / `db_exec` steps.

Each test works in its own table (a random name) and drops it afterwards, so tests running at
the same time on the machine's shared servers never meet.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from realservices import MARIADB_URL, POSTGRES_URL, postgres_ctl, require

from flownb.db import DatabaseUnavailable, InvalidIdentifier, StatementError
from flownb.db.statements import positional_to_named
from flownb.engine import Engine
from flownb.errors import BuildError, ConfigError, StepError
from flownb.execution import ExecutionContext
from flownb.health import engine_health
from flownb.loader import parse_config
from flownb.modules.database import Database

ID_COLUMN = {
    "sqlite": "id INTEGER PRIMARY KEY",
    "postgres": "id SERIAL PRIMARY KEY",
    "mariadb": "id INTEGER AUTO_INCREMENT PRIMARY KEY",
}


class Backend:
    def __init__(self, name: str, dsn: str) -> None:
        self.name, self.dsn = name, dsn
        self.table = f"t_{os.urandom(5).hex()}"

    def create(self) -> str:
        return (
            f"CREATE TABLE {self.table} ({ID_COLUMN[self.name]}, name VARCHAR(200), "
            "qty INTEGER, note VARCHAR(200))"
        )

    def yaml(self, pipelines: str = "") -> str:
        return f"""
modules:
  - name: db
    type: database.workflow
    config:
      dsn: "{self.dsn}"
      setup: ["{self.create()}"]
pipelines:
{pipelines or "  noop: {steps: []}"}
"""


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    name = request.param
    if name == "sqlite":
        return Backend(name, f"sqlite:///{tmp_path / 'test.db'}")
    require(name)
    return Backend(name, POSTGRES_URL if name == "postgres" else MARIADB_URL)


async def run(engine: Engine, pipeline: str, data: Any) -> ExecutionContext:
    """Run a pipeline as one execution; the context holds each step's result."""
    return await engine.run_handler(
        engine.pipeline(pipeline), data, workflow="pipeline", action=pipeline
    )


async def rows(db: Database, table: str) -> list[dict[str, Any]]:
    return await db.select(table, columns=["name", "qty", "note"], order_by=["name"])


# --- the module's API -------------------------------------------------------------------------
async def test_insert_select_update_delete(backend: Backend) -> None:
    engine = Engine(parse_config(backend.yaml()))
    await engine.start()
    db = engine.services.get("db", Database)
    t = backend.table
    try:
        done = await db.insert(t, [{"name": "a", "qty": 1}, {"name": "b", "qty": 2}])
        assert done.rows_affected == 2
        one = await db.insert(t, {"name": "c", "qty": 3})
        if backend.name != "postgres":
            assert isinstance(one.last_insert_id, int)
        assert (await db.update(t, {"qty": 20}, {"name": "b"})).rows_affected == 1
        assert (await db.delete(t, {"name": ["a", "zzz"]})).rows_affected == 1
        assert await rows(db, t) == [
            {"name": "b", "qty": 20, "note": None},
            {"name": "c", "qty": 3, "note": None},
        ]
        assert await db.select(t, {"note": None}, columns=["name"], order_by=["-qty"]) == [
            {"name": "b"},
            {"name": "c"},
        ]
        assert await db.query(f"SELECT name FROM {t} WHERE qty > :n", {"n": 5}) == [{"name": "b"}]
        assert await db.query_one(f"SELECT qty FROM {t} WHERE name = ?", ["c"]) == {"qty": 3}
        assert await db.query_one(f"SELECT qty FROM {t} WHERE name = ?", ["nope"]) is None
        changed = await db.execute(f"UPDATE {t} SET note = ? WHERE qty < ?", ["low", 10])
        assert changed.rows_affected == 1
        assert (await db.health()).status == "healthy"
    finally:
        await db.execute(f"DROP TABLE {t}")
        await engine.stop()


async def test_a_transaction_commits_together_or_not_at_all(backend: Backend) -> None:
    engine = Engine(parse_config(backend.yaml()))
    await engine.start()
    db = engine.services.get("db", Database)
    t = backend.table
    try:
        async with db.transaction() as tx:
            await tx.insert(t, {"name": "a", "qty": 1})
            await tx.insert(t, {"name": "b", "qty": 2})
        with pytest.raises(RuntimeError, match="changed my mind"):
            async with db.transaction() as tx:
                await tx.insert(t, {"name": "c", "qty": 3})
                await tx.update(t, {"qty": 100}, {"name": "a"})
                raise RuntimeError("changed my mind")
        with pytest.raises(StatementError):
            async with db.transaction() as tx:
                await tx.delete(t, {"name": "b"})
                await tx.execute(f"INSERT INTO {t} (name) VALUES (?)", [])  # wrong arity
        assert [r["name"] for r in await rows(db, t)] == ["a", "b"]
        assert (await db.query_one(f"SELECT qty FROM {t} WHERE name = 'a'")) == {"qty": 1}
    finally:
        await db.execute(f"DROP TABLE {t}")
        await engine.stop()


async def test_values_that_look_like_sql_are_stored_as_text(backend: Backend) -> None:
    """Injection through values: every value is a bound parameter, so SQL in it is inert."""
    engine = Engine(parse_config(backend.yaml()))
    await engine.start()
    db = engine.services.get("db", Database)
    t = backend.table
    attacks = [
        f"'; DROP TABLE {t}; --",
        "x' OR '1'='1",
        f'"); DELETE FROM {t}; --',
        "\\'; DROP TABLE x; --",
        "?",
        ":name",
        "%s %(x)s",
    ]
    try:
        await db.insert(t, {"name": "keep", "qty": 1})
        for i, text in enumerate(attacks):
            await db.insert(t, {"name": text, "qty": i})
        for i, text in enumerate(attacks):
            found = await db.query(f"SELECT qty FROM {t} WHERE name = ?", [text])
            assert found == [{"qty": i}], text
            assert await db.select(t, {"name": text}, columns=["qty"]) == [{"qty": i}]
        # an always-true condition in a value matches nothing, deletes nothing
        assert (await db.delete(t, {"name": "x' OR '1'='1' --"})).rows_affected == 0
        assert (await db.update(t, {"note": "n"}, {"name": "1 OR 1=1"})).rows_affected == 0
        assert len(await rows(db, t)) == len(attacks) + 1
        assert (await db.query_one(f"SELECT name FROM {t} WHERE qty = 1 AND name = 'keep'")) == {
            "name": "keep"
        }
    finally:
        await db.execute(f"DROP TABLE {t}")
        await engine.stop()


BAD_IDENTIFIERS = [
    'name"; DROP TABLE x; --',
    "name`; DROP TABLE x; --",
    "name'",
    "name; DELETE FROM x",
    "name) VALUES (1); DROP TABLE x; --",
    "1name",
    "na me",
    "name--",
    "",
    "a.b.c",
    "x" * 64,
]


@pytest.mark.parametrize("bad", BAD_IDENTIFIERS)
async def test_identifiers_carrying_sql_are_refused_before_any_statement(
    backend: Backend, bad: str
) -> None:
    engine = Engine(parse_config(backend.yaml()))
    await engine.start()
    db = engine.services.get("db", Database)
    t = backend.table
    try:
        await db.insert(t, {"name": "keep", "qty": 1})
        attempts: list[Callable[[], Awaitable[Any]]] = [
            lambda: db.insert(t, {bad: "v"}),
            lambda: db.insert(bad, {"name": "v"}),
            lambda: db.update(t, {bad: "v"}, {"name": "keep"}),
            lambda: db.update(t, {"qty": 2}, {bad: "keep"}),
            lambda: db.delete(t, {bad: "keep"}),
            lambda: db.delete(bad, {"name": "keep"}),
            lambda: db.select(t, columns=[bad]),
            lambda: db.select(t, order_by=[bad]),
            lambda: db.select(t, order_by=["-" + bad]),
            lambda: db.insert(t, {"name": "v"}, returning=[bad]),
        ]
        for attempt in attempts:
            with pytest.raises(InvalidIdentifier) as caught:
                await attempt()
            assert caught.value.status == 400
            assert re.search(r"invalid (column|table|schema) name", str(caught.value))
        assert await rows(db, t) == [{"name": "keep", "qty": 1, "note": None}]
    finally:
        await db.execute(f"DROP TABLE {t}")
        await engine.stop()


async def test_reserved_words_are_quoted_by_the_dialect(backend: Backend) -> None:
    engine = Engine(parse_config(backend.yaml()))
    await engine.start()
    db = engine.services.get("db", Database)
    t = f"order_{backend.table}"
    quote = "`" if backend.name == "mariadb" else '"'
    try:
        await db.execute(
            f"CREATE TABLE {t} ({quote}select{quote} INTEGER, {quote}from{quote} INTEGER)"
        )
        await db.insert(t, {"select": 1, "from": 2})
        await db.update(t, {"from": 3}, {"select": 1})
        assert await db.select(t, {"select": 1}, columns=["select", "from"]) == [
            {"select": 1, "from": 3}
        ]
    finally:
        await db.execute(f"DROP TABLE {t}")
        await engine.stop()


# --- the steps ----------------------------------------------------------------------------------
STEPS = """
  add:
    steps:
      - type: db_exec
        name: add
        op: insert
        table: {t}
        values: "{{{{ data }}}}"
      - type: db_query
        name: all
        query: "SELECT name, qty FROM {t} ORDER BY name"
  rename:
    steps:
      - type: db_exec
        name: rename
        op: update
        table: {t}
        values: {{name: "{{{{ data.to }}}}"}}
        where: {{name: "{{{{ data.from }}}}"}}
  find:
    steps:
      - type: db_query
        name: find
        query: "SELECT qty FROM {t} WHERE name = :name"
        params: {{name: "{{{{ data.name }}}}"}}
        mode: single
      - type: db_query
        name: by_table
        table: {t}
        where: {{name: "{{{{ data.name }}}}"}}
        columns: [name]
        mode: single
  swap:
    steps:
      - type: db_exec
        name: swap
        statements:
          - query: "UPDATE {t} SET qty = qty + ? WHERE name = ?"
            params: ["{{{{ data.n }}}}", "{{{{ data.to }}}}"]
          - query: "UPDATE {t} SET qty = qty - ? WHERE name = ?"
            params: ["{{{{ data.n }}}}", "{{{{ data.from }}}}"]
          - op: delete
            table: {t}
            where: {{qty: -1}}
          - query: "INSERT INTO {t} (id, name, qty) VALUES (:id, :name, 1)"
            params: {{id: 1000, name: "{{{{ data.marker }}}}"}}
"""


async def test_db_steps_in_a_pipeline(backend: Backend) -> None:
    t = backend.table
    engine = Engine(parse_config(backend.yaml(STEPS.format(t=t))))
    await engine.start()
    db = engine.services.get("db", Database)
    try:
        ctx = await run(engine, "add", {"name": "ann", "qty": 5})
        assert ctx.steps["add"]["rowsAffected"] == 1
        assert ctx.steps["all"] == {"rows": [{"name": "ann", "qty": 5}], "count": 1}
        await run(engine, "add", {"name": "bob", "qty": 1})
        # a value that is SQL goes in as text, through the step as through the API
        await run(engine, "add", {"name": f"x'); DROP TABLE {t}; --", "qty": 0})
        ctx = await run(engine, "rename", {"from": "bob", "to": "bea"})
        assert ctx.steps["rename"]["rowsAffected"] == 1
        ctx = await run(engine, "find", {"name": "bea"})
        assert ctx.steps["find"] == {"row": {"qty": 1}, "found": True}
        assert ctx.steps["by_table"] == {"row": {"name": "bea"}, "found": True}
        ctx = await run(engine, "find", {"name": "nobody"})
        assert ctx.steps["find"] == {"row": None, "found": False}
        # keys of the data become column names: a key carrying SQL is refused (400)
        with pytest.raises(StepError) as caught:
            await run(engine, "add", {'name") VALUES (1); DROP TABLE x; --': 1})
        assert caught.value.status == 400
        assert "invalid column name" in str(caught.value)
        # several writes in one transaction: all or none
        ctx = await run(engine, "swap", {"n": 2, "from": "bea", "to": "ann", "marker": "m1"})
        assert ctx.steps["swap"]["rowsAffected"] == 4  # 1 + 1 + 1 (bea at -1) + 1
        assert [r["name"] for r in await rows(db, t)] == ["ann", "m1", f"x'); DROP TABLE {t}; --"]
        with pytest.raises(StepError) as caught:  # id 1000 is taken: the updates roll back
            await run(engine, "swap", {"n": 1, "from": "ann", "to": "m1", "marker": "m2"})
        assert caught.value.status == 409 and "constraint violated" in str(caught.value)
        assert {r["name"]: r["qty"] for r in await rows(db, t)}["ann"] == 7
    finally:
        await db.execute(f"DROP TABLE {t}")
        await engine.stop()


def bad_config(step: str) -> str:
    return f"""
modules:
  - name: db
    type: database.workflow
pipelines:
  p:
    steps:
      - {step}
"""


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (
            '{type: db_query, query: "SELECT * FROM t WHERE id = {{ data.id }}"}',
            "SQL text is never templated",
        ),
        (
            '{type: db_exec, query: "DELETE FROM {% if true %}t{% endif %}"}',
            "SQL text is never templated",
        ),
        ('{type: db_exec, op: insert, table: "t; DROP TABLE t"}', "invalid table name"),
        ("{type: db_query, table: t, columns: ['a b']}", "invalid column name"),
        ("{type: db_exec, op: delete, table: t}", "where"),
        ("{type: db_exec, op: update, table: t, where: {id: 1}}", "op update needs values"),
        ("{type: db_query, query: 'SELECT 1', table: t}", "either query (SQL) or table"),
        ("{type: db_query, query: 'SELECT * FROM t WHERE a = ?'}", "give their values"),
        ("{type: db_query, query: 'SELECT * FROM t WHERE a = ?', params: [1, 2]}", "2 param"),
        ("{type: db_query, query: 'SELECT :a, :b', params: {a: 1}}", "no value for b"),
        ("{type: db_query, query: 'SELECT ?, :b', params: [1]}", "not both"),
        ("{type: db_exec, statements: [], query: 'DELETE FROM t'}", "inside each statement"),
    ],
)
def test_misused_db_steps_are_config_errors(step: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Engine(parse_config(bad_config(step))).check()
    assert message in str(caught.value.render())


def test_question_marks_in_strings_and_comments_are_not_placeholders() -> None:
    sql = "SELECT '?', \"a?\", $$?$$ -- ?\n, /* ? */ x FROM t WHERE a = ? AND b = ?"
    text, count = positional_to_named(sql)
    assert count == 2
    assert text.endswith("a = :p1 AND b = :p2")
    assert "'?'" in text and '"a?"' in text and "$$?$$" in text and "-- ?" in text


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("postgresql+psycopg2://u@h/db", "synchronous"),
        ("oracle://u@h/db", "unknown database driver"),
        ("not a url at all://", "not a database URL"),
    ],
)
def test_bad_dsns_are_config_errors_without_the_password(dsn: str, message: str) -> None:
    yaml = f"""
modules:
  - name: db
    type: database.workflow
    config: {{dsn: "{dsn}"}}
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml)
    assert message in caught.value.render()


def test_the_password_never_shows() -> None:
    config = parse_config(
        """
modules:
  - name: db
    type: database.workflow
    config: {dsn: "postgresql://app:s3cret-pw@127.0.0.1:1/test"}
"""
    )
    engine = Engine(config)
    engine.check()
    db = engine.services.get("db", Database)
    assert "s3cret" not in db.source
    assert "***" in db.source


# --- a database that is down ------------------------------------------------------------------
DOWN = """
modules:
  - name: db
    type: database.workflow
    config:
      dsn: "postgresql://postgres:hunter2@127.0.0.1:{port}/test"
      connectTimeout: 2s
      failFast: {fail_fast}
pipelines:
  read:
    steps:
      - type: db_query
        name: read
        query: "SELECT 1 AS one"
"""


def refused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_unreachable_database_degrades_instead_of_stopping_the_engine() -> None:
    engine = Engine(parse_config(DOWN.format(port=refused_port(), fail_fast="false")))
    await engine.start()
    try:
        db = engine.services.get("db", Database)
        health = await db.health()
        assert health.status == "degraded"
        assert "is unavailable" in health.detail and "hunter2" not in health.detail
        report = await engine_health(engine, timeout=5)  # what /health answers
        assert report.status == "degraded" and report.http_status == 200
        with pytest.raises(StepError) as caught:
            await run(engine, "read", {})
        assert caught.value.status == 503
        assert "database 'db'" in str(caught.value) and "hunter2" not in str(caught.value)
        with pytest.raises(DatabaseUnavailable):
            await db.query("SELECT 1")
    finally:
        await engine.stop()


async def test_fail_fast_refuses_to_start_without_the_database() -> None:
    engine = Engine(parse_config(DOWN.format(port=refused_port(), fail_fast="true")))
    with pytest.raises(BuildError) as caught:
        await engine.start()
    assert "module 'db' failed to start" in str(caught.value)
    assert "hunter2" not in str(caught.value)


async def test_wrong_credentials_are_an_error_not_degraded() -> None:
    require("postgres")
    engine = Engine(
        parse_config(
            """
modules:
  - name: db
    type: database.workflow
    config: {dsn: "postgresql://postgres@127.0.0.1:5432/no_such_database_flownb"}
"""
        )
    )
    await engine.start()
    try:
        health = await engine.services.get("db", Database).health()
        assert health.status == "unhealthy"
        assert "refused the connection" in health.detail
    finally:
        await engine.stop()


async def test_the_engine_recovers_when_postgres_restarts() -> None:
    """Stop the real PostgreSQL under a running engine, then start it again (kept short:
    other tests on the machine use it too; always left running)."""
    require("postgres")
    engine = Engine(
        parse_config(
            f"""
modules:
  - name: db
    type: database.workflow
    config: {{dsn: "{POSTGRES_URL}", connectTimeout: 2s, queryTimeout: 10s}}
pipelines:
  read:
    steps:
      - type: db_query
        name: read
        query: "SELECT 1 AS one"
"""
        )
    )
    await engine.start()
    db = engine.services.get("db", Database)
    try:
        assert (await run(engine, "read", {})).steps["read"]["rows"] == [{"one": 1}]
        try:
            await asyncio.to_thread(postgres_ctl, "stop")
            with pytest.raises(StepError) as caught:
                await run(engine, "read", {})
            assert caught.value.status == 503
            assert "database 'db'" in str(caught.value) and "unavailable" in str(caught.value)
            assert (await db.health()).status == "degraded"
        finally:
            await asyncio.to_thread(postgres_ctl, "start")
            require("postgres")
        async with asyncio.timeout(30):  # the server accepts connections once recovery ends
            while (await db.health()).status != "healthy":  # noqa: ASYNC110 - polling a server
                await asyncio.sleep(0.1)
        # the pooled connection died with the server: it is replaced, no call fails
        for _ in range(3):
            assert (await run(engine, "read", {})).steps["read"]["rows"] == [{"one": 1}]
    finally:
        await engine.stop()


# --- the integration workflow's database connector --------------------------------------------
INTEGRATION = """
modules:
  - name: db
    type: database.workflow
    config:
      dsn: "{dsn}"
      setup: ["{create}"]
workflows:
  integration:
    connectors:
      - {{name: store, type: database}}
    steps:
      - name: add
        connector: store
        action: insert
        input: {{table: {t}, values: {{id: "{{{{ data.id }}}}", name: "{{{{ data.name }}}}"}}}}
        onError: duplicate
      - name: bump
        connector: store
        action: execute
        input:
          query: "UPDATE {t} SET qty = COALESCE(qty, 0) + ? WHERE id = ?"
          params: ["{{{{ data.qty }}}}", "{{{{ data.id }}}}"]
      - name: read
        connector: store
        action: query
        input: {{table: {t}, where: {{id: "{{{{ data.id }}}}"}}, columns: [name, qty]}}
        transform: "response.rows[0]"
        onSuccess: done
      - name: duplicate
        connector: store
        action: update
        input: {{table: {t}, values: {{note: dup}}, where: {{id: "{{{{ data.id }}}}"}}}}
      - name: done
        connector: store
        action: query
        input: {{query: "SELECT COUNT(*) AS n FROM {t}"}}
"""


async def test_integration_database_connector(backend: Backend) -> None:
    t = backend.table
    text = INTEGRATION.format(dsn=backend.dsn, create=backend.create(), t=t)
    engine = Engine(parse_config(text))
    await engine.start()
    db = engine.services.get("db", Database)
    try:
        out = await engine.trigger_workflow("integration", "run", {"id": 1, "name": "a", "qty": 2})
        steps = out["steps"]
        assert steps["add"]["rowsAffected"] == 1 and steps["bump"]["rowsAffected"] == 1
        assert steps["read"] == {"name": "a", "qty": 2}
        assert steps["done"] == {"rows": [{"n": 1}], "count": 1}
        # the same id again: the insert breaks a constraint, onError takes over
        out = await engine.trigger_workflow("integration", "run", {"id": 1, "name": "b", "qty": 1})
        assert out["steps"]["add"]["status"] == 409
        assert out["steps"]["duplicate"]["rowsAffected"] == 1
        assert await db.query_one(f"SELECT note FROM {t} WHERE id = 1") == {"note": "dup"}
    finally:
        await db.execute(f"DROP TABLE {t}")
        await engine.stop()


async def test_integration_database_steps_retry_while_the_database_is_down() -> None:
    text = f"""
modules:
  - name: db
    type: database.workflow
    config: {{dsn: "postgresql://postgres@127.0.0.1:{refused_port()}/test", connectTimeout: 1s}}
workflows:
  integration:
    connectors: [{{name: store, type: database}}]
    steps:
      - {{name: read, connector: store, action: query, input: {{query: "SELECT 1"}},
          retryCount: 2, retryDelay: 10ms, onError: fallback}}
      - {{name: fallback, connector: store, action: execute, input: {{query: "SELECT 1"}}}}
"""
    engine = Engine(parse_config(text))
    await engine.start()
    try:
        with pytest.raises(StepError) as caught:
            await engine.trigger_workflow("integration", "run", {})
        assert caught.value.status == 503 and "step 'fallback'" in str(caught.value)
    finally:
        await engine.stop()


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (
            "{name: s, connector: store, action: query, input: {query: 'SELECT {{ data.x }}'}}",
            "SQL text is never templated",
        ),
        (
            "{name: s, connector: store, action: insert, input: {table: 'a b', values: {x: 1}}}",
            "invalid table name",
        ),
        ("{name: s, connector: store, action: delete, input: {table: t}}", "needs where"),
        ("{name: s, connector: store, action: execute, input: {table: t}}", "needs query"),
        ("{name: s, connector: store, action: 'GET /x'}", "its action is query, execute"),
    ],
)
async def test_bad_database_connector_steps(step: str, message: str) -> None:
    text = f"""
modules: [{{name: db, type: database.workflow}}]
workflows:
  integration:
    connectors: [{{name: store, type: database}}]
    steps:
      - {step}
"""
    with pytest.raises(ConfigError) as caught:
        await Engine(parse_config(text)).start()
    assert message in caught.value.render()


async def test_setup_runs_once_the_database_is_reachable(tmp_path: Path) -> None:
    """A database missing at start (a SQLite file in a folder not there yet): the engine
    starts degraded, calls fail with 503, and the first call after it appears runs `setup`."""
    folder = tmp_path / "later"
    text = f"""
modules:
  - name: db
    type: database.workflow
    config:
      dsn: "sqlite:///{folder / "app.db"}"
      setup: ["CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)"]
"""
    engine = Engine(parse_config(text))
    await engine.start()
    db = engine.services.get("db", Database)
    try:
        assert (await db.health()).status == "degraded"
        with pytest.raises(DatabaseUnavailable) as caught:
            await db.select("items")
        assert "unable to open database file" in str(caught.value)
        folder.mkdir()
        await db.insert("items", {"name": "first"})
        assert await db.select("items", columns=["name"]) == [{"name": "first"}]
        assert (await db.health()).status == "healthy"
    finally:
        await engine.stop()
