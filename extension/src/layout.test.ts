import { describe, expect, test } from "vitest";
import { generateConfig } from "../bench/generate";
import { autoLayout, DAGRE_LIMIT, freeSpot, layeredLayout, NODE_HEIGHT, NODE_WIDTH, placeMissing } from "./layout";
import { configToGraph, graphContext } from "./serialization";
import { example, schema } from "./test/fixtures";
import { Validator, referenceErrors } from "./validation";
import type { Layout } from "./types";

const ctx = graphContext(schema);

function overlapping(layout: Layout): string[] {
  const entries = Object.entries(layout);
  const out: string[] = [];
  entries.forEach(([a, p], i) => {
    for (const [b, q] of entries.slice(i + 1)) {
      if (Math.abs(p.x - q.x) < NODE_WIDTH && Math.abs(p.y - q.y) < NODE_HEIGHT) out.push(`${a}~${b}`);
    }
  });
  return out;
}

describe("automatic layout", () => {
  test("dagre lays an example out left to right along its edges, nothing overlapping", () => {
    const g = configToGraph(example("orders-orders"), ctx);
    const layout = autoLayout(
      g.nodes.map((n) => n.id),
      g.edges,
    );
    expect(Object.keys(layout)).toHaveLength(g.nodes.length);
    expect(overlapping(layout)).toEqual([]);
    expect(layout["module:router"].x).toBeLessThan(layout["module:orders-api"].x);
  });

  test("a big graph gets the layered layout: every node placed once, edges pointing right", () => {
    const config = generateConfig(500);
    const g = configToGraph(config, ctx);
    expect(g.nodes.length).toBeGreaterThan(DAGRE_LIMIT);
    const layout = layeredLayout(
      g.nodes.map((n) => n.id),
      g.edges,
    );
    expect(Object.keys(layout)).toHaveLength(500);
    expect(overlapping(layout)).toEqual([]);
    const backwards = g.edges.filter((e) => layout[e.source].x >= layout[e.target].x);
    expect(backwards).toEqual([]);
  });

  test("cycles do not stop the layered layout", () => {
    const ids = Array.from({ length: 200 }, (_, i) => `n${i}`);
    const edges = ids.map((id, i) => ({ source: id, target: ids[(i + 1) % ids.length] }));
    expect(Object.keys(layeredLayout(ids, edges))).toHaveLength(200);
  });

  test("new nodes go beside the placed ones, which never move", () => {
    const placed = { a: { x: 0, y: 0 }, b: { x: 300, y: 0 } };
    const fresh = placeMissing(["a", "b", "c"], [{ source: "a", target: "c" }], placed);
    expect(Object.keys(fresh)).toEqual(["c"]);
    expect(fresh.c.x).toBeGreaterThan(300 + NODE_WIDTH);
  });

  test("a node added at a taken spot is nudged clear of the others", () => {
    const spot = freeSpot({ x: 0, y: 0 }, [
      { x: 10, y: 10 },
      { x: 0, y: 94 },
    ]);
    expect(overlapping({ new: spot, a: { x: 10, y: 10 }, b: { x: 0, y: 94 } })).toEqual([]);
  });
});

describe("the benchmark's generated config", () => {
  test("has the nodes asked for and is valid", () => {
    const config = generateConfig(500);
    expect(configToGraph(config, ctx).nodes).toHaveLength(500);
    expect(configToGraph(config, ctx).unplaced).toEqual([]);
    expect(new Validator(schema.file).validate(config)).toEqual([]);
    expect(referenceErrors(config, ctx)).toEqual([]);
  });
});
