import { applyPatch, deepClone } from "fast-json-patch";
import { describe, expect, test } from "vitest";
import { getIn } from "./json";
import {
  addModule,
  configToGraph,
  connect,
  deleteElements,
  exportLayoutYaml,
  exportYaml,
  graphContext,
  graphToConfig,
  idForPath,
  importLayoutYaml,
  importYaml,
  planConnection,
  renameNode,
  type EditResult,
  type Graph,
} from "./serialization";
import { diffConfig } from "./sync";
import { parse11 as parse } from "./yaml11";
import { example, examples, schema } from "./test/fixtures";
import type { Layout, WorkflowConfig } from "./types";

const ctx = graphContext(schema);
const graphOf = (config: WorkflowConfig): Graph => configToGraph(config, ctx);
const edge = (g: Graph, id: string) => g.edges.find((e) => e.id === id);

function ok(result: EditResult | { error: string }): EditResult {
  if ("error" in result) throw new Error(result.error);
  return result;
}

describe("every example", () => {
  test.each(examples.map((e) => [e.name, e] as const))(
    "%s reads the same in TypeScript as in the kernel",
    (_name, ex) => {
      const imported = importYaml(ex.yaml);
      expect("error" in imported).toBe(false);
      expect((imported as { config: WorkflowConfig }).config).toEqual(ex.config);
    },
  );

  test.each(examples.map((e) => [e.name, e.config] as const))(
    "%s round-trips config -> graph -> config",
    (_name, config) => {
      const graph = graphOf(config);
      expect(graph.unplaced).toEqual([]);
      expect(graphToConfig(graph, config)).toEqual(config);
      // and the graph alone carries everything: nothing is left in what remains.
      const emptied = graphToConfig({ nodes: [], edges: [], unplaced: [] }, config);
      expect(getIn(emptied, ["modules"]) ?? []).toEqual([]);
      expect(getIn(emptied, ["pipelines"]) ?? {}).toEqual({});
    },
  );

  test.each(examples.map((e) => [e.name, e.config] as const))(
    "%s exports YAML that parses back equal",
    (_name, config) => {
      const text = exportYaml(config);
      expect(parse(text)).toEqual(config);
      expect(text).not.toContain("layout:");
      const back = importYaml(text);
      expect(back).toEqual({ config, layout: {} });
    },
  );

  test.each(examples.map((e) => [e.name, e.config] as const))(
    "%s: node ids and edge ids are unique",
    (_name, config) => {
      // (A trigger node and its edge share `trigger:KIND:I`, as docs/canvas.md names both.)
      const graph = graphOf(config);
      expect(new Set(graph.nodes.map((n) => n.id)).size).toBe(graph.nodes.length);
      expect(new Set(graph.edges.map((e) => e.id)).size).toBe(graph.edges.length);
    },
  );
});

describe("config -> graph", () => {
  test("hello: modules, a pipeline, dependsOn and a route", () => {
    const g = graphOf(example("hello-hello"));
    expect(g.nodes.map((n) => n.id)).toEqual(["module:server", "module:router", "pipeline:hello"]);
    expect(g.nodes[0]).toMatchObject({ label: "server", detail: "http.server", category: "HTTP" });
    expect(g.nodes[2].detail).toBe("pipeline · 1 step");
    expect(edge(g, "dependsOn:router:server")).toMatchObject({
      source: "module:router",
      target: "module:server",
      kind: "dependsOn",
    });
    expect(edge(g, "route:0")).toMatchObject({
      source: "module:router",
      target: "pipeline:hello",
      label: "GET /hello",
    });
  });

  test("orders: references, hooks, subscriptions and multi-method routes", () => {
    const g = graphOf(example("orders-orders"));
    expect(edge(g, "ref:orders-api:engine")).toMatchObject({ source: "module:orders-api", target: "module:orders-sm" });
    expect(edge(g, "ref:orders-sm:events.broker")).toMatchObject({ target: "module:bus", implicit: false });
    expect(edge(g, "ref:event-recorder:pipeline")).toMatchObject({ target: "pipeline:record-event" });
    expect(edge(g, "route:0")).toMatchObject({ target: "module:orders-api", label: "GET|POST /orders" });
    expect(edge(g, "hook:0")).toMatchObject({
      source: "module:orders-sm",
      target: "pipeline:price-order",
      label: "validate",
    });
    expect(edge(g, "subscription:1")).toMatchObject({
      source: "module:bus",
      target: "module:notifier",
      label: "notifications",
    });
  });

  test("chat: a producer goes from its handler to the only broker", () => {
    const g = graphOf(example("chat-chat"));
    expect(edge(g, "producer:0")).toMatchObject({
      source: "module:stamp",
      target: "module:bus",
      label: "chat.archive, chat.notify",
    });
  });

  test("scheduled: jobs and triggers", () => {
    const g = graphOf(example("scheduled-report"));
    expect(edge(g, "job:0")).toMatchObject({ source: "module:every-2s", target: "pipeline:heartbeat" });
    expect(edge(g, "trigger:schedule:0")).toMatchObject({
      source: "trigger:schedule:0",
      target: "pipeline:nightly-report",
    });
    expect(g.nodes.find((n) => n.id === "trigger:http:0")?.label).toBe("POST /report/run");
  });

  test("events: event handlers and event triggers", () => {
    const g = graphOf(example("events-payments"));
    expect(edge(g, "eventHandler:0")).toMatchObject({
      source: "module:patterns",
      target: "pipeline:raise-alert",
      label: "card-testing",
    });
    expect(edge(g, "trigger:event:0")).toMatchObject({ target: "pipeline:review-payment" });
  });

  test("an implicit reference is drawn to the only provider, and marked implicit", () => {
    const config: WorkflowConfig = {
      modules: [
        { name: "bus", type: "messaging.broker" },
        { name: "sm", type: "statemachine.engine", config: { events: { topic: "t" } } },
      ],
    };
    expect(edge(graphOf(config), "ref:sm:events.broker")).toMatchObject({ target: "module:bus", implicit: true });
  });

  test("a handler is the module of that name, else the pipeline", () => {
    const config: WorkflowConfig = {
      modules: [
        { name: "router", type: "http.router" },
        { name: "x", type: "http.handler" },
      ],
      pipelines: { x: [], y: [] },
      workflows: {
        http: {
          routes: [
            { path: "/a", handler: "x" },
            { path: "/b", handler: "y" },
            { path: "/c", handler: "nope" },
          ],
        },
      },
    };
    const g = graphOf(config);
    expect(edge(g, "route:0")?.target).toBe("module:x");
    expect(edge(g, "route:1")?.target).toBe("pipeline:y");
    expect(edge(g, "route:2")).toBeUndefined();
    expect(g.unplaced).toEqual([{ id: "route:2", path: ["workflows", "http", "routes", 2], anchor: "module:router" }]);
    expect(graphToConfig(g, config)).toEqual(config);
  });

  test("diagnostic paths map to node and edge ids", () => {
    const config = example("orders-orders");
    expect(idForPath(config, ["modules", 4, "config", "events"])).toBe("module:orders-sm");
    expect(idForPath(config, ["pipelines", "price-order", 0])).toBe("pipeline:price-order");
    expect(idForPath(config, ["workflows", "http", "routes", 3, "path"])).toBe("route:3");
    expect(idForPath(config, ["workflows", "statemachine", "hooks", 1])).toBe("hook:1");
    expect(idForPath(config, ["workflows", "messaging", "producers", 0])).toBe("producer:0");
    expect(idForPath(config, ["workflows", "scheduler", "jobs", 0])).toBe("job:0");
    expect(idForPath(config, ["workflows", "event", "handlers", 2])).toBe("eventHandler:2");
    expect(idForPath(config, ["triggers", "schedule", "jobs", 0, "cron"])).toBe("trigger:schedule:0");
    expect(idForPath(config, ["workflows", "statemachine", "definitions", 0])).toBe("config");
  });
});

describe("connecting", () => {
  const base: WorkflowConfig = {
    modules: [
      { name: "server", type: "http.server" },
      { name: "router", type: "http.router" },
      { name: "bus", type: "messaging.broker" },
      { name: "sm", type: "statemachine.engine" },
      { name: "tick", type: "scheduler", config: { interval: "1s" } },
      { name: "cep", type: "event.processor" },
      { name: "api", type: "http.handler" },
      { name: "cache", type: "cache" },
    ],
    pipelines: { work: [] },
    triggers: { http: { routes: [{ path: "/go", method: "POST" }] } },
  };
  const run = (source: string, target: string, config = base) => ok(connect(config, {}, ctx, source, target));

  test("router -> handler adds a route", () => {
    const r = run("module:router", "pipeline:work");
    expect(getIn(r.config, ["workflows", "http", "routes"])).toEqual([
      { method: "GET", path: "/work", handler: "work" },
    ]);
    expect(r.select).toBe("route:0");
    expect(edge(graphOf(r.config), "route:0")).toMatchObject({ source: "module:router", target: "pipeline:work" });
  });

  test("broker -> handler adds a subscription; handler -> broker a producer", () => {
    const sub = run("module:bus", "module:api");
    expect(getIn(sub.config, ["workflows", "messaging", "subscriptions"])).toEqual([{ topic: "api", handler: "api" }]);
    const prod = run("pipeline:work", "module:bus");
    expect(getIn(prod.config, ["workflows", "messaging", "producers"])).toEqual([{ name: "work", topic: "work" }]);
    expect(edge(graphOf(prod.config), "producer:0")).toMatchObject({ source: "pipeline:work", target: "module:bus" });
  });

  test("state machine -> handler adds a hook; scheduler -> handler a job", () => {
    expect(getIn(run("module:sm", "pipeline:work").config, ["workflows", "statemachine", "hooks"])).toEqual([
      { handler: "work" },
    ]);
    expect(getIn(run("module:tick", "pipeline:work").config, ["workflows", "scheduler", "jobs"])).toEqual([
      { scheduler: "tick", job: "work" },
    ]);
  });

  test("event processor -> handler takes the first pattern, and is an error without one", () => {
    const withPattern = { ...base, workflows: { event: { patterns: [{ patternId: "p1", eventTypes: ["x"] }] } } };
    expect(getIn(run("module:cep", "pipeline:work", withPattern).config, ["workflows", "event", "handlers"])).toEqual([
      { patternId: "p1", handler: "work" },
    ]);
    const without = run("module:cep", "pipeline:work");
    expect(getIn(without.config, ["workflows", "event", "handlers"])).toEqual([{ handler: "work" }]);
  });

  test("trigger -> pipeline or handler sets the trigger's target", () => {
    const r = run("trigger:http:0", "pipeline:work");
    expect(getIn(r.config, ["triggers", "http", "routes", 0])).toEqual({
      path: "/go",
      method: "POST",
      workflow: "pipeline",
      action: "work",
    });
    expect(edge(graphOf(r.config), "trigger:http:0")?.target).toBe("pipeline:work");
    const h = run("trigger:http:0", "module:api");
    expect(getIn(h.config, ["triggers", "http", "routes", 0, "workflow"])).toBe("http");
    expect("error" in planConnection(base, ctx, "trigger:http:0", "module:cache")).toBe(true);
  });

  test("any other module -> module adds dependsOn, once", () => {
    const r = run("module:router", "module:server");
    expect(getIn(r.config, ["modules", 1, "dependsOn"])).toEqual(["server"]);
    expect(r.select).toBe("dependsOn:router:server");
    expect(connect(r.config, {}, ctx, "module:router", "module:server")).toEqual({
      error: '"router" already depends on "server"',
    });
  });

  test("a module -> pipeline fills the module's one pipeline field", () => {
    const config = { ...base, modules: [...(base.modules as never[]), { name: "h", type: "messaging.handler" }] };
    const r = run("module:h", "pipeline:work", config);
    expect(getIn(r.config, ["modules", 8, "config", "pipeline"])).toBe("work");
    expect(edge(graphOf(r.config), "ref:h:pipeline")?.target).toBe("pipeline:work");
  });

  test("nonsense is refused with a reason", () => {
    expect(planConnection(base, ctx, "module:api", "trigger:http:0")).toEqual({ error: "a trigger has no inputs" });
    expect(planConnection(base, ctx, "module:api", "module:api")).toMatchObject({ error: expect.any(String) });
    expect(planConnection(base, ctx, "pipeline:work", "module:cache")).toMatchObject({ error: expect.any(String) });
  });

  test("a second router takes over the http workflow only if none is named", () => {
    const two = { ...base, modules: [...(base.modules as never[]), { name: "r2", type: "http.router" }] };
    const r = run("module:r2", "pipeline:work", two);
    expect(getIn(r.config, ["workflows", "http", "router"])).toBe("r2");
    expect(connect(r.config, {}, ctx, "module:router", "pipeline:work")).toMatchObject({
      error: expect.stringContaining("workflows.http.router"),
    });
  });
});

describe("deleting", () => {
  const orders = example("orders-orders");
  const g = graphOf(orders);
  const del = (config: WorkflowConfig, nodes: string[], edges: string[], layout: Layout = {}) =>
    deleteElements(config, layout, ctx, graphOf(config), nodes, edges);

  test.each([
    ["route:3", ["workflows", "http", "routes"], 3],
    ["subscription:0", ["workflows", "messaging", "subscriptions"], 0],
    ["hook:1", ["workflows", "statemachine", "hooks"], 1],
  ] as const)("deleting edge %s removes its entry", (id, path, index) => {
    const r = del(orders, [], [id]);
    const before = getIn(orders, [...path]) as unknown[];
    expect(getIn(r.config, [...path])).toEqual(before.filter((_, i) => i !== index));
    expect(graphOf(r.config).edges.filter((e) => e.kind === edge(g, id)!.kind)).toHaveLength(before.length - 1);
  });

  test("deleting producer, job and event-handler edges removes their entries", () => {
    expect(
      getIn(del(example("chat-chat"), [], ["producer:0"]).config, ["workflows", "messaging", "producers"]),
    ).toEqual([]);
    expect(getIn(del(example("scheduled-report"), [], ["job:0"]).config, ["workflows", "scheduler", "jobs"])).toEqual(
      [],
    );
    expect(
      getIn(del(example("events-payments"), [], ["eventHandler:0"]).config, ["workflows", "event", "handlers"]),
    ).toEqual([]);
  });

  test("deleting dependsOn and ref edges removes the name", () => {
    const hello = example("hello-hello");
    expect(getIn(del(hello, [], ["dependsOn:router:server"]).config, ["modules", 1])).toEqual({
      name: "router",
      type: "http.router",
    });
    const r = del(orders, [], ["ref:orders-api:engine"]);
    expect(getIn(r.config, ["modules", 5, "config", "engine"])).toBeUndefined();
    expect(getIn(r.config, ["modules", 5, "config", "resourceName"])).toBe("orders");
  });

  test("deleting a trigger edge clears the trigger's target", () => {
    const r = del(example("scheduled-report"), [], ["trigger:schedule:0"]);
    expect(getIn(r.config, ["triggers", "schedule", "jobs", 0])).toEqual({ name: "nightly", cron: "0 3 * * *" });
  });

  test("an implicit edge has nothing to delete", () => {
    const config: WorkflowConfig = {
      modules: [
        { name: "bus", type: "messaging.broker" },
        { name: "sm", type: "statemachine.engine", config: { events: {} } },
      ],
    };
    expect(del(config, [], ["ref:sm:events.broker"]).config).toBe(config);
  });

  test("deleting a module removes it and every entry that names it", () => {
    const r = del(orders, ["module:orders-api"], [], {
      "module:orders-api": { x: 1, y: 2 },
      "module:bus": { x: 3, y: 4 },
    });
    const routes = getIn(r.config, ["workflows", "http", "routes"]) as { handler: string }[];
    expect(routes.map((x) => x.handler)).toEqual(["list-events", "list-notifications"]);
    expect((r.config.modules as { name: string }[]).map((m) => m.name)).not.toContain("orders-api");
    expect(r.layout).toEqual({ "module:bus": { x: 3, y: 4 } });
  });

  test("deleting a broker drops its explicit names, subscriptions naming it, and references", () => {
    const r = del(orders, ["module:bus"], []);
    expect(getIn(r.config, ["workflows", "messaging", "broker"])).toBeUndefined();
    expect(getIn(r.config, ["workflows", "messaging", "subscriptions"])).toHaveLength(2); // they name no broker themselves
    expect(getIn(r.config, ["modules", 3, "config", "events"])).toEqual({ topic: "orders.events" });
  });

  test("deleting a module drops dependsOn on it, leaving no empty list", () => {
    const r = del(example("hello-hello"), ["module:server"], []);
    expect(r.config.modules).toEqual([{ name: "router", type: "http.router" }]);
  });

  test("deleting a pipeline removes the routes, hooks and trigger targets naming it", () => {
    const r = del(example("scheduled-report"), ["pipeline:nightly-report"], []);
    expect(getIn(r.config, ["pipelines", "nightly-report"])).toBeUndefined();
    expect(getIn(r.config, ["triggers", "schedule", "jobs", 0, "action"])).toBeUndefined();
    expect(getIn(r.config, ["triggers", "http", "routes", 0, "workflow"])).toBeUndefined();
    const o = del(orders, ["pipeline:price-order"], []);
    expect(getIn(o.config, ["workflows", "statemachine", "hooks"])).toHaveLength(2);
  });

  test("deleting a trigger moves the positions of the later ones down", () => {
    const config: WorkflowConfig = {
      triggers: { event: { subscriptions: [{ topic: "a" }, { topic: "b" }, { topic: "c" }] } },
    };
    const layout = {
      "trigger:event:0": { x: 0, y: 0 },
      "trigger:event:1": { x: 1, y: 1 },
      "trigger:event:2": { x: 2, y: 2 },
    };
    const r = del(config, ["trigger:event:1"], [], layout);
    expect(getIn(r.config, ["triggers", "event", "subscriptions"])).toEqual([{ topic: "a" }, { topic: "c" }]);
    expect(r.layout).toEqual({ "trigger:event:0": { x: 0, y: 0 }, "trigger:event:1": { x: 2, y: 2 } });
  });

  test("deleting many things at once keeps every index right", () => {
    const r = del(orders, ["module:server", "module:notifier", "pipeline:list-events"], ["route:0", "hook:2"]);
    const after = graphOf(r.config);
    expect(after.unplaced).toEqual([]);
    expect((r.config.modules as { name: string }[]).map((m) => m.name)).toEqual([
      "router",
      "bus",
      "store",
      "orders-sm",
      "orders-api",
      "event-recorder",
    ]);
    expect((getIn(r.config, ["workflows", "http", "routes"]) as { path: string }[]).map((x) => x.path)).toEqual([
      "/orders/{id}",
      "/orders/{id}/transition",
      "/notifications",
    ]);
    expect(g.nodes.length - after.nodes.length).toBe(3);
  });
});

describe("renaming", () => {
  test("a module: its name, dependsOn, routes, references and its layout key", () => {
    const layout = { "module:server": { x: 5, y: 6 } };
    const r = ok(renameNode(example("hello-hello"), layout, ctx, "module:server", "web"));
    expect(getIn(r.config, ["modules", 0, "name"])).toBe("web");
    expect(getIn(r.config, ["modules", 1, "dependsOn"])).toEqual(["web"]);
    expect(getIn(r.config, ["workflows", "http", "server"])).toBe("web");
    expect(r.layout).toEqual({ "module:web": { x: 5, y: 6 } });
    expect(r.select).toBe("module:web");
  });

  test("a module named by handler routes, subscriptions and references", () => {
    const r = ok(renameNode(example("orders-orders"), {}, ctx, "module:orders-sm", "machine"));
    expect(getIn(r.config, ["workflows", "statemachine", "engine"])).toBe("machine");
    expect(getIn(r.config, ["modules", 5, "config", "engine"])).toBe("machine");
    const api = ok(renameNode(example("orders-orders"), {}, ctx, "module:orders-api", "api"));
    expect(
      (getIn(api.config, ["workflows", "http", "routes"]) as { handler: string }[]).filter((x) => x.handler === "api"),
    ).toHaveLength(3);
  });

  test("a pipeline keeps its place and is renamed in routes, triggers and module fields", () => {
    const r = ok(renameNode(example("scheduled-report"), {}, ctx, "pipeline:nightly-report", "nightly"));
    expect(Object.keys(r.config.pipelines as object)).toEqual(["heartbeat", "nightly", "report"]);
    expect(getIn(r.config, ["triggers", "schedule", "jobs", 0, "action"])).toBe("nightly");
    expect(getIn(r.config, ["triggers", "http", "routes", 0, "action"])).toBe("nightly");
    const chat = ok(renameNode(example("chat-chat"), {}, ctx, "pipeline:stamp-message", "stamp2"));
    expect(getIn(chat.config, ["modules", 4, "config", "pipeline"])).toBe("stamp2");
  });

  test("pipeline steps that name a pipeline follow a rename", () => {
    const config: WorkflowConfig = {
      pipelines: {
        a: [{ type: "conditional", cases: [{ when: "true", pipeline: "b" }] }],
        b: [],
      },
    };
    const r = ok(renameNode(config, {}, ctx, "pipeline:b", "c"));
    expect(getIn(r.config, ["pipelines", "a", 0, "cases", 0, "pipeline"])).toBe("c");
  });

  test("a taken or invalid name is refused", () => {
    const hello = example("hello-hello");
    expect(renameNode(hello, {}, ctx, "module:server", "router")).toEqual({
      error: 'a module named "router" already exists',
    });
    expect(renameNode(hello, {}, ctx, "module:server", "hello")).toEqual({
      error: 'a pipeline named "hello" already exists',
    });
    expect(renameNode(hello, {}, ctx, "module:server", "9lives")).toMatchObject({
      error: expect.stringContaining("starts with"),
    });
  });
});

describe("palette", () => {
  test("a drop makes TYPE-N, the first free N, dots as dashes", () => {
    const a = addModule({}, {}, "http.server", { x: 10.4, y: 20.6 });
    expect(a.config.modules).toEqual([{ name: "http-server-1", type: "http.server", config: {} }]);
    expect(a.layout).toEqual({ "module:http-server-1": { x: 10, y: 21 } });
    const b = addModule(a.config, a.layout, "http.server", { x: 0, y: 0 });
    expect(getIn(b.config, ["modules", 1, "name"])).toBe("http-server-2");
  });
});

describe("layout is kept apart", () => {
  const text = "modules:\n  - {name: a, type: cache}\nlayout:\n  module:a: {x: 1, y: 2}\n";

  test("a layout block is split off on import", () => {
    expect(importYaml(text)).toEqual({
      config: { modules: [{ name: "a", type: "cache" }] },
      layout: { "module:a": { x: 1, y: 2 } },
    });
  });

  test("export leaves positions out, or puts them in a block when asked", () => {
    const { config, layout } = importYaml(text) as { config: WorkflowConfig; layout: Layout };
    expect(exportYaml(config)).toBe("modules:\n  - name: a\n    type: cache\n");
    expect((parse(exportYaml(config, layout)) as { layout: unknown }).layout).toEqual({ "module:a": { x: 1, y: 2 } });
    expect(importLayoutYaml(exportLayoutYaml(layout))).toEqual(layout);
  });

  test("YAML 1.1 strings like yes/on stay strings both ways", () => {
    const config = { pipelines: { p: [{ type: "log", message: "yes" }] } };
    const text2 = exportYaml(config);
    expect(text2).toContain('"yes"');
    expect(importYaml(text2)).toEqual({ config, layout: {} });
  });

  test("bad YAML is reported with its line", () => {
    expect(importYaml("modules:\n  - name: a\n   type: [\n")).toMatchObject({
      error: expect.any(String),
      line: expect.any(Number),
    });
    expect(importYaml("- just\n- a list\n")).toMatchObject({ error: expect.stringContaining("mapping") });
  });
});

describe("edits are small patches", () => {
  test("deleting a node sends a handful of ops, not the config", () => {
    const orders = example("orders-orders");
    const r = deleteElements(orders, {}, ctx, graphOf(orders), ["module:server"], []);
    const ops = diffConfig(orders, r.config);
    expect(ops).toEqual([{ op: "remove", path: "/modules/0" }]);
    expect(applyPatch(deepClone(orders), ops).newDocument).toEqual(r.config);
  });
});
