// The canvas itself: palette, ReactFlow graph (minimap, zoom controls), toolbar, side panel,
// and the keyboard shortcuts. Reads the store through narrow selectors only.
import {
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  useNodesInitialized,
  useReactFlow,
  useStore as useFlowStore,
  type Connection,
  type IsValidConnection,
  type Node,
  type OnNodeDrag,
} from "@xyflow/react";
import { memo, useCallback, useEffect, useRef, useState, type DragEvent, type KeyboardEvent } from "react";
import { useCanvas, useCanvasStore, useKernel } from "./context";
import { freeSpot, NODE_HEIGHT, NODE_WIDTH } from "./layout";
import { nodeColor } from "./nodes/colors";
import { edgeTypes, FAR_ZOOM, FarContext } from "./nodes/FlowEdgeView";
import { nodeTypes } from "./nodes/FlowNodeView";
import { AIPrompt } from "./panels/AIPrompt";
import { Inspector } from "./panels/Inspector";
import { Palette, PALETTE_MIME } from "./panels/Palette";
import { PropertyPanel } from "./panels/PropertyPanel";
import { ExportDialog, ImportDialog, Toolbar, type Dialog } from "./panels/Toolbar";
import { planConnection } from "./serialization";
import type { FlowEdge, FlowNode, NodeData, PaletteItem } from "./store";

function isEditable(target: EventTarget | null): boolean {
  if (!(target instanceof HTMLElement)) return false;
  const tag = target.tagName;
  return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable;
}

const miniMapColor = (node: Node) => {
  const data = node.data as NodeData;
  return nodeColor(data.kind, data.category);
};

const FIT_VIEW_OPTIONS = { padding: 0.1, maxZoom: 1.2 };

const PRO_OPTIONS = { hideAttribution: false };
const MINIMAP_STYLE = { width: 160, height: 110 };

const Graph = memo(function Graph({ onReady }: { onReady?: () => void }) {
  const store = useCanvasStore();
  const nodes = useCanvas((s) => s.nodes);
  const edges = useCanvas((s) => s.edges);
  const actions = useCanvas((s) => s.actions);
  const flow = useReactFlow();
  const far = useFlowStore((s) => s.transform[2] < FAR_ZOOM);
  const box = useRef<HTMLDivElement>(null);
  const touched = useRef(false);
  const initialized = useNodesInitialized();

  // Fit the view once the nodes are measured, and again whenever the canvas changes size
  // until the user touches the graph: a notebook output is laid out (and resized) after the
  // widget first renders, and a fit made before that frames the graph wrongly.
  useEffect(() => {
    if (initialized && !touched.current) requestAnimationFrame(() => void flow.fitView(FIT_VIEW_OPTIONS));
  }, [initialized, flow]);
  useEffect(() => {
    const el = box.current;
    if (!el || typeof ResizeObserver === "undefined") return;
    let last = "";
    const observer = new ResizeObserver(() => {
      const size = `${el.clientWidth}x${el.clientHeight}`;
      if (size === last || el.clientWidth === 0 || el.clientHeight === 0) return;
      const first = last === "";
      last = size;
      if (!first && !touched.current) void flow.fitView(FIT_VIEW_OPTIONS);
    });
    observer.observe(el);
    return () => observer.disconnect();
  }, [flow]);
  // Any pointer or wheel use of the graph (a pan, a zoom button, a click on a node) ends it.
  const touch = useCallback(() => {
    touched.current = true;
  }, []);

  const isValidConnection: IsValidConnection<FlowEdge> = useCallback(
    (c: Connection | FlowEdge) => {
      const s = store.getState();
      return !("error" in planConnection(s.config, s.ctx, c.source, c.target));
    },
    [store],
  );
  const onConnect = useCallback((c: Connection) => void actions.connect(c.source, c.target), [actions]);
  const [dragging, setDragging] = useState(false);
  const onNodeDragStart = useCallback(() => setDragging(true), []);
  const onNodeDragStop: OnNodeDrag<FlowNode> = useCallback(
    (_event, _node, dragged) => {
      setDragging(false);
      actions.moveNodes(Object.fromEntries(dragged.map((n) => [n.id, n.position])));
    },
    [actions],
  );
  const onDragOver = useCallback((e: DragEvent) => {
    if (!e.dataTransfer.types.includes(PALETTE_MIME)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
  }, []);
  const onDrop = useCallback(
    (e: DragEvent) => {
      const raw = e.dataTransfer.getData(PALETTE_MIME);
      if (!raw) return;
      e.preventDefault();
      const at = flow.screenToFlowPosition({ x: e.clientX, y: e.clientY });
      actions.addNode(JSON.parse(raw) as PaletteItem, { x: at.x - NODE_WIDTH / 2, y: at.y - NODE_HEIGHT / 2 });
    },
    [actions, flow],
  );
  return (
    <div className="fnb-flow" ref={box} onPointerDownCapture={touch} onWheelCapture={touch}>
      <FarContext.Provider value={far}>
        <ReactFlow<FlowNode, FlowEdge>
          className={`${far ? "fnb-far" : ""}${dragging ? " fnb-dragging" : ""}`}
          nodes={nodes}
          edges={edges}
          nodeTypes={nodeTypes}
          edgeTypes={edgeTypes}
          onNodesChange={actions.onNodesChange}
          onEdgesChange={actions.onEdgesChange}
          onConnect={onConnect}
          isValidConnection={isValidConnection}
          onNodeDragStart={onNodeDragStart}
          onNodeDragStop={onNodeDragStop}
          onDragOver={onDragOver}
          onDrop={onDrop}
          onInit={onReady}
          deleteKeyCode={null}
          selectionKeyCode="Shift"
          multiSelectionKeyCode={["Meta", "Control"]}
          fitView
          fitViewOptions={FIT_VIEW_OPTIONS}
          minZoom={0.05}
          maxZoom={2}
          proOptions={PRO_OPTIONS}
        >
          <Background gap={20} size={1} />
          <MiniMap
            pannable
            zoomable
            nodeColor={miniMapColor}
            nodeStrokeWidth={2}
            ariaLabel="minimap"
            style={MINIMAP_STYLE}
          />
          <Controls showInteractive={false} />
        </ReactFlow>
      </FarContext.Provider>
    </div>
  );
});

function SidePanel() {
  const selection = useCanvas((s) => s.selection);
  const running = useCanvas((s) => s.running);
  const kernel = useKernel();
  const nodeId = selection?.kind === "node" ? selection.id : null;
  const [tab, setTab] = useState<"properties" | "inspect">("properties");
  useEffect(() => {
    // While the workflow runs, clicking a node shows what it last did.
    if (nodeId) setTab(running && kernel.has.inspect ? "inspect" : "properties");
  }, [nodeId, running, kernel]);
  if (!selection) return null;
  return (
    <aside className="fnb-side" data-testid="side-panel">
      {nodeId && (
        <div className="fnb-tabs" role="tablist">
          <button
            type="button"
            role="tab"
            aria-selected={tab === "properties"}
            data-testid="tab-properties"
            onClick={() => setTab("properties")}
          >
            Properties
          </button>
          <button
            type="button"
            role="tab"
            aria-selected={tab === "inspect"}
            data-testid="tab-inspect"
            onClick={() => setTab("inspect")}
          >
            Inspect
          </button>
        </div>
      )}
      {nodeId && tab === "inspect" ? <Inspector id={nodeId} /> : <PropertyPanel />}
    </aside>
  );
}

/** Problems that belong to no node or edge (`config`), over the graph; a click shows them all. */
function ConfigProblems() {
  const problems = useCanvas((s) => s.problems.config);
  const actions = useCanvas((s) => s.actions);
  if (!problems?.length) return null;
  const first = problems[0];
  return (
    <button
      type="button"
      className="fnb-banner"
      data-testid="diagnostic-config"
      title={problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message)).join("\n")}
      onClick={() => actions.select({ kind: "config" })}
    >
      ⚠ {first.path ? `${first.path}: ` : ""}
      {first.message}
      {problems.length > 1 ? ` (+${problems.length - 1} more)` : ""}
    </button>
  );
}

function Notice() {
  const notice = useCanvas((s) => s.notice);
  const [visible, setVisible] = useState<string | null>(null);
  useEffect(() => {
    if (!notice) return;
    setVisible(notice.text);
    const timer = setTimeout(() => setVisible(null), 5000);
    return () => clearTimeout(timer);
  }, [notice]);
  if (!visible) return null;
  return (
    <div className="fnb-notice" data-testid="notice" role="status" onClick={() => setVisible(null)}>
      {visible}
    </div>
  );
}

export const App = memo(function App({ height, onReady }: { height: number | string; onReady?: () => void }) {
  const store = useCanvasStore();
  const actions = useCanvas((s) => s.actions);
  const kernel = useKernel();
  const flow = useReactFlow();
  const root = useRef<HTMLDivElement>(null);
  const [dialog, setDialog] = useState<Dialog>(null);

  const addAtCenter = useCallback(
    (item: PaletteItem) => {
      const box = root.current?.querySelector(".react-flow")?.getBoundingClientRect();
      const center = box
        ? flow.screenToFlowPosition({ x: box.left + box.width / 2, y: box.top + box.height / 2 })
        : { x: 0, y: 0 };
      const taken = store.getState().nodes.map((n) => n.position);
      actions.addNode(item, freeSpot({ x: center.x - NODE_WIDTH / 2, y: center.y - NODE_HEIGHT / 2 }, taken));
    },
    [actions, flow, store],
  );

  const onKeyDown = (e: KeyboardEvent) => {
    const mod = e.ctrlKey || e.metaKey;
    const key = e.key.toLowerCase();
    let handled = true;
    if (mod && key === "s") {
      kernel.save();
    } else if (e.key === "Escape") {
      if (dialog) setDialog(null);
      else actions.clearSelection();
      if (isEditable(e.target)) (e.target as HTMLElement).blur();
      root.current?.focus();
    } else if (isEditable(e.target)) {
      handled = false;
    } else if (mod && key === "z" && !e.shiftKey) {
      actions.undo();
    } else if ((mod && key === "z" && e.shiftKey) || (e.ctrlKey && key === "y")) {
      actions.redo();
    } else if ((e.key === "Delete" || e.key === "Backspace") && !mod) {
      actions.deleteSelection();
    } else {
      handled = false;
    }
    if (handled) {
      e.preventDefault();
      e.stopPropagation();
      // The focused node may be about to go (deleted, undone): keep the keys coming here.
      if (!isEditable(document.activeElement)) root.current?.focus({ preventScroll: true });
    }
  };

  return (
    <div
      ref={root}
      className="fnb-root"
      style={{ height }}
      tabIndex={0}
      data-lm-suppress-shortcuts="true"
      data-testid="flownb-canvas"
      onKeyDown={onKeyDown}
      onMouseDown={(e) => {
        // Keep keyboard shortcuts working after a click on the graph (not in a form field).
        if (!isEditable(e.target) && !(e.target as HTMLElement).closest?.(".fnb-side, .fnb-dialog, .fnb-palette")) {
          root.current?.focus({ preventScroll: true });
        }
      }}
    >
      <Toolbar openDialog={setDialog} />
      <div className="fnb-body">
        <Palette onAdd={addAtCenter} />
        <div className="fnb-graph">
          <Graph onReady={onReady} />
          <ConfigProblems />
          <Notice />
        </div>
        <SidePanel />
      </div>
      {dialog === "export" && <ExportDialog onClose={() => setDialog(null)} />}
      {dialog === "ai" && <AIPrompt onClose={() => setDialog(null)} />}
      {dialog === "import" && (
        <ImportDialog
          onClose={() => setDialog(null)}
          onImported={() => {
            setDialog(null);
            requestAnimationFrame(() => flow.fitView(FIT_VIEW_OPTIONS));
          }}
        />
      )}
    </div>
  );
});
