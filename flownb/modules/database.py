"""The `database.workflow` module: SQLite, PostgreSQL and MariaDB through one async API.

Every call runs in its own transaction on a pooled connection; `transaction()` groups several.
The pipeline steps `db_query` / `db_exec` and the integration workflow's `database` connector
use this module. A database that is down does not stop the engine: calls fail with a 503
naming the module, `health()` says "degraded", and the pool reconnects once it is back: a
connection that failed is dropped with every other one opened before it, and one that sat idle
(`pingAfterIdle`) is checked before use, so calls after the restart do not fail.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from flownb.db.errors import DatabaseError, DatabaseUnavailable, translate
from flownb.db.session import ExecResult, Row, Session
from flownb.db.statements import Params, Prepared, Statement, prepare
from flownb.db.urls import DatabaseUrl, parse_dsn, require_driver
from flownb.errors import ExecutionError, FlownbError
from flownb.fields import Duration, Spec
from flownb.module import Module
from flownb.registry import ModuleType

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from flownb.engine import Engine
    from flownb.health import Check

log = logging.getLogger("flownb.database")

_DRIVER_MODULES = ("asyncpg", "aiomysql", "pymysql", "aiosqlite", "sqlite3", "asyncmy")


class DatabaseConfig(Spec):
    driver: Literal["sqlite", "postgres", "mysql", "mariadb"] | None = Field(
        None, description="backend; by default read from the dsn's scheme"
    )
    dsn: str = Field(
        "sqlite:///:memory:",
        description="database URL, e.g. ${DATABASE_URL}, postgresql://user@host:5432/db, "
        "mysql://root@127.0.0.1:3306/test, sqlite:///data.db; passwords are never logged",
    )
    max_open_conns: int = Field(
        10, alias="maxOpenConns", ge=1, description="most connections open at once"
    )
    max_idle_conns: int = Field(
        5, alias="maxIdleConns", ge=0, description="connections kept open while idle"
    )
    conn_max_lifetime: Duration | None = Field(
        Duration("30m"),
        alias="connMaxLifetime",
        description="replace a connection older than this; none: keep it",
    )
    acquire_timeout: Duration = Field(
        Duration("10s"),
        alias="acquireTimeout",
        description="longest wait for a free connection when all are busy (then 503)",
    )
    connect_timeout: Duration = Field(
        Duration("5s"), alias="connectTimeout", description="longest wait to open a connection"
    )
    query_timeout: Duration = Field(
        Duration("30s"),
        alias="queryTimeout",
        description="longest a call (or a whole transaction) may take (then 504)",
    )
    max_rows: int = Field(
        10_000,
        alias="maxRows",
        ge=0,
        description="most rows a query may return (more is an error); 0: no limit",
    )
    setup: list[str] = Field(
        default_factory=list,
        description="SQL statements run once, when the database is first reached "
        "(e.g. CREATE TABLE IF NOT EXISTS ...)",
    )
    fail_fast: bool = Field(
        False,
        alias="failFast",
        description="fail the engine start when the database cannot be reached; by default "
        "the engine starts, health says degraded and calls fail until it is back",
    )
    ping_after_idle: Duration | None = Field(
        Duration("1s"),
        alias="pingAfterIdle",
        description="check a pooled connection before use when it sat idle this long, so a "
        "database restarted meanwhile costs no failed call; 0: check every time (a round "
        "trip each); none: never",
    )

    @model_validator(mode="after")
    def _dsn_shape(self) -> DatabaseConfig:
        try:
            parse_dsn(self.dsn, self.driver)
        except FlownbError as exc:
            raise ValueError(str(exc)) from None
        return self

    def url(self) -> DatabaseUrl:
        return parse_dsn(self.dsn, self.driver)


class Database(Module[DatabaseConfig]):
    """One connection pool; `query`, `execute`, `insert`, `update`, `delete`, `select` each
    run in their own transaction, `transaction()` gives a `Session` for several."""

    _engine: AsyncEngine | None = None
    _single: AsyncEngine | None = None  # the same pool, in autocommit mode

    def __init__(self, name: str, config: DatabaseConfig) -> None:
        super().__init__(name, config)
        self.url = config.url()
        self.source = f"database {name!r} ({self.url.display})"
        self.prepared = Prepared()
        self._setup_pending = bool(config.setup)
        self._setup_lock = asyncio.Lock()
        self._available: bool | None = None
        self._timeout = float(config.query_timeout) or None

    @property
    def backend(self) -> str:
        return self.url.backend

    async def init(self, engine: Engine) -> None:
        require_driver(self.url)

    async def start(self) -> None:
        self._engine = self._create_engine()
        if self.url.backend == "postgres":  # others pay more to switch modes than they save
            self._single = self._engine.execution_options(isolation_level="AUTOCOMMIT")
        try:
            async with self.session():
                pass
        except DatabaseUnavailable as exc:
            if self.config.fail_fast:
                raise FlownbError(str(exc)) from None
            log.warning("%s; starting anyway, calls fail until it is back", exc)
        except DatabaseError as exc:
            if self.config.fail_fast:
                raise FlownbError(str(exc)) from None
            log.error("%s", exc)

    async def stop(self) -> None:
        engine, self._engine, self._single = self._engine, None, None
        if engine is not None:
            await engine.dispose()

    def _create_engine(self) -> AsyncEngine:
        import sqlalchemy as sa
        from sqlalchemy.ext.asyncio import create_async_engine
        from sqlalchemy.pool import AsyncAdaptedQueuePool

        config, url = self.config, self.url
        connect = float(config.connect_timeout)
        options: dict[str, Any] = {}
        if url.memory:  # one connection holds the whole database: share it, never recycle it
            options.update(poolclass=AsyncAdaptedQueuePool, pool_size=1, max_overflow=0)
        else:
            size = max(1, min(config.max_idle_conns, config.max_open_conns))
            lifetime = config.conn_max_lifetime
            options.update(
                pool_size=size,
                max_overflow=config.max_open_conns - size,
                pool_recycle=float(lifetime) if lifetime else -1,
            )
        options["pool_timeout"] = float(config.acquire_timeout)
        if url.backend == "postgres":
            options["connect_args"] = {
                "timeout": connect,
                "server_settings": {"application_name": "flownb"},
            }
        elif url.backend in ("mysql", "mariadb"):
            options["connect_args"] = {"connect_timeout": max(1, round(connect))}
        else:
            options["connect_args"] = {"timeout": connect}
        engine = create_async_engine(url.url, **options)
        if url.backend == "sqlite":
            sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        if config.ping_after_idle is not None:
            _ping_when_idle(engine, float(config.ping_after_idle))
        return engine

    # --- sessions --------------------------------------------------------------------------
    @asynccontextmanager
    async def session(self, *, single: bool = False) -> AsyncIterator[Session]:
        """One connection in one transaction: committed at the end, rolled back on error.

        `single`: the caller runs one statement, which PostgreSQL then runs in autocommit
        mode: the same outcome as a transaction of one statement, without the BEGIN and
        COMMIT round trips.
        """
        engine = self._engine
        if engine is None:
            raise DatabaseUnavailable(f"{self.source} is not started")
        chosen = self._single if single and self._single is not None else engine
        try:
            async with asyncio.timeout(self._timeout):
                if self._setup_pending:
                    await self._run_setup(engine)
                async with chosen.begin() as conn:
                    yield Session(conn, self.prepared, self.config.max_rows)
        except ExecutionError as exc:
            if isinstance(exc, DatabaseUnavailable):
                self._went_down(exc)
            raise
        except TimeoutError:
            raise DatabaseError(
                f"{self.source}: the call took longer than queryTimeout "
                f"({float(self.config.query_timeout):g}s)",
                status=504,
            ) from None
        except Exception as exc:
            if not _is_database_failure(exc):
                raise
            error = translate(exc, self.source)
            if isinstance(error, DatabaseUnavailable):
                self._went_down(error)
            raise error from None
        if self._available is not True:
            if self._available is False:
                log.info("%s is reachable again", self.source)
            self._available = True

    def transaction(self) -> AbstractAsyncContextManager[Session]:
        """`async with db.transaction() as tx:` statements on `tx` commit together."""
        return self.session()

    async def _run_setup(self, engine: AsyncEngine) -> None:
        async with self._setup_lock:
            if not self._setup_pending:
                return
            async with engine.begin() as conn:
                for sql in self.config.setup:
                    await conn.exec_driver_sql(sql)
            self._setup_pending = False

    def _went_down(self, error: DatabaseUnavailable) -> None:
        if self._available is not False:
            log.warning("%s", error)
        self._available = False

    # --- one call, one transaction ----------------------------------------------------------
    def prepare(self, sql: str) -> Statement:
        """Check and prepare SQL text once (what steps do at build time)."""
        return prepare(sql)

    async def query(self, sql: str | Statement, params: Params = None) -> list[Row]:
        async with self.session(single=True) as s:
            return await s.query(sql, params)

    async def query_one(self, sql: str | Statement, params: Params = None) -> Row | None:
        async with self.session(single=True) as s:
            return await s.query_one(sql, params)

    async def execute(self, sql: str | Statement, params: Params = None) -> ExecResult:
        async with self.session(single=True) as s:
            return await s.execute(sql, params)

    async def insert(
        self,
        table: str,
        values: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        returning: Sequence[str] = (),
    ) -> ExecResult:
        async with self.session(single=True) as s:
            return await s.insert(table, values, returning)

    async def update(
        self,
        table: str,
        values: Mapping[str, Any],
        where: Mapping[str, Any] | None,
        *,
        all_rows: bool = False,
    ) -> ExecResult:
        async with self.session(single=True) as s:
            return await s.update(table, values, where, all_rows=all_rows)

    async def delete(
        self, table: str, where: Mapping[str, Any] | None, *, all_rows: bool = False
    ) -> ExecResult:
        async with self.session(single=True) as s:
            return await s.delete(table, where, all_rows=all_rows)

    async def select(
        self,
        table: str,
        where: Mapping[str, Any] | None = None,
        *,
        columns: Sequence[str] = (),
        order_by: Sequence[str] = (),
        limit: int | None = None,
    ) -> list[Row]:
        async with self.session(single=True) as s:
            return await s.select(table, where, columns=columns, order_by=order_by, limit=limit)

    # --- health ----------------------------------------------------------------------------
    async def health(self) -> Check:
        """Can a statement run now? Unreachable: degraded (calls fail with 503 until the
        database is back); refusing us (credentials, no such database): unhealthy."""
        from flownb.health import Check

        started = time.perf_counter()
        try:
            async with asyncio.timeout(float(self.config.connect_timeout) or None):
                async with self.session(single=True) as s:
                    await s.conn.exec_driver_sql("SELECT 1")
        except DatabaseError as exc:
            return Check(exc.kind, str(exc))
        except TimeoutError:
            return Check.degraded(f"{self.source} did not answer in time")
        ms = (time.perf_counter() - started) * 1000
        return Check.healthy(f"{self.url.display} answered in {ms:.1f} ms")


def _is_database_failure(exc: BaseException) -> bool:
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(exc, SQLAlchemyError | OSError):
        return True
    return type(exc).__module__.partition(".")[0] in _DRIVER_MODULES


_USED = "flownb_used"


def _ping_when_idle(engine: AsyncEngine, idle: float) -> None:
    """Ping a connection taken from the pool if it sat idle `idle` seconds or more.

    SQLAlchemy's `pool_pre_ping` pings on every checkout (on PostgreSQL three round trips);
    a connection in steady use needs none, and a failure on one makes the pool drop it and
    every older one anyway. A dead connection found here is replaced before anyone uses it.
    """
    import sqlalchemy as sa
    from sqlalchemy.exc import DisconnectionError

    dialect = engine.sync_engine.dialect

    def connected(_dbapi: Any, record: Any) -> None:
        record.info[_USED] = time.monotonic()

    def checkout(dbapi: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get(_USED, 0.0) < idle:
            return
        try:
            dialect.do_ping(dbapi)
        except Exception as exc:
            raise DisconnectionError(f"stale pooled connection: {exc}") from exc

    def checkin(_dbapi: Any, record: Any) -> None:
        record.info[_USED] = time.monotonic()

    sa.event.listen(engine.sync_engine, "connect", connected)
    sa.event.listen(engine.sync_engine, "checkout", checkout)
    sa.event.listen(engine.sync_engine, "checkin", checkin)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers work during a write, and with synchronous=NORMAL a commit does not
    wait for the disk (WAL stays consistent; a power cut may lose the last commits, not the
    file). Foreign keys are off in SQLite unless asked for."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


TYPES: list[ModuleType] = [
    ModuleType(
        "database.workflow",
        "Database",
        "SQL database (SQLite, PostgreSQL, MariaDB/MySQL): queries with bound parameters, "
        "insert/update/delete helpers, transactions, a connection pool",
        DatabaseConfig,
        Database,
        provides=("database",),
    ),
]
