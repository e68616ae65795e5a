// Local validation: the whole-file JSON Schema through ajv (2020-12), plus the cheap
// cross-reference checks (names that point nowhere), each problem pinned to the node or edge
// id its config path belongs to. The kernel's dry build stays the final verdict.
import Ajv2020, { type ErrorObject, type ValidateFunction } from "ajv/dist/2020";
import { asArray, asObject, asString, getIn, isObject } from "./json";
import { SchemaIndex } from "./schema";
import { idForPath, Resolver, TRIGGER_KINDS, TRIGGER_LISTS, type GraphContext } from "./serialization";
import type { Diagnostic, Json, JsonSchema, Path, WorkflowConfig } from "./types";

/** One problem at a config path (a missing field's own path, not its parent's). */
export interface FieldError {
  path: Path;
  message: string;
}

/**
 * ajv's discriminator support wants no `mapping` and the tag required; pydantic writes the
 * mapping and leaves the tag optional when it has a default (pydantic still requires it in a
 * union). Returns a copy fixed up for ajv.
 */
export function prepareSchema(schema: JsonSchema): JsonSchema {
  const visit = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(visit);
    if (!isObject(node)) return node;
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(node)) out[key] = visit(value);
    const disc = out.discriminator as { propertyName?: string } | undefined;
    if (disc && typeof disc.propertyName === "string" && Array.isArray(out.oneOf)) {
      out.discriminator = { propertyName: disc.propertyName };
      const required = Array.isArray(out.required) ? (out.required as string[]) : [];
      if (!required.includes(disc.propertyName)) out.required = [...required, disc.propertyName];
    }
    return out;
  };
  const copy = visit(schema) as JsonSchema;
  delete copy.$schema;
  delete copy.$id;
  return copy;
}

export class Validator {
  private readonly check: ValidateFunction;

  constructor(fileSchema: JsonSchema) {
    const ajv = new Ajv2020({ allErrors: true, strict: false, discriminator: true, validateFormats: false });
    ajv.addKeyword({ keyword: "x-flownb-ref", schemaType: "string" });
    ajv.addKeyword({ keyword: "x-flownb-implicit", schemaType: "boolean" });
    this.check = ajv.compile(prepareSchema(fileSchema));
  }

  /** Every schema problem in `config`, one message per field. */
  validate(config: WorkflowConfig): FieldError[] {
    if (this.check(config)) return [];
    return summarize(config, this.check.errors ?? []);
  }
}

function decodePointer(config: unknown, pointer: string): Path {
  const path: Path = [];
  let node: unknown = config;
  for (const raw of pointer.split("/").slice(1)) {
    const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    const part = Array.isArray(node) && /^\d+$/.test(key) ? Number(key) : key;
    path.push(part);
    node = getIn(node, [part]);
  }
  return path;
}

const UNION_KEYWORDS = new Set(["anyOf", "oneOf", "if", "then", "else", "not"]);
/** How a union branch that did not fit at all says so. */
const BRANCH_MISS = new Set(["type", "const", "enum", "anyOf", "oneOf", "pattern"]);
const ENV_PATTERN = /^\^\\\$\\\{/;

/** Turn ajv's errors into one readable message per field, as the user wrote the field. */
export function summarize(config: unknown, errors: ErrorObject[]): FieldError[] {
  // A union reports every branch that failed. Where some branch got further (an error
  // deeper down), the shallow "must be null"/"must be object" of the other branches is noise.
  const unions = new Set(errors.filter((e) => UNION_KEYWORDS.has(e.keyword)).map((e) => e.instancePath));
  const deeper = (at: string) =>
    errors.some(
      (e) =>
        e.instancePath.startsWith(`${at}/`) ||
        (e.instancePath === at && (e.keyword === "required" || e.keyword === "additionalProperties")),
    );
  const noisy = new Set([...unions].filter(deeper));
  const kept = errors.filter((e) => !(noisy.has(e.instancePath) && BRANCH_MISS.has(e.keyword)));
  const groups = new Map<string, { path: Path; errors: ErrorObject[] }>();
  for (const e of kept) {
    let path = decodePointer(config, e.instancePath);
    if (e.keyword === "required") path = [...path, String((e.params as { missingProperty: string }).missingProperty)];
    if (e.keyword === "additionalProperties") {
      path = [...path, String((e.params as { additionalProperty: string }).additionalProperty)];
    }
    const key = JSON.stringify(path);
    const group = groups.get(key) ?? { path, errors: [] };
    group.errors.push(e);
    groups.set(key, group);
  }
  const out: FieldError[] = [];
  for (const { path, errors: group } of groups.values()) {
    out.push({ path, message: messageOf(group) });
  }
  return out;
}

function messageOf(errors: ErrorObject[]): string {
  const real = errors.filter((e) => !UNION_KEYWORDS.has(e.keyword));
  if (real.length === 0) return errors[0]?.message ?? "is not valid";
  const required = real.find((e) => e.keyword === "required");
  if (required) return "is required";
  const unknown = real.find((e) => e.keyword === "additionalProperties");
  if (unknown) return "is not a known field";
  const disc = real.find((e) => e.keyword === "discriminator");
  if (disc) {
    const params = disc.params as { tag?: string; tagValue?: unknown };
    return params.tagValue === undefined
      ? `${params.tag ?? "type"} is required`
      : `unknown ${params.tag} ${JSON.stringify(params.tagValue)}`;
  }
  const env = real.some(
    (e) => e.keyword === "pattern" && ENV_PATTERN.test(String((e.params as { pattern: string }).pattern)),
  );
  const specific = real.filter(
    (e) =>
      e.keyword !== "type" &&
      !(e.keyword === "pattern" && ENV_PATTERN.test(String((e.params as { pattern: string }).pattern))),
  );
  if (specific.length) {
    const texts = [...new Set(specific.map((e) => describe(e)))];
    return texts.join("; ");
  }
  const types = [
    ...new Set(real.filter((e) => e.keyword === "type").map((e) => String((e.params as { type: string }).type))),
  ];
  const shown = types.filter((t) => t !== "null");
  const what = (shown.length ? shown : types).join(" or ");
  return `must be ${what}${env ? " (or a ${VAR} reference)" : ""}`;
}

function describe(e: ErrorObject): string {
  if (e.keyword === "enum") {
    const allowed = (e.params as { allowedValues: Json[] }).allowedValues;
    return `must be one of ${allowed.map((v) => JSON.stringify(v)).join(", ")}`;
  }
  if (e.keyword === "const") return `must be ${JSON.stringify((e.params as { allowedValue: Json }).allowedValue)}`;
  if (e.keyword === "pattern") return `must match ${(e.params as { pattern: string }).pattern}`;
  return e.message ?? "is not valid";
}

/** Names that point nowhere: what the kernel's cross-reference check would say, early. */
export function referenceErrors(config: WorkflowConfig, ctx: GraphContext): FieldError[] {
  const res = new Resolver(config, ctx);
  const out: FieldError[] = [];
  const seen = new Set<string>();
  asArray(config.modules).forEach((m, i) => {
    const name = isObject(m) ? asString(m.name) : undefined;
    if (name && seen.has(name))
      out.push({ path: ["modules", i, "name"], message: `another module is named "${name}"` });
    if (name) seen.add(name);
    asArray(asObject(m).dependsOn).forEach((dep, j) => {
      if (typeof dep === "string" && !res.modules.has(dep)) {
        out.push({ path: ["modules", i, "dependsOn", j], message: `no module named "${dep}"` });
      }
    });
  });
  const index = ctx.index;
  if (index) {
    for (const section of ["modules", "workflows", "triggers", "pipelines"]) {
      if (config[section] === undefined) continue;
      for (const ref of index.refs(config[section], index.child(index.root, config, section), [section])) {
        if (ref.implicit || !ref.name || ref.name.startsWith("${")) continue;
        const problem = refProblem(res, ref.kind, ref.name);
        if (problem) out.push({ path: ref.path, message: problem });
      }
    }
  }
  const triggers = asObject(config.triggers);
  for (const kind of TRIGGER_KINDS) {
    asArray(asObject(triggers[kind])[TRIGGER_LISTS[kind]]).forEach((item, i) => {
      const it = asObject(item);
      const action = asString(it.action);
      if (!action) return;
      const path = ["triggers", kind, TRIGGER_LISTS[kind], i, "action"];
      if (it.workflow === "pipeline" && !res.hasPipeline(action))
        out.push({ path, message: `no pipeline named "${action}"` });
      if ((it.workflow === "http" || it.workflow === "scheduler") && !res.handlerId(action)) {
        out.push({ path, message: `"${action}" is not a module or pipeline` });
      }
    });
  }
  return out;
}

function refProblem(res: Resolver, kind: string, name: string): string | undefined {
  if (kind === "handler") return res.handlerId(name) ? undefined : `"${name}" is not a module or pipeline`;
  if (kind === "pipeline") return res.hasPipeline(name) ? undefined : `no pipeline named "${name}"`;
  const module = res.modules.get(name);
  if (!module) return `no module named "${name}"`;
  if (res.ctx.schema?.types[module.type] && !res.provides(name, kind)) {
    return `module "${name}" (${module.type}) does not provide ${kind}`;
  }
  return undefined;
}

/** Pin field errors to node and edge ids, with the field path said in the message. */
export function toDiagnostics(config: WorkflowConfig, errors: FieldError[]): Diagnostic[] {
  return errors.map((e) => {
    const id = idForPath(config, e.path);
    return { id, loc: e.path, path: fieldLabel(e.path), message: e.message, source: "local" as const };
  });
}

/** `modules[2].config.port` -> `config.port`: the path inside the node's own entry. */
export function fieldLabel(path: Path): string {
  const skip =
    path[0] === "modules" || path[0] === "pipelines" ? 2 : path[0] === "triggers" || path[0] === "workflows" ? 4 : 0;
  const rest = path[0] === "workflows" && typeof path[3] !== "number" ? path : path.slice(skip);
  return rest.join(".");
}

export { SchemaIndex };
