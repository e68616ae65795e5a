"""The durable execution history: a SQLite file (default) or PostgreSQL, via SQLAlchemy Core.

`SqlHistory` is a `HistoryStore` that survives restarts and that several processes read
(`flownb run` writes, `flownb history` and notebooks read). Its dead-letter table is
`SqlHistory.dead_letters`, a `DeadLetterStore`; its audit table holds `AuditEvent`s.

Writes never wait for the database: `add` appends to a queue, and a writer on the store's own
thread (with its own event loop) writes the queue every `flush_interval` seconds, or sooner
when `batch_size` records are waiting: rarely, since each write hands the GIL back and forth
with the engine's thread, which costs the engine more than the write itself. The store does
not belong to any engine's loop, so one store serves engines on a notebook kernel's loop, on
a `SyncEngine` thread and across reloads; reads from any loop (or from synchronous code, see
`flownb.history.read_history`) are handed to that thread and first flush what is queued, so
a read sees every record added before it. If the database is down, records wait in the queue
(at most `max_queue`; the oldest are dropped beyond, and counted in `dropped`).

With `writer="process"` (what `flownb run` uses) the thread hands the execution rows to a
process of its own instead (`flownb.historyproc`), which writes them: the database work
then takes no share of the engine's GIL. Audit events, dead letters, reads and retention
stay on the thread.

Retention runs on the same thread every `Retention.interval`: executions older than
`max_age` or beyond the newest `max_records` are deleted, audit events older than `max_age`,
and dead letters only once replayed and older than `max_age` (undelivered work is never
dropped by retention).

SQLite is written with the standard library's `sqlite3` (it releases the GIL while SQLite
works; aiosqlite would add a thread), PostgreSQL with asyncpg on the store's loop (a batch's
rows in one binary COPY). The store drives SQLAlchemy Core's synchronous API inside
`greenlet_spawn`, which is what `AsyncConnection.run_sync` does, without importing
`sqlalchemy.ext.asyncio`: that package loads the ORM, about 6 MB that `flownb run`'s memory
budget has no room for. SQLite runs in WAL mode (readers do not block the writer).
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import orjson

from flownb.datadir import HISTORY_ENV
from flownb.deadletters import DeadLetter
from flownb.errors import FlownbError
from flownb.history import (
    DEFAULT_REDACT,
    AuditEvent,
    ExecutionRecord,
    ExecutionRow,
    Redactor,
    Row,
)
from flownb.historyproc import WriterProcess

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Connection, Engine

    from flownb.db.urls import DatabaseUrl

log = logging.getLogger("flownb.history")

T = TypeVar("T")
DAY = 86_400.0
CHUNK = 1024  # rows per INSERT statement (11 values each: SQLite takes 32,766)
OLD_SQLITE_CHUNK = 64  # SQLite before 3.32 takes 999 values per statement
TRANSACTION = 16_384  # records written per transaction, at most


def chunks(count: int, largest: int) -> list[tuple[int, int]]:
    """(start, size) of the INSERTs writing `count` rows: `largest` rows each, then the rest.

    As few statements as may be: each one hands the GIL over to SQLite (or the network) and
    back, and every such hand-over costs the engine's thread a wait for the GIL."""
    return [(start, min(largest, count - start)) for start in range(0, count, largest)]


@dataclass(frozen=True)
class Retention:
    """How long history is kept: by age (seconds) and by count of executions; None keeps all."""

    max_age: float | None = 14 * DAY
    max_records: int | None = 100_000
    interval: float = 60.0  # seconds between two retention passes


class _Tables:
    """The store's tables (names start with `prefix`, so tests and tenants can share a DB)."""

    def __init__(self, prefix: str) -> None:
        from sqlalchemy import Column, Float, Index, Integer, LargeBinary, MetaData, Table, Text

        self.metadata = MetaData()
        self.executions: Table = Table(
            f"{prefix}executions",
            self.metadata,
            Column("id", Text, primary_key=True),
            Column("trigger", Text, nullable=False),
            Column("workflow", Text, nullable=False),
            Column("action", Text, nullable=False),
            Column("status", Text, nullable=False),
            Column("started", Float, nullable=False),
            Column("duration_ms", Float, nullable=False),
            Column("node", Text),
            Column("request_id", Text),
            Column("error", Text),
            Column("detail", LargeBinary, nullable=False),  # JSON of inputs, outputs, steps
            Index(f"{prefix}executions_started", "started"),
            Index(f"{prefix}executions_workflow", "workflow", "started"),
            # No index on request_id: ids from clients are random, and keeping such an index
            # doubles the cost of an insert; a lookup by request id scans (rare, bounded by
            # retention).
        )
        self.audit: Table = Table(
            f"{prefix}audit",
            self.metadata,
            Column("id", Text, primary_key=True),
            Column("at", Float, nullable=False),
            Column("actor", Text, nullable=False),
            Column("action", Text, nullable=False),
            Column("target", Text, nullable=False),
            Column("summary", Text, nullable=False),
            Column("details", Text, nullable=False),
            Index(f"{prefix}audit_at", "at"),
        )
        self.dead_letters: Table = Table(
            f"{prefix}dead_letters",
            self.metadata,
            Column("id", Text, primary_key=True),
            Column("kind", Text, nullable=False),
            Column("source", Text, nullable=False),
            Column("target", Text, nullable=False),
            Column("payload", Text, nullable=False),
            Column("error", Text, nullable=False),
            Column("attempts", Integer, nullable=False),
            Column("headers", Text, nullable=False),
            Column("created", Float, nullable=False),
            Column("replayed", Float),
            Index(f"{prefix}dead_letters_created", "created"),
        )


def _execution(row: Any) -> ExecutionRecord:
    return ExecutionRow._make(row).record()


def _audit_row(e: AuditEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": e.at,
        "actor": e.actor,
        "action": e.action,
        "target": e.target,
        "summary": e.summary,
        "details": orjson.dumps(e.details, default=str).decode(),
    }


def _audit(row: Any) -> AuditEvent:
    m = row._mapping
    return AuditEvent(
        m["actor"],
        m["action"],
        m["target"],
        m["summary"],
        orjson.loads(m["details"]),
        m["at"],
        m["id"],
    )


def _letter_row(d: DeadLetter) -> dict[str, Any]:
    return {
        "id": d.id,
        "kind": d.kind,
        "source": d.source,
        "target": d.target,
        "payload": orjson.dumps(d.payload, default=str).decode(),
        "error": d.error,
        "attempts": d.attempts,
        "headers": orjson.dumps(d.headers).decode(),
        "created": d.created,
        "replayed": d.replayed,
    }


def _letter(row: Any) -> DeadLetter:
    m = row._mapping
    return DeadLetter(
        kind=m["kind"],
        source=m["source"],
        target=m["target"],
        payload=orjson.loads(m["payload"]),
        error=m["error"],
        attempts=m["attempts"],
        headers=orjson.loads(m["headers"]),
        id=m["id"],
        created=m["created"],
        replayed=m["replayed"],
    )


class SqlHistory:
    """Execution history, audit log and dead letters in one SQL database; see the module doc.

    `url` is a database URL (`sqlite:///path.db`, `postgresql://user@host/db`) or a SQLite file
    path. `retention` (None: keep everything) is applied by the writer every
    `Retention.interval` seconds and by `prune()`. The thread starts on first use;
    `await start()` starts it and checks the database (raising `FlownbError` when it cannot be
    reached); `close()` / `await aclose()` write what is queued and end the thread (also done
    at interpreter exit). `writer="process"` has the execution rows written by a process of
    its own (`flownb.historyproc`), started with the first batch.
    """

    def __init__(
        self,
        url: str,
        *,
        retention: Retention | None = None,
        batch_size: int = 10_000,
        flush_interval: float = 0.5,
        max_queue: int = 100_000,
        prefix: str = "flownb_",
        redact: Iterable[str] = DEFAULT_REDACT,
        writer: Literal["thread", "process"] = "thread",
    ) -> None:
        from flownb.db.urls import parse_dsn, require_driver

        self.url: DatabaseUrl = parse_dsn(url)
        require_driver(self.url)
        if writer not in ("thread", "process"):
            raise ValueError(f"writer is 'thread' or 'process', not {writer!r}")
        # an in-memory SQLite database lives in this process only
        self.writer: Literal["thread", "process"] = "thread" if self.url.memory else writer
        self._process: WriterProcess | None = None
        self.retention = retention  # None: nothing is deleted (readers, tools)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.prefix = prefix
        self.redactor = Redactor(redact)
        self._dropped = 0  # records dropped because the queue was full (database down)
        self.last_error: str | None = None
        self.dead_letters = SqlDeadLetters(self)
        self._records: deque[Row] = deque()
        self._audit: deque[AuditEvent] = deque()
        self._tables = _Tables(prefix)
        self._engine: Engine | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._lock = threading.Lock()
        self._wake: asyncio.Event | None = None
        self._woken = False
        self._closing: asyncio.Event | None = None
        self._writing: asyncio.Lock | None = None
        self._schema: asyncio.Lock | None = None
        self._inserts: dict[int, str | None] = {}  # rows -> INSERT of that many rows
        self._chunk = CHUNK
        if self.url.backend == "sqlite":
            import sqlite3

            if sqlite3.sqlite_version_info < (3, 32):
                self._chunk = OLD_SQLITE_CHUNK
        self._ready = False
        self._next_prune = 0.0

    def __repr__(self) -> str:
        return f"<SqlHistory {self.url.display}>"

    @property
    def writer_pid(self) -> int | None:
        """The writer process' id while it runs (None with the thread writer), to watch its
        resources: `bench/history.py` reads its CPU time."""
        process = self._process
        return process.pid if process is not None else None

    @property
    def dropped(self) -> int:
        """Records dropped because the queue was full (database down), here and in the
        writer process."""
        process = self._process
        return self._dropped + (process.status.dropped if process is not None else 0)

    @property
    def queued(self) -> int:
        """Records and audit events not written (or handed to the writer process) yet."""
        return len(self._records) + len(self._audit)

    @property
    def display(self) -> str:
        """The URL without its password."""
        return self.url.display

    # --- the writer thread -------------------------------------------------------------------
    def _ensure_thread(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None:
            return loop
        with self._lock:
            if self._loop is None:
                thread = threading.Thread(
                    target=self._run, name=f"flownb-history {self.url.display}", daemon=True
                )
                self._thread = thread
                thread.start()
                self._started.wait()
                atexit.register(self.close)
        assert self._loop is not None
        return self._loop

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._wake, self._closing, self._writing = asyncio.Event(), asyncio.Event(), asyncio.Lock()
        self._schema = asyncio.Lock()
        self._loop = loop
        self._started.set()
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        assert self._wake is not None and self._closing is not None
        self._engine = self._create_engine()
        try:
            while not self._closing.is_set():
                try:
                    async with asyncio.timeout(self.flush_interval):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                self._wake.clear()
                self._woken = False
                await self._flush_quietly()
                if self._prune_due():
                    try:
                        await self._prune(time.time())
                    except FlownbError as exc:
                        log.warning("history retention: %s", exc)
            await self._flush_quietly()
        finally:
            from sqlalchemy.util import greenlet_spawn

            if self._process is not None:
                self._process.close()
                self._process = None
            await greenlet_spawn(self._engine.dispose)

    def _insert_sql(self, count: int) -> str | None:
        """One INSERT of `count` rows (multi-row VALUES) for drivers with `?` parameters
        (SQLite's); None for others (then: executemany).

        One statement per chunk, not a statement per row: SQLite then runs the chunk in one
        step, without handing the GIL back and forth with the engine's thread for each row.
        """
        found = self._inserts.get(count)
        if found is not None or count in self._inserts:
            return found
        engine = self._engine
        assert engine is not None
        compiled = self._tables.executions.insert().compile(dialect=engine.dialect)
        if tuple(compiled.positiontup or ()) != ExecutionRow._fields:
            raise FlownbError(f"unexpected insert parameters: {compiled.positiontup}")
        head, _, one = str(compiled).partition(" VALUES ")
        qmark = engine.dialect.paramstyle == "qmark"
        sql = f"{head} VALUES {', '.join([one] * count)}" if qmark else None
        if len(self._inserts) > 8:  # the full chunk and the last few tails, not every size
            for key in [k for k in self._inserts if k not in (0, self._chunk)][:4]:
                del self._inserts[key]
        self._inserts[count] = sql
        if not qmark:
            self._inserts[0] = str(compiled)  # the one-row form, for executemany
        return sql

    def _prune_due(self) -> bool:
        rule, now = self.retention, time.time()
        if rule is None or not rule.interval or not self._ready or now < self._next_prune:
            return False
        self._next_prune = now + rule.interval
        return True

    def _create_engine(self) -> Engine:
        from sqlalchemy import create_engine, event

        url = self.url
        if url.backend == "sqlite":
            # The standard library's driver, not aiosqlite: this thread is already off the
            # engine's loop, and aiosqlite's own worker thread would be one more thread
            # contending for the GIL with the engine on every write.
            sync_url = url.url.set(drivername="sqlite+pysqlite")
            engine = create_engine(sync_url, connect_args={"timeout": 30})

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                for pragma in (
                    "journal_mode=WAL",
                    "synchronous=NORMAL",
                    "busy_timeout=30000",
                    "cache_size=-512",
                ):
                    cursor.execute(f"PRAGMA {pragma}")
                cursor.close()

            return engine
        return create_engine(url.url, pool_size=2, max_overflow=2, pool_pre_ping=True)

    async def _db(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn(connection)` in one transaction, on this thread's loop."""
        from sqlalchemy.util import greenlet_spawn

        engine = self._engine
        assert engine is not None

        def create() -> None:
            with engine.begin() as conn:
                self._tables.metadata.create_all(conn, checkfirst=True)
                self._check_layout(conn)

        def work() -> T:
            with engine.begin() as conn:
                return fn(conn)

        try:
            if not self._ready:
                assert self._schema is not None
                async with self._schema:  # one creator, even with a read and a flush at once
                    if not self._ready:
                        await greenlet_spawn(create)
                        self._ready = True
            return await greenlet_spawn(work)
        except FlownbError:
            raise
        except Exception as exc:
            reason = _reason(exc)
            if "no such table" in reason or "does not exist" in reason:
                self._ready = False  # dropped under us: create the tables again next time
            raise FlownbError(f"history database {self.url.display}: {reason}") from exc

    def _check_layout(self, conn: Connection) -> None:
        """Refuse a table written in another layout (before inserts fail one batch at a time)."""
        from sqlalchemy import inspect

        table = self._tables.executions.name
        found = {column["name"] for column in inspect(conn).get_columns(table)}
        missing = [name for name in ExecutionRow._fields if name not in found]
        if missing:
            raise FlownbError(
                f"history database {self.url.display}: table {table} has another layout "
                f"(no column {', '.join(missing)}); move that database away, or give another "
                f"one (--history-db, ${HISTORY_ENV})"
            )

    async def _flush_quietly(self) -> None:
        try:
            await self._flush()
        except FlownbError as exc:
            if self.last_error != str(exc):
                log.warning("%s; records are kept in memory and written when it is back", exc)
            self.last_error = str(exc)
        else:  # the writer process' last word on the database, if rows go through one
            self.last_error = None if self._process is None else self._process.status.error

    async def _flush(self) -> None:
        assert self._writing is not None
        async with self._writing:
            records, audit = self._records, self._audit
            if self.writer == "process":  # rows go to the writer process, events stay here
                self._hand_over(records)
                records = deque()  # not the queue: rows added meanwhile are the next batch's
            while records or audit:  # all that is queued, in as few transactions as may be
                batch = [records.popleft() for _ in range(min(len(records), TRANSACTION))]
                events = [audit.popleft() for _ in range(len(audit))]
                write = functools.partial(self._write, batch, _rows(events, _audit_row))
                try:
                    await self._db(write)
                except FlownbError:
                    records.extendleft(reversed(batch))
                    audit.extendleft(reversed(events))
                    raise

    def _hand_over(self, records: deque[Row]) -> None:
        """Process writer: send the queued rows to the writer process (not waiting for them
        to be written; `_synced` does)."""
        if not records:
            return
        if self._process is None:
            self._process = WriterProcess(self)
        rows = [records.popleft() for _ in range(len(records))]
        try:
            self._process.send(rows)
        except FlownbError:
            records.extendleft(reversed(rows))
            raise

    async def _synced(self) -> None:
        """Everything added so far is in the database (or the writer process says why not)."""
        await self._flush()
        if self._process is not None:
            status = self._process.sync()
            self.last_error = status.error
            if status.error is not None:
                raise FlownbError(status.error)

    def _write(self, rows: list[Row], audit_rows: list[dict[str, Any]], conn: Connection) -> None:
        if audit_rows:  # first: on PostgreSQL this opens the transaction that the COPY joins
            conn.execute(self._tables.audit.insert(), audit_rows)
        if not rows:
            return
        details = [row[-1] for row in rows]  # `detail`, the last column
        screened = self.redactor.screen(details)
        if screened is not details:
            rows = [(*row[:-1], text) for row, text in zip(rows, screened, strict=True)]
        if self.url.backend == "postgres":
            self._copy(rows, conn)
        else:
            self._insert(rows, conn)

    def _copy(self, rows: list[Row], conn: Connection) -> None:
        """PostgreSQL: the batch in one binary COPY (asyncpg's), atomic by itself and inside
        the open transaction when there is one. Against multi-row INSERTs it takes the
        server a third of the work per row and this process a sixth (BENCHMARKS.md)."""
        from sqlalchemy.util import await_only

        driver = conn.connection.driver_connection
        assert driver is not None
        table = self._tables.executions.name
        await_only(driver.copy_records_to_table(table, records=rows, columns=ExecutionRow._fields))

    def _insert(self, rows: list[Row], conn: Connection) -> None:
        """SQLite and MySQL: multi-row INSERTs of `self._chunk` rows (or executemany)."""
        for start, size in chunks(len(rows), self._chunk):
            chunk = rows[start : start + size]
            sql = self._insert_sql(size)
            if sql is not None:  # plain SQL, positional values: no per-row processing
                conn.exec_driver_sql(sql, tuple(chain.from_iterable(chunk)))
            else:
                conn.exec_driver_sql(self._inserts[0] or "", chunk)

    def _call(self, coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        """Run `coro` on the store's thread; an awaitable on the caller's loop."""
        loop = self._ensure_thread()
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    # --- HistoryStore -------------------------------------------------------------------------
    def add(self, row: Row) -> None:
        records = self._records
        records.append(row)
        if self._loop is None:
            self._ensure_thread()
        if len(records) >= self.batch_size and not self._woken:
            self._wake_writer()

    def add_audit(self, event: AuditEvent) -> None:
        self._audit.append(event)
        self._wake_writer()

    def _wake_writer(self) -> None:
        loop = self._ensure_thread()
        self._woken = True
        records = self._records
        if len(records) > self.max_queue:
            over = len(records) - self.max_queue
            for _ in range(over):
                records.popleft()
            self._dropped += over
        wake = self._wake
        if wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    async def start(self) -> None:
        """Start the writer and make sure the database answers (tables created if missing)."""

        async def check() -> None:
            await self._db(lambda conn: None)

        await self._call(check())

    async def flush(self) -> None:
        """Write everything queued so far."""
        await self._call(self._synced())

    async def query(
        self,
        *,
        limit: int = 20,
        status: str | None = None,
        workflow: str | None = None,
        action: str | None = None,
        request_id: str | None = None,
        before: float | None = None,
    ) -> list[ExecutionRecord]:
        from sqlalchemy import select

        t = self._tables.executions
        stmt = select(t).order_by(t.c.started.desc()).limit(max(0, limit))
        for column, value in (
            (t.c.status, status),
            (t.c.workflow, workflow),
            (t.c.action, action),
            (t.c.request_id, request_id),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        if before is not None:
            stmt = stmt.where(t.c.started < before)

        async def read() -> list[ExecutionRecord]:
            await self._synced()
            return await self._db(lambda conn: [_execution(r) for r in conn.execute(stmt)])

        return await self._call(read())

    async def get(self, execution_id: str) -> ExecutionRecord | None:
        from sqlalchemy import select

        t = self._tables.executions
        stmt = select(t).where(t.c.id == execution_id)

        async def read() -> ExecutionRecord | None:
            await self._synced()
            row = await self._db(lambda conn: conn.execute(stmt).first())
            return None if row is None else _execution(row)

        return await self._call(read())

    async def count(self) -> int:
        """How many executions are stored."""
        from sqlalchemy import func, select

        stmt = select(func.count()).select_from(self._tables.executions)

        async def read() -> int:
            await self._synced()
            return int(await self._db(lambda conn: conn.execute(stmt).scalar_one()))

        return await self._call(read())

    async def audit_events(
        self, *, limit: int = 50, before: float | None = None
    ) -> list[AuditEvent]:
        from sqlalchemy import select

        t = self._tables.audit
        stmt = select(t).order_by(t.c.at.desc()).limit(max(0, limit))
        if before is not None:
            stmt = stmt.where(t.c.at < before)

        async def read() -> list[AuditEvent]:
            await self._synced()
            return await self._db(lambda conn: [_audit(r) for r in conn.execute(stmt)])

        return await self._call(read())

    # --- retention ----------------------------------------------------------------------------
    async def prune(self, now: float | None = None) -> dict[str, int]:
        """Apply the retention rules now; returns how many rows each table lost."""

        async def run() -> dict[str, int]:
            await self._synced()
            return await self._prune(time.time() if now is None else now)

        return await self._call(run())

    async def _prune(self, now: float) -> dict[str, int]:
        from sqlalchemy import delete, select

        tables, rule = self._tables, self.retention
        if rule is None:
            return {"executions": 0, "audit": 0, "dead_letters": 0}

        def run(conn: Connection) -> dict[str, int]:
            ex, au, dl = tables.executions, tables.audit, tables.dead_letters
            counts = {"executions": 0, "audit": 0, "dead_letters": 0}
            if rule.max_age is not None:
                cutoff = now - rule.max_age
                counts["executions"] += conn.execute(
                    delete(ex).where(ex.c.started < cutoff)
                ).rowcount
                counts["audit"] += conn.execute(delete(au).where(au.c.at < cutoff)).rowcount
                counts["dead_letters"] += conn.execute(
                    delete(dl).where(dl.c.replayed.is_not(None), dl.c.replayed < cutoff)
                ).rowcount
            if rule.max_records is not None:
                keep = max(0, rule.max_records)
                newest = select(ex.c.started).order_by(ex.c.started.desc())
                if keep == 0:
                    counts["executions"] += conn.execute(delete(ex)).rowcount
                else:
                    edge = conn.execute(newest.offset(keep - 1).limit(1)).scalar()
                    if edge is not None:
                        counts["executions"] += conn.execute(
                            delete(ex).where(ex.c.started < edge)
                        ).rowcount
            return counts

        counts = await self._db(run)
        if any(counts.values()):
            log.info("history retention removed %s", counts)
        return counts

    # --- lifecycle ----------------------------------------------------------------------------
    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued and end the writer thread (blocking)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        atexit.unregister(self.close)
        closing = self._closing
        if closing is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(closing.set)
                loop.call_soon_threadsafe(self._wake.set)  # type: ignore[union-attr]
            except RuntimeError:  # the loop closed in between
                pass
        if thread is not threading.current_thread():
            thread.join(timeout)
        self._loop = self._thread = None
        self._started.clear()

    async def aclose(self) -> None:
        """`close()` without blocking the caller's loop."""
        await asyncio.to_thread(self.close)

    async def drop_tables(self) -> None:
        """Delete the store's tables (tests and tooling)."""

        async def run() -> None:
            await self._db(self._tables.metadata.drop_all)
            self._ready = False

        await self._call(run())


class SqlDeadLetters:
    """The dead letters of a `SqlHistory`: a `DeadLetterStore` in the same database.

    Unlike execution records they are written at once (not batched): they are work to redo.
    """

    def __init__(self, history: SqlHistory) -> None:
        self.history = history

    def _run(self, fn: Callable[[Connection], T]) -> asyncio.Future[T]:
        return self.history._call(self.history._db(fn))

    @property
    def _table(self) -> Table:
        return self.history._tables.dead_letters

    async def add(self, letter: DeadLetter) -> None:
        row = _letter_row(letter)
        t = self._table
        await self._run(lambda conn: conn.execute(t.insert(), row))

    async def get(self, letter_id: str) -> DeadLetter | None:
        from sqlalchemy import select

        stmt = select(self._table).where(self._table.c.id == letter_id)
        row = await self._run(lambda conn: conn.execute(stmt).first())
        return None if row is None else _letter(row)

    async def list(
        self,
        *,
        kind: str | None = None,
        source: str | None = None,
        include_replayed: bool = False,
        limit: int = 100,
    ) -> list[DeadLetter]:
        from sqlalchemy import select

        t = self._table
        stmt = select(t).order_by(t.c.created.desc()).limit(max(0, limit))
        if kind is not None:
            stmt = stmt.where(t.c.kind == kind)
        if source is not None:
            stmt = stmt.where(t.c.source == source)
        if not include_replayed:
            stmt = stmt.where(t.c.replayed.is_(None))
        return await self._run(lambda conn: [_letter(r) for r in conn.execute(stmt)])

    async def mark_replayed(self, letter_id: str, when: float) -> None:
        from sqlalchemy import update

        t = self._table
        stmt = update(t).where(t.c.id == letter_id).values(replayed=when)
        await self._run(lambda conn: conn.execute(stmt))

    async def delete(self, letter_id: str) -> bool:
        from sqlalchemy import delete

        t = self._table
        stmt = delete(t).where(t.c.id == letter_id)
        return bool(await self._run(lambda conn: conn.execute(stmt).rowcount))


def _rows(items: list[Any], row: Callable[[Any], T]) -> list[T]:
    """Rows of `items`; one that cannot be encoded is logged and left out, never retried."""
    out = []
    for item in items:
        try:
            out.append(row(item))
        except (TypeError, ValueError) as exc:
            log.error("history: cannot store %r: %s", item, exc)
    return out


def _reason(exc: BaseException) -> str:
    try:
        from flownb.db.errors import driver_message

        return driver_message(exc)
    except ImportError:  # pragma: no cover - flownb.db ships with flownb
        return str(exc).splitlines()[0]


def open_history(
    url: str | None = None,
    *,
    data_dir: str | None = None,
    retention: Retention | None = None,
    **options: Any,
) -> SqlHistory:
    """The durable history at `url`, else `$FLOWNB_HISTORY_DB`, else the data directory's
    SQLite file (`.flownb/history.db`): what `flownb run` and `flownb history` use."""
    from flownb.datadir import history_url

    return SqlHistory(url or history_url(data_dir), retention=retention, **options)
