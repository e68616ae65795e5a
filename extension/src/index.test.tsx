// @vitest-environment jsdom
import { act, cleanup, fireEvent, render, screen } from "@testing-library/react";
import { afterEach, beforeAll, describe, expect, test, vi } from "vitest";
import { Canvas, injectStyles, STYLE_ID } from "./index";
import { getIn, setIn } from "./json";
import * as colors from "./nodes/colors";
import { exportYaml } from "./serialization";
import { installDomStubs } from "./test/dom";
import { example, schema } from "./test/fixtures";
import type { CanvasProps, PatchPayload } from "./types";

vi.mock("./nodes/colors", async (original) => {
  const actual = await original<typeof colors>();
  return { ...actual, nodeColor: vi.fn(actual.nodeColor) };
});

beforeAll(installDomStubs);
afterEach(cleanup);

const hello = example("hello-hello");

function draw(props: Partial<CanvasProps> = {}) {
  const all: CanvasProps = { schema, config: hello, layout: {}, revision: 1, ...props };
  const view = render(<Canvas {...all} />);
  return { ...view, redraw: (more: Partial<CanvasProps>) => view.rerender(<Canvas {...all} {...more} />) };
}

const node = (id: string) => document.querySelector(`.react-flow__node[data-id="${id}"]`);
const root = () => screen.getByTestId("flownb-canvas");
const key = (init: KeyboardEventInit & { key: string }) => act(() => void fireEvent.keyDown(root(), init));

describe("the Canvas widget", () => {
  test("draws every node, with a status badge, the minimap and the zoom controls", () => {
    draw();
    expect(node("module:server")).toBeTruthy();
    expect(node("module:router")).toBeTruthy();
    expect(node("pipeline:hello")).toBeTruthy();
    expect(screen.getByTestId("status-module:server").dataset.status).toBe("idle");
    expect(document.querySelector(".react-flow__minimap")).toBeTruthy();
    expect(document.querySelector(".react-flow__controls")).toBeTruthy();
  });

  test("injects its CSS once", () => {
    draw();
    draw();
    injectStyles();
    expect(document.querySelectorAll(`#${STYLE_ID}`)).toHaveLength(1);
    expect(document.getElementById(STYLE_ID)?.textContent).toContain(".fnb-node");
    expect(document.getElementById(STYLE_ID)?.textContent).toContain(".react-flow");
  });

  test("the palette lists every registered type by category, and searches", () => {
    draw();
    for (const type of Object.keys(schema.types)) expect(screen.getByTestId(`palette-item-${type}`)).toBeTruthy();
    expect(screen.getByTestId("palette-group-HTTP").textContent).toContain("http.server");
    act(() => void fireEvent.change(screen.getByTestId("palette-search"), { target: { value: "broker" } }));
    expect(screen.getByTestId("palette-item-messaging.broker")).toBeTruthy();
    expect(screen.queryByTestId("palette-item-http.server")).toBeNull();
  });

  test("a palette item dropped on the canvas becomes a uniquely named module", () => {
    const patches: PatchPayload[] = [];
    draw({ patch: (p) => patches.push(p) });
    const pane = document.querySelector(".react-flow") as HTMLElement;
    const item = screen.getByTestId("palette-item-cache");
    const data = new Map<string, string>();
    const dataTransfer = {
      setData: (k: string, v: string) => data.set(k, v),
      getData: (k: string) => data.get(k) ?? "",
      get types() {
        return [...data.keys()];
      },
      effectAllowed: "",
      dropEffect: "",
    };
    act(() => {
      fireEvent.dragStart(item, { dataTransfer });
      fireEvent.dragOver(pane, { dataTransfer, clientX: 100, clientY: 100 });
      fireEvent.drop(pane, { dataTransfer, clientX: 100, clientY: 100 });
    });
    expect(node("module:cache-1")).toBeTruthy();
    expect(patches).toHaveLength(1);
    expect(patches[0].ops).toEqual([
      { op: "add", path: "/modules/2", value: { name: "cache-1", type: "cache", config: {} } },
    ]);
    expect(Object.keys(patches[0].layout)).toEqual(["module:cache-1"]);
    // a second one from the keyboard gets the next free name
    act(() => void fireEvent.keyDown(screen.getByTestId("palette-item-cache"), { key: "Enter" }));
    expect(node("module:cache-2")).toBeTruthy();
  });

  test("keyboard: delete, undo, redo, escape, save", () => {
    const save = vi.fn();
    draw({ save });
    act(() => void fireEvent.click(node("module:server")!));
    expect(screen.getByTestId("property-title").textContent).toBe("server");
    key({ key: "Delete" });
    expect(node("module:server")).toBeNull();
    key({ key: "z", ctrlKey: true });
    expect(node("module:server")).toBeTruthy();
    key({ key: "z", ctrlKey: true, shiftKey: true });
    expect(node("module:server")).toBeNull();
    key({ key: "y", ctrlKey: true });
    key({ key: "z", metaKey: true });
    expect(node("module:server")).toBeTruthy();
    act(() => void fireEvent.click(node("module:router")!));
    expect(screen.getByTestId("side-panel")).toBeTruthy();
    key({ key: "Escape" });
    expect(screen.queryByTestId("side-panel")).toBeNull();
    key({ key: "s", ctrlKey: true });
    expect(save).toHaveBeenCalledWith({});
  });

  test("typing in a field does not delete or undo on the canvas", () => {
    draw();
    act(() => void fireEvent.click(node("module:server")!));
    const address = screen.getByTestId("field-config.address");
    act(() => void fireEvent.keyDown(address, { key: "Backspace" }));
    expect(node("module:server")).toBeTruthy();
  });

  test("a property edit sends only its JSON Patch op", () => {
    const patches: PatchPayload[] = [];
    draw({ patch: (p) => patches.push(p) });
    act(() => void fireEvent.click(node("module:router")!));
    const prefix = screen.getByTestId("field-config.prefix");
    act(() => {
      fireEvent.change(prefix, { target: { value: "/api" } });
      fireEvent.blur(prefix);
    });
    expect(patches).toEqual([
      { base: 1, ops: [{ op: "add", path: "/modules/1/config", value: { prefix: "/api" } }], layout: {} },
    ]);
  });

  test("Python-side config and revision changes re-render the canvas", () => {
    const { redraw } = draw();
    redraw({ config: setIn(hello, ["pipelines", "bye"], []), revision: 2 });
    expect(node("pipeline:bye")).toBeTruthy();
  });

  test("kernel diagnostics are pinned to their node", () => {
    const { redraw } = draw();
    redraw({
      diagnostics: [{ id: "module:server", path: "config.address", message: "address in use", source: "engine" }],
    });
    expect(screen.getByTestId("diagnostic-module:server").textContent).toContain("address in use");
    expect(screen.getByTestId("diagnostics-count").dataset.count).toBe("1");
  });

  test("problems that belong to no node show as a banner", () => {
    const { redraw } = draw();
    redraw({
      diagnostics: [{ id: "config", path: "workflows.http", message: "no server to mount on", source: "engine" }],
    });
    expect(screen.getByTestId("diagnostic-config").textContent).toContain("no server to mount on");
    act(() => void fireEvent.click(screen.getByTestId("diagnostic-config")));
    expect(screen.getByTestId("property-title").textContent).toBe("Workflow settings");
    expect(screen.getByTestId("problems-config").textContent).toContain("no server to mount on");
  });

  test("a stats update re-renders only the nodes it names", () => {
    const { redraw } = draw({ running: true });
    const renders = vi.mocked(colors.nodeColor);
    renders.mockClear();
    redraw({
      running: true,
      stats: { "pipeline:hello": { status: "ok", executions: 3, errors: 1, lastMs: 1.5, avgMs: 2 } },
    });
    expect(screen.getByTestId("status-pipeline:hello").dataset.status).toBe("ok");
    expect(screen.getByTestId("status-module:server").dataset.status).toBe("idle");
    expect(node("pipeline:hello")?.textContent).toContain("3 runs");
    expect(renders.mock.calls.map(([kind]) => kind)).toEqual(["pipeline"]);
  });

  test("export shows the config as YAML, positions kept apart", () => {
    draw();
    act(() => void fireEvent.click(screen.getByTestId("toolbar-export")));
    expect((screen.getByTestId("export-yaml") as HTMLTextAreaElement).value).toBe(exportYaml(hello));
    act(() => void fireEvent.click(screen.getByTestId("export-inline-layout")));
    expect((screen.getByTestId("export-yaml") as HTMLTextAreaElement).value).toContain("layout:\n  module:router:");
  });

  test("import replaces the canvas; undo brings the old one back", () => {
    draw();
    act(() => void fireEvent.click(screen.getByTestId("toolbar-import")));
    act(
      () =>
        void fireEvent.change(screen.getByTestId("import-yaml"), {
          target: { value: "modules:\n  - {name: only, type: cache}\n" },
        }),
    );
    act(() => void fireEvent.click(screen.getByTestId("import-apply")));
    expect(node("module:only")).toBeTruthy();
    expect(node("module:server")).toBeNull();
    act(() => void fireEvent.click(screen.getByTestId("toolbar-undo")));
    expect(node("module:server")).toBeTruthy();
    act(() => void fireEvent.click(screen.getByTestId("toolbar-import")));
    act(() => void fireEvent.change(screen.getByTestId("import-yaml"), { target: { value: "modules: [" } }));
    act(() => void fireEvent.click(screen.getByTestId("import-apply")));
    expect(screen.getByTestId("import-error").textContent).toMatch(/^line \d+:/);
  });

  test("validate asks the kernel; inspect is asked for the clicked node while running", () => {
    const validate = vi.fn();
    const inspect = vi.fn();
    const { redraw } = draw({ validate, inspect, running: true });
    act(() => void fireEvent.click(screen.getByTestId("toolbar-validate")));
    expect(validate).toHaveBeenCalledWith({});
    act(() => void fireEvent.click(node("pipeline:hello")!));
    expect(inspect).toHaveBeenCalledWith({ id: "pipeline:hello" });
    redraw({
      validate,
      inspect,
      running: true,
      inspection: { id: "pipeline:hello", input: { n: 1 }, output: { hello: "world" }, error: null, at: 1 },
    });
    expect(screen.getByTestId("inspect-output").textContent).toContain('"hello": "world"');
  });

  test("works with no kernel at all, and with no schema yet", () => {
    render(<Canvas config={hello} schema={{} as never} positions={{}} stats={{}} diagnostics={[]} inspection={null} />);
    expect(node("module:server")).toBeTruthy();
    expect(screen.queryByTestId("toolbar-save")).toBeNull();
    expect(getIn(hello, ["modules", 0, "name"])).toBe("server");
  });
});
