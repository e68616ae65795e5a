// @vitest-environment jsdom
import { act, cleanup, fireEvent, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, test, vi } from "vitest";
import { StoreContext } from "../context";
import { getIn } from "../json";
import { PropertyPanel } from "../panels/PropertyPanel";
import { SchemaIndex } from "../schema";
import { createCanvasStore, type CanvasStore } from "../store";
import { example, schema } from "../test/fixtures";
import type { JsonSchema, WorkflowConfig } from "../types";
import { classify, defaultFor, parseScalar } from "./classify";
import { SchemaForm } from "./SchemaForm";

const index = new SchemaIndex(schema.file);
const defs = schema.file.$defs as Record<string, JsonSchema>;
const prop = (def: string, name: string) => defs[def].properties![name];

afterEach(cleanup);

describe("classify: which widget a schema calls for", () => {
  test.each([
    ["HttpServerConfig", "address", "text"],
    ["HttpServerConfig", "maxBodyBytes", "text"],
    ["HttpServerConfig", "accessLog", "boolean"],
    ["CacheStep", "type", "const"],
    ["CacheConfig", "provider", "enum"],
    ["HttpTriggerRoute", "method", "enum"],
    ["RouteSpec", "method", "union"],
    ["DefinitionSpec", "states", "map"],
    ["StateSpec", "data", "free"],
    ["StateMachineEngineConfig", "events", "object"],
    ["HttpHandlerConfig", "steps", "array"],
    ["RespondStep", "body", "free"],
  ])("%s.%s is %s", (def, name, kind) => {
    expect(classify(index, prop(def, name)).spec.kind).toBe(kind);
  });

  test("numbers that take ${VAR}, optional fields, descriptions and defaults", () => {
    const c = classify(index, prop("HttpServerConfig", "maxBodyBytes"));
    expect(c.spec).toEqual({ kind: "text", types: ["integer"], env: true });
    expect(c.defaultValue).toBe(1048576);
    expect(c.description).toMatch(/largest request body/);
    expect(classify(index, prop("StateMachineEngineConfig", "events")).nullable).toBe(true);
    expect(classify(index, prop("CacheConfig", "ttl")).spec).toEqual({
      kind: "text",
      types: ["number", "string"],
      env: true,
    });
  });

  test("pipeline steps are a union told apart by type", () => {
    const steps = classify(index, prop("HttpHandlerConfig", "steps")).spec;
    expect(steps.kind).toBe("array");
    const item = classify(index, (steps as { items: JsonSchema }).items).spec;
    expect(item.kind).toBe("tagged");
    expect([...(item as { options: Map<string, unknown> }).options.keys()]).toEqual(
      expect.arrayContaining(["set", "validate", "respond", "log", "cache", "publish", "http_call", "conditional"]),
    );
    expect(defaultFor(index, (steps as { items: JsonSchema }).items)).toEqual({ type: "set" });
  });

  test("typed text becomes the value the field takes", () => {
    expect(parseScalar("42", ["integer"], true)).toBe(42);
    expect(parseScalar("${PORT:-80}", ["integer"], true)).toBe("${PORT:-80}");
    expect(parseScalar("lots", ["integer"], true)).toBe("lots");
    expect(parseScalar("30s", ["number", "string"], true)).toBe("30s");
    expect(parseScalar("1.5", ["number", "string"], true)).toBe(1.5);
    expect(parseScalar("", ["string"], false)).toBeUndefined();
    expect(parseScalar("true", ["string", "boolean"], false)).toBe(true);
  });
});

function panel(config: WorkflowConfig, id: string): CanvasStore {
  const store = createCanvasStore({ schema, config, validateNow: true });
  store.getState().actions.select({ kind: "node", id });
  render(
    <StoreContext.Provider value={store}>
      <PropertyPanel />
    </StoreContext.Provider>,
  );
  return store;
}

function type(testId: string, text: string) {
  const input = screen.getByTestId(testId) as HTMLInputElement;
  act(() => {
    fireEvent.change(input, { target: { value: text } });
    fireEvent.blur(input);
  });
}

describe("the property panel's form", () => {
  test("fields of the module's type, with the type fixed, required marks and help", () => {
    panel(example("hello-hello"), "module:server");
    expect(screen.getByTestId("property-title").textContent).toBe("server");
    expect((screen.getByTestId("field-type") as HTMLInputElement).readOnly).toBe(true);
    expect((screen.getByTestId("field-config.address") as HTMLInputElement).value).toBe(
      "${HELLO_ADDRESS:-127.0.0.1:8080}",
    );
    expect(screen.getByTestId("field-config.maxBodyBytes")).toBeTruthy();
    expect(screen.getByTestId("field-config.accessLog")).toBeTruthy();
    const nameLabel = screen.getByText("name", { selector: "label" });
    expect(nameLabel.querySelector(".fnb-required")).toBeTruthy();
    expect(screen.getByText(/largest request body accepted/)).toBeTruthy();
  });

  test("an invalid value is refused with the schema's message and never applied", () => {
    const store = panel(example("hello-hello"), "module:server");
    const before = store.getState().config;
    type("field-config.maxBodyBytes", "lots");
    expect(screen.getByTestId("field-error-config.maxBodyBytes").textContent).toBe(
      "must be integer (or a ${VAR} reference)",
    );
    expect(store.getState().config).toBe(before);
    expect(store.getState().editSeq).toBe(0);
    type("field-config.maxBodyBytes", "-1");
    expect(screen.getByTestId("field-error-config.maxBodyBytes").textContent).toBe("must be >= 0");
    expect(store.getState().config).toBe(before);
  });

  test("valid values are applied: numbers as numbers, ${VAR} as text", () => {
    const store = panel(example("hello-hello"), "module:server");
    type("field-config.maxBodyBytes", "2048");
    expect(getIn(store.getState().config, ["modules", 0, "config", "maxBodyBytes"])).toBe(2048);
    type("field-config.maxBodyBytes", "${MAX_BODY}");
    expect(getIn(store.getState().config, ["modules", 0, "config", "maxBodyBytes"])).toBe("${MAX_BODY}");
    expect(screen.queryByTestId("field-error-config.maxBodyBytes")).toBeNull();
    act(() => void fireEvent.click(screen.getByTestId("field-config.accessLog")));
    expect(getIn(store.getState().config, ["modules", 0, "config", "accessLog"])).toBe(true);
  });

  test("renaming through the name field renames everywhere", () => {
    const store = panel(example("hello-hello"), "module:server");
    type("field-name", "web");
    expect(getIn(store.getState().config, ["modules", 1, "dependsOn"])).toEqual(["web"]);
    expect(store.getState().selection).toEqual({ kind: "node", id: "module:web" });
    type("field-name", "router");
    expect(screen.getByTestId("field-error-name").textContent).toMatch(/already exists/);
  });

  test("enums are selects", () => {
    const store = panel(example("scheduled-report"), "trigger:http:0");
    const select = screen.getByTestId("field-method") as HTMLSelectElement;
    expect(select.tagName).toBe("SELECT");
    expect(select.options[select.selectedIndex].textContent).toBe("POST");
    act(
      () =>
        void fireEvent.change(select, {
          target: { value: String([...select.options].findIndex((o) => o.textContent === "PUT") - 1) },
        }),
    );
    expect(getIn(store.getState().config, ["triggers", "http", "routes", 0, "method"])).toBe("PUT");
  });

  test("a nested optional object is added, then its own fields show", () => {
    const store = panel({ modules: [{ name: "sm", type: "statemachine.engine" }] }, "module:sm");
    expect(screen.queryByTestId("field-config.events.topic")).toBeNull();
    act(() => void fireEvent.click(screen.getByTestId("add-config.events")));
    expect(getIn(store.getState().config, ["modules", 0, "config", "events"])).toEqual({});
    type("field-config.events.topic", "changes");
    expect(getIn(store.getState().config, ["modules", 0, "config", "events", "topic"])).toBe("changes");
  });

  test("pipeline steps pick their fields by type, and missing ones show inline", () => {
    const store = panel(example("hello-hello"), "pipeline:hello");
    const kind = screen.getByTestId("field-0.type") as HTMLSelectElement;
    expect(kind.value).toBe("respond");
    expect(screen.getByTestId("field-0.status")).toBeTruthy();
    act(() => void fireEvent.change(kind, { target: { value: "log" } }));
    expect(getIn(store.getState().config, ["pipelines", "hello", 0])).toEqual({ type: "log" });
    expect(screen.getByTestId("field-error-0.message").textContent).toBe("is required");
    expect(store.getState().problems["pipeline:hello"]?.[0].message).toBe("is required");
    type("field-0.message", "hi {{ data }}");
    expect(getIn(store.getState().config, ["pipelines", "hello", 0])).toEqual({
      type: "log",
      message: "hi {{ data }}",
    });
    expect(screen.queryByTestId("field-error-0.message")).toBeNull();
  });

  test("list items are added and removed", () => {
    const store = panel(example("hello-hello"), "pipeline:hello");
    act(() => void fireEvent.click(screen.getByTestId("add-")));
    expect((getIn(store.getState().config, ["pipelines", "hello"]) as unknown[]).length).toBe(2);
    act(() => void fireEvent.click(screen.getByTestId("remove-0")));
    expect(getIn(store.getState().config, ["pipelines", "hello"])).toEqual([{ type: "set" }]);
  });

  test("errors already in the config are shown at their field", () => {
    panel({ modules: [{ name: "c", type: "cache", config: { maxSize: 0 } }] }, "module:c");
    expect(screen.getByTestId("field-error-config.maxSize").textContent).toBe("must be >= 1");
    expect(screen.getByTestId("problems-module:c").textContent).toContain("must be >= 1");
  });

  test("free-form values are YAML; bad YAML is refused", () => {
    const store = panel(example("hello-hello"), "pipeline:hello");
    const body = screen.getByTestId("field-0.body") as HTMLTextAreaElement;
    expect(body.value).toBe('hello: world\nq: "{{ request.query.n }}"');
    type("field-0.body", "hello: [unclosed");
    expect(screen.getByTestId("field-error-0.body").textContent).toMatch(/not valid YAML/);
    type("field-0.body", "hello: you");
    expect(getIn(store.getState().config, ["pipelines", "hello", 0, "body"])).toEqual({ hello: "you" });
  });
});

describe("SchemaForm on its own", () => {
  test("a map of states: keys are renamed and entries added", () => {
    const onChange = vi.fn(() => null);
    const value = { name: "m", initialState: "a", states: { a: {}, b: { isFinal: true } } };
    render(<SchemaForm index={index} schema={defs.DefinitionSpec} value={value} onChange={onChange} />);
    expect((screen.getByTestId("key-states.b") as HTMLInputElement).value).toBe("b");
    expect((screen.getByTestId("field-states.b.isFinal") as HTMLInputElement).checked).toBe(true);
    type("key-states.b", "done");
    expect(onChange).toHaveBeenLastCalledWith(["states"], { a: {}, done: { isFinal: true } }, true);
    act(() => void fireEvent.click(screen.getByTestId("add-states")));
    expect(onChange).toHaveBeenLastCalledWith(["states"], { a: {}, b: { isFinal: true }, "new-3": {} }, true);
  });

  test("a union lets the user pick the branch", () => {
    const onChange = vi.fn(() => null);
    render(
      <SchemaForm
        index={index}
        schema={defs.RouteSpec}
        value={{ path: "/x", handler: "h", method: ["GET", "POST"] }}
        onChange={onChange}
      />,
    );
    const branch = screen.getByTestId("branch-method") as HTMLSelectElement;
    expect(branch.options[branch.selectedIndex].textContent).toBe("list");
    expect((screen.getByTestId("field-method.1") as HTMLSelectElement).value).not.toBe("");
    act(() => void fireEvent.change(branch, { target: { value: "0" } }));
    expect(onChange).toHaveBeenLastCalledWith(["method"], "GET", true);
  });
});
