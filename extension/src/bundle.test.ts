// The shipped bundle: one ES module, exporting `Canvas`, importing nothing but what
// ipyreact's import map provides, and nothing from the network.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { EXTENSION_DIR } from "./test/fixtures";

const MAPPED = ["react", "react-dom", "react/jsx-runtime", "react-dom/client"];
let dir: string;
let bundle: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "flownb-bundle-"));
  bundle = join(dir, "canvas.js");
  execFileSync(process.execPath, ["build.mjs", `--out=${bundle}`], { cwd: EXTENSION_DIR, stdio: "pipe" });
}, 60_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the bundle", () => {
  test("imports only what ipyreact maps, and exports Canvas", async () => {
    // Re-bundle the output with only the mapped names external: any other import (a bare
    // name, an http(s) URL) would fail to resolve here.
    const result = await build({
      entryPoints: [bundle],
      bundle: true,
      format: "esm",
      write: false,
      metafile: true,
      external: MAPPED,
      logLevel: "silent",
      outfile: join(dir, "check.js"),
    });
    const output = Object.values(result.metafile.outputs)[0];
    const imports = new Set(output.imports.map((i) => i.path));
    expect([...imports].every((name) => MAPPED.includes(name))).toBe(true);
    expect(imports.has("react")).toBe(true);
    expect(output.exports).toContain("Canvas");
  });

  test("has no http:// or https:// imports, and no dynamic require of react", () => {
    const code = readFileSync(bundle, "utf8");
    expect(code).not.toMatch(/(?:\bfrom\s*|\bimport\s*\(?\s*)["'`]https?:\/\//);
    expect(code).not.toContain("Dynamic require of");
    expect(code.startsWith("<")).toBe(false);
  });
});
