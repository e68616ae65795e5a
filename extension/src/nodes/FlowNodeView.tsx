// One node on the canvas: label, type, category colour, live status badge and counters, and
// the problems pinned to it. Memoized, and subscribed only to its own stats and problems, so
// a stats update re-renders the nodes that changed and nothing else.
import { Handle, Position, type NodeProps } from "@xyflow/react";
import { memo } from "react";
import { useCanvas } from "../context";
import type { FlowNode } from "../store";
import type { Diagnostic, NodeStats } from "../types";
import { nodeColor } from "./colors";

function formatMs(ms: number | undefined): string {
  if (ms === undefined || ms === null || Number.isNaN(ms)) return "–";
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

export const StatusBadge = memo(function StatusBadge({ id, stats }: { id: string; stats: NodeStats | undefined }) {
  const status = stats?.status ?? "idle";
  return (
    <span
      className={`fnb-status fnb-status-${status}`}
      data-testid={`status-${id}`}
      data-status={status}
      title={`status: ${status}`}
    >
      {status}
    </span>
  );
});

function Counters({ stats }: { stats: NodeStats }) {
  return (
    <div className="fnb-node-stats" title="executions · errors · last (average) latency">
      <span>{stats.executions ?? 0} runs</span>
      <span className={stats.errors ? "fnb-node-stats-errors" : undefined}>{stats.errors ?? 0} err</span>
      <span>
        {formatMs(stats.lastMs)}
        {stats.avgMs !== undefined ? ` (${formatMs(stats.avgMs)})` : ""}
      </span>
    </div>
  );
}

function Problems({ id, problems }: { id: string; problems: Diagnostic[] }) {
  const text = problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message));
  return (
    <div className="fnb-node-problem" data-testid={`diagnostic-${id}`} title={text.join("\n")}>
      <span aria-hidden>⚠</span> {text[0]}
      {problems.length > 1 ? ` (+${problems.length - 1})` : ""}
    </div>
  );
}

function FlowNodeViewImpl({ id, data, selected }: NodeProps<FlowNode>) {
  const stats = useCanvas((s) => s.stats[id]);
  const problems = useCanvas((s) => s.problems[id]);
  const color = nodeColor(data.kind, data.category);
  const status = stats?.status ?? "idle";
  return (
    <div
      className={`fnb-node fnb-node-${data.kind} fnb-node-${status}${problems ? " fnb-node-has-problem" : ""}${selected ? " fnb-node-selected" : ""}`}
      style={{ borderLeftColor: color }}
      data-testid={`node-${id}`}
      title={data.category ? `${data.type} (${data.category})` : undefined}
    >
      {data.kind !== "trigger" && <Handle type="target" position={Position.Left} />}
      <div className="fnb-node-head">
        <span className="fnb-node-label">{data.label}</span>
        <StatusBadge id={id} stats={stats} />
      </div>
      <div className="fnb-node-detail">
        <span className="fnb-node-dot" style={{ background: color }} />
        {data.detail}
      </div>
      {stats && stats.executions > 0 && <Counters stats={stats} />}
      {problems && <Problems id={id} problems={problems} />}
      <Handle type="source" position={Position.Right} />
    </div>
  );
}

export const FlowNodeView = memo(FlowNodeViewImpl);

/** ReactFlow node types; a constant, so ReactFlow never sees a new object. */
export const nodeTypes = { module: FlowNodeView, pipeline: FlowNodeView, trigger: FlowNodeView };
