"""Database step throughput: `db_query` / `db_exec` pipelines on SQLite and PostgreSQL.

Each operation is a full engine execution of a one-step pipeline (`trigger_workflow`):
- read:  db_query, `SELECT id, name, qty FROM t WHERE id = ?` (mode single), ids spread over
  10,000 rows;
- write: db_exec, op insert of one row;
run one at a time (sequential) and 32 at a time (concurrent, pool of 10 connections); CPU
time per operation (this process, driver threads included) is recorded too: on a shared
machine it moves less than the rate. For
PostgreSQL, reads also run with `pingAfterIdle: 0` (check every pooled connection on checkout)
and through asyncpg alone (the driver's floor: one `fetchrow` per read, one connection); for
SQLite, through aiosqlite alone (one `execute` + `fetchone` per read).

    python bench/database.py [--seconds 3] [--backends sqlite,postgres]

PostgreSQL: the machine's server at 127.0.0.1:5432, database `test`, a table of its own
(dropped afterwards). The engine process is pinned to CPU 0; the server runs on the other.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from common import pin_to_core, record

from flownb import Engine, parse_config

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
ROWS = 10_000
ID_COLUMN = {"sqlite": "id INTEGER PRIMARY KEY", "postgres": "id SERIAL PRIMARY KEY"}


def config(dsn: str, table: str, backend: str, always_ping: bool) -> str:
    create = f"CREATE TABLE IF NOT EXISTS {table} ({ID_COLUMN[backend]}, name TEXT, qty INTEGER)"
    return f"""
modules:
  - name: db
    type: database.workflow
    config:
      dsn: "{dsn}"
      maxOpenConns: 10
      maxIdleConns: 10
      pingAfterIdle: {"0" if always_ping else "1s"}
      setup: ["{create}"]
pipelines:
  read:
    - type: db_query
      query: "SELECT id, name, qty FROM {table} WHERE id = ?"
      params: ["{{{{ data.id }}}}"]
      mode: single
  write:
    - type: db_exec
      op: insert
      table: {table}
      values: {{name: "{{{{ data.name }}}}", qty: "{{{{ data.qty }}}}"}}
"""


async def timed(
    op: Callable[[int], Awaitable[Any]], seconds: float, concurrency: int
) -> dict[str, float]:
    """Run `op(i)` for `seconds`, `concurrency` at a time; ops/s and mean latency."""
    for i in range(200):  # warm-up
        await op(i)
    count = 0
    deadline = time.perf_counter() + seconds
    started, cpu = time.perf_counter(), time.process_time()

    async def worker(offset: int) -> None:
        nonlocal count
        i = offset
        while time.perf_counter() < deadline:
            await op(i)
            count += 1
            i += concurrency

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - started
    used = time.process_time() - cpu
    return {
        "ops": count,
        "ops_per_second": round(count / elapsed),
        "mean_ms": round(elapsed / count * 1000 * concurrency, 3),
        "cpu_us_per_op": round(used / count * 1e6, 1),
    }


async def engine_run(
    dsn: str, backend: str, seconds: float, *, always_ping: bool = False
) -> dict[str, Any]:
    table = f"bench_{os.urandom(4).hex()}"
    engine = Engine(parse_config(config(dsn, table, backend, always_ping)))
    await engine.start()
    db: Any = engine.services.get("db")
    try:
        await db.insert(table, [{"name": f"n{i}", "qty": i} for i in range(ROWS)])
        trigger = engine.trigger_workflow
        found = await engine.run_handler(
            engine.pipeline("read"), {"id": 5}, workflow="pipeline", action="read"
        )
        assert found.steps["0:db_query"]["row"]["id"] == 5, found.steps

        async def read(i: int) -> Any:
            return await trigger("pipeline", "read", {"id": i % ROWS + 1})

        async def write(i: int) -> Any:
            return await trigger("pipeline", "write", {"name": f"w{i}", "qty": i})

        out: dict[str, Any] = {}
        out["read_sequential"] = await timed(read, seconds, 1)
        out["read_concurrent_32"] = await timed(read, seconds, 32)
        if not always_ping:
            out["write_sequential"] = await timed(write, seconds, 1)
            out["write_concurrent_32"] = await timed(write, seconds, 32)
        return out
    finally:
        await db.execute(f"DROP TABLE {table}")
        await engine.stop()


async def asyncpg_floor(seconds: float) -> dict[str, float]:
    import asyncpg

    table = f"bench_{os.urandom(4).hex()}"
    conn = await asyncpg.connect(POSTGRES)
    try:
        await conn.execute(f"CREATE TABLE {table} (id SERIAL PRIMARY KEY, name TEXT, qty INTEGER)")
        await conn.executemany(
            f"INSERT INTO {table} (name, qty) VALUES ($1, $2)",
            [(f"n{i}", i) for i in range(ROWS)],
        )
        stmt = await conn.prepare(f"SELECT id, name, qty FROM {table} WHERE id = $1")

        async def read(i: int) -> Any:
            return await stmt.fetchrow(i % ROWS + 1)

        return await timed(read, seconds, 1)
    finally:
        await conn.execute(f"DROP TABLE {table}")
        await conn.close()


async def aiosqlite_floor(path: str, seconds: float) -> dict[str, float]:
    import aiosqlite

    async with aiosqlite.connect(path) as conn:
        await conn.execute("CREATE TABLE floor (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)")
        await conn.executemany(
            "INSERT INTO floor (name, qty) VALUES (?, ?)", [(f"n{i}", i) for i in range(ROWS)]
        )
        await conn.commit()

        async def read(i: int) -> Any:
            async with conn.execute(
                "SELECT id, name, qty FROM floor WHERE id = ?", (i % ROWS + 1,)
            ) as cursor:
                return await cursor.fetchone()

        return await timed(read, seconds, 1)


async def measure(seconds: float, backends: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory() as folder:
            dsn = f"sqlite:///{folder}/bench.db"
            out["sqlite"] = await engine_run(dsn, "sqlite", seconds)
            out["sqlite"]["aiosqlite_fetchone_sequential"] = await aiosqlite_floor(
                f"{folder}/floor.db", seconds
            )
    if "postgres" in backends:
        out["postgres"] = await engine_run(POSTGRES, "postgres", seconds)
        always = await engine_run(POSTGRES, "postgres", seconds, always_ping=True)
        out["postgres"]["read_sequential_ping_always"] = always["read_sequential"]
        out["postgres"]["read_concurrent_32_ping_always"] = always["read_concurrent_32"]
        out["postgres"]["asyncpg_fetchrow_sequential"] = await asyncpg_floor(seconds)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    pin_to_core(0)
    result = asyncio.run(measure(args.seconds, args.backends.split(",")))
    path = record("database", result)
    for backend, figures in result.items():
        for name, figure in figures.items():
            print(
                f"{backend:8} {name:30} {figure['ops_per_second']:>8,} ops/s  "
                f"mean {figure['mean_ms']} ms  cpu {figure['cpu_us_per_op']} us/op"
            )
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
