// The widget ipyreact renders: `Canvas`, whose props are the traits and events of
// flownb.Canvas (docs/canvas.md). Without kernel callbacks it works standalone (tests, the
// benchmark page): edits stay local.
import flowCss from "@xyflow/react/dist/style.css?raw";
import { ReactFlowProvider } from "@xyflow/react";
import { useEffect, useMemo, useRef, useState } from "react";
import { App } from "./App";
import { KernelContext, StoreContext, type Kernel } from "./context";
import { readLayout } from "./serialization";
import { createCanvasStore } from "./store";
import canvasCss from "./styles.css?raw";
import { KernelSync } from "./sync";
import type { CanvasProps, Layout } from "./types";

export const STYLE_ID = "flownb-canvas-styles";

/** Put the canvas CSS in the page once, however many canvases are drawn. */
export function injectStyles(doc: Document | undefined = typeof document === "undefined" ? undefined : document): void {
  if (!doc || doc.getElementById(STYLE_ID)) return;
  const style = doc.createElement("style");
  style.id = STYLE_ID;
  style.textContent = `${flowCss ?? ""}\n${canvasCss ?? ""}`;
  doc.head.appendChild(style);
}

function layoutOf(value: unknown): Layout | undefined {
  return value ? readLayout(value) : undefined;
}

export function Canvas(props: CanvasProps) {
  injectStyles();
  const positions = props.positions ?? props.layout;
  const [store] = useState(() =>
    createCanvasStore({ schema: props.schema, config: props.config ?? {}, layout: layoutOf(positions) }),
  );
  // ipyreact hands new callables on every render: keep the latest, give children stable ones.
  const latest = useRef(props);
  latest.current = props;
  const has = {
    patch: typeof props.patch === "function",
    validate: typeof props.validate === "function",
    inspect: typeof props.inspect === "function",
    save: typeof props.save === "function",
    generate: typeof props.generate === "function",
  };
  const kernel = useMemo<Kernel>(
    () => ({
      has,
      patch: (payload) => latest.current.patch?.(payload),
      validate: () => latest.current.validate?.({}),
      inspect: (id) => latest.current.inspect?.({ id }),
      save: () => latest.current.save?.({}),
      generate: (intent) => latest.current.generate?.({ intent }),
    }),
    [has.patch, has.validate, has.inspect, has.save, has.generate],
  );
  const [sync] = useState(() => new KernelSync(store, undefined, props.revision ?? 0));
  useEffect(() => {
    sync.setSend(has.patch ? kernel.patch : undefined);
  }, [sync, has.patch, kernel]);
  useEffect(() => () => sync.dispose(), [sync]);

  const seen = useRef({ schema: props.schema, config: props.config, positions, revision: props.revision });
  useEffect(() => {
    const before = seen.current;
    seen.current = { schema: props.schema, config: props.config, positions, revision: props.revision };
    const actions = store.getState().actions;
    if (props.schema !== before.schema) actions.setSchema(props.schema ?? null);
    if (props.config !== before.config) {
      sync.receiveConfig(props.config ?? {}, layoutOf(positions), props.revision ?? sync.revision);
    } else {
      if (positions !== before.positions && positions) sync.receiveLayout(readLayout(positions));
      if (props.revision !== before.revision && typeof props.revision === "number")
        sync.receiveRevision(props.revision);
    }
  }, [store, sync, props.schema, props.config, positions, props.revision]);

  const reloads = useRef(props.reloads);
  useEffect(() => {
    if (props.reloads === reloads.current) return;
    reloads.current = props.reloads;
    sync.reload(props.config ?? {}, layoutOf(positions) ?? {}, props.revision ?? sync.revision);
  }, [sync, props.reloads, props.config, positions, props.revision]);
  useEffect(() => store.getState().actions.setKernelDiagnostics(props.diagnostics ?? []), [store, props.diagnostics]);
  useEffect(() => {
    if (props.stats) store.getState().actions.mergeStats(props.stats);
  }, [store, props.stats]);
  useEffect(() => store.getState().actions.setRunning(Boolean(props.running)), [store, props.running]);
  useEffect(() => store.getState().actions.setInspection(props.inspection ?? null), [store, props.inspection]);
  useEffect(() => store.getState().actions.setGeneration(props.generation ?? null), [store, props.generation]);
  useEffect(() => {
    // ajv compiles the whole-file schema in a few hundred ms: once the canvas is up and the
    // page is idle, not before the first paint (a form check compiles it at once if needed).
    const run = () => store.getState().actions.ensureValidator();
    if (typeof requestIdleCallback === "function") {
      const handle = requestIdleCallback(run, { timeout: 2000 });
      return () => cancelIdleCallback(handle);
    }
    const timer = setTimeout(run, 300);
    return () => clearTimeout(timer);
  }, [store, props.schema]);

  return (
    <StoreContext.Provider value={store}>
      <KernelContext.Provider value={kernel}>
        <ReactFlowProvider>
          <App height={props.height ?? 640} />
        </ReactFlowProvider>
      </KernelContext.Provider>
    </StoreContext.Provider>
  );
}

export default Canvas;
export { createCanvasStore } from "./store";
export { configToGraph, exportYaml, importYaml } from "./serialization";
export type { CanvasProps } from "./types";
