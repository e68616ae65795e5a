"""How the durable history's rows reach PostgreSQL: multi-row INSERTs against one COPY.

The table is the history's own (made by `SqlHistory`: three indexes); the rows are shaped
like the benchmark pipeline's (ids sorting by time, a 5-step detail of about 470 bytes).
Each round writes `--rows` rows in batches of `--batch`, one transaction per batch, in one
of two ways through asyncpg: INSERTs of 1,024 rows with 11 parameters each (what the history
did before), and one binary COPY per batch (`copy_records_to_table`, what it does now).
Rounds alternate the two ways; the table is emptied between rounds. Reported: the CPU time
per row of the server's processes and of this process (the client), medians over rounds.

    python bench/history_writes.py [--rows 50000] [--batch 4096] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from typing import Any

import orjson
from common import postgres_seconds, record

from flownb.history import ExecutionRow
from flownb.historydb import CHUNK, SqlHistory

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def rows(count: int) -> list[tuple[Any, ...]]:
    now = time.time()
    step = {"item": "book", "qty": 5, "total": 12.5}
    return [
        (
            f"{int((now + i / 1e4) * 1000):012x}{i:020x}",
            "direct",
            "pipeline",
            "five",
            "ok",
            now + i / 1e4,
            0.031 + i / 1e9,
            None,
            None,
            None,
            orjson.dumps([0, step, step, [[f"s{n}", "ok", 5000 + i, None] for n in range(5)], {}]),
        )
        for i in range(count)
    ]


async def one_round(
    conn: Any, table: str, way: str, data: list[Any], batch: int
) -> tuple[float, float]:
    """Server and client CPU seconds for writing `data`."""
    columns = list(ExecutionRow._fields)
    width = len(columns)
    groups = ", ".join(
        "(" + ", ".join(f"${i * width + j + 1}" for j in range(width)) + ")" for i in range(CHUNK)
    )
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {groups}"
    numbers = ", ".join(f"${j + 1}" for j in range(width))
    one = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({numbers})"
    await conn.execute(f"TRUNCATE {table}")
    server, client = postgres_seconds(), time.process_time()
    for start in range(0, len(data), batch):
        part = data[start : start + batch]
        async with conn.transaction():
            if way == "copy":
                await conn.copy_records_to_table(table, records=part, columns=columns)
                continue
            for at in range(0, len(part), CHUNK):
                chunk = part[at : at + CHUNK]
                if len(chunk) == CHUNK:
                    await conn.execute(insert, *[value for row in chunk for value in row])
                else:
                    await conn.executemany(one, chunk)
    return postgres_seconds() - server, time.process_time() - client


async def main(args: argparse.Namespace) -> dict[str, Any]:
    import asyncpg

    prefix = f"benchw{os.getpid()}_"
    store = SqlHistory(POSTGRES, prefix=prefix)
    await store.start()  # makes the tables
    table = f"{prefix}executions"
    conn = await asyncpg.connect(POSTGRES)
    data = rows(args.rows)
    spent: dict[str, list[tuple[float, float]]] = {"insert": [], "copy": []}
    try:
        for _ in range(args.rounds):
            for way, times in spent.items():
                times.append(await one_round(conn, table, way, data, args.batch))
    finally:
        await conn.close()
        await store.drop_tables()
        await store.aclose()

    def per_row(values: list[float]) -> float:
        return round(statistics.median(values) / args.rows * 1e6, 2)

    return {
        way: {
            "server_cpu_us_per_row": per_row([server for server, _ in times]),
            "client_cpu_us_per_row": per_row([client for _, client in times]),
        }
        for way, times in spent.items()
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=4)
    arguments = parser.parse_args()
    result = asyncio.run(main(arguments))
    path = record("history_writes", {"rows": arguments.rows, "batch": arguments.batch, **result})
    for way, figures in result.items():
        print(
            f"{way:6} server {figures['server_cpu_us_per_row']} us/row, "
            f"client {figures['client_cpu_us_per_row']} us/row"
        )
    print(f"-> {path}")
