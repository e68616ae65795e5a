// The committed fixtures must be what scripts/dump_fixtures.py writes today: the schema the
// kernel sends and the examples as it reads them. Needs the project's Python (make setup).
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { EXTENSION_DIR, REPO_DIR } from "./test/fixtures";

const python = process.env.FLOWNB_PYTHON ?? join(REPO_DIR, ".venv", "bin", "python");

test.skipIf(!existsSync(python))(
  "fixtures are fresh (else: .venv/bin/python extension/scripts/dump_fixtures.py)",
  () => {
    let output = "";
    try {
      execFileSync(python, [join(EXTENSION_DIR, "scripts", "dump_fixtures.py"), "--check"], { stdio: "pipe" });
    } catch (error) {
      const e = error as { stderr?: Buffer; stdout?: Buffer };
      output = `${e.stderr?.toString() ?? ""}${e.stdout?.toString() ?? ""}` || String(error);
    }
    expect(output).toBe("");
  },
  60_000,
);
