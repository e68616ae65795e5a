// The benchmark page: the canvas standalone (React bundled in), on a generated config.
// ?nodes=N picks the size; ?example=orders/orders.yaml draws that example instead (build.mjs
// copies examples/ next to the page). It reports on `window.flownbBench`:
//   firstRenderMs  every node is in the DOM
//   interactiveMs  nodes measured and shown, edges drawn, the main thread idle again
// and `startFrames()` / `stopFrames()` record frame times (e.g. around a drag).
import { createRoot } from "react-dom/client";
import schema from "../fixtures/schema.json";
import { Canvas } from "../src/index";
import { importYaml } from "../src/serialization";
import type { CanvasSchema, Layout, WorkflowConfig } from "../src/types";
import { generateConfig } from "./generate";

interface Bench {
  nodes: number;
  firstRenderMs?: number;
  interactiveMs?: number;
  frames: number[];
  startFrames(): void;
  stopFrames(): number[];
}

const params = new URLSearchParams(location.search);
const example = params.get("example");
let config: WorkflowConfig = {};
let layout: Layout = {};
if (example) {
  const read = importYaml(await (await fetch(`examples/${example}`)).text());
  if (!("error" in read)) ({ config, layout } = read);
} else {
  config = generateConfig(Number(params.get("nodes") ?? 500));
}
const size = example ? 0 : Number(params.get("nodes") ?? 500);
const bench: Bench = {
  nodes: size,
  frames: [],
  startFrames() {
    bench.frames = [];
    let last = performance.now();
    recording = true;
    const tick = (now: number) => {
      if (!recording) return;
      bench.frames.push(now - last);
      last = now;
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  },
  stopFrames() {
    recording = false;
    return bench.frames;
  },
};
let recording = false;
(window as unknown as { flownbBench: Bench }).flownbBench = bench;

const start = performance.now();
createRoot(document.getElementById("root")!).render(
  <Canvas schema={schema as unknown as CanvasSchema} config={config} layout={layout} height="100vh" />,
);

function watch() {
  const nodes = document.querySelectorAll(".react-flow__node");
  if (bench.firstRenderMs === undefined && nodes.length >= Math.max(1, size)) {
    bench.firstRenderMs = performance.now() - start;
  }
  const shown =
    nodes.length >= Math.max(1, size) && (nodes[nodes.length - 1] as HTMLElement).style.visibility !== "hidden";
  const edges = document.querySelectorAll(".react-flow__edge").length;
  if (shown && edges > 0) {
    // Interactive once a frame gets through after the graph is shown (no long task pending).
    requestAnimationFrame(() => setTimeout(() => (bench.interactiveMs = performance.now() - start), 0));
    return;
  }
  requestAnimationFrame(watch);
}
requestAnimationFrame(watch);
