import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "src/**/*.test.tsx"],
    environment: "node",
    restoreMocks: true,
    // The canvas imports its CSS as text (`?raw`); vitest empties CSS unless told to keep it.
    css: { include: [/\.css/] },
  },
});
