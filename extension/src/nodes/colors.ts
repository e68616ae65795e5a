// Category colours: the palette, the node stripe and the minimap agree on them.
import type { NodeKind } from "../serialization";

export const CATEGORY_COLORS: Record<string, string> = {
  HTTP: "#2563eb",
  Middleware: "#7c3aed",
  Messaging: "#ea580c",
  "State Machine": "#0d9488",
  Events: "#db2777",
  Integration: "#0891b2",
  Scheduling: "#16a34a",
  Infrastructure: "#64748b",
  Database: "#b45309",
  Observability: "#ca8a04",
};

export const PIPELINE_COLOR = "#334155";
export const TRIGGER_COLOR = "#dc2626";
const UNKNOWN_COLOR = "#a1a1aa";

export function nodeColor(kind: NodeKind, category?: string): string {
  if (kind === "pipeline") return PIPELINE_COLOR;
  if (kind === "trigger") return TRIGGER_COLOR;
  return (category && CATEGORY_COLORS[category]) || UNKNOWN_COLOR;
}
