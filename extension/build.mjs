// Bundles the canvas into one plain ES module for ipyreact's define_module.
//
// React stays external: ipyreact's import map resolves `react`, `react-dom`,
// `react/jsx-runtime` and `react-dom/client` to its own React 18, and no other bare import
// may remain (nothing is fetched at run time). `node build.mjs --bench` also writes a
// standalone page (React bundled in) for the browser benchmark.
import { build } from "esbuild";
import { cp, mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
const outArg = process.argv.find((a) => a.startsWith("--out="));
const outfile = outArg ? resolve(outArg.slice(6)) : resolve(here, "../flownb/static/canvas.js");
const REACT_EXTERNALS = ["react", "react-dom", "react/jsx-runtime", "react-dom/client"];

// use-sync-external-store (reached through zustand 4 inside @xyflow/react) is CommonJS and
// calls require("react"); with React external and ESM output esbuild would emit a shim that
// throws "Dynamic require of react is not supported". Resolve those require-calls to a tiny
// ESM stub re-exporting the external module instead.
const requireReactAsEsm = {
  name: "require-react-as-esm",
  setup(b) {
    b.onResolve({ filter: /^react(-dom)?$/ }, (args) =>
      args.kind === "require-call" ? { path: args.path, namespace: "react-stub" } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: "react-stub" }, (args) => ({
      contents: `export * from ${JSON.stringify(args.path)};`,
      loader: "js",
    }));
  },
};

// `import text from "./file.css?raw"`: the file's text (as vite, which runs the tests, does).
const rawText = {
  name: "raw-text",
  setup(b) {
    b.onResolve({ filter: /\?raw$/ }, async (args) => {
      const found = await b.resolve(args.path.slice(0, -4), { kind: args.kind, resolveDir: args.resolveDir });
      if (found.errors.length) return { errors: found.errors };
      return { path: found.path, namespace: "raw-text" };
    });
    b.onLoad({ filter: /.*/, namespace: "raw-text" }, async (args) => ({
      contents: await readFile(args.path, "utf8"),
      loader: "text",
    }));
  },
};

const common = {
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: !process.argv.includes("--no-minify"),
  legalComments: "none",
  define: { "process.env.NODE_ENV": '"production"' },
  logLevel: "warning",
};

/** Network imports in bundled code: `from "http..."`, `import "http..."`, `import("http...")`. */
export const NETWORK_IMPORT = /(?:\bfrom\s*|\bimport\s*\(?\s*)["'`]https?:\/\//;

/** Build the widget bundle; returns its size and the modules it leaves to the import map. */
export async function buildWidget(target = outfile) {
  await mkdir(dirname(target), { recursive: true });
  const result = await build({
    ...common,
    entryPoints: [resolve(here, "src/index.tsx")],
    outfile: target,
    external: REACT_EXTERNALS,
    plugins: [requireReactAsEsm, rawText],
    metafile: true,
  });
  const output = Object.values(result.metafile.outputs).find((o) => o.entryPoint);
  const imports = [...new Set((output?.imports ?? []).filter((i) => i.external).map((i) => i.path))];
  const foreign = imports.filter((name) => !REACT_EXTERNALS.includes(name));
  if (foreign.length) throw new Error(`the bundle imports what ipyreact does not map: ${foreign.join(", ")}`);
  const code = await readFile(target);
  if (NETWORK_IMPORT.test(code.toString())) throw new Error("the bundle imports from the network");
  return { imports, bytes: code.length, gzipBytes: gzipSync(code).length };
}

async function buildBench() {
  const dir = resolve(here, "bench/dist");
  await mkdir(dir, { recursive: true });
  await cp(resolve(here, "../examples"), resolve(dir, "examples"), { recursive: true });
  await build({
    ...common,
    entryPoints: [resolve(here, "bench/page.tsx")],
    target: "es2022",
    outfile: resolve(dir, "bench.js"),
    plugins: [rawText],
  });
  await writeFile(
    resolve(dir, "index.html"),
    '<!doctype html><meta charset="utf-8"><title>flownb canvas benchmark</title>' +
      '<body style="margin:0"><div id="root"></div><script type="module" src="bench.js"></script>\n',
  );
  console.log(`${dir}/index.html`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { bytes, gzipBytes } = await buildWidget();
  const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
  console.log(`${outfile}: ${kb(bytes)} (gzip ${kb(gzipBytes)})`);
  if (process.argv.includes("--bench")) await buildBench();
}
