// Canvas <-> kernel: each local edit becomes one `patch` call holding the RFC 6902 ops that
// turn the last config sent into the current one, and the layout entries that moved.
// Python-side `config`/`positions`/`revision` changes are applied back.
//
// The kernel bumps `revision` by exactly one for every patch it accepts and applies patches in
// order (docs/canvas.md), so each patch goes out at once on the base the previous one leads
// to. A patch is refused only if the kernel's config changed meanwhile; the kernel then sends
// that config, which replaces local state.
import { escapePathComponent, type Operation } from "fast-json-patch";
import { deepEqual, isObject } from "./json";
import type { CanvasStore } from "./store";
import type { Json, Layout, PatchPayload, Position, WorkflowConfig } from "./types";

/**
 * The JSON Patch from `a` to `b`. Unchanged branches are skipped by identity (edits share
 * them), and list items are aligned (by identity, then by `name`), so deleting the first of 500
 * modules is one `remove`, not 500 `replace`s as a positional diff would give.
 */
export function diffConfig(a: Json | undefined, b: Json | undefined, path = "", ops: Operation[] = []): Operation[] {
  if (a === b) return ops;
  if (Array.isArray(a) && Array.isArray(b)) {
    diffArray(a, b, path, ops);
  } else if (isObject(a) && isObject(b)) {
    for (const key of Object.keys(a)) {
      const p = `${path}/${escapePathComponent(key)}`;
      if (b[key] === undefined) ops.push({ op: "remove", path: p });
      else diffConfig(a[key], b[key], p, ops);
    }
    for (const key of Object.keys(b)) {
      if (a[key] === undefined && b[key] !== undefined) {
        ops.push({ op: "add", path: `${path}/${escapePathComponent(key)}`, value: b[key] });
      }
    }
  } else if (!deepEqual(a, b)) {
    ops.push({ op: "replace", path, value: b });
  }
  return ops;
}

function itemKey(item: Json): string | undefined {
  return isObject(item) && typeof item.name === "string" ? `name:${item.name}` : undefined;
}

function diffArray(a: Json[], b: Json[], path: string, ops: Operation[]): void {
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const A = a.slice(start, endA);
  const B = b.slice(start, endB);
  // Match items of A and B: the same object, else the same unique `name`.
  const keyCount = new Map<string, number>();
  for (const item of [...A, ...B]) {
    const key = itemKey(item);
    if (key) keyCount.set(key, (keyCount.get(key) ?? 0) + 1);
  }
  const matchOfA = new Map<number, number>();
  const matchOfB = new Map<number, number>();
  const byKey = new Map<string, number>();
  const byIdentity = new Map<Json, number>();
  A.forEach((item, i) => {
    const key = itemKey(item);
    if (key && keyCount.get(key) === 2) byKey.set(key, i);
    if (typeof item === "object" && item !== null) byIdentity.set(item, i);
  });
  B.forEach((item, j) => {
    const key = itemKey(item);
    const i = byIdentity.get(item) ?? (key && keyCount.get(key) === 2 ? byKey.get(key) : undefined);
    if (i !== undefined && !matchOfA.has(i)) {
      matchOfA.set(i, j);
      matchOfB.set(j, i);
    }
  });
  let i = 0;
  let j = 0;
  const at = () => `${path}/${start + j}`;
  while (i < A.length && j < B.length) {
    const mi = matchOfA.get(i);
    const mj = matchOfB.get(j);
    if (mi === j || (mi === undefined && mj === undefined)) {
      diffConfig(A[i], B[j], at(), ops);
      i++;
      j++;
    } else if (mi === undefined) {
      ops.push({ op: "remove", path: at() });
      i++;
    } else if (mj === undefined) {
      ops.push({ op: "add", path: at(), value: B[j] });
      j++;
    } else {
      // Reordered: fall back to position by position for what is left.
      diffConfig(A[i], B[j], at(), ops);
      i++;
      j++;
    }
  }
  for (; i < A.length; i++) ops.push({ op: "remove", path: at() });
  for (; j < B.length; j++) ops.push({ op: "add", path: at(), value: B[j] });
}

/** Layout entries that differ: the new position, or null for a node that lost its own. */
export function diffLayout(a: Layout, b: Layout): Record<string, Position | null> {
  const out: Record<string, Position | null> = {};
  for (const [id, p] of Object.entries(b)) {
    const q = a[id];
    if (!q || q.x !== p.x || q.y !== p.y) out[id] = { x: p.x, y: p.y };
  }
  for (const id of Object.keys(a)) if (!b[id]) out[id] = null;
  return out;
}

export type Send = (payload: PatchPayload) => void;

/** Keeps one canvas and its kernel-side Workflow in step. */
export class KernelSync {
  /** The base of the next patch: the kernel's revision once it has taken every patch sent. */
  revision: number;
  /** What the kernel has (or will have, once it takes what was sent): the base of each diff. */
  private synced: { config: WorkflowConfig; layout: Layout };
  private readonly unsubscribe: () => void;

  constructor(
    private readonly store: CanvasStore,
    private send: Send | undefined,
    revision = 0,
  ) {
    const s = store.getState();
    this.revision = revision;
    this.synced = { config: s.config, layout: s.layout };
    this.unsubscribe = store.subscribe((state, prev) => {
      if (state.editSeq !== prev.editSeq) this.flush();
    });
  }

  setSend(send: Send | undefined): void {
    this.send = send;
    this.flush();
  }

  dispose(): void {
    this.unsubscribe();
  }

  /** What a patch now would carry (nothing to send: null). */
  pending(): PatchPayload | null {
    const { config, layout } = this.store.getState();
    const ops = diffConfig(this.synced.config, config);
    const moved = diffLayout(this.synced.layout, layout);
    if (ops.length === 0 && Object.keys(moved).length === 0) return null;
    return { base: this.revision, ops, layout: moved };
  }

  /** Send the local edits the kernel has not been sent yet. */
  flush(): void {
    const { config, layout } = this.store.getState();
    const payload = this.send ? this.pending() : null;
    this.synced = { config, layout };
    if (!payload || !this.send) return;
    this.revision = payload.base + 1;
    this.send(payload);
  }

  /**
   * A new `revision` from the kernel. Acks of our own patches change nothing (we are already
   * past them); a revision beyond what we sent means someone else moved the kernel on.
   */
  receiveRevision(revision: number): void {
    if (revision > this.revision) this.revision = revision;
  }

  /**
   * A `config` from the kernel: a Python-side change, or the config sent again after a
   * refused patch. One equal to what we have changes nothing; anything else replaces local
   * state (and the undo history: it belongs to a config that is gone).
   */
  receiveConfig(config: WorkflowConfig, layout: Layout | undefined, revision: number): void {
    const state = this.store.getState();
    this.revision = revision;
    if (deepEqual(config, state.config)) {
      this.synced = { config: state.config, layout: this.synced.layout };
      if (layout) this.receiveLayout(layout);
      return;
    }
    state.actions.replaceFromKernel(config, layout ?? state.layout);
    const after = this.store.getState();
    this.synced = { config: after.config, layout: after.layout };
  }

  /** The kernel refused a patch and sent its state again: make it ours, whatever we had. */
  reload(config: WorkflowConfig, layout: Layout, revision: number): void {
    const state = this.store.getState();
    this.revision = revision;
    if (!deepEqual(config, state.config) || !deepEqual(layout, state.layout)) {
      state.actions.replaceFromKernel(config, layout);
    }
    const after = this.store.getState();
    this.synced = { config: after.config, layout: after.layout };
  }

  /** A Python-side layout change (positions only). */
  receiveLayout(layout: Layout): void {
    const state = this.store.getState();
    if (deepEqual(layout, state.layout)) {
      this.synced = { ...this.synced, layout: state.layout };
      return;
    }
    state.actions.replaceLayoutFromKernel(layout);
    this.synced = { ...this.synced, layout: this.store.getState().layout };
  }
}
