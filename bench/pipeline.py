"""In-process pipeline throughput: a 5-step pipeline run back to back on one core.

Target: >= 20,000 executions/s. Steps: validate (JSON Schema), set, transform (map),
conditional (one case running a set), respond. Each run is a full engine execution (id,
context, in-flight accounting), started with `trigger_workflow`, as a trigger would.

    python bench/pipeline.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from common import pin_to_core, record

from flownb import Engine, parse_config

CONFIG = """
pipelines:
  five:
    - type: validate
      schema:
        type: object
        required: [item, qty]
        properties: {item: {type: string}, qty: {type: integer, minimum: 1}}
    - type: set
      values: {total: "{{ data.qty * 3 }}"}
    - type: transform
      operations:
        - map: {item: item, qty: qty}
    - type: conditional
      cases:
        - when: "vars.total > 10"
          steps: [{type: set, values: {big: true}}]
    - type: respond
      status: 201
      body: {item: "{{ data.item }}", total: "{{ vars.total }}"}
"""


async def measure(seconds: float) -> dict[str, float]:
    engine = Engine(parse_config(CONFIG))
    await engine.start()
    data = {"item": "book", "qty": 5}
    trigger = engine.trigger_workflow
    for _ in range(2000):  # warm-up
        await trigger("pipeline", "five", data)
    reply = await trigger("pipeline", "five", data)
    assert reply.status == 201 and reply.body == {"item": "book", "total": 15}, reply
    count, started = 0, time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(1000):
            await trigger("pipeline", "five", data)
        count += 1000
        now = time.perf_counter()
        if now >= deadline:
            break
    elapsed = now - started
    await engine.stop()
    return {
        "executions": count,
        "seconds": round(elapsed, 3),
        "executions_per_second": round(count / elapsed),
        "microseconds_per_execution": round(elapsed / count * 1e6, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    pin_to_core(0)
    result = asyncio.run(measure(args.seconds))
    result["target_executions_per_second"] = 20000
    path = record("pipeline", result)
    print(
        f"5-step pipeline: {result['executions_per_second']:,} executions/s "
        f"({result['microseconds_per_execution']} us each) on one core -> {path}"
    )


if __name__ == "__main__":
    main()
