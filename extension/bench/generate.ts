// A generated workflow of a given size, for the browser benchmark: every kind of node and
// most kinds of edge, wired the way a real service is.
import type { JsonObject, WorkflowConfig } from "../src/types";

/** A config with exactly `nodes` canvas nodes (modules + pipelines + triggers), valid. */
export function generateConfig(nodes = 500): WorkflowConfig {
  const fixed: JsonObject[] = [
    { name: "server", type: "http.server", config: { address: "127.0.0.1:0" } },
    { name: "router", type: "http.router", dependsOn: ["server"] },
    { name: "bus", type: "messaging.broker" },
    { name: "machine", type: "statemachine.engine" },
    { name: "ticker", type: "scheduler", config: { interval: "1m" } },
    { name: "store", type: "cache" },
  ];
  const triggers = Math.max(0, Math.min(10, nodes - fixed.length));
  const rest = Math.max(0, nodes - fixed.length - triggers);
  // A third each: pipelines, http handlers running them, messaging handlers running them.
  const groups = Math.floor(rest / 3);
  const pipelines: Record<string, JsonObject[]> = {};
  const modules: JsonObject[] = [...fixed];
  const routes: JsonObject[] = [];
  const subscriptions: JsonObject[] = [];
  const jobs: JsonObject[] = [];
  const hooks: JsonObject[] = [];
  const pipelineCount = rest - 2 * groups;
  for (let i = 0; i < pipelineCount; i++) {
    const p = `work-${i}`;
    pipelines[p] = [
      { type: "set", target: "data", values: { step: i } },
      { type: "cache", op: "incr", key: `count-${i}` },
      { type: "respond", body: { ok: true, n: i } },
    ];
    if (i % 25 === 0) jobs.push({ scheduler: "ticker", job: p });
    if (i % 40 === 0) hooks.push({ handler: p });
  }
  for (let i = 0; i < groups; i++) {
    const name = `api-${i}`;
    modules.push({
      name,
      type: "http.handler",
      config: { pipeline: `work-${i % pipelineCount}` },
      dependsOn: ["store"],
    });
    routes.push({ method: i % 2 ? "POST" : "GET", path: `/items-${i}`, handler: name });
  }
  for (let i = 0; i < groups; i++) {
    const name = `consumer-${i}`;
    modules.push({ name, type: "messaging.handler", config: { pipeline: `work-${(groups + i) % pipelineCount}` } });
    subscriptions.push({ topic: `topic-${i}`, handler: name });
  }
  const httpTriggers = Array.from({ length: Math.ceil(triggers / 2) }, (_, i) => ({
    method: "POST",
    path: `/run-${i}`,
    workflow: "pipeline",
    action: `work-${i}`,
  }));
  const scheduleTriggers = Array.from({ length: Math.floor(triggers / 2) }, (_, i) => ({
    name: `nightly-${i}`,
    cron: `${i} 3 * * *`,
    workflow: "pipeline",
    action: `work-${i}`,
  }));
  return {
    modules,
    workflows: {
      http: { routes },
      messaging: { subscriptions },
      statemachine: {
        definitions: [
          {
            name: "order",
            initialState: "new",
            states: { new: {}, done: { isFinal: true } },
            transitions: { finish: { fromState: "new", toState: "done" } },
          },
        ],
        hooks,
      },
      scheduler: { jobs },
    },
    triggers: { http: { routes: httpTriggers }, schedule: { jobs: scheduleTriggers } },
    pipelines,
  } as WorkflowConfig;
}
