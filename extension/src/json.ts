// Immutable helpers over plain JSON: edits share every untouched branch, so equality checks,
// memoized nodes and the patch diff can all stop at `===`.
import type { Json, JsonObject, Path } from "./types";

export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function asObject(value: unknown): JsonObject {
  return isObject(value) ? value : {};
}

export function asArray(value: unknown): Json[] {
  return Array.isArray(value) ? value : [];
}

export function asString(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

export function getIn(value: unknown, path: Path): Json | undefined {
  let node: unknown = value;
  for (const key of path) {
    if (Array.isArray(node) && typeof key === "number") node = node[key];
    else if (isObject(node) && typeof key === "string") node = node[key];
    else return undefined;
    if (node === undefined) return undefined;
  }
  return node as Json;
}

/** A copy of `root` with `value` at `path` (undefined removes it); missing parents are made. */
export function setIn<T extends Json>(root: T, path: Path, value: Json | undefined): T {
  if (path.length === 0) return (value === undefined ? {} : value) as T;
  const [key, ...rest] = path;
  const child = getIn(root, [key]);
  const next =
    rest.length === 0 ? value : setIn((child ?? (typeof rest[0] === "number" ? [] : {})) as Json, rest, value);
  if (Array.isArray(root) && typeof key === "number") {
    if (next === undefined) return root.filter((_, i) => i !== key) as T;
    if (root[key] === next) return root;
    const copy = root.slice();
    copy[key] = next;
    return copy as T;
  }
  const obj: JsonObject = isObject(root) ? root : {};
  const name = String(key);
  if (next === undefined) {
    if (!(name in obj)) return root;
    const { [name]: _removed, ...kept } = obj;
    return kept as T;
  }
  if (obj[name] === next) return root;
  return { ...obj, [name]: next } as T;
}

export function removeIn<T extends Json>(root: T, path: Path): T {
  return setIn(root, path, undefined);
}

/** Like setIn, but a new key keeps the position of `oldKey` (renaming a mapping key). */
export function renameKey(obj: JsonObject, oldKey: string, newKey: string): JsonObject {
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(obj)) out[key === oldKey ? newKey : key] = value;
  return out;
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) {
    return Number.isNaN(a) && Number.isNaN(b);
  }
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const other = b as unknown[];
    return a.length === other.length && a.every((item, i) => deepEqual(item, other[i]));
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  const ob = b as Record<string, unknown>;
  const oa = a as Record<string, unknown>;
  return ka.every((key) => Object.prototype.hasOwnProperty.call(ob, key) && deepEqual(oa[key], ob[key]));
}

export function pathKey(path: Path): string {
  return path.join(".");
}

export function startsWith(path: Path, prefix: Path): boolean {
  return prefix.length <= path.length && prefix.every((part, i) => path[i] === part);
}
