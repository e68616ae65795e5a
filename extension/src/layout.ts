// Automatic layout for nodes that have no position yet: dagre (left to right) for graphs of
// ordinary size; past DAGRE_LIMIT nodes, where dagre's crossing minimization takes the better
// part of a second, a linear-time layered layout of the same shape (ranks along the edges,
// barycentre ordering, long ranks wrapped into several columns).
import dagre from "@dagrejs/dagre";
import type { Layout, Position } from "./types";

export const NODE_WIDTH = 210;
export const NODE_HEIGHT = 70;
const NODE_GAP = 24;
const RANK_GAP = 90;
export const DAGRE_LIMIT = 150;

interface LayoutEdge {
  source: string;
  target: string;
}

/** Positions for every node, ranked along the edges (top-left corners, like ReactFlow's). */
export function autoLayout(nodeIds: string[], edges: LayoutEdge[]): Layout {
  return nodeIds.length > DAGRE_LIMIT ? layeredLayout(nodeIds, edges) : dagreLayout(nodeIds, edges);
}

export function dagreLayout(nodeIds: string[], edges: LayoutEdge[]): Layout {
  const g = new dagre.graphlib.Graph({ multigraph: false });
  g.setGraph({ rankdir: "LR", nodesep: NODE_GAP, ranksep: RANK_GAP, marginx: 20, marginy: 20 });
  g.setDefaultEdgeLabel(() => ({}));
  const known = new Set(nodeIds);
  for (const id of nodeIds) g.setNode(id, { width: NODE_WIDTH, height: NODE_HEIGHT });
  for (const e of edges) {
    if (known.has(e.source) && known.has(e.target) && e.source !== e.target) g.setEdge(e.source, e.target);
  }
  dagre.layout(g);
  const out: Layout = {};
  for (const id of nodeIds) {
    const n = g.node(id) as { x: number; y: number } | undefined;
    if (n) out[id] = { x: Math.round(n.x - NODE_WIDTH / 2), y: Math.round(n.y - NODE_HEIGHT / 2) };
  }
  return out;
}

/** Layers by longest path from the sources (cycles broken), ordered by barycentre. */
export function layeredLayout(nodeIds: string[], edges: LayoutEdge[]): Layout {
  const index = new Map(nodeIds.map((id, i) => [id, i]));
  const out: number[][] = nodeIds.map(() => []);
  const inc: number[][] = nodeIds.map(() => []);
  for (const e of edges) {
    const s = index.get(e.source);
    const t = index.get(e.target);
    if (s === undefined || t === undefined || s === t) continue;
    out[s].push(t);
    inc[t].push(s);
  }
  // Drop back edges (found by an iterative DFS) so the rest is acyclic.
  const state = new Uint8Array(nodeIds.length); // 0 new, 1 on stack, 2 done
  const forward: number[][] = nodeIds.map(() => []);
  for (let root = 0; root < nodeIds.length; root++) {
    if (state[root]) continue;
    const stack: [number, number][] = [[root, 0]];
    state[root] = 1;
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [v, i] = top;
      if (i < out[v].length) {
        top[1]++;
        const w = out[v][i];
        if (state[w] === 1) continue;
        forward[v].push(w);
        if (state[w] === 0) {
          state[w] = 1;
          stack.push([w, 0]);
        }
      } else {
        state[v] = 2;
        stack.pop();
      }
    }
  }
  // Longest-path ranks, in topological order (Kahn).
  const indegree = new Int32Array(nodeIds.length);
  for (const targets of forward) for (const t of targets) indegree[t]++;
  const rank = new Int32Array(nodeIds.length);
  const queue: number[] = [];
  indegree.forEach((d, v) => d === 0 && queue.push(v));
  for (let head = 0; head < queue.length; head++) {
    const v = queue[head];
    for (const w of forward[v]) {
      rank[w] = Math.max(rank[w], rank[v] + 1);
      if (--indegree[w] === 0) queue.push(w);
    }
  }
  const layers: number[][] = [];
  queue.forEach((v) => (layers[rank[v]] ??= []).push(v));
  // Order each layer by the mean position of its neighbours in the layer before (and after).
  const order = new Float64Array(nodeIds.length);
  const placeOrder = () =>
    layers.forEach((layer) => layer.forEach((v, i) => (order[v] = i / Math.max(1, layer.length))));
  placeOrder();
  const sweep = (neighbours: number[][], upward: boolean) => {
    for (const layer of upward ? [...layers].reverse() : layers) {
      const key = new Map<number, number>();
      for (const v of layer) {
        const ns = neighbours[v];
        key.set(v, ns.length ? ns.reduce((sum, n) => sum + order[n], 0) / ns.length : order[v]);
      }
      layer.sort((a, b) => key.get(a)! - key.get(b)!);
      layer.forEach((v, i) => (order[v] = i / Math.max(1, layer.length)));
    }
  };
  for (let round = 0; round < 2; round++) {
    sweep(inc, false);
    sweep(out, true);
  }
  // Long layers wrap into columns, so a wide fan-out does not become one endless column.
  const maxRows = Math.max(8, Math.ceil(Math.sqrt(nodeIds.length) * 1.5));
  const result: Layout = {};
  let x = 20;
  const tallest = Math.min(maxRows, Math.max(...layers.map((l) => l.length))) * (NODE_HEIGHT + NODE_GAP);
  for (const layer of layers) {
    const columns = Math.ceil(layer.length / maxRows);
    const rows = Math.ceil(layer.length / columns);
    const top = 20 + (tallest - rows * (NODE_HEIGHT + NODE_GAP)) / 2;
    layer.forEach((v, i) => {
      const column = Math.floor(i / rows);
      const row = i % rows;
      result[nodeIds[v]] = {
        x: x + column * (NODE_WIDTH + NODE_GAP),
        y: Math.round(top + row * (NODE_HEIGHT + NODE_GAP)),
      };
    });
    x += columns * (NODE_WIDTH + NODE_GAP) - NODE_GAP + RANK_GAP;
  }
  return result;
}

/** `at`, or the first spot below it where a new node would cover no other. */
export function freeSpot(at: Position, taken: Position[]): Position {
  const overlaps = (p: Position) =>
    taken.some((q) => Math.abs(q.x - p.x) < NODE_WIDTH + 10 && Math.abs(q.y - p.y) < NODE_HEIGHT + 10);
  let spot = { ...at };
  for (let tries = 0; tries < 200 && overlaps(spot); tries++) spot = { x: spot.x, y: spot.y + NODE_HEIGHT + NODE_GAP };
  return spot;
}

/**
 * Positions for the nodes `layout` lacks. When most nodes lack one the whole graph is laid
 * out; when a few are new they are laid out among themselves and put right of the others, so
 * positions the user chose never move.
 */
export function placeMissing(nodeIds: string[], edges: LayoutEdge[], layout: Layout): Layout {
  const missing = nodeIds.filter((id) => !layout[id]);
  if (missing.length === 0) return {};
  const placed = nodeIds.length - missing.length;
  if (placed === 0 || missing.length > placed) {
    const all = autoLayout(nodeIds, edges);
    if (placed === 0) return pick(all, missing);
    return shiftRightOf(pick(all, missing), layout, nodeIds);
  }
  return shiftRightOf(autoLayout(missing, edges), layout, nodeIds);
}

function pick(layout: Layout, ids: string[]): Layout {
  const out: Layout = {};
  for (const id of ids) if (layout[id]) out[id] = layout[id];
  return out;
}

function shiftRightOf(fresh: Layout, fixed: Layout, nodeIds: string[]): Layout {
  const fixedPositions: Position[] = nodeIds.map((id) => fixed[id]).filter(Boolean);
  if (fixedPositions.length === 0) return fresh;
  const right = Math.max(...fixedPositions.map((p) => p.x)) + NODE_WIDTH + 80;
  const top = Math.min(...fixedPositions.map((p) => p.y));
  const freshPositions = Object.values(fresh);
  const minX = Math.min(...freshPositions.map((p) => p.x));
  const minY = Math.min(...freshPositions.map((p) => p.y));
  const out: Layout = {};
  for (const [id, p] of Object.entries(fresh)) out[id] = { x: p.x - minX + right, y: p.y - minY + top };
  return out;
}
