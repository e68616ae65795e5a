"""Config build time: parse + validate + build a 1,000-module config.

Target: < 1 s. The config mixes module types (handlers with pipelines, caches, schemas,
transformers, brokers), with dependsOn chains and references, so ordering, validation and
construction all do real work.

    python bench/build.py [--modules 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import yaml
from common import pin_to_core, record

from flownb import Engine, parse_config


def make_config(count: int) -> str:
    modules: list[dict[str, object]] = [
        {"name": "bus", "type": "messaging.broker"},
        {
            "name": "schemas",
            "type": "jsonschema",
            "config": {"schemas": {"order": {"type": "object", "required": ["id"]}}},
        },
    ]
    pipelines: dict[str, object] = {}
    subscriptions = []
    kinds = ["cache", "http.handler", "messaging.handler", "data.transformer"]
    for i in range(count - len(modules)):
        kind = kinds[i % len(kinds)]
        name = f"m{i}"
        spec: dict[str, object] = {"name": name, "type": kind}
        if i >= 2:
            spec["dependsOn"] = [f"m{i - 2}"]
        if kind == "cache":
            spec["config"] = {"ttl": "5m", "maxSize": 1000}
        elif kind in ("http.handler", "messaging.handler"):
            pipelines[f"p{i}"] = [
                {"type": "validate", "module": "schemas", "ref": "order"},
                {"type": "set", "values": {"n": "{{ data.id * 2 }}"}},
                {"type": "publish", "topic": f"out.{i}", "message": "{{ vars }}"},
            ]
            spec["config"] = {"pipeline": f"p{i}"}
            if kind == "messaging.handler":
                subscriptions.append({"topic": f"in.{i}", "handler": name})
        else:
            spec["config"] = {"pipelines": {"t": [{"map": {"id": "id"}}]}}
        modules.append(spec)
    config = {
        "modules": modules,
        "pipelines": pipelines,
        "workflows": {"messaging": {"subscriptions": subscriptions}},
    }
    return yaml.safe_dump(config, sort_keys=False)


async def measure(count: int, rounds: int) -> dict[str, float]:
    text = make_config(count)
    best: dict[str, float] | None = None
    for _ in range(rounds):
        t0 = time.perf_counter()
        config = parse_config(text)
        t1 = time.perf_counter()
        engine = Engine(config)
        await engine.build()
        t2 = time.perf_counter()
        assert len(engine.modules) == count
        run = {
            "parse_validate_seconds": t1 - t0,
            "build_seconds": t2 - t1,
            "total_seconds": t2 - t0,
        }
        if best is None or run["total_seconds"] < best["total_seconds"]:
            best = run
    assert best is not None
    return {k: round(v, 4) for k, v in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--modules", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    pin_to_core(0)
    result: dict[str, object] = {
        "modules": args.modules,
        "rounds": args.rounds,
        **asyncio.run(measure(args.modules, args.rounds)),
    }
    result["target_seconds"] = 1.0
    path = record("build", result)
    print(
        f"build {args.modules} modules: {result['total_seconds']}s total "
        f"(parse+validate {result['parse_validate_seconds']}s, "
        f"build {result['build_seconds']}s; best of {args.rounds}) -> {path}"
    )


if __name__ == "__main__":
    main()
