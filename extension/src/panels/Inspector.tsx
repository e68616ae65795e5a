// The inspector: the last input, output and error of the selected node, asked of the kernel
// (`inspect`) when the node is selected and again on request.
import { useEffect } from "react";
import { useCanvas, useKernel } from "../context";
import { StatusBadge } from "../nodes/FlowNodeView";

function show(value: unknown): string {
  if (value === undefined) return "—";
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

export function Inspector({ id }: { id: string }) {
  const kernel = useKernel();
  const inspection = useCanvas((s) => s.inspection);
  const stats = useCanvas((s) => s.stats[id]);
  useEffect(() => {
    if (kernel.has.inspect) kernel.inspect(id);
  }, [id, kernel, stats?.executions]);
  const current = inspection && inspection.id === id ? inspection : null;
  return (
    <div className="fnb-panel fnb-inspector" data-testid="inspector">
      <div className="fnb-panel-head">
        <div>
          <div className="fnb-panel-title">Last execution</div>
          <div className="fnb-panel-subtitle">{id}</div>
        </div>
        <StatusBadge id={`inspector-${id}`} stats={stats} />
      </div>
      {!kernel.has.inspect && (
        <p className="fnb-help">Inspecting needs the kernel (run the workflow from the notebook).</p>
      )}
      {kernel.has.inspect && (
        <button type="button" className="fnb-button" data-testid="inspect-refresh" onClick={() => kernel.inspect(id)}>
          Refresh
        </button>
      )}
      {stats && (
        <p className="fnb-help">
          {stats.executions} executions, {stats.errors} errors
          {stats.lastMs !== undefined ? `, last ${stats.lastMs.toFixed(1)} ms` : ""}
          {stats.avgMs !== undefined ? `, average ${stats.avgMs.toFixed(1)} ms` : ""}
        </p>
      )}
      {current ? (
        <>
          {current.at !== undefined && current.at !== null && <p className="fnb-help">at {String(current.at)}</p>}
          <h4>Input</h4>
          <pre data-testid="inspect-input">{show(current.input)}</pre>
          <h4>Output</h4>
          <pre data-testid="inspect-output">{show(current.output)}</pre>
          {current.error !== undefined && current.error !== null && (
            <>
              <h4>Error</h4>
              <pre className="fnb-inspect-error" data-testid="inspect-error">
                {show(current.error)}
              </pre>
            </>
          )}
        </>
      ) : (
        kernel.has.inspect && <p className="fnb-help">No execution recorded for this node yet.</p>
      )}
    </div>
  );
}
