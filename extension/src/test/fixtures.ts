// The JSON fixtures written by scripts/dump_fixtures.py: the `schema` trait and each example.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { CanvasSchema, WorkflowConfig } from "../types";

export const EXTENSION_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const REPO_DIR = resolve(EXTENSION_DIR, "..");
const FIXTURES = join(EXTENSION_DIR, "fixtures");

export const schema = JSON.parse(readFileSync(join(FIXTURES, "schema.json"), "utf8")) as CanvasSchema;

export interface Example {
  name: string;
  source: string;
  config: WorkflowConfig;
  yaml: string;
}

export const examples: Example[] = readdirSync(join(FIXTURES, "examples"))
  .filter((f) => f.endsWith(".json"))
  .sort()
  .map((f) => {
    const data = JSON.parse(readFileSync(join(FIXTURES, "examples", f), "utf8")) as {
      source: string;
      config: WorkflowConfig;
    };
    return {
      name: f.replace(/\.json$/, ""),
      source: data.source,
      config: data.config,
      yaml: readFileSync(join(REPO_DIR, data.source), "utf8"),
    };
  });

export function example(name: string): WorkflowConfig {
  const found = examples.find((e) => e.name === name);
  if (!found) throw new Error(`no example ${name}`);
  return found.config;
}
