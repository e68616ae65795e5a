// Shapes shared by the canvas and the kernel protocol (docs/canvas.md).
import type { Operation } from "fast-json-patch";

export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}
/** A path into a JSON value: object keys and array indexes. */
export type Path = (string | number)[];

/** The workflow file as JSON (aliases as in YAML, `${VAR}` kept as text); may be invalid. */
export type WorkflowConfig = JsonObject;

export interface Position {
  x: number;
  y: number;
}
/** Canvas positions by node id; kept apart from the workflow semantics. */
export type Layout = Record<string, Position>;

/** A JSON Schema (2020-12) as pydantic emits it; only what the canvas reads is typed. */
export interface JsonSchema {
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
  type?: string | string[];
  title?: string;
  description?: string;
  default?: Json;
  const?: Json;
  enum?: Json[];
  properties?: Record<string, JsonSchema>;
  patternProperties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  required?: string[];
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  discriminator?: { propertyName: string; mapping?: Record<string, string> };
  pattern?: string;
  minimum?: number;
  maximum?: number;
  "x-flownb-ref"?: string;
  "x-flownb-implicit"?: boolean;
  [key: string]: unknown;
}

/** One registered module type, as `flownb.registry.json_schema()["types"]` gives it. */
export interface ModuleTypeInfo {
  type: string;
  category: string;
  description: string;
  provides: string[];
  requires: string[];
  configSchema: JsonSchema;
}

/** The `schema` trait. */
export interface CanvasSchema {
  types: Record<string, ModuleTypeInfo>;
  categories: string[];
  file: JsonSchema;
}

export type DiagnosticSource = "schema" | "engine" | "local";

/** One problem, pinned to a node or edge id (or "config"). */
export interface Diagnostic {
  id: string;
  path?: string;
  loc?: Path;
  message: string;
  source: DiagnosticSource;
}

export type NodeStatus = "idle" | "running" | "ok" | "error";

export interface NodeStats {
  status: NodeStatus;
  executions: number;
  errors: number;
  lastMs?: number;
  avgMs?: number;
}

export interface Inspection {
  id: string;
  input?: unknown;
  output?: unknown;
  error?: unknown;
  at?: unknown;
}

/** The `generation` trait: the state of the AI prompt box's last request (docs/canvas.md). */
export interface Generation {
  status: "idle" | "running" | "done" | "error";
  intent?: string;
  message?: string;
  explanation?: string;
  errors?: string[];
  components?: string[];
}

/** The `generate` event payload. */
export interface GeneratePayload {
  intent: string;
}

/** The `patch` event payload. */
export interface PatchPayload {
  base: number;
  ops: Operation[];
  layout: Record<string, Position | null>;
}

/** Props of the exported component: ipyreact's synced traits and event callables. */
export interface CanvasProps {
  schema?: CanvasSchema | null;
  config?: WorkflowConfig | null;
  /** The layout, `{id: {x, y}}` (the trait is `positions`: ipyreact keeps `layout` for itself). */
  positions?: Layout | null;
  /** Same as `positions`, for standalone use. */
  layout?: Layout | null;
  revision?: number | null;
  /**
   * Bumped by the kernel when it answers a refused patch by sending its state again: the
   * canvas then reloads from `config`/`positions`/`revision` even if they did not change.
   */
  reloads?: number | null;
  diagnostics?: Diagnostic[] | null;
  running?: boolean | null;
  stats?: Record<string, Partial<NodeStats>> | null;
  inspection?: Inspection | null;
  generation?: Generation | null;
  patch?: (payload: PatchPayload) => void;
  validate?: (payload: Record<string, never>) => void;
  inspect?: (payload: { id: string }) => void;
  save?: (payload: Record<string, never>) => void;
  /** The AI prompt box: the kernel generates a validated workflow from `intent` and applies it. */
  generate?: (payload: GeneratePayload) => void;
  /** CSS height of the widget (the notebook output gives it none). */
  height?: number | string;
}
