// Reading the registry's JSON Schema: $ref resolution, choosing the branch of a union that a
// value takes, the subschema at a config path, and the references (`x-flownb-ref`) a value
// holds. Serialization (edges, rename, delete) and the property forms both read the schema
// through here, so no module type's fields are ever restated in TypeScript.
import { isObject } from "./json";
import type { Json, JsonSchema, Path } from "./types";

/** A name a config value holds that points at a module or pipeline. */
export interface RefSite {
  path: Path;
  kind: string;
  /** The name written there; empty for an implicit reference (the field was left out). */
  name: string;
  implicit: boolean;
}

const ENV_PATTERN_HINT = "^\\$\\{";

/** Whether a schema is the `${VAR}` string that numbers and booleans also accept. */
export function isEnvRef(schema: JsonSchema): boolean {
  return schema.type === "string" && typeof schema.pattern === "string" && schema.pattern.startsWith(ENV_PATTERN_HINT);
}

export function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

export class SchemaIndex {
  private readonly pointers = new Map<string, JsonSchema | undefined>();

  constructor(readonly root: JsonSchema) {}

  /** Follow `$ref` (local JSON pointers) until a schema without one. */
  resolve(schema: JsonSchema | undefined): JsonSchema | undefined {
    let current = schema;
    for (let hops = 0; current && typeof current.$ref === "string" && hops < 32; hops++) {
      current = this.pointer(current.$ref);
    }
    return current;
  }

  private pointer(ref: string): JsonSchema | undefined {
    if (this.pointers.has(ref)) return this.pointers.get(ref);
    let node: unknown = undefined;
    if (ref.startsWith("#")) {
      node = this.root;
      for (const raw of ref.slice(1).split("/").filter(Boolean)) {
        const key = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
        node = isObject(node) || Array.isArray(node) ? (node as Record<string, unknown>)[key] : undefined;
      }
    }
    const found = isObject(node) ? (node as JsonSchema) : undefined;
    this.pointers.set(ref, found);
    return found;
  }

  /** The branches of a union with nested plain `anyOf`s flattened, each resolved. */
  branches(schema: JsonSchema): JsonSchema[] {
    const out: JsonSchema[] = [];
    const visit = (s: JsonSchema | undefined) => {
      const r = this.resolve(s);
      if (!r) return;
      const union = r.anyOf ?? (r.discriminator ? undefined : r.oneOf);
      if (union && !r.properties && !r.type) union.forEach(visit);
      else out.push(r);
    };
    const r = this.resolve(schema);
    const union = r?.anyOf ?? (r?.discriminator ? undefined : r?.oneOf);
    if (union) union.forEach(visit);
    else if (r) out.push(r);
    return out;
  }

  /** For a discriminated union: its tag property and the branch of each tag value. */
  tagged(schema: JsonSchema): { tag: string; options: Map<string, JsonSchema> } | undefined {
    const r = this.resolve(schema);
    if (!r?.oneOf || !r.discriminator) return undefined;
    const tag = r.discriminator.propertyName;
    const options = new Map<string, JsonSchema>();
    for (const branch of r.oneOf) {
      const b = this.resolve(branch);
      const prop = this.resolve(b?.properties?.[tag]);
      if (!b || !prop) continue;
      if (prop.const !== undefined) options.set(String(prop.const), b);
      else prop.enum?.forEach((v) => options.set(String(v), b));
    }
    return { tag, options };
  }

  /** The concrete (non-union) schema that `value` is read with. */
  select(schema: JsonSchema | undefined, value: unknown): JsonSchema | undefined {
    const r = this.resolve(schema);
    if (!r) return undefined;
    const tagged = this.tagged(r);
    if (tagged) {
      const tag = isObject(value) ? value[tagged.tag] : undefined;
      return tagged.options.get(String(tag));
    }
    if (r.anyOf || r.oneOf) {
      const match = this.branches(r).find((b) => this.accepts(b, value));
      return match && match !== r ? this.select(match, value) : match;
    }
    return r;
  }

  /** A shallow type check: whether `value` could be read by this (resolved) schema. */
  accepts(schema: JsonSchema, value: unknown): boolean {
    if (schema.const !== undefined) return schema.const === value;
    if (schema.enum) return schema.enum.includes(value as Json);
    if (this.tagged(schema)) return isObject(value);
    if (schema.anyOf || schema.oneOf) return this.branches(schema).some((b) => this.accepts(b, value));
    const types = schema.type === undefined ? [] : Array.isArray(schema.type) ? schema.type : [schema.type];
    if (types.length === 0) return true;
    const actual = jsonType(value);
    return types.some((t) => t === actual || (t === "number" && actual === "integer"));
  }

  /** The schema of `key` inside a value read with `schema`. */
  child(schema: JsonSchema | undefined, value: unknown, key: string | number): JsonSchema | undefined {
    const s = this.select(schema, value);
    if (!s) return undefined;
    if (typeof key === "number") return s.items;
    const direct = s.properties?.[key];
    if (direct) return direct;
    for (const [pattern, sub] of Object.entries(s.patternProperties ?? {})) {
      if (new RegExp(pattern).test(key)) return sub;
    }
    return isObject(s.additionalProperties) ? (s.additionalProperties as JsonSchema) : undefined;
  }

  /** The schema of the value at `path` inside `value` (read with the root schema). */
  at(value: unknown, path: Path, schema: JsonSchema | undefined = this.root): JsonSchema | undefined {
    let s: JsonSchema | undefined = schema;
    let v: unknown = value;
    for (const key of path) {
      s = this.child(s, v, key);
      if (!s) return undefined;
      v = Array.isArray(v) || isObject(v) ? (v as Record<string | number, unknown>)[key] : undefined;
    }
    return s;
  }

  /** Every reference inside `value`, explicit (a name is written) or implicit (left out). */
  refs(value: unknown, schema: JsonSchema | undefined, path: Path = [], out: RefSite[] = []): RefSite[] {
    if (value === undefined || value === null || !schema) return out;
    const kind = schema["x-flownb-ref"] ?? this.resolve(schema)?.["x-flownb-ref"];
    if (typeof kind === "string" && typeof value === "string") {
      out.push({ path, kind, name: value, implicit: false });
      return out;
    }
    const s = this.select(schema, value);
    if (!s) return out;
    if (Array.isArray(value)) {
      if (s.items) value.forEach((item, i) => this.refs(item, s.items, [...path, i], out));
      return out;
    }
    if (!isObject(value)) return out;
    for (const [key, item] of Object.entries(value)) {
      const sub = this.child(s, value, key);
      if (sub) this.refs(item, sub, [...path, key], out);
    }
    for (const [key, prop] of Object.entries(s.properties ?? {})) {
      const implicitKind = prop["x-flownb-ref"];
      if (prop["x-flownb-implicit"] && typeof implicitKind === "string" && (value[key] ?? null) === null) {
        out.push({ path: [...path, key], kind: implicitKind, name: "", implicit: true });
      }
    }
    return out;
  }
}
