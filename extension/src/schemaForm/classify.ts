// Which widget a JSON Schema calls for, and how text typed into it becomes a value.
// Pure functions: the form components only render what these decide.
import { isObject } from "../json";
import { isEnvRef, type SchemaIndex } from "../schema";
import type { Json, JsonSchema } from "../types";

export type ScalarType = "string" | "number" | "integer" | "boolean";

export type FieldSpec =
  | { kind: "const"; value: Json }
  | { kind: "enum"; options: Json[] }
  /** A checkbox; `env`: a `${VAR}` string is accepted instead. */
  | { kind: "boolean"; env: boolean }
  /** One text box for strings, numbers and unions of scalars (`${VAR}`, durations...). */
  | { kind: "text"; types: ScalarType[]; env: boolean }
  | { kind: "object"; schema: JsonSchema }
  /** A mapping of free keys to values of one schema (`states:`, `transitions:`). */
  | { kind: "map"; values: JsonSchema }
  | { kind: "array"; items: JsonSchema }
  /** A union told apart by a tag property (pipeline steps by `type`). */
  | { kind: "tagged"; tag: string; options: Map<string, JsonSchema> }
  /** Any other union: the user picks the branch. */
  | { kind: "union"; branches: JsonSchema[] }
  /** Anything (templates, JSON Schemas, message bodies): edited as YAML text. */
  | { kind: "free" };

export interface Classified {
  spec: FieldSpec;
  /** null is allowed: the field may be left empty. */
  nullable: boolean;
  description?: string;
  defaultValue?: Json;
}

const SCALARS = new Set(["string", "number", "integer", "boolean"]);

function singleType(s: JsonSchema): string | undefined {
  if (Array.isArray(s.type)) return s.type.length === 1 ? s.type[0] : undefined;
  if (s.type) return s.type;
  if (s.properties) return "object";
  return undefined;
}

/** Text of the first `description` and `default` on the way down a union. */
function firstOf<K extends "description" | "default">(
  key: K,
  raw: JsonSchema,
  index: SchemaIndex,
  branches: JsonSchema[],
): JsonSchema[K] {
  if (raw[key] !== undefined) return raw[key];
  const resolved = index.resolve(raw);
  if (resolved?.[key] !== undefined) return resolved[key];
  for (const b of branches) if (b[key] !== undefined) return b[key];
  return undefined;
}

export function classify(index: SchemaIndex, raw: JsonSchema): Classified {
  const resolved = index.resolve(raw) ?? {};
  const tagged = index.tagged(resolved);
  const branches = tagged ? [resolved] : index.branches(resolved);
  const nullable = branches.some((b) => b.type === "null");
  const env = branches.some(isEnvRef);
  const rest = branches.filter((b) => b.type !== "null" && !isEnvRef(b));
  const description = firstOf("description", raw, index, branches) as string | undefined;
  const defaultValue = firstOf("default", raw, index, branches) as Json | undefined;
  const out = (spec: FieldSpec): Classified => ({ spec, nullable, description, defaultValue });

  if (rest.length === 0) return out({ kind: "text", types: ["string"], env });
  if (rest.length > 1) {
    const plain = rest.every((b) => SCALARS.has(singleType(b) ?? "") && b.enum === undefined && b.const === undefined);
    if (plain) {
      const types = [...new Set(rest.map((b) => singleType(b) as ScalarType))];
      return out({ kind: "text", types, env });
    }
    return out({ kind: "union", branches: rest });
  }
  const s = rest[0];
  const inner = index.tagged(s);
  if (inner) return out({ kind: "tagged", tag: inner.tag, options: inner.options });
  if (s.const !== undefined) return out({ kind: "const", value: s.const });
  if (s.enum) return out({ kind: "enum", options: s.enum });
  const type = singleType(s);
  if (type === "boolean") return out({ kind: "boolean", env });
  if (type === "string" || type === "number" || type === "integer") return out({ kind: "text", types: [type], env });
  if (type === "array") return out(s.items ? { kind: "array", items: s.items } : { kind: "free" });
  if (type === "object") {
    if (s.properties && Object.keys(s.properties).length) return out({ kind: "object", schema: s });
    if (isObject(s.additionalProperties as Json))
      return out({ kind: "map", values: s.additionalProperties as JsonSchema });
    const patterns = Object.values(s.patternProperties ?? {});
    if (patterns.length === 1) return out({ kind: "map", values: patterns[0] });
    return out({ kind: "free" });
  }
  return out({ kind: "free" });
}

const NUMBER = /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
const ENV = /^\$\{[^}]*\}$/;

/**
 * The value typed text stands for: numbers where the field takes numbers, true/false where it
 * takes booleans, `${VAR}` kept as text; text that fits no type stays text, so the schema's
 * own message rejects it. Empty text means "not set".
 */
export function parseScalar(text: string, types: ScalarType[], env: boolean): Json | undefined {
  const t = text.trim();
  if (t === "") return types.length === 1 && types[0] === "string" && text !== "" ? text : undefined;
  if (env && ENV.test(t)) return t;
  if ((types.includes("number") || types.includes("integer")) && NUMBER.test(t)) return Number(t);
  if (types.includes("boolean") && (t === "true" || t === "false")) return t === "true";
  return types.includes("string") ? text : t;
}

export function formatScalar(value: unknown): string {
  if (value === undefined || value === null) return "";
  return typeof value === "string" ? value : String(value);
}

/** A starting value for a new item or a newly added optional object. */
export function defaultFor(index: SchemaIndex, raw: JsonSchema): Json {
  const { spec, defaultValue } = classify(index, raw);
  if (defaultValue !== undefined && defaultValue !== null) return defaultValue;
  switch (spec.kind) {
    case "const":
      return spec.value;
    case "enum":
      return spec.options[0] ?? "";
    case "boolean":
      return false;
    case "text":
      return spec.types.includes("string") ? "" : 0;
    case "array":
      return [];
    case "tagged": {
      const first = [...spec.options.keys()][0] ?? "";
      return { [spec.tag]: first };
    }
    case "union":
      return defaultFor(index, spec.branches[0]);
    case "object": {
      const out: Record<string, Json> = {};
      for (const key of spec.schema.required ?? []) {
        const sub = spec.schema.properties?.[key];
        const c = sub ? classify(index, sub).spec : undefined;
        if (c?.kind === "const") out[key] = c.value;
      }
      return out;
    }
    default:
      return {};
  }
}

/** A short name for a union branch in the branch picker. */
export function branchLabel(index: SchemaIndex, branch: JsonSchema): string {
  const spec = classify(index, branch).spec;
  switch (spec.kind) {
    case "array":
      return "list";
    case "object":
      return branch.title && branch.title !== "PipelineSpec" ? branch.title : "object";
    case "enum":
      return "single";
    case "text":
      return spec.types.join("/");
    default:
      return branch.title ?? spec.kind;
  }
}
