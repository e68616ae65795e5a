// The canvas state (zustand, one store per widget): config, layout, selection, diagnostics,
// live stats and the undo/redo history of every edit.
//
// The config is the source of truth. A config change rebuilds the graph, the local
// validation and the ReactFlow nodes/edges (reusing every node object that did not change,
// so memoized node components stay put); a move touches positions only; a stats update
// replaces only the entries of the nodes that changed.
import {
  applyEdgeChanges,
  applyNodeChanges,
  type Edge,
  type EdgeChange,
  type Node,
  type NodeChange,
} from "@xyflow/react";
import { createStore, type StoreApi } from "zustand/vanilla";
import { deepEqual, getIn, setIn } from "./json";
import { autoLayout, placeMissing } from "./layout";
import {
  addModule,
  addPipeline,
  addTrigger,
  configToGraph,
  connect,
  deleteElements,
  graphContext,
  importYaml,
  renameNode,
  roundPosition,
  type EdgeKind,
  type Graph,
  type GraphContext,
  type GraphEdge,
  type GraphNode,
  type NodeKind,
  type TriggerKind,
} from "./serialization";
import { referenceErrors, toDiagnostics, Validator, type FieldError } from "./validation";
import type {
  CanvasSchema,
  Diagnostic,
  Generation,
  Inspection,
  Json,
  Layout,
  NodeStats,
  Path,
  Position,
  WorkflowConfig,
} from "./types";

export const HISTORY_LIMIT = 100;

const IDLE: Generation = { status: "idle" };

export interface NodeData extends Record<string, unknown> {
  label: string;
  detail: string;
  kind: NodeKind;
  type?: string;
  category?: string;
}
export type FlowNode = Node<NodeData, NodeKind>;
export interface EdgeData extends Record<string, unknown> {
  kind: EdgeKind;
}
export type FlowEdge = Edge<EdgeData>;

export type Selection = { kind: "node" | "edge"; id: string } | { kind: "config" } | null;

export interface Snapshot {
  config: WorkflowConfig;
  layout: Layout;
  label: string;
}

/** What the palette can drop: a module type, a pipeline or a trigger of some kind. */
export type PaletteItem =
  { kind: "module"; type: string } | { kind: "pipeline" } | { kind: "trigger"; trigger: TriggerKind };

export interface CanvasActions {
  load(config: WorkflowConfig, layout: Layout): void;
  setSchema(schema: CanvasSchema | null): void;
  ensureValidator(): void;
  replaceFromKernel(config: WorkflowConfig, layout: Layout): void;
  replaceLayoutFromKernel(layout: Layout): void;
  addNode(item: PaletteItem, position: Position): void;
  connect(source: string, target: string): string | null;
  deleteSelection(): void;
  deleteElements(nodeIds: string[], edgeIds: string[]): void;
  moveNodes(positions: Record<string, Position>): void;
  updateEntry(path: Path, value: Json | undefined, label?: string): void;
  rename(id: string, name: string): string | null;
  importYaml(text: string): string | null;
  autoLayoutAll(): void;
  undo(): void;
  redo(): void;
  select(selection: Selection): void;
  clearSelection(): void;
  onNodesChange(changes: NodeChange<FlowNode>[]): void;
  onEdgesChange(changes: EdgeChange<FlowEdge>[]): void;
  setKernelDiagnostics(list: Diagnostic[]): void;
  mergeStats(delta: Record<string, Partial<NodeStats>>): void;
  setRunning(running: boolean): void;
  setInspection(inspection: Inspection | null): void;
  setGeneration(generation: Generation | null): void;
  notify(text: string): void;
}

export interface CanvasState {
  schema: CanvasSchema | null;
  ctx: GraphContext;
  config: WorkflowConfig;
  /** Positions the user (or an import, or auto-layout) chose: what is saved. */
  layout: Layout;
  /** Positions computed for nodes that have none in `layout`: drawn, never saved. */
  auto: Layout;
  graph: Graph;
  nodeIndex: Map<string, GraphNode>;
  edgeIndex: Map<string, GraphEdge>;
  nodes: FlowNode[];
  edges: FlowEdge[];
  selection: Selection;
  localErrors: FieldError[];
  kernelDiagnostics: Diagnostic[];
  /** Every problem, by the id it is pinned to (a drawn node or edge, or "config"). */
  problems: Record<string, Diagnostic[]>;
  problemCount: number;
  stats: Record<string, NodeStats>;
  running: boolean;
  inspection: Inspection | null;
  /** The AI prompt box's last request, as the kernel reports it. */
  generation: Generation;
  past: Snapshot[];
  future: Snapshot[];
  /** Bumped by every local edit (not by kernel-side changes): what sync listens to. */
  editSeq: number;
  notice: { text: string; seq: number } | null;
  validator: Validator | null;
  actions: CanvasActions;
}

export type CanvasStore = StoreApi<CanvasState>;

const EMPTY_GRAPH: Graph = { nodes: [], edges: [], unplaced: [] };

/** Where a problem about `id` is shown: the node or edge if drawn, else its anchor, else config. */
function pinTarget(id: string, state: Pick<CanvasState, "nodeIndex" | "edgeIndex" | "graph">): string {
  if (state.nodeIndex.has(id) || state.edgeIndex.has(id)) return id;
  const unplaced = state.graph.unplaced.find((u) => u.id === id);
  if (unplaced?.anchor && state.nodeIndex.has(unplaced.anchor)) return unplaced.anchor;
  return "config";
}

function groupProblems(
  state: Pick<CanvasState, "nodeIndex" | "edgeIndex" | "graph" | "problems" | "config">,
  local: FieldError[],
  kernel: Diagnostic[],
): Record<string, Diagnostic[]> {
  const grouped: Record<string, Diagnostic[]> = {};
  // The kernel's schema verdict on a field the local check already flags says the same thing
  // in other words: show it once. (Anything only the kernel sees is kept.)
  const flagged = new Set(local.map((e) => JSON.stringify(e.path)));
  const fromKernel = kernel.filter(
    (d) => !(d.source === "schema" && Array.isArray(d.loc) && flagged.has(JSON.stringify(d.loc))),
  );
  for (const d of [...toDiagnostics(state.config, local), ...fromKernel]) {
    const at = pinTarget(d.id, state);
    (grouped[at] ??= []).push(d);
  }
  // Keep the previous array of an id whose problems did not change: its node does not re-render.
  for (const [id, list] of Object.entries(grouped)) {
    const before = state.problems[id];
    if (before && deepEqual(before, list)) grouped[id] = before;
  }
  return grouped;
}

function nodeFromGraph(g: GraphNode, position: Position, prev: FlowNode | undefined): FlowNode {
  const d = prev?.data;
  if (
    prev &&
    d &&
    d.label === g.label &&
    d.detail === g.detail &&
    d.type === g.type &&
    d.category === g.category &&
    prev.position.x === position.x &&
    prev.position.y === position.y
  ) {
    return prev;
  }
  return {
    id: g.id,
    type: g.kind,
    position,
    data: { label: g.label, detail: g.detail, kind: g.kind, type: g.type, category: g.category },
    selected: prev?.selected ?? false,
    measured: prev?.measured,
    deletable: false,
  };
}

function edgeFromGraph(g: GraphEdge, hasProblem: boolean, prev: FlowEdge | undefined): FlowEdge {
  const className = `fnb-edge fnb-edge-${g.kind}${g.implicit ? " fnb-edge-implicit" : ""}${hasProblem ? " fnb-edge-error" : ""}`;
  const label = g.kind === "dependsOn" ? undefined : `${hasProblem ? "⚠ " : ""}${g.label}`;
  if (
    prev &&
    prev.source === g.source &&
    prev.target === g.target &&
    prev.className === className &&
    prev.label === label
  ) {
    return prev;
  }
  return {
    id: g.id,
    type: "fnb",
    source: g.source,
    target: g.target,
    label,
    className,
    selected: prev?.selected ?? false,
    deletable: false,
    data: { kind: g.kind },
  };
}

export interface StoreOptions {
  schema?: CanvasSchema | null;
  config?: WorkflowConfig | null;
  layout?: Layout | null;
  /** Compile the ajv validator right away (tests); the widget defers it past first paint. */
  validateNow?: boolean;
}

export function createCanvasStore(options: StoreOptions = {}): CanvasStore {
  let noticeSeq = 0;
  const store = createStore<CanvasState>()((set, get) => {
    /** Derive everything that depends on the config (and positions), reusing what is unchanged. */
    const derive = (config: WorkflowConfig, layout: Layout, base: Partial<CanvasState> = {}): Partial<CanvasState> => {
      const s = { ...get(), ...base };
      const graph = configToGraph(config, s.ctx);
      const nodeIndex = new Map(graph.nodes.map((n) => [n.id, n]));
      const edgeIndex = new Map(graph.edges.map((e) => [e.id, e]));
      const kept: Layout = {};
      for (const id of nodeIndex.keys()) if (s.auto[id] && !layout[id]) kept[id] = s.auto[id];
      const auto = { ...kept, ...placeMissing([...nodeIndex.keys()], graph.edges, { ...kept, ...layout }) };
      const localErrors = [...(s.validator ? s.validator.validate(config) : []), ...referenceErrors(config, s.ctx)];
      const problems = groupProblems({ ...s, config, graph, nodeIndex, edgeIndex }, localErrors, s.kernelDiagnostics);
      return {
        config,
        layout,
        graph,
        nodeIndex,
        edgeIndex,
        auto,
        localErrors,
        problems,
        ...view(graph, layout, auto, problems, s),
      };
    };

    const view = (
      graph: Graph,
      layout: Layout,
      auto: Layout,
      problems: Record<string, Diagnostic[]>,
      s: Pick<CanvasState, "nodes" | "edges">,
    ): Pick<CanvasState, "nodes" | "edges" | "problemCount"> => {
      const prevNodes = new Map(s.nodes.map((n) => [n.id, n]));
      const prevEdges = new Map(s.edges.map((e) => [e.id, e]));
      const nodes = graph.nodes.map((g) => {
        const prev = prevNodes.get(g.id);
        // A node being dragged keeps the position under the pointer until the drop commits it.
        const position = prev?.dragging ? prev.position : (layout[g.id] ?? auto[g.id] ?? { x: 0, y: 0 });
        return nodeFromGraph(g, position, prev);
      });
      const edges = graph.edges.map((g) => edgeFromGraph(g, Boolean(problems[g.id]), prevEdges.get(g.id)));
      const problemCount = Object.values(problems).reduce((n, list) => n + list.length, 0);
      return { nodes, edges, problemCount };
    };

    /** Record an edit: the current state goes on the undo stack, the redo stack is dropped. */
    const commit = (label: string, config: WorkflowConfig, layout: Layout, select?: string) => {
      const s = get();
      if (config === s.config && deepEqual(layout, s.layout)) return;
      const past = [...s.past, { config: s.config, layout: s.layout, label }].slice(-HISTORY_LIMIT);
      const next: Partial<CanvasState> = config === s.config ? positionsOnly(layout) : derive(config, layout);
      set({ ...next, past, future: [], editSeq: s.editSeq + 1 });
      if (select) get().actions.select(selectionFor(select));
      else dropMissingSelection();
    };

    const positionsOnly = (layout: Layout): Partial<CanvasState> => {
      const s = get();
      return { layout, ...view(s.graph, layout, s.auto, s.problems, s) };
    };

    const selectionFor = (id: string): Selection => {
      const s = get();
      return s.edgeIndex.has(id) ? { kind: "edge", id } : { kind: "node", id };
    };

    const dropMissingSelection = () => {
      const s = get();
      const sel = s.selection;
      if (sel && sel.kind !== "config" && !s.nodeIndex.has(sel.id) && !s.edgeIndex.has(sel.id))
        set({ selection: null });
    };

    const restore = (from: "past" | "future") => {
      const s = get();
      const stack = s[from];
      if (stack.length === 0) return;
      const snap = stack[stack.length - 1];
      const current: Snapshot = { config: s.config, layout: s.layout, label: snap.label };
      const next = snap.config === s.config ? positionsOnly(snap.layout) : derive(snap.config, snap.layout);
      set({
        ...next,
        [from]: stack.slice(0, -1),
        [from === "past" ? "future" : "past"]: [...s[from === "past" ? "future" : "past"], current].slice(
          -HISTORY_LIMIT,
        ),
        editSeq: s.editSeq + 1,
      });
      dropMissingSelection();
    };

    const notify = (text: string) => set({ notice: { text, seq: ++noticeSeq } });

    const actions: CanvasActions = {
      load(config, layout) {
        set({ ...derive(config, layout, { auto: {}, nodes: [], edges: [] }), past: [], future: [], selection: null });
      },
      setSchema(schema) {
        const ctx = graphContext(schema);
        set({ schema: ctx.schema, ctx, validator: null });
        const s = get();
        set(derive(s.config, s.layout));
        if (options.validateNow) actions.ensureValidator();
      },
      ensureValidator() {
        const s = get();
        if (s.validator || !s.schema?.file) return;
        try {
          set({ validator: new Validator(s.schema.file) });
        } catch (error) {
          notify(`local validation is off: ${(error as Error).message}`);
          return;
        }
        set(derive(s.config, s.layout));
      },
      replaceFromKernel(config, layout) {
        set({ ...derive(config, layout), past: [], future: [] });
        dropMissingSelection();
      },
      replaceLayoutFromKernel(layout) {
        set(positionsOnly(layout));
      },
      addNode(item, position) {
        const s = get();
        const result =
          item.kind === "module"
            ? addModule(s.config, s.layout, item.type, position)
            : item.kind === "pipeline"
              ? addPipeline(s.config, s.layout, position)
              : addTrigger(s.config, s.layout, item.trigger, position);
        commit("add", result.config, result.layout, result.select);
      },
      connect(source, target) {
        const s = get();
        const result = connect(s.config, s.layout, s.ctx, source, target);
        if ("error" in result) {
          notify(result.error);
          return result.error;
        }
        commit("connect", result.config, result.layout, result.select);
        return null;
      },
      deleteSelection() {
        const s = get();
        const nodeIds = s.nodes.filter((n) => n.selected).map((n) => n.id);
        const edgeIds = s.edges.filter((e) => e.selected).map((e) => e.id);
        const sel = s.selection;
        if (sel && sel.kind === "node" && !nodeIds.includes(sel.id)) nodeIds.push(sel.id);
        if (sel && sel.kind === "edge" && !edgeIds.includes(sel.id)) edgeIds.push(sel.id);
        if (nodeIds.length || edgeIds.length) actions.deleteElements(nodeIds, edgeIds);
      },
      deleteElements(nodeIds, edgeIds) {
        const s = get();
        const implicit = edgeIds.filter((id) => s.edgeIndex.get(id)?.implicit);
        if (implicit.length && !nodeIds.length && implicit.length === edgeIds.length) {
          notify("this edge comes from a field left out (the only provider is used); set the field to change it");
          return;
        }
        const result = deleteElements(s.config, s.layout, s.ctx, s.graph, nodeIds, edgeIds);
        commit("delete", result.config, result.layout);
        set({ selection: null });
      },
      moveNodes(positions) {
        const s = get();
        const layout = { ...s.layout };
        for (const [id, p] of Object.entries(positions)) if (s.nodeIndex.has(id)) layout[id] = roundPosition(p);
        commit("move", s.config, layout);
      },
      updateEntry(path, value, label = "edit") {
        const s = get();
        if (deepEqual(getIn(s.config, path), value)) return;
        commit(label, setIn(s.config, path, value), s.layout);
      },
      rename(id, name) {
        const s = get();
        const result = renameNode(s.config, s.layout, s.ctx, id, name);
        if ("error" in result) return result.error;
        commit("rename", result.config, result.layout, result.select);
        return null;
      },
      importYaml(text) {
        const parsed = importYaml(text);
        if ("error" in parsed) return parsed.line ? `line ${parsed.line}: ${parsed.error}` : parsed.error;
        const s = get();
        const graph = configToGraph(parsed.config, s.ctx);
        const ids = graph.nodes.map((n) => n.id);
        const layout: Layout = {};
        for (const id of ids) if (parsed.layout[id]) layout[id] = parsed.layout[id];
        Object.assign(layout, placeMissing(ids, graph.edges, layout));
        commit("import", parsed.config, layout);
        set({ selection: null });
        return null;
      },
      autoLayoutAll() {
        const s = get();
        commit("layout", s.config, autoLayout([...s.nodeIndex.keys()], s.graph.edges));
      },
      undo() {
        restore("past");
      },
      redo() {
        restore("future");
      },
      select(selection) {
        const s = get();
        const nodeId = selection?.kind === "node" ? selection.id : undefined;
        const edgeId = selection?.kind === "edge" ? selection.id : undefined;
        const nodes = s.nodes.map((n) =>
          (n.id === nodeId) === Boolean(n.selected) ? n : { ...n, selected: n.id === nodeId },
        );
        const edges = s.edges.map((e) =>
          (e.id === edgeId) === Boolean(e.selected) ? e : { ...e, selected: e.id === edgeId },
        );
        set({ selection, nodes, edges });
      },
      clearSelection() {
        actions.select(null);
      },
      onNodesChange(changes) {
        const relevant = changes.filter((c) => c.type === "position" || c.type === "select" || c.type === "dimensions");
        if (!relevant.length) return;
        const s = get();
        const nodes = applyNodeChanges(relevant, s.nodes);
        set({ nodes });
        if (relevant.some((c) => c.type === "select")) syncSelection();
      },
      onEdgesChange(changes) {
        const relevant = changes.filter((c) => c.type === "select");
        if (!relevant.length) return;
        set({ edges: applyEdgeChanges(relevant, get().edges) });
        syncSelection();
      },
      setKernelDiagnostics(list) {
        const s = get();
        const problems = groupProblems(s, s.localErrors, list);
        set({ kernelDiagnostics: list, problems, ...view(s.graph, s.layout, s.auto, problems, s) });
      },
      mergeStats(delta) {
        const s = get();
        let stats = s.stats;
        for (const [id, entry] of Object.entries(delta)) {
          const before = stats[id];
          const merged: NodeStats = Object.assign({ status: "idle", executions: 0, errors: 0 }, before, entry);
          if (before && deepEqual(before, merged)) continue;
          if (stats === s.stats) stats = { ...stats };
          stats[id] = merged;
        }
        if (stats !== s.stats) set({ stats });
      },
      setRunning(running) {
        if (get().running !== running) set({ running });
      },
      setInspection(inspection) {
        set({ inspection });
      },
      setGeneration(generation) {
        set({ generation: generation ?? IDLE });
      },
      notify,
    };

    /** The panel follows ReactFlow's selection: one node or one edge, else nothing. */
    const syncSelection = () => {
      const s = get();
      const nodes = s.nodes.filter((n) => n.selected);
      const edges = s.edges.filter((e) => e.selected);
      let selection: Selection = null;
      if (nodes.length === 1 && edges.length === 0) selection = { kind: "node", id: nodes[0].id };
      else if (edges.length === 1 && nodes.length === 0) selection = { kind: "edge", id: edges[0].id };
      else if (!nodes.length && !edges.length && s.selection?.kind === "config") selection = s.selection;
      const same =
        selection === s.selection ||
        (selection &&
          s.selection &&
          selection.kind === s.selection.kind &&
          "id" in selection &&
          "id" in s.selection &&
          selection.id === s.selection.id);
      if (!same) set({ selection });
    };

    return {
      schema: null,
      ctx: graphContext(null),
      config: {},
      layout: {},
      auto: {},
      graph: EMPTY_GRAPH,
      nodeIndex: new Map(),
      edgeIndex: new Map(),
      nodes: [],
      edges: [],
      selection: null,
      localErrors: [],
      kernelDiagnostics: [],
      problems: {},
      problemCount: 0,
      stats: {},
      running: false,
      inspection: null,
      generation: IDLE,
      past: [],
      future: [],
      editSeq: 0,
      notice: null,
      validator: null,
      actions,
    };
  });
  const { actions } = store.getState();
  if (options.schema) {
    const ctx = graphContext(options.schema);
    store.setState({ schema: ctx.schema, ctx });
    if (options.validateNow) actions.ensureValidator();
  }
  actions.load(options.config ?? {}, options.layout ?? {});
  return store;
}
