"""The durable history (SQLite and PostgreSQL): records, audit, dead letters, restart,
retention, batching off the engine's loop, reads from synchronous code."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from realservices import POSTGRES_URL, require

from flownb.deadletters import DeadLetter, MemoryDeadLetters
from flownb.engine import Engine
from flownb.errors import FlownbError
from flownb.history import (
    AuditEvent,
    ExecutionRecord,
    ExecutionRow,
    HistoryRecorder,
    HistoryStore,
    StepRecord,
    read_history,
)
from flownb.historydb import Retention, SqlHistory, open_history
from flownb.loader import parse_config

# (database, who writes the rows: a thread of the engine's process or a process of its own)
BACKENDS = [
    ("sqlite", "thread"),
    ("postgres", "thread"),
    ("sqlite", "process"),
    ("postgres", "process"),
]
Factory = Callable[..., SqlHistory]


@pytest.fixture(params=BACKENDS, ids=[f"{db}-{writer}" for db, writer in BACKENDS])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Factory]:
    """Stores on one database; tables get a prefix of their own, dropped afterwards."""
    backend, writer = request.param
    if backend == "postgres":
        require("postgres")
        url = POSTGRES_URL
    else:
        url = f"sqlite:///{tmp_path / 'history.db'}"
    prefix = f"t{os.getpid()}_{time.time_ns() % 10**9}_"
    made: list[SqlHistory] = []

    def make(**options: Any) -> SqlHistory:
        options.setdefault("prefix", prefix)
        options.setdefault("writer", writer)
        store = SqlHistory(url, **options)
        made.append(store)
        return store

    yield make
    for store in made:  # first: closing writes what is queued (tables made again if dropped)
        await store.aclose()
    cleanup = SqlHistory(url, prefix=prefix)
    try:
        await cleanup.drop_tables()
    finally:
        await cleanup.aclose()


def record(
    id: str, started: float, status: str = "ok", workflow: str = "pipeline", **more: Any
) -> ExecutionRow:
    return ExecutionRow.of(
        ExecutionRecord(id, "direct", workflow, "act", status, started, 1.5, **more)
    )


async def test_records_round_trip_newest_first_with_filters(make_store: Factory) -> None:
    store = make_store()
    assert isinstance(store, HistoryStore)
    await store.start()
    now = time.time()
    steps = [
        StepRecord("a", "ok", 0.25, None, '{"x": 1}', '{"y": 2}'),
        StepRecord("b", "error", 1.0, "boom"),
    ]
    store.add(record("r1", now - 3, request_id="req-1", node="p", input='{"x": 1}', steps=steps))
    store.add(record("r2", now - 2, "error", error="ValueError: no"))
    store.add(record("r3", now - 1, workflow="http"))
    got = await store.query(limit=10)
    assert [r.id for r in got] == ["r3", "r2", "r1"]
    first = got[2]
    assert (first.request_id, first.node, first.input) == ("req-1", "p", '{"x": 1}')
    assert first.steps == steps
    assert [r.id for r in await store.query(status="error")] == ["r2"]
    assert [r.id for r in await store.query(workflow="http")] == ["r3"]
    assert [r.id for r in await store.query(request_id="req-1")] == ["r1"]
    assert [r.id for r in await store.query(before=now - 1.5)] == ["r2", "r1"]
    assert [r.id for r in await store.query(limit=1)] == ["r3"]
    fetched = await store.get("r2")
    assert fetched is not None and fetched.error == "ValueError: no"
    assert await store.get("nope") is None
    assert await store.count() == 3


async def test_history_survives_a_restart(make_store: Factory) -> None:
    first = make_store()
    first.add(record("kept", time.time()))
    first.add_audit(AuditEvent("tester", "config.reload", "wf.yaml", "modules +a"))
    first.close()  # writes what is queued, ends the writer thread
    again = make_store()
    [found] = await again.query()
    assert found.id == "kept"
    [event] = await again.audit_events()
    assert (event.actor, event.action, event.summary) == ("tester", "config.reload", "modules +a")


async def test_retention_deletes_what_it_should_and_nothing_else(make_store: Factory) -> None:
    now = 1_000_000.0
    store = make_store(retention=Retention(max_age=100.0, max_records=3, interval=0))
    for i in range(6):  # ages 0, 10 ... 50: inside max_age; only the newest 3 stay by count
        store.add(record(f"n{i}", now - 10 * i))
    store.add(record("old", now - 500))
    store.add_audit(AuditEvent("a", "x", at=now - 500))
    store.add_audit(AuditEvent("a", "y", at=now - 5))
    letters = store.dead_letters
    await letters.add(DeadLetter("webhook", "hook", "http://t", {}, "500", 3, created=now - 900))
    replayed_old = DeadLetter("webhook", "hook", "http://t", {}, "500", 3, created=now - 900)
    replayed_new = DeadLetter("webhook", "hook", "http://t", {}, "500", 3, created=now - 900)
    for letter in (replayed_old, replayed_new):
        await letters.add(letter)
    await letters.mark_replayed(replayed_old.id, now - 400)
    await letters.mark_replayed(replayed_new.id, now - 50)

    removed = await store.prune(now)
    assert removed == {"executions": 4, "audit": 1, "dead_letters": 1}
    assert [r.id for r in await store.query(limit=100)] == ["n0", "n1", "n2"]
    assert [e.action for e in await store.audit_events()] == ["y"]
    remaining = {d.id for d in await letters.list(include_replayed=True)}
    assert replayed_new.id in remaining and replayed_old.id not in remaining
    assert len(remaining) == 2, "an undelivered letter is never removed by retention"
    assert await store.prune(now) == {"executions": 0, "audit": 0, "dead_letters": 0}


async def test_without_retention_nothing_is_deleted(make_store: Factory) -> None:
    store = make_store()
    store.add(record("ancient", 1.0))
    assert await store.prune() == {"executions": 0, "audit": 0, "dead_letters": 0}
    assert [r.id for r in await store.query()] == ["ancient"]


async def test_dead_letters_follow_the_store_contract(make_store: Factory) -> None:
    for letters in (make_store().dead_letters, MemoryDeadLetters()):
        a = DeadLetter("webhook", "hook-a", "http://a", {"n": 1}, "503", 5, {"X-Key": "k"})
        b = DeadLetter("email", "mailer", "ops@x", ["x"], "timeout", 2, created=a.created + 1)
        await letters.add(a)
        await letters.add(b)
        assert [d.id for d in await letters.list()] == [b.id, a.id]
        assert [d.id for d in await letters.list(kind="webhook")] == [a.id]
        assert [d.id for d in await letters.list(source="mailer")] == [b.id]
        got = await letters.get(a.id)
        assert got is not None and (got.payload, got.headers, got.attempts) == (
            {"n": 1},
            {"X-Key": "k"},
            5,
        )
        await letters.mark_replayed(a.id, 123.0)
        assert [d.id for d in await letters.list()] == [b.id]
        replayed = await letters.get(a.id)
        assert replayed is not None and replayed.replayed == 123.0
        assert await letters.delete(b.id) is True
        assert await letters.delete(b.id) is False
        assert await letters.get(b.id) is None


async def recorded_engine(store: SqlHistory) -> Engine:
    """A started engine with a one-step pipeline `p`, recording into `store`."""
    engine = Engine(
        parse_config("pipelines:\n  p: [{type: set, name: s, values: {a: 1}}]\n"),
        observers=[HistoryRecorder(store)],
    )
    await engine.start()
    return engine


async def test_writes_are_batched_off_the_engine_loop(make_store: Factory) -> None:
    """`add` returns before anything is written; a read sees every record added before it."""
    store = make_store(batch_size=10_000, flush_interval=60.0)
    await store.start()
    engine = await recorded_engine(store)
    try:
        for i in range(50):
            await engine.trigger_workflow("pipeline", "p", {"i": i})
        assert store.queued == 50, "nothing was written on the engine's loop"
        got = await store.query(limit=100)
    finally:
        await engine.stop()
    assert len(got) == 50 and store.queued == 0
    assert got[0].input == '{"i":49}' and got[0].steps[0].name == "s"


async def test_reads_from_synchronous_code_and_other_loops(make_store: Factory) -> None:
    store = make_store()
    store.add(record("x", time.time()))
    # inside a running loop (a notebook cell): read_history runs the query on a helper thread
    assert [r.id for r in read_history(store, limit=5)] == ["x"]
    # from a plain thread without a loop (a script)
    found = await asyncio.to_thread(read_history, store, limit=5)
    assert [r.id for r in found] == ["x"]


async def test_a_database_that_cannot_be_reached_is_a_clear_error() -> None:
    store = SqlHistory("postgresql://postgres@127.0.0.1:1/test")
    try:
        with pytest.raises(FlownbError, match=r"history database postgresql://"):
            await store.start()
        store.add(record("waits", time.time()))
        assert store.queued == 1  # kept in memory, written when the database is back
    finally:
        store.close(timeout=5)


async def test_open_history_defaults_to_the_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLOWNB_HISTORY_DB", raising=False)
    monkeypatch.setenv("FLOWNB_DATA_DIR", str(tmp_path / "data"))
    store = open_history()
    try:
        store.add(record("here", time.time()))
        await store.flush()
    finally:
        await store.aclose()
    assert (tmp_path / "data" / "history.db").is_file()
    assert oct((tmp_path / "data").stat().st_mode & 0o777) == "0o700"


async def test_secrets_never_reach_the_database(make_store: Factory) -> None:
    """The recorder hands over raw JSON; the writer searches each batch for secret-looking
    keys and replaces their values before the row is written."""
    store = make_store()
    await store.start()
    engine = await recorded_engine(store)
    try:
        await engine.trigger_workflow("pipeline", "p", {"user": "ann", "Password": "hunter22"})
        await engine.trigger_workflow("pipeline", "p", {"note": "a tokenizer is fine"})
        await store.flush()
    finally:
        await engine.stop()
    from sqlalchemy import select

    table = store._tables.executions
    details = await store._call(
        store._db(lambda conn: [r[0] for r in conn.execute(select(table.c.detail))])
    )
    assert len(details) == 2 and not any(b"hunter22" in bytes(d) for d in details)
    plain, secret = await store.query(limit=2)
    assert secret.input is not None and '"Password":"[redacted]"' in secret.input
    assert secret.steps[0].input == secret.input and '"user":"ann"' in secret.input
    assert plain.input == '{"note":"a tokenizer is fine"}', "a word in a value changes nothing"


async def test_a_table_of_another_layout_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE flownb_executions (id TEXT PRIMARY KEY, steps TEXT)")
        db.execute("INSERT INTO flownb_executions VALUES ('kept', '[]')")
    store = SqlHistory(f"sqlite:///{path}")
    try:
        with pytest.raises(FlownbError, match=r"no column trigger, .*detail.*move that database"):
            await store.start()
    finally:
        store.close(timeout=5)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT id FROM flownb_executions").fetchall() == [("kept",)]


def test_rows_are_written_in_as_few_statements_as_may_be() -> None:
    from flownb.historydb import chunks

    assert chunks(0, 1024) == []
    assert chunks(5, 1024) == [(0, 5)]
    assert chunks(1024, 1024) == [(0, 1024)]
    assert chunks(3000, 1024) == [(0, 1024), (1024, 1024), (2048, 952)]


async def test_a_batch_the_database_refuses_is_written_not_in_part_and_stays_queued(
    make_store: Factory,
) -> None:
    """One flush is one transaction: audit events and rows (and, on PostgreSQL, the COPY the
    rows go in) are written together or not at all, and stay queued when refused."""
    store = make_store(flush_interval=60.0)
    store.add(record("first", time.time()))
    await store.flush()
    store.add(record("second", time.time()))
    store.add(record("first", time.time()))  # stored already: the database refuses the batch
    # (last: an audit event wakes the writer, which then finds the rows queued too)
    store.add_audit(AuditEvent("tester", "config.reload", "wf.yaml", "modules +a"))
    with pytest.raises(FlownbError, match="executions"):
        await store.flush()
    reader = make_store(writer="thread")
    assert [r.id for r in await reader.query()] == ["first"]
    if store.writer == "thread":  # (the writer process writes rows only; events stay here)
        assert store.queued == 3
        assert await reader.audit_events() == []


async def test_a_large_backlog_is_written_whole(make_store: Factory) -> None:
    store = make_store(batch_size=100_000, flush_interval=60.0)
    await store.start()
    now = time.time()
    for i in range(3000):
        store.add(record(f"b{i:05d}", now - 3000 + i, request_id=f"r{i}"))
    assert store.queued == 3000
    assert await store.count() == 3000
    newest = await store.query(limit=2)
    assert [r.id for r in newest] == ["b02999", "b02998"] and newest[0].request_id == "r2999"


async def test_the_writer_process_ends_with_the_store_and_is_replaced_if_it_dies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows reach the database through a child process; killed, it is started again for the
    next rows (those it held are lost, and a warning says so); closing the store ends it."""
    store = SqlHistory(f"sqlite:///{tmp_path / 'h.db'}", writer="process", flush_interval=60.0)
    await store.start()
    try:
        store.add(record("a", 1.0))
        await store.flush()
        first = store.writer_pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        await asyncio.sleep(0.2)
        assert store.writer_pid is None  # not running
        store.add(record("b", 2.0))
        assert [r.id for r in await store.query()] == ["b", "a"]
        second = store.writer_pid
        assert second is not None and second != first
        assert "history writer process exited" in caplog.text
    finally:
        await store.aclose()
    assert store.writer_pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(second, 0)  # gone: closing the store ended it
    again = SqlHistory(f"sqlite:///{tmp_path / 'h.db'}")
    try:
        assert [r.id for r in await again.query()] == ["b", "a"], "written for good"
    finally:
        await again.aclose()


async def test_a_writer_process_that_cannot_start_keeps_the_rows_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads say why; the rows wait in the queue and are written once the process starts."""
    store = SqlHistory(f"sqlite:///{tmp_path / 'h.db'}", writer="process", flush_interval=60.0)
    await store.start()
    try:
        store.add(record("a", 1.0))
        monkeypatch.setattr("sys.executable", str(tmp_path / "no-such-python"))
        with pytest.raises(FlownbError, match="history writer process could not start"):
            await store.query()
        assert store.queued == 1, "the row is kept"
        monkeypatch.undo()
        assert [r.id for r in await store.query()] == ["a"]
    finally:
        await store.aclose()


async def test_rows_added_while_a_batch_is_handed_over_go_to_the_writer_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine adds rows while the store's thread hands the queue to the writer process:
    every row reaches the database through that process, none through the parent's own
    connection (which only writes audit events)."""
    store = SqlHistory(f"sqlite:///{tmp_path / 'h.db'}", writer="process", flush_interval=0.005)
    await store.start()
    written_here: list[Any] = []
    parent_write = store._write

    def spy(rows: list[Any], audit: list[Any], conn: Any) -> None:
        written_here.extend(rows)
        parent_write(rows, audit, conn)

    monkeypatch.setattr(store, "_write", spy)
    try:
        for i in range(5000):
            store.add(record(f"r{i:05d}", float(i)))
            if i % 50 == 0:
                await asyncio.sleep(0.001)  # the store's thread hands over meanwhile
        assert await store.count() == 5000
        assert written_here == []
    finally:
        await store.aclose()
