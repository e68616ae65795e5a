import { describe, expect, test } from "vitest";
import { setIn } from "./json";
import { graphContext } from "./serialization";
import { example, examples, schema } from "./test/fixtures";
import { fieldLabel, referenceErrors, toDiagnostics, Validator } from "./validation";
import type { WorkflowConfig } from "./types";

const validator = new Validator(schema.file);
const ctx = graphContext(schema);

describe("schema validation (ajv, 2020-12)", () => {
  test.each(examples.map((e) => [e.name, e.config] as const))("%s is valid", (_name, config) => {
    expect(validator.validate(config)).toEqual([]);
    expect(referenceErrors(config, ctx)).toEqual([]);
  });

  test("a wrong value is reported at its field with the schema's message", () => {
    const config = setIn(example("orders-orders"), ["modules", 3, "config", "maxSize"], 0);
    expect(validator.validate(config)).toEqual([
      { path: ["modules", 3, "config", "maxSize"], message: "must be >= 1" },
    ]);
  });

  test("numbers take ${VAR} text, other text is refused with a readable message", () => {
    const hello = example("hello-hello");
    expect(validator.validate(setIn(hello, ["modules", 0, "config", "maxBodyBytes"], "${MAX:-10}"))).toEqual([]);
    expect(validator.validate(setIn(hello, ["modules", 0, "config", "maxBodyBytes"], "lots"))).toEqual([
      { path: ["modules", 0, "config", "maxBodyBytes"], message: "must be integer (or a ${VAR} reference)" },
    ]);
  });

  test("missing and unknown fields are pinned to the field itself", () => {
    const config: WorkflowConfig = { workflows: { http: { routes: [{ handler: "x", verb: "GET" }] } } };
    expect(validator.validate(config)).toEqual([
      { path: ["workflows", "http", "routes", 0, "path"], message: "is required" },
      { path: ["workflows", "http", "routes", 0, "verb"], message: "is not a known field" },
    ]);
  });

  test("module types and step types are told apart by `type`", () => {
    expect(validator.validate({ modules: [{ name: "a", type: "no.such" }] })).toEqual([
      { path: ["modules", 0], message: 'unknown type "no.such"' },
    ]);
    const steps = validator.validate({ pipelines: { p: [{ type: "log" }, { type: "cache", op: "nope", key: "k" }] } });
    expect(steps).toEqual([
      { path: ["pipelines", "p", 0, "message"], message: "is required" },
      { path: ["pipelines", "p", 1, "op"], message: expect.stringContaining("must be one of") },
    ]);
  });

  test("problems are pinned to node and edge ids", () => {
    const config: WorkflowConfig = {
      modules: [{ name: "c", type: "cache", config: { maxSize: -1 } }],
      workflows: { http: { routes: [{ path: "/x" }] } },
    };
    const diags = toDiagnostics(config, validator.validate(config));
    expect(diags).toEqual([
      {
        id: "module:c",
        loc: ["modules", 0, "config", "maxSize"],
        path: "config.maxSize",
        message: "must be >= 1",
        source: "local",
      },
      {
        id: "route:0",
        loc: ["workflows", "http", "routes", 0, "handler"],
        path: "handler",
        message: "is required",
        source: "local",
      },
    ]);
    expect(fieldLabel(["workflows", "http", "router"])).toBe("workflows.http.router");
  });
});

describe("reference checks", () => {
  test("names that point nowhere, or at the wrong kind of module", () => {
    const config: WorkflowConfig = {
      modules: [
        { name: "bus", type: "cache" },
        { name: "h", type: "messaging.handler", config: { pipeline: "gone" }, dependsOn: ["ghost"] },
        { name: "h", type: "cache" },
      ],
      workflows: { messaging: { broker: "bus", subscriptions: [{ topic: "t", handler: "nobody" }] } },
      triggers: { http: { routes: [{ path: "/p", workflow: "pipeline", action: "none" }] } },
    };
    expect(referenceErrors(config, ctx).map((e) => [e.path.join("."), e.message])).toEqual([
      ["modules.1.dependsOn.0", 'no module named "ghost"'],
      ["modules.2.name", 'another module is named "h"'],
      ["modules.1.config.pipeline", 'no pipeline named "gone"'],
      ["workflows.messaging.broker", 'module "bus" (cache) does not provide broker'],
      ["workflows.messaging.subscriptions.0.handler", '"nobody" is not a module or pipeline'],
      ["triggers.http.routes.0.action", 'no pipeline named "none"'],
    ]);
  });
});
