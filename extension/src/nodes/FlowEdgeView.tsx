// Edges: ReactFlow's bezier edge with an arrowhead of our own. SVG markers are costly to
// repaint when hundreds of edges are drawn (each edge is its own <svg>); a bezier edge enters
// its target's left handle horizontally, so a small triangle there is the same arrow for a
// fraction of the work. Below FAR_ZOOM labels are unreadable and each label, arrowhead and hit
// area costs more to lay out and paint than the node it leads to: they are left out (once,
// when the zoom crosses the line).
import { BezierEdge, type EdgeProps } from "@xyflow/react";
import { createContext, memo, useContext } from "react";
import type { FlowEdge } from "../store";

/** Below this zoom the canvas draws bare edges (and CSS drops dashes, see `.fnb-far`). */
export const FAR_ZOOM = 0.45;

export const FarContext = createContext(false);

const FlowEdgeView = memo(function FlowEdgeView(props: EdgeProps<FlowEdge>) {
  const far = useContext(FarContext);
  if (far) return <BezierEdge {...props} label={undefined} interactionWidth={0} />;
  const { targetX: x, targetY: y } = props;
  return (
    <>
      <BezierEdge {...props} />
      <path className="fnb-arrow" d={`M${x - 9},${y - 4.5}L${x},${y}L${x - 9},${y + 4.5}Z`} />
    </>
  );
});

/** ReactFlow edge types; a constant, so ReactFlow never sees a new object. */
export const edgeTypes = { fnb: FlowEdgeView };
