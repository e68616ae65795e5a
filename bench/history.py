"""Engine throughput with the execution history on and off (SQLite and PostgreSQL).

The workload is `bench/pipeline.py`'s 5-step pipeline, run back to back with
`trigger_workflow` on one task. Configurations: no history; the in-memory history; the
durable history on a SQLite file; the durable history on PostgreSQL (127.0.0.1:5432, database
`test`; `--no-postgres` to leave it out), each written by a process of its own (as `flownb
run` does: `SqlHistory(writer="process")`) and by a thread in the engine's process
(`thread`), with every step's input and output captured. Each configuration has its own engine,
started and warmed up once; then `--rounds` rounds run `--runs` executions on each engine in
turn (this host's speed changes by up to 2x from one second to the next, so there are many).

Throughput is what the engine sustains while the history keeps up with it: a round's rate is
its executions over the time they took. After each round (not timed in the rate) the round's
records are flushed, and how long that took is reported: it is the writer's lag, the records
of the last flush interval still to be written. A writer slower than the engine would fall
behind as the round goes on, so its lag would grow with the round (at 50,000 executions and
at 200,000 alike it is one batch: BENCHMARKS.md); the cost with the lag counted in the round
is reported too (`cost_with_lag_percent`). Each round starts with nothing queued.

Two placements: `one-core` pins the whole process (engine, history writer, driver threads)
to CPU 0, so the figure is the total cost on one core; `writer-free` pins only the engine's
thread to CPU 0 and leaves the history writer free to use the other core, as it would on
any multi-core machine. Target: history costs at most 20% of throughput. The cost is taken
round by round against the same round's `off` (the host's speed drifts between rounds) and
reported as the median over rounds with its quartiles, beside each configuration's best
rate.

    python bench/history.py [--runs 50000] [--rounds 15] [--no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from typing import Any

from common import record
from pipeline import CONFIG

from flownb import Engine, parse_config
from flownb.history import Capture, HistoryRecorder, HistoryStore, MemoryHistory
from flownb.historydb import SqlHistory

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
DATA = {"item": "book", "qty": 5}


async def started(store: HistoryStore | None, capture: Capture) -> Engine:
    """An engine running the pipeline, recording into `store`, warmed up."""
    observers = [HistoryRecorder(store, capture=capture)] if store is not None else []
    engine = Engine(parse_config(CONFIG), observers=observers)
    await engine.start()
    for _ in range(2000):
        await engine.trigger_workflow("pipeline", "five", DATA)
    if isinstance(store, SqlHistory):
        await store.flush()
    return engine


async def one_round(engine: Engine, store: HistoryStore | None, runs: int) -> tuple[float, float]:
    """Seconds that `runs` executions took, and seconds the flush after them took."""
    trigger = engine.trigger_workflow
    began = time.perf_counter()
    for _ in range(runs):
        await trigger("pipeline", "five", DATA)
    ran = time.perf_counter()
    if isinstance(store, SqlHistory):
        await store.flush()
    return ran - began, time.perf_counter() - ran


async def placement(name: str, args: argparse.Namespace, folder: str) -> dict[str, Any]:
    sqlite = f"sqlite:///{folder}/{name}.db"
    configs: dict[str, tuple[HistoryStore | None, Capture]] = {
        "off": (None, "none"),
        "memory": (MemoryHistory(), "steps"),
        "sqlite": (SqlHistory(sqlite, prefix="bench_", writer="process"), "steps"),
        "sqlite thread": (SqlHistory(sqlite, prefix="bench_"), "steps"),
    }
    if not args.no_postgres:
        prefix = f"bench{os.getpid()}_"
        configs["postgres"] = (SqlHistory(POSTGRES, prefix=prefix, writer="process"), "steps")
        configs["postgres thread"] = (SqlHistory(POSTGRES, prefix=prefix), "steps")
    stores = {id(s): s for s, _ in configs.values() if isinstance(s, SqlHistory)}
    for store in stores.values():
        await store.start()  # the writer thread exists before the engine's is pinned
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})  # this thread (the engine's) only, from here on
    times: dict[str, list[tuple[float, float]]] = {key: [] for key in configs}
    engines = {key: await started(store, capture) for key, (store, capture) in configs.items()}
    try:
        for _ in range(args.rounds):
            for key, (store, _) in configs.items():
                times[key].append(await one_round(engines[key], store, args.runs))
    finally:
        for engine in engines.values():
            await engine.stop()
        for store in stores.values():
            await store.drop_tables()
            await store.aclose()
    off = [ran for ran, _ in times["off"]]
    return {key: summary(times[key], off, args.runs) for key in configs}


def summary(times: list[tuple[float, float]], off: list[float], runs: int) -> dict[str, Any]:
    """Best rate, and the cost against `off` of the same round (paired: this host's speed
    drifts between rounds more than the costs measured), as its median and quartiles; the
    writer's lag after a round, and the cost with it counted in the round."""
    costs = [(1 - base / ran) * 100 for (ran, _), base in zip(times, off, strict=True)]
    with_lag = [(1 - base / (ran + lag)) * 100 for (ran, lag), base in zip(times, off, strict=True)]
    quartiles = statistics.quantiles(costs, n=4) if len(costs) > 1 else [costs[0]] * 3
    return {
        "executions_per_second": round(runs / min(ran for ran, _ in times)),
        "cost_percent": round(statistics.median(costs), 1),
        "cost_quartiles": [round(quartiles[0], 1), round(quartiles[2], 1)],
        "lag_ms": round(statistics.median(lag for _, lag in times) * 1000, 1),
        "lag_ms_max": round(max(lag for _, lag in times) * 1000, 1),
        "cost_with_lag_percent": round(statistics.median(with_lag), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--placement", choices=["one-core", "writer-free", "both"], default="both")
    args = parser.parse_args()
    results: dict[str, Any] = {"runs": args.runs, "rounds": args.rounds, "target_cost_percent": 20}
    with tempfile.TemporaryDirectory() as folder:
        if args.placement in ("one-core", "both"):
            if hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(0, {0})  # threads started from now on inherit CPU 0
            results["one-core"] = asyncio.run(placement("one", args, folder))
            if hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
        if args.placement in ("writer-free", "both"):
            results["writer-free"] = asyncio.run(placement("free", args, folder))
    path = record("history", results)
    for where in ("one-core", "writer-free"):
        for key, value in results.get(where, {}).items():
            low, high = value["cost_quartiles"]
            print(
                f"{where:12} {key:15} best {value['executions_per_second']:>7,} executions/s; "
                f"history cost, median of rounds {value['cost_percent']}% ({low}..{high}); "
                f"lag after a round {value['lag_ms']} ms (max {value['lag_ms_max']}), "
                f"cost with it {value['cost_with_lag_percent']}%"
            )
    print(f"-> {path}")


if __name__ == "__main__":
    main()
