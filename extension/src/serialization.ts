// Config <-> graph, exactly as docs/canvas.md defines it: node and edge ids, what each edge
// stands for, and what connecting, deleting and renaming do to the config. Also YAML import
// and export, with the layout kept apart from the workflow semantics.
//
// The config is the source of truth: the graph is derived from it on every config change
// (never on a move), and every edit here is a pure function returning a new config that
// shares all untouched branches with the old one.
import { asArray, asObject, asString, getIn, isObject, removeIn, renameKey, setIn } from "./json";
import { SchemaIndex, type RefSite } from "./schema";
import type { CanvasSchema, Json, JsonObject, Layout, Path, Position, WorkflowConfig } from "./types";
import { parseDocument11, stringify11 } from "./yaml11";

export type NodeKind = "module" | "pipeline" | "trigger";
export type ListEdgeKind = "route" | "subscription" | "producer" | "hook" | "job" | "eventHandler";
export type EdgeKind = "dependsOn" | "ref" | "trigger" | ListEdgeKind;
export type TriggerKind = "http" | "schedule" | "event";

/** Where the entries behind each list edge kind live. */
export const EDGE_LISTS: Record<ListEdgeKind, Path> = {
  route: ["workflows", "http", "routes"],
  subscription: ["workflows", "messaging", "subscriptions"],
  producer: ["workflows", "messaging", "producers"],
  hook: ["workflows", "statemachine", "hooks"],
  job: ["workflows", "scheduler", "jobs"],
  eventHandler: ["workflows", "event", "handlers"],
};
export const LIST_EDGE_KINDS = Object.keys(EDGE_LISTS) as ListEdgeKind[];

export const TRIGGER_LISTS: Record<TriggerKind, string> = {
  http: "routes",
  schedule: "jobs",
  event: "subscriptions",
};
export const TRIGGER_KINDS = Object.keys(TRIGGER_LISTS) as TriggerKind[];

export interface GraphNode {
  id: string;
  kind: NodeKind;
  name: string;
  label: string;
  detail: string;
  type?: string;
  category?: string;
  /** Where the entry this node stands for lives in the config. */
  path: Path;
}

export interface GraphEdge {
  id: string;
  kind: EdgeKind;
  source: string;
  target: string;
  label: string;
  /** The config entry (or, for dependsOn/ref edges, the field) this edge stands for. */
  path: Path;
  /** Drawn from a field left out (resolved to the only provider): nothing to delete. */
  implicit: boolean;
}

/** An entry the graph cannot draw (an unknown name, a missing router...), kept for its errors. */
export interface Unplaced {
  id: string;
  path: Path;
  /** The node its errors are shown on, when one is known. */
  anchor?: string;
}

export interface Graph {
  nodes: GraphNode[];
  edges: GraphEdge[];
  unplaced: Unplaced[];
}

export interface GraphContext {
  schema: CanvasSchema | null;
  index: SchemaIndex | null;
}

/** The schema as the kernel sent it, or null if it is missing or not one (an empty trait). */
export function usableSchema(schema: unknown): CanvasSchema | null {
  const s = schema as CanvasSchema | null | undefined;
  return s && isObject(s.types) && isObject(s.file) ? s : null;
}

export function graphContext(schema: CanvasSchema | null | undefined): GraphContext {
  const usable = usableSchema(schema);
  return { schema: usable, index: usable ? new SchemaIndex(usable.file) : null };
}

export function moduleId(name: string): string {
  return `module:${name}`;
}
export function pipelineId(name: string): string {
  return `pipeline:${name}`;
}
export function triggerId(kind: TriggerKind, index: number): string {
  return `trigger:${kind}:${index}`;
}

/** Split a node id into its kind and name (trigger names are KIND:INDEX). */
export function parseNodeId(id: string): { kind: NodeKind; name: string } | undefined {
  const colon = id.indexOf(":");
  const kind = id.slice(0, colon);
  if (colon < 0 || (kind !== "module" && kind !== "pipeline" && kind !== "trigger")) return undefined;
  return { kind, name: id.slice(colon + 1) };
}

// ---------------------------------------------------------------------------------------------
// Name resolution

/** What names mean in one config: modules, pipelines, and who provides which service kind. */
export class Resolver {
  readonly modules = new Map<string, { index: number; type: string }>();
  readonly pipelines: string[];
  private readonly providers = new Map<string, string[]>();

  constructor(
    readonly config: WorkflowConfig,
    readonly ctx: GraphContext,
  ) {
    asArray(config.modules).forEach((entry, index) => {
      const name = isObject(entry) ? asString(entry.name) : undefined;
      if (!name || this.modules.has(name)) return;
      const type = asString((entry as JsonObject).type) ?? "";
      this.modules.set(name, { index, type });
      for (const kind of ctx.schema?.types[type]?.provides ?? []) {
        const list = this.providers.get(kind) ?? [];
        list.push(name);
        this.providers.set(kind, list);
      }
    });
    this.pipelines = Object.keys(asObject(config.pipelines));
  }

  provides(name: string, kind: string): boolean {
    return this.providers.get(kind)?.includes(name) ?? false;
  }

  providersOf(kind: string): string[] {
    return this.providers.get(kind) ?? [];
  }

  /** The only module providing `kind`, if there is exactly one. */
  only(kind: string): string | undefined {
    const list = this.providers.get(kind);
    return list?.length === 1 ? list[0] : undefined;
  }

  /** `name` if given, else the only provider: how implicit references resolve. */
  pick(name: unknown, kind: string): string | undefined {
    const given = asString(name);
    return given ? given : this.only(kind);
  }

  hasPipeline(name: string): boolean {
    return Object.prototype.hasOwnProperty.call(asObject(this.config.pipelines), name);
  }

  /** A handler is `module:NAME` if such a module exists, else `pipeline:NAME`. */
  handlerId(name: unknown): string | undefined {
    const n = asString(name);
    if (!n) return undefined;
    if (this.modules.has(n)) return moduleId(n);
    if (this.hasPipeline(n)) return pipelineId(n);
    return undefined;
  }

  moduleNode(name: string | undefined): string | undefined {
    return name && this.modules.has(name) ? moduleId(name) : undefined;
  }

  /** The node a reference of `kind` naming `name` points at. */
  refTarget(kind: string, name: string): string | undefined {
    if (kind === "handler") return this.handlerId(name);
    if (kind === "pipeline") return this.hasPipeline(name) ? pipelineId(name) : undefined;
    return this.moduleNode(name);
  }

  isHandlerNode(id: string): boolean {
    const parsed = parseNodeId(id);
    if (!parsed) return false;
    if (parsed.kind === "pipeline") return true;
    return parsed.kind === "module" && this.provides(parsed.name, "handler");
  }
}

// ---------------------------------------------------------------------------------------------
// Config -> graph

function scalarList(value: unknown): string[] {
  if (Array.isArray(value)) return value.map(String);
  return value === undefined || value === null ? [] : [String(value)];
}

function stepCount(value: unknown): number {
  if (Array.isArray(value)) return value.length;
  return asArray(asObject(value).steps).length;
}

function triggerLabel(kind: TriggerKind, item: JsonObject): { label: string; detail: string } {
  if (kind === "http") {
    return { label: `${asString(item.method) ?? "POST"} ${asString(item.path) ?? "?"}`, detail: "http trigger" };
  }
  if (kind === "schedule") {
    const when = item.cron != null ? String(item.cron) : item.interval != null ? `every ${item.interval}` : "?";
    return { label: asString(item.name) ?? when, detail: `schedule · ${when}` };
  }
  const event = asString(item.event);
  return { label: `${asString(item.topic) ?? "?"}${event ? ` · ${event}` : ""}`, detail: "event trigger" };
}

/** The module-config references of each module entry, cached by entry identity. */
const moduleRefCache = new WeakMap<object, { index: SchemaIndex; refs: RefSite[] }>();

function moduleRefs(index: SchemaIndex | null, entry: JsonObject, position: number): RefSite[] {
  if (!index) return [];
  let cached = moduleRefCache.get(entry);
  if (!cached || cached.index !== index) {
    const schema = index.at({ modules: [entry] }, ["modules", 0, "config"]);
    const refs = isObject(entry.config) ? index.refs(entry.config, schema) : [];
    cached = { index, refs };
    moduleRefCache.set(entry, cached);
  }
  return cached.refs.map((r) => ({ ...r, path: ["modules", position, "config", ...r.path] }));
}

/** Where a trigger's `workflow` + `action` lead, per docs/canvas.md. */
export function triggerTarget(res: Resolver, item: JsonObject): string | undefined {
  const action = asString(item.action);
  const workflows = asObject(res.config.workflows);
  switch (item.workflow) {
    case "pipeline":
      return action && res.hasPipeline(action) ? pipelineId(action) : undefined;
    case "http":
    case "scheduler":
      return res.handlerId(action);
    case "statemachine":
      return res.moduleNode(res.pick(asObject(workflows.statemachine).engine, "statemachine"));
    case "messaging":
      return res.moduleNode(res.pick(asObject(workflows.messaging).broker, "broker"));
    case "event":
      return res.moduleNode(res.pick(asObject(workflows.event).processor, "event.processor"));
    default:
      return undefined;
  }
}

interface ListEdgeView {
  source?: string;
  target?: string;
  label: string;
  /** The node the entry belongs to even when it cannot be drawn. */
  anchor?: string;
}

function listEdgeView(kind: ListEdgeKind, res: Resolver, item: JsonObject): ListEdgeView {
  const wf = asObject(res.config.workflows);
  switch (kind) {
    case "route": {
      const router = res.moduleNode(res.pick(asObject(wf.http).router, "http.router"));
      const label = `${scalarList(item.method ?? "GET").join("|")} ${asString(item.path) ?? "?"}`;
      return { source: router, target: res.handlerId(item.handler), label, anchor: router };
    }
    case "subscription": {
      const broker = res.moduleNode(res.pick(item.broker ?? asObject(wf.messaging).broker, "broker"));
      return {
        source: broker,
        target: res.handlerId(item.handler),
        label: asString(item.topic) ?? "?",
        anchor: broker,
      };
    }
    case "producer": {
      const broker = res.moduleNode(res.pick(item.broker ?? asObject(wf.messaging).broker, "broker"));
      const topics = [...scalarList(item.topic), ...scalarList(item.forwardTo)];
      const handler = res.handlerId(item.name);
      return { source: handler, target: broker, label: topics.join(", "), anchor: handler ?? broker };
    }
    case "hook": {
      const engine = res.moduleNode(res.pick(asObject(wf.statemachine).engine, "statemachine"));
      const transitions = scalarList(item.transitions);
      return {
        source: engine,
        target: res.handlerId(item.handler),
        label: transitions.length ? transitions.join(", ") : "*",
        anchor: engine,
      };
    }
    case "job": {
      const scheduler = res.moduleNode(res.pick(item.scheduler, "scheduler"));
      return { source: scheduler, target: res.handlerId(item.job), label: "job", anchor: scheduler };
    }
    case "eventHandler": {
      const processor = res.moduleNode(res.pick(asObject(wf.event).processor, "event.processor"));
      return {
        source: processor,
        target: res.handlerId(item.handler),
        label: asString(item.patternId) ?? "?",
        anchor: processor,
      };
    }
  }
}

export function configToGraph(config: WorkflowConfig, ctx: GraphContext, res = new Resolver(config, ctx)): Graph {
  const nodes: GraphNode[] = [];
  const edges: GraphEdge[] = [];
  const unplaced: Unplaced[] = [];
  const edgeIds = new Set<string>();
  const addEdge = (edge: GraphEdge) => {
    if (edgeIds.has(edge.id) || edge.source === edge.target) return;
    edgeIds.add(edge.id);
    edges.push(edge);
  };

  asArray(config.modules).forEach((entry, i) => {
    const name = isObject(entry) ? asString(entry.name) : undefined;
    if (!name || res.modules.get(name)?.index !== i) {
      unplaced.push({ id: name ? moduleId(name) : "config", path: ["modules", i], anchor: name && moduleId(name) });
      return;
    }
    const module = entry as JsonObject;
    const type = asString(module.type) ?? "?";
    const info = ctx.schema?.types[type];
    nodes.push({
      id: moduleId(name),
      kind: "module",
      name,
      label: name,
      detail: type,
      type,
      category: info?.category ?? "Unknown",
      path: ["modules", i],
    });
  });
  for (const [name, value] of Object.entries(asObject(config.pipelines))) {
    const steps = stepCount(value);
    nodes.push({
      id: pipelineId(name),
      kind: "pipeline",
      name,
      label: name,
      detail: `pipeline · ${steps} step${steps === 1 ? "" : "s"}`,
      path: ["pipelines", name],
    });
  }
  const triggers = asObject(config.triggers);
  for (const kind of TRIGGER_KINDS) {
    const list = TRIGGER_LISTS[kind];
    asArray(asObject(triggers[kind])[list]).forEach((item, i) => {
      const id = triggerId(kind, i);
      const { label, detail } = triggerLabel(kind, asObject(item));
      nodes.push({ id, kind: "trigger", name: `${kind}:${i}`, label, detail, path: ["triggers", kind, list, i] });
      const target = triggerTarget(res, asObject(item));
      if (target) {
        const workflow = asString(asObject(item).workflow) ?? "";
        addEdge({
          id,
          kind: "trigger",
          source: id,
          target,
          label: workflow,
          path: ["triggers", kind, list, i],
          implicit: false,
        });
      }
    });
  }

  asArray(config.modules).forEach((entry, i) => {
    if (!isObject(entry)) return;
    const name = asString(entry.name);
    if (!name || res.modules.get(name)?.index !== i) return;
    const source = moduleId(name);
    asArray(entry.dependsOn).forEach((dep, j) => {
      const target = typeof dep === "string" ? res.moduleNode(dep) : undefined;
      if (target) {
        addEdge({
          id: `dependsOn:${name}:${dep}`,
          kind: "dependsOn",
          source,
          target,
          label: "",
          path: ["modules", i, "dependsOn", j],
          implicit: false,
        });
      }
    });
    for (const ref of moduleRefs(ctx.index, entry, i)) {
      const targetName = ref.implicit ? res.only(ref.kind) : ref.name;
      const target = targetName ? res.refTarget(ref.kind, targetName) : undefined;
      if (!target) continue;
      const field = ref.path.slice(3).join(".");
      addEdge({
        id: `ref:${name}:${field}`,
        kind: "ref",
        source,
        target,
        label: field,
        path: ref.path,
        implicit: ref.implicit,
      });
    }
  });

  for (const kind of LIST_EDGE_KINDS) {
    const path = EDGE_LISTS[kind];
    asArray(getIn(config, path)).forEach((item, i) => {
      const id = `${kind}:${i}`;
      const view = isObject(item) ? listEdgeView(kind, res, item) : { label: "" };
      if (view.source && view.target && view.source !== view.target) {
        addEdge({
          id,
          kind,
          source: view.source,
          target: view.target,
          label: view.label,
          path: [...path, i],
          implicit: false,
        });
      } else {
        unplaced.push({ id, path: [...path, i], anchor: "anchor" in view ? view.anchor : undefined });
      }
    });
  }
  return { nodes, edges, unplaced };
}

/** Whether an edge stands for a whole config entry (a list item) rather than a field. */
export function ownsEntry(kind: EdgeKind): kind is ListEdgeKind {
  return kind in EDGE_LISTS;
}

/**
 * The config again, from a graph: every entry the nodes, list edges and unplaced entries
 * stand for, put back into what remains. Used by tests to prove the graph loses nothing.
 */
export function graphToConfig(graph: Graph, config: WorkflowConfig): WorkflowConfig {
  let out: WorkflowConfig = config;
  if (Array.isArray(config.modules)) out = setIn(out, ["modules"], []);
  if (isObject(config.pipelines)) out = setIn(out, ["pipelines"], {});
  for (const kind of TRIGGER_KINDS) {
    const path = ["triggers", kind, TRIGGER_LISTS[kind]];
    if (Array.isArray(getIn(config, path))) out = setIn(out, path, []);
  }
  for (const kind of LIST_EDGE_KINDS) {
    if (Array.isArray(getIn(config, EDGE_LISTS[kind]))) out = setIn(out, EDGE_LISTS[kind], []);
  }
  const owned = [
    ...graph.nodes.map((n) => n.path),
    ...graph.edges.filter((e) => ownsEntry(e.kind)).map((e) => e.path),
    ...graph.unplaced.map((u) => u.path),
  ];
  owned.sort(comparePaths);
  for (const path of owned) {
    const value = getIn(config, path);
    if (value !== undefined) out = setIn(out, path, value);
  }
  return out;
}

/** Orders list items by index; string keys keep their relative (insertion) order. */
function comparePaths(a: Path, b: Path): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] === b[i]) continue;
    if (typeof a[i] === "number" && typeof b[i] === "number") return (a[i] as number) - (b[i] as number);
    return 0;
  }
  return a.length - b.length;
}

/** The node or edge id a config path belongs to (docs/canvas.md: diagnostics). */
export function idForPath(config: WorkflowConfig, path: Path): string {
  const [head, second, third, fourth] = path;
  if (head === "modules" && typeof second === "number") {
    const name = asString(getIn(config, ["modules", second, "name"]));
    return name ? moduleId(name) : "config";
  }
  if (head === "pipelines" && typeof second === "string") return pipelineId(second);
  if (head === "workflows") {
    for (const kind of LIST_EDGE_KINDS) {
      const [, wf, list] = EDGE_LISTS[kind];
      if (second === wf && third === list && typeof fourth === "number") return `${kind}:${fourth}`;
    }
  }
  if (head === "triggers" && typeof fourth === "number") {
    const kind = second as TriggerKind;
    if (TRIGGER_LISTS[kind] === third) return triggerId(kind, fourth);
  }
  return "config";
}

// ---------------------------------------------------------------------------------------------
// Edits through the graph

export interface EditResult {
  config: WorkflowConfig;
  layout: Layout;
  /** The node or edge to select afterwards. */
  select?: string;
}
export type EditOutcome = EditResult | { error: string };

const NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

export function nameProblem(name: string): string | undefined {
  if (!name) return "a name is required";
  if (name.length > 128) return "a name has at most 128 characters";
  if (!NAME_PATTERN.test(name)) return "a name starts with a letter or _ and holds letters, digits, _ . -";
  return undefined;
}

/** BASE-N with the smallest N not taken by `taken`. */
export function uniqueName(base: string, taken: (name: string) => boolean): string {
  for (let n = 1; ; n++) {
    const name = `${base}-${n}`;
    if (!taken(name)) return name;
  }
}

function nameTaken(config: WorkflowConfig): (name: string) => boolean {
  const modules = new Set(asArray(config.modules).map((m) => (isObject(m) ? m.name : undefined)));
  const pipelines = asObject(config.pipelines);
  return (name) => modules.has(name) || Object.prototype.hasOwnProperty.call(pipelines, name);
}

/** Palette drop: `{name: TYPE-N, type, config: {}}` at `position`. */
export function addModule(config: WorkflowConfig, layout: Layout, type: string, position: Position): EditResult {
  const name = uniqueName(type.replace(/\./g, "-"), nameTaken(config));
  const modules = [...asArray(config.modules), { name, type, config: {} }];
  const id = moduleId(name);
  return { config: { ...config, modules }, layout: { ...layout, [id]: roundPosition(position) }, select: id };
}

export function addPipeline(config: WorkflowConfig, layout: Layout, position: Position): EditResult {
  const name = uniqueName("pipeline", nameTaken(config));
  const config2 = setIn(config, ["pipelines", name], []);
  const id = pipelineId(name);
  return { config: config2, layout: { ...layout, [id]: roundPosition(position) }, select: id };
}

/** A new trigger item; it has no target until it is connected (its node shows the error). */
export function addTrigger(config: WorkflowConfig, layout: Layout, kind: TriggerKind, position: Position): EditResult {
  const path = ["triggers", kind, TRIGGER_LISTS[kind]];
  const list = asArray(getIn(config, path));
  const n = list.length + 1;
  const item: JsonObject =
    kind === "http"
      ? { method: "POST", path: `/trigger-${n}` }
      : kind === "schedule"
        ? { name: `schedule-${n}`, interval: "1m" }
        : { topic: `events-${n}` };
  const id = triggerId(kind, list.length);
  return {
    config: setIn(config, path, [...list, item]),
    layout: { ...layout, [id]: roundPosition(position) },
    select: id,
  };
}

export function roundPosition(p: Position): Position {
  return { x: Math.round(p.x), y: Math.round(p.y) };
}

export type ConnectionKind = ListEdgeKind | "dependsOn" | "trigger" | "field";

export interface ConnectionPlan {
  kind: ConnectionKind;
  /** For "field": the module-config field (under `config`) the target's name goes into. */
  field?: string;
}

/** What drawing `source -> target` means, or why it means nothing. */
export function planConnection(
  config: WorkflowConfig,
  ctx: GraphContext,
  source: string,
  target: string,
  res = new Resolver(config, ctx),
): ConnectionPlan | { error: string } {
  const s = parseNodeId(source);
  const t = parseNodeId(target);
  if (!s || !t) return { error: "unknown node" };
  if (source === target) return { error: "a node cannot be connected to itself" };
  if (t.kind === "trigger") return { error: "a trigger has no inputs" };
  const handler = res.isHandlerNode(target);
  if (s.kind === "trigger") {
    return handler ? { kind: "trigger" } : { error: "a trigger runs a pipeline or a handler" };
  }
  const sm = s.kind === "module" ? s.name : undefined;
  const tm = t.kind === "module" ? t.name : undefined;
  if (sm && handler) {
    if (res.provides(sm, "http.router")) return { kind: "route" };
    if (res.provides(sm, "broker")) return { kind: "subscription" };
    if (res.provides(sm, "statemachine")) return { kind: "hook" };
    if (res.provides(sm, "scheduler")) return { kind: "job" };
    if (res.provides(sm, "event.processor")) return { kind: "eventHandler" };
  }
  if (res.isHandlerNode(source) && tm && res.provides(tm, "broker")) return { kind: "producer" };
  if (sm && tm) return { kind: "dependsOn" };
  if (sm && t.kind === "pipeline") {
    const field = pipelineField(config, ctx, sm);
    if (field) return { kind: "field", field };
    return { error: `module "${sm}" has no field that names a pipeline` };
  }
  return { error: "these two nodes cannot be connected" };
}

/** The one top-level config field of a module whose schema names a pipeline. */
function pipelineField(config: WorkflowConfig, ctx: GraphContext, name: string): string | undefined {
  const res = new Resolver(config, ctx);
  const index = res.modules.get(name)?.index;
  if (index === undefined || !ctx.index) return undefined;
  const schema = ctx.index.select(ctx.index.at(config, ["modules", index, "config"]), {});
  const fields = Object.entries(schema?.properties ?? {}).filter(([, s]) => {
    const kind = s["x-flownb-ref"];
    return kind === "pipeline" || kind === "handler";
  });
  return fields.length === 1 ? fields[0][0] : undefined;
}

/** Draw `source -> target`: create the config entry the pair implies (docs/canvas.md). */
export function connect(
  config: WorkflowConfig,
  layout: Layout,
  ctx: GraphContext,
  source: string,
  target: string,
): EditOutcome {
  const res = new Resolver(config, ctx);
  const plan = planConnection(config, ctx, source, target, res);
  if ("error" in plan) return plan;
  const s = parseNodeId(source)!.name;
  const t = parseNodeId(target)!.name;
  const wf = asObject(config.workflows);
  const append = (kind: ListEdgeKind, item: JsonObject, base = config): EditResult => {
    const path = EDGE_LISTS[kind];
    const list = asArray(getIn(base, path));
    return { config: setIn(base, path, [...list, item]), layout, select: `${kind}:${list.length}` };
  };
  /** Make `s` the workflow-level module of `kind` if it is not already the effective one. */
  const claim = (section: string, field: string, kind: string): { config: WorkflowConfig } | { error: string } => {
    const explicit = asString(asObject(wf[section])[field]);
    const effective = res.pick(explicit, kind);
    if (effective === s) return { config };
    if (explicit) return { error: `workflows.${section}.${field} is "${explicit}"; change it there to use "${s}"` };
    return { config: setIn(config, ["workflows", section, field], s) };
  };
  switch (plan.kind) {
    case "route": {
      const base = claim("http", "router", "http.router");
      if ("error" in base) return base;
      return append("route", { method: "GET", path: `/${t}`, handler: t }, base.config);
    }
    case "subscription": {
      const item: JsonObject = { topic: t, handler: t };
      if (res.pick(asObject(wf.messaging).broker, "broker") !== s) item.broker = s;
      return append("subscription", item);
    }
    case "producer": {
      const item: JsonObject = { name: s, topic: s };
      if (res.pick(asObject(wf.messaging).broker, "broker") !== t) item.broker = t;
      return append("producer", item);
    }
    case "hook": {
      const base = claim("statemachine", "engine", "statemachine");
      if ("error" in base) return base;
      return append("hook", { handler: t }, base.config);
    }
    case "job":
      return append("job", { scheduler: s, job: t });
    case "eventHandler": {
      const base = claim("event", "processor", "event.processor");
      if ("error" in base) return base;
      const first = asArray(asObject(wf.event).patterns)
        .map((p) => asObject(p).patternId)
        .find((id) => typeof id === "string");
      // Without a pattern the entry is still made: its edge shows the missing patternId.
      const item: JsonObject = first !== undefined ? { patternId: first, handler: t } : { handler: t };
      return append("eventHandler", item, base.config);
    }
    case "trigger": {
      const [kind, index] = t2(s);
      const path = ["triggers", kind, TRIGGER_LISTS[kind], index];
      const workflow = parseNodeId(target)!.kind === "pipeline" ? "pipeline" : "http";
      let next = setIn(config, [...path, "workflow"], workflow);
      next = setIn(next, [...path, "action"], t);
      return { config: next, layout, select: triggerId(kind, index) };
    }
    case "dependsOn": {
      const index = res.modules.get(s)!.index;
      const deps = asArray(getIn(config, ["modules", index, "dependsOn"]));
      if (deps.includes(t)) return { error: `"${s}" already depends on "${t}"` };
      return {
        config: setIn(config, ["modules", index, "dependsOn"], [...deps, t]),
        layout,
        select: `dependsOn:${s}:${t}`,
      };
    }
    case "field": {
      const index = res.modules.get(s)!.index;
      return {
        config: setIn(config, ["modules", index, "config", plan.field!], t),
        layout,
        select: `ref:${s}:${plan.field}`,
      };
    }
  }
}

/** "http:3" -> ["http", 3] */
function t2(name: string): [TriggerKind, number] {
  const [kind, index] = name.split(":");
  return [kind as TriggerKind, Number(index)];
}

/** Every explicit reference in the parts of the config that can name modules and pipelines. */
function allRefs(config: WorkflowConfig, ctx: GraphContext, sections: string[]): RefSite[] {
  const index = ctx.index;
  if (!index) return fallbackRefs(config, sections);
  const out: RefSite[] = [];
  for (const section of sections) {
    if (config[section] === undefined) continue;
    index.refs(config[section], index.child(index.root, config, section), [section], out);
  }
  return out.filter((r) => !r.implicit);
}

/** Without a schema, the names the doc's edges read are still known. */
function fallbackRefs(config: WorkflowConfig, sections: string[]): RefSite[] {
  const out: RefSite[] = [];
  if (!sections.includes("workflows")) return out;
  const fields: Record<ListEdgeKind, [string, string][]> = {
    route: [["handler", "handler"]],
    subscription: [
      ["handler", "handler"],
      ["broker", "broker"],
    ],
    producer: [
      ["name", "handler"],
      ["broker", "broker"],
    ],
    hook: [["handler", "handler"]],
    job: [
      ["job", "handler"],
      ["scheduler", "scheduler"],
    ],
    eventHandler: [["handler", "handler"]],
  };
  for (const kind of LIST_EDGE_KINDS) {
    asArray(getIn(config, EDGE_LISTS[kind])).forEach((item, i) => {
      for (const [field, refKind] of fields[kind]) {
        const name = asString(asObject(item)[field]);
        if (name) out.push({ path: [...EDGE_LISTS[kind], i, field], kind: refKind, name, implicit: false });
      }
    });
  }
  return out;
}

/** The fields of a list entry that its edge is drawn from: naming a deleted node drops the entry. */
const EDGE_FIELDS: Record<ListEdgeKind, string[]> = {
  route: ["handler"],
  subscription: ["handler", "broker"],
  producer: ["name", "broker"],
  hook: ["handler"],
  job: ["job", "scheduler"],
  eventHandler: ["handler"],
};

/** The path of the list entry whose edge is drawn from the field at `path`, if any. */
function owningEntry(path: Path): Path | undefined {
  for (const kind of LIST_EDGE_KINDS) {
    const list = EDGE_LISTS[kind];
    if (path.length !== list.length + 2 || !list.every((p, i) => path[i] === p)) continue;
    if (EDGE_FIELDS[kind].includes(String(path[list.length + 1]))) return path.slice(0, list.length + 1);
  }
  return undefined;
}

function isTriggerItem(path: Path): boolean {
  return path[0] === "triggers" && typeof path[3] === "number";
}

/** Removes paths highest index first, so no removal shifts one still to come. */
function removePaths(config: WorkflowConfig, paths: Path[]): WorkflowConfig {
  const unique = new Map(paths.map((p) => [JSON.stringify(p), p]));
  const sorted = [...unique.values()].sort((a, b) => -comparePathsStrict(a, b));
  let out = config;
  for (const path of sorted) out = removeIn(out, path);
  return out;
}

function comparePathsStrict(a: Path, b: Path): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] === b[i]) continue;
    if (typeof a[i] === "number" && typeof b[i] === "number") return (a[i] as number) - (b[i] as number);
    return String(a[i]) < String(b[i]) ? -1 : 1;
  }
  return a.length - b.length;
}

/** Drop names from `dependsOn` lists; a list left empty goes too, to keep the YAML clean. */
function dropDependencies(config: WorkflowConfig, drops: Map<number, Set<string>>): WorkflowConfig {
  let out = config;
  for (const [index, names] of drops) {
    const deps = asArray(getIn(config, ["modules", index, "dependsOn"]));
    const kept = deps.filter((d) => !(typeof d === "string" && names.has(d)));
    if (kept.length === deps.length) continue;
    out = setIn(out, ["modules", index, "dependsOn"], kept.length ? kept : undefined);
  }
  return out;
}

/**
 * Delete nodes and edges. A node takes its entry with it and every entry that names it: list
 * entries (routes, subscriptions...) whose own fields name it, dependsOn items, module-config
 * reference fields, workflow-level fields (`workflows.http.router`...) and trigger targets.
 * Pipeline steps that name it are left alone: they show up as errors instead.
 */
export function deleteElements(
  config: WorkflowConfig,
  layout: Layout,
  ctx: GraphContext,
  graph: Graph,
  nodeIds: string[],
  edgeIds: string[],
): EditResult {
  const res = new Resolver(config, ctx);
  const remove: Path[] = [];
  const dropDeps = new Map<number, Set<string>>();
  const dropDep = (index: number, name: string) => dropDeps.set(index, (dropDeps.get(index) ?? new Set()).add(name));
  const clearTarget = (path: Path) => remove.push([...path, "workflow"], [...path, "action"]);
  const deletedModules = new Set<string>();
  const deletedPipelines = new Set<string>();
  const deletedTriggers: Record<TriggerKind, number[]> = { http: [], schedule: [], event: [] };
  let nextLayout = { ...layout };

  for (const id of nodeIds) {
    const parsed = parseNodeId(id);
    if (!parsed) continue;
    if (parsed.kind === "module") {
      const found = res.modules.get(parsed.name);
      if (!found) continue;
      deletedModules.add(parsed.name);
      remove.push(["modules", found.index]);
    } else if (parsed.kind === "pipeline") {
      if (!res.hasPipeline(parsed.name)) continue;
      deletedPipelines.add(parsed.name);
      remove.push(["pipelines", parsed.name]);
    } else {
      const [kind, index] = t2(parsed.name);
      if (!(kind in TRIGGER_LISTS)) continue;
      deletedTriggers[kind].push(index);
      remove.push(["triggers", kind, TRIGGER_LISTS[kind], index]);
    }
    delete nextLayout[id];
  }

  /** Whether a reference of `kind` naming `name` points at a deleted node. */
  const hitsDeleted = (kind: string, name: string): boolean => {
    if (kind === "pipeline") return deletedPipelines.has(name);
    if (kind === "handler") return res.modules.has(name) ? deletedModules.has(name) : deletedPipelines.has(name);
    return deletedModules.has(name);
  };

  if (deletedModules.size || deletedPipelines.size) {
    asArray(config.modules).forEach((m, i) => {
      asArray(asObject(m).dependsOn).forEach((dep) => {
        if (typeof dep === "string" && deletedModules.has(dep)) dropDep(i, dep);
      });
    });
    const refs = [
      ...asArray(config.modules).flatMap((m, i) => (isObject(m) ? moduleRefs(ctx.index, m, i) : [])),
      ...allRefs(config, ctx, ["workflows", "triggers"]),
    ];
    for (const ref of refs) {
      if (ref.implicit || !hitsDeleted(ref.kind, ref.name)) continue;
      remove.push(owningEntry(ref.path) ?? ref.path);
    }
    const triggers = asObject(config.triggers);
    for (const kind of TRIGGER_KINDS) {
      asArray(asObject(triggers[kind])[TRIGGER_LISTS[kind]]).forEach((item, i) => {
        const it = asObject(item);
        const action = asString(it.action);
        if (!action) return;
        const hit =
          it.workflow === "pipeline"
            ? deletedPipelines.has(action)
            : (it.workflow === "http" || it.workflow === "scheduler") && hitsDeleted("handler", action);
        if (hit) clearTarget(["triggers", kind, TRIGGER_LISTS[kind], i]);
      });
    }
  }

  const edges = new Map(graph.edges.map((e) => [e.id, e]));
  for (const id of edgeIds) {
    const edge = edges.get(id);
    if (!edge || edge.implicit) continue;
    if (edge.kind === "trigger") clearTarget(edge.path);
    else if (edge.kind === "dependsOn") dropDep(Number(edge.path[1]), String(getIn(config, edge.path)));
    else remove.push(edge.path);
  }

  // Items inside a removed trigger need no target clearing (and must not outlive it).
  const removedTriggerItems = remove.filter((p) => isTriggerItem(p) && p.length === 4).map((p) => JSON.stringify(p));
  const paths = remove.filter(
    (p) => !(isTriggerItem(p) && p.length === 5 && removedTriggerItems.includes(JSON.stringify(p.slice(0, 4)))),
  );
  // dependsOn first: it shifts no index that a path to remove relies on.
  const nextConfig = removePaths(dropDependencies(config, dropDeps), paths);

  // Trigger ids are indexes: later triggers of a kind move down, and so do their positions.
  for (const kind of TRIGGER_KINDS) {
    const gone = deletedTriggers[kind].sort((a, b) => a - b);
    if (!gone.length) continue;
    const shifted: Layout = {};
    for (const [id, pos] of Object.entries(nextLayout)) {
      const parsed = parseNodeId(id);
      const [k, i] = parsed?.kind === "trigger" ? t2(parsed.name) : [undefined, -1];
      if (k !== kind) {
        shifted[id] = pos;
        continue;
      }
      shifted[triggerId(kind, i - gone.filter((g) => g < i).length)] = pos;
    }
    nextLayout = shifted;
  }
  return { config: nextConfig, layout: nextLayout };
}

/** Rename a module or pipeline and every reference to it, and its layout key. */
export function renameNode(
  config: WorkflowConfig,
  layout: Layout,
  ctx: GraphContext,
  id: string,
  newName: string,
): EditOutcome {
  const parsed = parseNodeId(id);
  if (!parsed || parsed.kind === "trigger") return { error: "only modules and pipelines have names" };
  const oldName = parsed.name;
  if (newName === oldName) return { config, layout, select: id };
  const problem = nameProblem(newName);
  if (problem) return { error: problem };
  const res = new Resolver(config, ctx);
  if (res.modules.has(newName)) return { error: `a module named "${newName}" already exists` };
  if (res.hasPipeline(newName)) return { error: `a pipeline named "${newName}" already exists` };
  const isModule = parsed.kind === "module";
  if (isModule ? !res.modules.has(oldName) : !res.hasPipeline(oldName))
    return { error: `no ${parsed.kind} "${oldName}"` };

  const renames = (kind: string): boolean => {
    if (kind === "pipeline") return !isModule;
    if (kind === "handler") return isModule || !res.modules.has(oldName);
    return isModule;
  };
  let next = config;
  const refs = [
    ...asArray(config.modules).flatMap((m, i) => (isObject(m) ? moduleRefs(ctx.index, m, i) : [])),
    ...allRefs(config, ctx, ["workflows", "triggers", "pipelines"]),
  ];
  for (const ref of refs) {
    if (!ref.implicit && ref.name === oldName && renames(ref.kind)) next = setIn(next, ref.path, newName);
  }
  if (isModule) {
    asArray(config.modules).forEach((m, i) => {
      asArray(asObject(m).dependsOn).forEach((dep, j) => {
        if (dep === oldName) next = setIn(next, ["modules", i, "dependsOn", j], newName);
      });
    });
    next = setIn(next, ["modules", res.modules.get(oldName)!.index, "name"], newName);
  } else {
    next = { ...next, pipelines: renameKey(asObject(next.pipelines), oldName, newName) };
  }
  const triggers = asObject(config.triggers);
  for (const kind of TRIGGER_KINDS) {
    asArray(asObject(triggers[kind])[TRIGGER_LISTS[kind]]).forEach((item, i) => {
      const it = asObject(item);
      if (it.action !== oldName) return;
      const names =
        it.workflow === "pipeline"
          ? !isModule
          : (it.workflow === "http" || it.workflow === "scheduler") && renames("handler");
      if (names) next = setIn(next, ["triggers", kind, TRIGGER_LISTS[kind], i, "action"], newName);
    });
  }
  const newId = isModule ? moduleId(newName) : pipelineId(newName);
  const nextLayout: Layout = {};
  for (const [key, pos] of Object.entries(layout)) nextLayout[key === id ? newId : key] = pos;
  return { config: next, layout: nextLayout, select: newId };
}

// ---------------------------------------------------------------------------------------------
// YAML

export interface ImportResult {
  config: WorkflowConfig;
  layout: Layout;
}
export interface ImportError {
  error: string;
  line?: number;
}

/** Numbers only: positions written as `${VAR}` (allowed by the schema) are not drawable. */
export function readLayout(value: unknown): Layout {
  const out: Layout = {};
  for (const [id, pos] of Object.entries(asObject(value))) {
    const p = asObject(pos);
    if (typeof p.x === "number" && typeof p.y === "number") out[id] = { x: p.x, y: p.y };
  }
  return out;
}

/**
 * Read a workflow file. YAML 1.1, as the kernel (PyYAML) reads it; a `layout:` block is split
 * off into the layout.
 */
export function importYaml(text: string): ImportResult | ImportError {
  const doc = parseDocument11(text);
  if (doc.errors.length) {
    const first = doc.errors[0];
    const line = first.linePos?.[0]?.line;
    return { error: first.message.split("\n")[0], line };
  }
  const data = doc.toJS({ maxAliasCount: 1000 }) as unknown;
  if (data === null || data === undefined) return { config: {}, layout: {} };
  if (!isObject(data)) return { error: "a workflow file is a mapping (modules:, workflows:, pipelines: ...)", line: 1 };
  const { layout, ...config } = data as JsonObject;
  return { config: config as WorkflowConfig, layout: readLayout(layout) };
}

/** Read a `NAME.layout.yaml` sidecar (or a bare `{id: {x, y}}` mapping). */
export function importLayoutYaml(text: string): Layout | ImportError {
  const result = importYaml(text);
  if ("error" in result) return result;
  const { config, layout } = result;
  return Object.keys(layout).length ? layout : readLayout(config);
}

/** YAML text of the config; with `layout`, positions follow in a `layout:` block. */
export function exportYaml(config: WorkflowConfig, layout?: Layout): string {
  const data: JsonObject = { ...config };
  delete data.layout;
  if (layout && Object.keys(layout).length) data.layout = layoutJson(layout);
  return Object.keys(data).length ? stringify11(data) : "{}\n";
}

/** The text of the `NAME.layout.yaml` sidecar. */
export function exportLayoutYaml(layout: Layout): string {
  return stringify11(layoutJson(layout));
}

function layoutJson(layout: Layout): JsonObject {
  const out: JsonObject = {};
  for (const id of Object.keys(layout).sort()) out[id] = { x: Math.round(layout[id].x), y: Math.round(layout[id].y) };
  return out;
}

export type { Json };
