import { applyPatch, deepClone } from "fast-json-patch";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { getIn, setIn } from "./json";
import { createCanvasStore, type CanvasStore } from "./store";
import { diffConfig, diffLayout, KernelSync } from "./sync";
import { example, examples, schema } from "./test/fixtures";
import type { PatchPayload, WorkflowConfig } from "./types";

const apply = (doc: WorkflowConfig, payload: { ops: PatchPayload["ops"] }) =>
  applyPatch(deepClone(doc), payload.ops, true).newDocument;

describe("diffConfig", () => {
  const orders = example("orders-orders");

  test("a property change is one replace at that field", () => {
    const next = setIn(orders, ["modules", 0, "config", "address"], "127.0.0.1:9000");
    expect(diffConfig(orders, next)).toEqual([
      { op: "replace", path: "/modules/0/config/address", value: "127.0.0.1:9000" },
    ]);
  });

  test("adding and removing fields", () => {
    const added = setIn(orders, ["modules", 1, "config"], { prefix: "/api" });
    expect(diffConfig(orders, added)).toEqual([{ op: "add", path: "/modules/1/config", value: { prefix: "/api" } }]);
    expect(diffConfig(added, orders)).toEqual([{ op: "remove", path: "/modules/1/config" }]);
  });

  test("removing the first of many list items is one remove", () => {
    const modules = Array.from({ length: 500 }, (_, i) => ({ name: `m${i}`, type: "cache" }));
    const before = { modules };
    const after = { modules: modules.slice(1) };
    expect(diffConfig(before, after)).toEqual([{ op: "remove", path: "/modules/0" }]);
    const inserted = { modules: [...modules.slice(0, 250), { name: "new", type: "cache" }, ...modules.slice(250)] };
    expect(diffConfig(before, inserted)).toEqual([
      { op: "add", path: "/modules/250", value: { name: "new", type: "cache" } },
    ]);
  });

  test("a removal next to changed items stays aligned by name", () => {
    const a: WorkflowConfig = {
      modules: [{ name: "a", dependsOn: ["b"] }, { name: "b" }, { name: "c", dependsOn: ["b"] }],
    };
    const b: WorkflowConfig = { modules: [{ name: "a" }, { name: "c" }] };
    const ops = diffConfig(a, b);
    expect(ops).toEqual([
      { op: "remove", path: "/modules/0/dependsOn" },
      { op: "remove", path: "/modules/1" },
      { op: "remove", path: "/modules/1/dependsOn" },
    ]);
    expect(apply(a, { ops })).toEqual(b);
  });

  test("keys with / and ~ are escaped", () => {
    const ops = diffConfig({ pipelines: {} }, { pipelines: { "a/b~c": [] } });
    expect(ops).toEqual([{ op: "add", path: "/pipelines/a~1b~0c", value: [] }]);
  });

  test.each(examples.map((e) => [e.name, e.config] as const))("%s: patches rebuild any edit of it", (_name, config) => {
    // Take the example apart and put it back together in random ways; the ops always replay.
    const random = mulberry32(7);
    let current: WorkflowConfig = config;
    for (let round = 0; round < 40; round++) {
      const next = mutate(current, random);
      const ops = diffConfig(current, next);
      expect(apply(current, { ops })).toEqual(next);
      current = next;
    }
  });

  test("layout differences: moved, new and dropped positions", () => {
    expect(
      diffLayout({ a: { x: 1, y: 1 }, b: { x: 2, y: 2 } }, { a: { x: 1, y: 1 }, b: { x: 3, y: 2 }, c: { x: 0, y: 0 } }),
    ).toEqual({
      b: { x: 3, y: 2 },
      c: { x: 0, y: 0 },
    });
    expect(diffLayout({ a: { x: 1, y: 1 } }, {})).toEqual({ a: null });
  });
});

describe("KernelSync", () => {
  let store: CanvasStore;
  let sent: PatchPayload[];
  let sync: KernelSync;
  beforeEach(() => {
    store = createCanvasStore({ schema, config: example("hello-hello"), layout: { "module:server": { x: 0, y: 0 } } });
    sent = [];
    sync = new KernelSync(store, (p) => sent.push(p), 4);
  });
  afterEach(() => sync.dispose());

  test("a move sends only the moved node's layout, no config ops", () => {
    store.getState().actions.moveNodes({ "module:router": { x: 300.4, y: 40 } });
    expect(sent).toEqual([{ base: 4, ops: [], layout: { "module:router": { x: 300, y: 40 } } }]);
  });

  test("a property change sends the minimal ops", () => {
    store.getState().actions.updateEntry(["modules", 0, "config", "address"], "0.0.0.0:80");
    expect(sent).toEqual([
      { base: 4, ops: [{ op: "replace", path: "/modules/0/config/address", value: "0.0.0.0:80" }], layout: {} },
    ]);
  });

  test("each edit goes out at once, on the base the previous patch leads to", () => {
    const { actions } = store.getState();
    actions.moveNodes({ "module:router": { x: 10, y: 10 } });
    actions.moveNodes({ "module:router": { x: 20, y: 20 } });
    actions.updateEntry(["modules", 1, "config"], { prefix: "/v1" });
    expect(sent.map((p) => p.base)).toEqual([4, 5, 6]);
    expect(sent[1]).toEqual({ base: 5, ops: [], layout: { "module:router": { x: 20, y: 20 } } });
    expect(sent[2]).toEqual({
      base: 6,
      ops: [{ op: "add", path: "/modules/1/config", value: { prefix: "/v1" } }],
      layout: {},
    });
    // The kernel's acks trail behind; they do not move the base back.
    sync.receiveRevision(5);
    actions.moveNodes({ "module:router": { x: 30, y: 30 } });
    expect(sent[3].base).toBe(7);
  });

  test("undo is an edit like any other: it sends the way back", () => {
    const { actions } = store.getState();
    actions.updateEntry(["modules", 0, "config", "address"], "0.0.0.0:80");
    actions.undo();
    expect(sent[1]).toEqual({
      base: 5,
      ops: [{ op: "replace", path: "/modules/0/config/address", value: "${HELLO_ADDRESS:-127.0.0.1:8080}" }],
      layout: {},
    });
  });

  test("a revision beyond ours (someone else's change) becomes the next base", () => {
    sync.receiveRevision(9);
    store.getState().actions.moveNodes({ "module:router": { x: 1, y: 1 } });
    expect(sent[0].base).toBe(9);
  });

  test("a stale revision from Python replaces local state", () => {
    const { actions } = store.getState();
    actions.updateEntry(["modules", 0, "config", "address"], "mine:1");
    const theirs = setIn(example("hello-hello"), ["modules", 1, "config"], { prefix: "/py" });
    sync.receiveConfig(theirs, { "module:server": { x: 9, y: 9 } }, 8);
    const state = store.getState();
    expect(state.config).toEqual(theirs);
    expect(state.layout).toEqual({ "module:server": { x: 9, y: 9 } });
    expect(state.past).toEqual([]);
    expect(sync.revision).toBe(8);
    expect(sync.pending()).toBeNull();
    actions.updateEntry(["modules", 1, "config", "prefix"], "/next");
    expect(sent[sent.length - 1]).toEqual({
      base: 8,
      ops: [{ op: "replace", path: "/modules/1/config/prefix", value: "/next" }],
      layout: {},
    });
  });

  test("a config equal to ours (a resend after a refusal, or an echo) changes nothing", () => {
    const { actions } = store.getState();
    actions.updateEntry(["modules", 0, "config", "address"], "a:1");
    const before = store.getState().config;
    sync.receiveConfig(deepClone(before) as WorkflowConfig, undefined, 5);
    expect(store.getState().config).toBe(before);
    expect(store.getState().past).toHaveLength(1);
    actions.updateEntry(["modules", 0, "config", "address"], "a:2");
    expect(sent[1]).toEqual({
      base: 5,
      ops: [{ op: "replace", path: "/modules/0/config/address", value: "a:2" }],
      layout: {},
    });
  });

  test("a reload after a refused patch puts back what the kernel has, even if it sent the same", () => {
    const kernelConfig = store.getState().config;
    store.getState().actions.updateEntry(["modules", 0, "config", "address"], "refused:1");
    sync.reload(kernelConfig, { "module:server": { x: 0, y: 0 } }, 5);
    expect(store.getState().config).toBe(kernelConfig);
    expect(sync.revision).toBe(5);
    expect(sync.pending()).toBeNull();
  });

  test("a Python-side change re-renders the canvas without any patch", () => {
    const next = setIn(example("hello-hello"), ["pipelines", "bye"], [{ type: "respond", body: "bye" }]);
    sync.receiveConfig(next, undefined, 5);
    expect(store.getState().nodeIndex.has("pipeline:bye")).toBe(true);
    expect(sent).toEqual([]);
  });

  test("standalone (no patch callable) nothing is sent and edits stay local", () => {
    const alone = new KernelSync(store, undefined);
    store.getState().actions.moveNodes({ "module:router": { x: 1, y: 1 } });
    expect(alone.pending()).toBeNull();
    alone.dispose();
  });
});

// --- helpers -----------------------------------------------------------------------------

function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One random structural edit: remove, insert or change somewhere in the tree. */
function mutate(config: WorkflowConfig, random: () => number): WorkflowConfig {
  const paths: (string | number)[][] = [];
  const walk = (value: unknown, path: (string | number)[]) => {
    paths.push(path);
    if (Array.isArray(value)) value.forEach((v, i) => walk(v, [...path, i]));
    else if (value && typeof value === "object") for (const [k, v] of Object.entries(value)) walk(v, [...path, k]);
  };
  walk(config, []);
  const path = paths[1 + Math.floor(random() * (paths.length - 1))] ?? [];
  const parent = getIn(config, path.slice(0, -1));
  const roll = random();
  if (roll < 0.35) return setIn(config, path, undefined);
  if (roll < 0.6 && Array.isArray(parent)) {
    const index = path[path.length - 1] as number;
    const copy = parent.slice();
    copy.splice(index, 0, { inserted: Math.floor(random() * 100) });
    return setIn(config, path.slice(0, -1), copy);
  }
  return setIn(config, path, `changed-${Math.floor(random() * 1000)}`);
}
