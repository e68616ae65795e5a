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
round by round against the mean of the `off` rounds run right before and right after it
(`off` runs between every two others: the host's speed drifts from one second to the next),
and reported as the median over rounds with its quartiles and a 95% interval of that median
(distribution-free: `median_interval`), beside each configuration's best rate.

    python bench/history.py [--runs 50000] [--rounds 15] [--no-postgres] [--no-thread-writer]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import tempfile
import time
from typing import Any, NamedTuple

from common import cpu_seconds, postgres_seconds, record
from pipeline import CONFIG

from flownb import Engine, parse_config
from flownb.history import Capture, HistoryRecorder, HistoryStore, MemoryHistory
from flownb.historydb import SqlHistory

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
DATA = {"item": "book", "qty": 5}


class Round(NamedTuple):
    ran: float  # seconds the executions took
    lag: float  # seconds the flush after them took
    engine_cpu: float  # CPU seconds: the engine's process
    writer_cpu: float  # the writer process (the process writer only)
    server_cpu: float  # the database server (PostgreSQL only)


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


def cpu(store: HistoryStore | None) -> tuple[float, float, float]:
    """CPU seconds so far: this process (the engine and the store's thread), the store's
    writer process, the PostgreSQL server (for its stores)."""
    times = os.times()
    writer = store.writer_pid if isinstance(store, SqlHistory) else None
    postgres = isinstance(store, SqlHistory) and store.url.backend == "postgres"
    return times.user + times.system, cpu_seconds(writer), postgres_seconds() if postgres else 0.0


async def one_round(engine: Engine, store: HistoryStore | None, runs: int) -> Round:
    """Seconds that `runs` executions took, seconds the flush after them took, and the CPU
    seconds spent on them (executions and flush) by each process."""
    trigger = engine.trigger_workflow
    before = cpu(store)
    began = time.perf_counter()
    for _ in range(runs):
        await trigger("pipeline", "five", DATA)
    ran = time.perf_counter()
    if isinstance(store, SqlHistory):
        await store.flush()
    flushed = time.perf_counter()
    spent = [b - a for a, b in zip(before, cpu(store), strict=True)]
    return Round(ran - began, flushed - ran, spent[0], spent[1], spent[2])


async def placement(name: str, args: argparse.Namespace, folder: str) -> dict[str, Any]:
    sqlite = f"sqlite:///{folder}/{name}.db"
    configs: dict[str, tuple[HistoryStore | None, Capture]] = {
        "off": (None, "none"),
        "memory": (MemoryHistory(), "steps"),
        "sqlite": (SqlHistory(sqlite, prefix="bench_", writer="process"), "steps"),
    }
    if not args.no_thread_writer:
        configs["sqlite thread"] = (SqlHistory(sqlite, prefix="bench_"), "steps")
    if not args.no_postgres:
        prefix = f"bench{os.getpid()}_"
        configs["postgres"] = (SqlHistory(POSTGRES, prefix=prefix, writer="process"), "steps")
        if not args.no_thread_writer:
            configs["postgres thread"] = (SqlHistory(POSTGRES, prefix=prefix), "steps")
    stores = {id(s): s for s, _ in configs.values() if isinstance(s, SqlHistory)}
    for store in stores.values():
        await store.start()  # the writer thread exists before the engine's is pinned
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})  # this thread (the engine's) only, from here on
    times: dict[str, list[Round]] = {key: [] for key in configs}
    bases: dict[str, list[float]] = {key: [] for key in configs}  # `off` around each round
    engines = {key: await started(store, capture) for key, (store, capture) in configs.items()}
    try:
        for _ in range(args.rounds):  # off, memory, off, sqlite, off, ... off
            before = await one_round(engines["off"], None, args.runs)
            times["off"].append(before)
            bases["off"].append(before.ran)
            for key, (store, _) in configs.items():
                if key == "off":
                    continue
                times[key].append(await one_round(engines[key], store, args.runs))
                after = await one_round(engines["off"], None, args.runs)
                bases[key].append((before.ran + after.ran) / 2)
                times["off"].append(after)
                bases["off"].append(after.ran)
                before = after
    finally:
        for engine in engines.values():
            await engine.stop()
        for store in stores.values():
            await store.drop_tables()
            await store.aclose()
    return {key: summary(times[key], bases[key], args.runs) for key in configs}


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free confidence interval for the median: the k-th smallest and k-th
    largest value, with k the largest for which a median outside them has a binomial
    probability of at most 1 - `confidence` (no assumption on this host's noise); the whole
    range when there are too few values for one."""
    ordered = sorted(values)
    n = len(ordered)
    below = 0.0  # P(at most k - 1 of n values fall below the median)
    k = 0
    while k < n // 2:
        below += math.comb(n, k) / 2**n
        if 2 * below > 1 - confidence:
            break
        k += 1
    k = max(k, 1)
    return ordered[k - 1], ordered[n - k]


def summary(rounds: list[Round], off: list[float], runs: int) -> dict[str, Any]:
    """Best rate, and the cost against `off` (its rounds right before and after each one:
    this host's speed drifts more between rounds than the costs measured), as its median and
    quartiles; the writer's lag after a round, and the cost with it counted in the round; the
    median CPU time per execution of each process."""
    costs = [(1 - base / r.ran) * 100 for r, base in zip(rounds, off, strict=True)]
    with_lag = [(1 - base / (r.ran + r.lag)) * 100 for r, base in zip(rounds, off, strict=True)]
    quartiles = statistics.quantiles(costs, n=4) if len(costs) > 1 else [costs[0]] * 3
    low, high = median_interval(costs)

    def per_execution(seconds: list[float]) -> float:
        return round(statistics.median(seconds) / runs * 1e6, 1)

    return {
        "executions_per_second": round(runs / min(r.ran for r in rounds)),
        "cost_percent": round(statistics.median(costs), 1),
        "cost_quartiles": [round(quartiles[0], 1), round(quartiles[2], 1)],
        "cost_median_95": [round(low, 1), round(high, 1)],
        "lag_ms": round(statistics.median(r.lag for r in rounds) * 1000, 1),
        "lag_ms_max": round(max(r.lag for r in rounds) * 1000, 1),
        "cost_with_lag_percent": round(statistics.median(with_lag), 1),
        "cpu_us_per_execution": {
            "engine_process": per_execution([r.engine_cpu for r in rounds]),
            "writer_process": per_execution([r.writer_cpu for r in rounds]),
            "database_server": per_execution([r.server_cpu for r in rounds]),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--no-thread-writer", action="store_true", help="only the writer process (more rounds)"
    )
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
                f"history cost, median of rounds {value['cost_percent']}% ({low}..{high}, "
                f"95% interval of the median {value['cost_median_95'][0]}.."
                f"{value['cost_median_95'][1]}); "
                f"lag after a round {value['lag_ms']} ms (max {value['lag_ms_max']}), "
                f"cost with it {value['cost_with_lag_percent']}%"
            )
            used = value["cpu_us_per_execution"]
            print(
                f"{'':28} CPU per execution: engine's process {used['engine_process']} us, "
                f"writer process {used['writer_process']} us, "
                f"database server {used['database_server']} us"
            )
    print(f"-> {path}")


if __name__ == "__main__":
    main()
