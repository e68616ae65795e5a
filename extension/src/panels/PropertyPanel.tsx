// The property panel: the selected node's (or edge's) config entry, edited through a form
// generated from that entry's JSON Schema, with the problems pinned to it.
import { useCallback, useMemo, useState, useEffect } from "react";
import { useCanvas, useCanvasStore } from "../context";
import { getIn, pathKey, setIn, startsWith } from "../json";
import { SchemaForm, type FormChange } from "../schemaForm";
import { parseNodeId, type GraphEdge } from "../serialization";
import type { CanvasState, CanvasStore } from "../store";
import type { Diagnostic, JsonSchema, Path } from "../types";

export interface EntryView {
  /** The node or edge id the entry belongs to ("config" for workflow settings). */
  id: string;
  title: string;
  subtitle: string;
  /** Where the entry lives in the config; [] for the workflow-settings view. */
  path: Path;
  schema: JsonSchema | undefined;
  /** The name field renames (modules) or a separate name box does (pipelines). */
  rename: "field" | "box" | null;
  /** dependsOn and ref edges: nothing to edit but the edge itself. */
  linkOnly?: GraphEdge;
}

const EDGE_TITLES: Record<string, string> = {
  route: "HTTP route",
  subscription: "Subscription",
  producer: "Producer",
  hook: "State-machine hook",
  job: "Scheduled job",
  eventHandler: "Event handler",
  trigger: "Trigger target",
  dependsOn: "Dependency",
  ref: "Reference",
};

/** The schema of the entry at `path`; a module is shown with its own type's schema. */
function entrySchema(state: Pick<CanvasState, "ctx" | "config">, path: Path): JsonSchema | undefined {
  const index = state.ctx.index;
  const schema = index?.at(state.config, path);
  if (!index || !schema) return undefined;
  return index.tagged(schema) ? index.select(schema, getIn(state.config, path)) : schema;
}

/** What the panel shows for the current selection. */
export function entryView(
  state: Pick<CanvasState, "selection" | "ctx" | "config" | "nodeIndex" | "edgeIndex">,
): EntryView | null {
  const sel = state.selection;
  if (!sel) return null;
  const index = state.ctx.index;
  if (sel.kind === "config") {
    const root = index?.root;
    const schema: JsonSchema | undefined = root
      ? {
          type: "object",
          properties: {
            workflows: root.properties?.workflows ?? {},
            triggers: root.properties?.triggers ?? {},
            imports: root.properties?.imports ?? {},
          },
        }
      : undefined;
    return {
      id: "config",
      title: "Workflow settings",
      subtitle: "workflows, triggers, imports",
      path: [],
      schema,
      rename: null,
    };
  }
  if (sel.kind === "node") {
    const node = state.nodeIndex.get(sel.id);
    if (!node) return null;
    const schema = entrySchema(state, node.path);
    const parsed = parseNodeId(node.id);
    return {
      id: node.id,
      title: node.label,
      subtitle: node.kind === "module" ? `${node.type} · ${node.category}` : node.detail,
      path: node.path,
      schema,
      rename: parsed?.kind === "module" ? "field" : parsed?.kind === "pipeline" ? "box" : null,
    };
  }
  const edge = state.edgeIndex.get(sel.id);
  if (!edge) return null;
  const base = {
    id: edge.id,
    title: EDGE_TITLES[edge.kind] ?? edge.kind,
    subtitle: `${edge.source} → ${edge.target}`,
    rename: null,
  };
  if (edge.kind === "dependsOn" || edge.kind === "ref")
    return { ...base, path: edge.path, schema: undefined, linkOnly: edge };
  return { ...base, path: edge.path, schema: entrySchema(state, edge.path) };
}

/**
 * Check a value for the field at `path` (a full config path) against the schema before it is
 * applied: the schema's message if it is invalid there, else null.
 */
export function checkField(store: CanvasStore, path: Path, value: unknown): string | null {
  const state = store.getState();
  state.actions.ensureValidator();
  const validator = store.getState().validator;
  if (!validator) return null;
  const candidate = setIn(state.config, path, value as never);
  const problem = validator.validate(candidate).find((e) => startsWith(e.path, path));
  return problem ? problem.message : null;
}

function relativeErrors(
  base: Path,
  local: CanvasState["localErrors"],
  kernel: Diagnostic[],
  id: string,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of local) {
    if (!startsWith(e.path, base)) continue;
    const key = pathKey(e.path.slice(base.length));
    out[key] ??= e.message;
  }
  for (const d of kernel) {
    if (d.id !== id || !Array.isArray(d.loc) || !startsWith(d.loc, base)) continue;
    const key = pathKey(d.loc.slice(base.length));
    out[key] ??= d.message;
  }
  return out;
}

const TYPE_READONLY: ReadonlySet<string> = new Set(["type"]);

export function PropertyPanel() {
  const store = useCanvasStore();
  const selection = useCanvas((s) => s.selection);
  const config = useCanvas((s) => s.config);
  const ctx = useCanvas((s) => s.ctx);
  const nodeIndex = useCanvas((s) => s.nodeIndex);
  const edgeIndex = useCanvas((s) => s.edgeIndex);
  const view = useMemo(
    () => entryView({ selection, config, ctx, nodeIndex, edgeIndex }),
    [selection, config, ctx, nodeIndex, edgeIndex],
  );
  const local = useCanvas((s) => s.localErrors);
  const kernel = useCanvas((s) => s.kernelDiagnostics);
  const problems = useCanvas((s) => (view ? s.problems[view.id] : undefined));
  const index = ctx.index;
  const actions = useCanvas((s) => s.actions);
  const value = view ? (view.path.length ? getIn(config, view.path) : config) : undefined;
  const errors = useMemo(
    () => (view ? relativeErrors(view.path, local, kernel, view.id) : {}),
    [view?.path, local, kernel, view?.id],
  );

  const onChange: FormChange = useCallback(
    (rel, next, structural) => {
      if (!view) return null;
      if (view.rename === "field" && rel.length === 1 && rel[0] === "name") {
        return actions.rename(view.id, typeof next === "string" ? next : "");
      }
      const full = [...view.path, ...rel];
      if (!structural) {
        const problem = checkField(store, full, next);
        if (problem) return problem;
      }
      actions.updateEntry(full, next);
      return null;
    },
    [view?.id, view?.path, view?.rename, actions, store],
  );

  if (!view) return null;
  return (
    <div className="fnb-panel fnb-properties" data-testid="property-panel">
      <div className="fnb-panel-head">
        <div>
          <div className="fnb-panel-title" data-testid="property-title">
            {view.title}
          </div>
          <div className="fnb-panel-subtitle">{view.subtitle}</div>
        </div>
        {view.id !== "config" && (
          <button
            type="button"
            className="fnb-button fnb-danger"
            data-testid="property-delete"
            onClick={() => actions.deleteSelection()}
          >
            Delete
          </button>
        )}
      </div>
      {problems && problems.length > 0 && (
        <ul className="fnb-problems" data-testid={`problems-${view.id}`}>
          {problems.map((p, i) => (
            <li key={i} className={`fnb-problem fnb-problem-${p.source}`}>
              {p.path ? <code>{p.path}</code> : null} {p.message}
              <span className="fnb-problem-source">{p.source}</span>
            </li>
          ))}
        </ul>
      )}
      {view.rename === "box" && (
        <NameBox id={view.id} name={view.title} onRename={(name) => actions.rename(view.id, name)} />
      )}
      {view.linkOnly ? (
        <p className="fnb-help">
          {view.linkOnly.kind === "dependsOn"
            ? `"${parseNodeId(view.linkOnly.source)?.name}" starts after "${parseNodeId(view.linkOnly.target)?.name}" (dependsOn).`
            : `Field ${view.linkOnly.label} of "${parseNodeId(view.linkOnly.source)?.name}"${view.linkOnly.implicit ? " is left out: the only provider is used" : ""}.`}
        </p>
      ) : view.schema && index ? (
        <SchemaForm
          index={index}
          schema={view.schema}
          value={value}
          errors={errors}
          onChange={onChange}
          readOnly={view.rename === "field" ? TYPE_READONLY : undefined}
        />
      ) : (
        <p className="fnb-help">No schema is known for this entry (the kernel sends it with the widget).</p>
      )}
    </div>
  );
}

function NameBox({ id, name, onRename }: { id: string; name: string; onRename(name: string): string | null }) {
  const [draft, setDraft] = useState(name);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setDraft(name);
    setError(null);
  }, [name, id]);
  const commit = () => {
    if (draft !== name) setError(onRename(draft.trim()));
  };
  return (
    <div className={`fnb-field fnb-field-scalar${error ? " fnb-field-invalid" : ""}`}>
      <div className="fnb-field-row">
        <label className="fnb-label" htmlFor="fnb-name-box">
          name<span className="fnb-required">*</span>
        </label>
        <input
          id="fnb-name-box"
          className="fnb-input"
          data-testid="field-name"
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
          onBlur={commit}
          onKeyDown={(e) => e.key === "Enter" && commit()}
        />
      </div>
      {error && (
        <div className="fnb-field-error" data-testid="field-error-name" role="alert">
          {error}
        </div>
      )}
    </div>
  );
}
