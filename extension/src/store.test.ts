import { describe, expect, test } from "vitest";
import { getIn } from "./json";
import { createCanvasStore, HISTORY_LIMIT, type CanvasStore } from "./store";
import { example, schema } from "./test/fixtures";
import type { WorkflowConfig } from "./types";

function make(config: WorkflowConfig = example("hello-hello"), layout = {}): CanvasStore {
  return createCanvasStore({ schema, config, layout, validateNow: true });
}

/** Do `edit`, then check undo restores the state before it and redo the state after it. */
function roundTrip(store: CanvasStore, edit: () => void) {
  const before = { config: store.getState().config, layout: store.getState().layout };
  edit();
  const after = { config: store.getState().config, layout: store.getState().layout };
  expect(after).not.toEqual(before);
  store.getState().actions.undo();
  expect({ config: store.getState().config, layout: store.getState().layout }).toEqual(before);
  store.getState().actions.redo();
  expect({ config: store.getState().config, layout: store.getState().layout }).toEqual(after);
  return after;
}

describe("edits and their undo/redo", () => {
  test("add from the palette", () => {
    const store = make();
    const after = roundTrip(store, () => {
      store.getState().actions.addNode({ kind: "module", type: "cache" }, { x: 5, y: 6 });
      expect(store.getState().selection).toEqual({ kind: "node", id: "module:cache-1" });
    });
    expect(getIn(after.config, ["modules", 2])).toEqual({ name: "cache-1", type: "cache", config: {} });
    expect(after.layout["module:cache-1"]).toEqual({ x: 5, y: 6 });
  });

  test("add a pipeline and a trigger", () => {
    const store = make();
    roundTrip(store, () => store.getState().actions.addNode({ kind: "pipeline" }, { x: 0, y: 0 }));
    expect(store.getState().nodeIndex.has("pipeline:pipeline-1")).toBe(true);
    roundTrip(store, () => store.getState().actions.addNode({ kind: "trigger", trigger: "http" }, { x: 0, y: 0 }));
    expect(store.getState().nodeIndex.has("trigger:http:0")).toBe(true);
    // Not connected yet: the node says what it lacks.
    expect(store.getState().problems["trigger:http:0"]?.map((p) => p.message)).toEqual(["is required", "is required"]);
  });

  test("delete", () => {
    const store = make();
    store.getState().actions.select({ kind: "node", id: "module:server" });
    const after = roundTrip(store, () => store.getState().actions.deleteSelection());
    expect((after.config.modules as unknown[]).length).toBe(1);
  });

  test("move", () => {
    const store = make();
    const after = roundTrip(store, () => store.getState().actions.moveNodes({ "module:server": { x: 10.6, y: -3.2 } }));
    expect(after.layout).toEqual({ "module:server": { x: 11, y: -3 } });
    expect(after.config).toBe(example("hello-hello"));
  });

  test("connect", () => {
    const store = make();
    store.getState().actions.addNode({ kind: "pipeline" }, { x: 0, y: 0 });
    const after = roundTrip(store, () => {
      expect(store.getState().actions.connect("module:router", "pipeline:pipeline-1")).toBeNull();
      expect(store.getState().selection).toEqual({ kind: "edge", id: "route:1" });
    });
    expect(getIn(after.config, ["workflows", "http", "routes", 1])).toEqual({
      method: "GET",
      path: "/pipeline-1",
      handler: "pipeline-1",
    });
  });

  test("a refused connection changes nothing and says why", () => {
    const store = make();
    const before = store.getState().config;
    expect(store.getState().actions.connect("pipeline:hello", "module:server")).toMatch(/cannot be connected/);
    expect(store.getState().config).toBe(before);
    expect(store.getState().notice?.text).toMatch(/cannot be connected/);
    expect(store.getState().past).toEqual([]);
  });

  test("property change", () => {
    const store = make();
    const after = roundTrip(store, () =>
      store.getState().actions.updateEntry(["modules", 1, "config"], { prefix: "/api" }),
    );
    expect(getIn(after.config, ["modules", 1, "config", "prefix"])).toBe("/api");
  });

  test("rename", () => {
    const store = make(example("hello-hello"), { "module:server": { x: 1, y: 2 } });
    const after = roundTrip(store, () => expect(store.getState().actions.rename("module:server", "web")).toBeNull());
    expect(after.layout).toEqual({ "module:web": { x: 1, y: 2 } });
    expect(store.getState().nodeIndex.has("module:web")).toBe(true);
    expect(store.getState().actions.rename("module:web", "router")).toMatch(/already exists/);
  });

  test("import", () => {
    const store = make();
    const after = roundTrip(store, () =>
      expect(store.getState().actions.importYaml("modules:\n  - {name: c, type: cache}\n")).toBeNull(),
    );
    expect(after.config).toEqual({ modules: [{ name: "c", type: "cache" }] });
    // No positions in the file: an automatic layout, kept so it is saved.
    expect(Object.keys(after.layout)).toEqual(["module:c"]);
    expect(store.getState().actions.importYaml("modules: [")).toMatch(/^line \d+:/);
  });

  test("auto-layout", () => {
    const store = make();
    const after = roundTrip(store, () => store.getState().actions.autoLayoutAll());
    expect(Object.keys(after.layout).sort()).toEqual(["module:router", "module:server", "pipeline:hello"]);
  });

  test("history is bounded", () => {
    const store = make();
    for (let i = 0; i < HISTORY_LIMIT + 25; i++)
      store.getState().actions.moveNodes({ "module:server": { x: i, y: 0 } });
    expect(store.getState().past).toHaveLength(HISTORY_LIMIT);
    for (let i = 0; i < HISTORY_LIMIT + 5; i++) store.getState().actions.undo();
    expect(store.getState().layout["module:server"]).toEqual({ x: 24, y: 0 });
    expect(store.getState().future).toHaveLength(HISTORY_LIMIT);
  });

  test("a new edit drops the redo stack; a no-op edit records nothing", () => {
    const store = make();
    const { actions } = store.getState();
    actions.moveNodes({ "module:server": { x: 1, y: 1 } });
    actions.undo();
    expect(store.getState().future).toHaveLength(1);
    actions.moveNodes({ "module:server": { x: 2, y: 2 } });
    expect(store.getState().future).toHaveLength(0);
    actions.updateEntry(["modules", 0, "type"], "http.server");
    expect(store.getState().past).toHaveLength(1);
  });
});

describe("derived state", () => {
  test("nodes without a position get one; those with one keep it", () => {
    const store = make(example("orders-orders"), { "module:server": { x: 1000, y: 1000 } });
    const nodes = store.getState().nodes;
    expect(nodes.find((n) => n.id === "module:server")?.position).toEqual({ x: 1000, y: 1000 });
    const positions = new Set(nodes.map((n) => `${n.position.x},${n.position.y}`));
    expect(positions.size).toBe(nodes.length);
  });

  test("an edit reuses every node object it did not change", () => {
    const store = make(example("orders-orders"));
    const before = new Map(store.getState().nodes.map((n) => [n.id, n]));
    store.getState().actions.updateEntry(["modules", 3, "config", "ttl"], "1h");
    const changed = store.getState().nodes.filter((n) => before.get(n.id) !== n);
    expect(changed).toEqual([]);
    store.getState().actions.moveNodes({ "module:store": { x: 1, y: 2 } });
    expect(
      store
        .getState()
        .nodes.filter((n) => before.get(n.id) !== n)
        .map((n) => n.id),
    ).toEqual(["module:store"]);
  });

  test("stats deltas merge; untouched entries keep their identity", () => {
    const store = make();
    const { actions } = store.getState();
    actions.mergeStats({
      "pipeline:hello": { status: "running", executions: 1, errors: 0 },
      "module:server": { status: "idle" },
    });
    const first = store.getState().stats;
    actions.mergeStats({ "pipeline:hello": { status: "ok", lastMs: 2.5 } });
    const second = store.getState().stats;
    expect(second["pipeline:hello"]).toEqual({ status: "ok", executions: 1, errors: 0, lastMs: 2.5 });
    expect(second["module:server"]).toBe(first["module:server"]);
    actions.mergeStats({ "pipeline:hello": { status: "ok" } });
    expect(store.getState().stats).toBe(second);
  });

  test("kernel diagnostics are pinned by id; unknown ids go to config", () => {
    const store = make();
    store.getState().actions.setKernelDiagnostics([
      { id: "module:server", path: "config.address", message: "port in use", source: "engine" },
      { id: "route:0", message: "bad route", source: "engine" },
      { id: "module:gone", message: "old news", source: "engine" },
    ]);
    const { problems, problemCount, edges } = store.getState();
    expect(problems["module:server"]?.map((p) => p.message)).toEqual(["port in use"]);
    expect(problems["route:0"]?.map((p) => p.message)).toEqual(["bad route"]);
    expect(problems.config?.map((p) => p.message)).toEqual(["old news"]);
    expect(problemCount).toBe(3);
    expect(edges.find((e) => e.id === "route:0")?.className).toContain("fnb-edge-error");
  });

  test("local schema errors are pinned to their node", () => {
    const store = make();
    store.getState().actions.updateEntry(["modules", 0, "config", "maxBodyBytes"], -5);
    expect(store.getState().problems["module:server"]).toEqual([
      {
        id: "module:server",
        loc: ["modules", 0, "config", "maxBodyBytes"],
        path: "config.maxBodyBytes",
        message: "must be >= 0",
        source: "local",
      },
    ]);
  });

  test("a kernel schema verdict on a field already flagged here is shown once", () => {
    const store = make();
    store.getState().actions.updateEntry(["modules", 0, "config", "maxBodyBytes"], -5);
    const loc = ["modules", 0, "config", "maxBodyBytes"];
    store.getState().actions.setKernelDiagnostics([
      {
        id: "module:server",
        loc,
        path: "modules[0].config.maxBodyBytes",
        message: "Input should be >= 0",
        source: "schema",
      },
      { id: "module:server", loc, path: "modules[0].config.maxBodyBytes", message: "cannot bind", source: "engine" },
    ]);
    expect(store.getState().problems["module:server"]?.map((p) => p.message)).toEqual(["must be >= 0", "cannot bind"]);
  });

  test("selection follows ReactFlow's select changes", () => {
    const store = make();
    const { actions } = store.getState();
    actions.onNodesChange([{ type: "select", id: "module:router", selected: true }]);
    expect(store.getState().selection).toEqual({ kind: "node", id: "module:router" });
    actions.onEdgesChange([{ type: "select", id: "route:0", selected: true }]);
    expect(store.getState().selection).toBeNull(); // a node and an edge: nothing to show
    actions.onNodesChange([{ type: "select", id: "module:router", selected: false }]);
    expect(store.getState().selection).toEqual({ kind: "edge", id: "route:0" });
    actions.clearSelection();
    expect(store.getState().selection).toBeNull();
    expect(store.getState().edges.some((e) => e.selected)).toBe(false);
  });

  test("a node being dragged stays under the pointer whatever else changes", () => {
    const store = make();
    const { actions } = store.getState();
    actions.onNodesChange([{ type: "position", id: "module:server", position: { x: 77, y: 88 }, dragging: true }]);
    actions.setKernelDiagnostics([{ id: "module:router", message: "x", source: "engine" }]);
    expect(store.getState().nodes.find((n) => n.id === "module:server")?.position).toEqual({ x: 77, y: 88 });
    expect(store.getState().past).toHaveLength(0);
  });
});
