// The AI prompt box: say what the workflow should do (or how to change it); the kernel
// generates a workflow with flownb.ai, validates it with the engine and the sandbox, and
// applies it only if valid (docs/canvas.md, `generate` / `generation`). Nothing here talks to
// a network: the request goes to the kernel, which holds the key.
import { memo, useState, type KeyboardEvent } from "react";
import { useCanvas, useKernel } from "../context";

const STATUS_TEXT = {
  idle: "",
  running: "Generating and validating…",
  done: "Applied: the workflow validated.",
  error: "Not applied.",
} as const;

export const AIPrompt = memo(function AIPrompt({ onClose }: { onClose(): void }) {
  const kernel = useKernel();
  const generation = useCanvas((s) => s.generation);
  const [intent, setIntent] = useState(generation.intent ?? "");
  const running = generation.status === "running";
  const canSend = kernel.has.generate && !running && intent.trim().length > 0;
  const send = () => {
    if (canSend) kernel.generate(intent.trim());
  };
  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      send();
    }
  };
  return (
    <div className="fnb-dialog fnb-ai" role="dialog" aria-label="Generate with AI" data-testid="ai-prompt">
      <div className="fnb-dialog-head">
        <strong>Generate with AI</strong>
        <button type="button" className="fnb-mini" data-testid="dialog-close" onClick={onClose}>
          ×
        </button>
      </div>
      <p className="fnb-help">
        Say what the workflow should do, or how to change this one. The kernel validates the result (schema, references,
        a dry build, components in the sandbox) and applies it only if it is valid.
      </p>
      <textarea
        className="fnb-input"
        data-testid="ai-prompt-input"
        value={intent}
        rows={4}
        disabled={running}
        placeholder="e.g. an HTTP API that stores orders and rate-limits clients to 60 requests a minute"
        onChange={(e) => setIntent(e.target.value)}
        onKeyDown={onKeyDown}
      />
      <div className="fnb-dialog-actions">
        <button
          type="button"
          className="fnb-button fnb-primary"
          data-testid="ai-prompt-generate"
          title="Generate (Ctrl+Enter)"
          disabled={!canSend}
          onClick={send}
        >
          {running ? "Generating…" : "Generate"}
        </button>
        <span
          className={`fnb-help fnb-ai-status fnb-ai-${generation.status}`}
          data-testid="ai-prompt-status"
          data-status={generation.status}
          role="status"
        >
          {generation.message || STATUS_TEXT[generation.status]}
        </span>
      </div>
      {generation.status === "done" && generation.explanation && (
        <p className="fnb-ai-explanation" data-testid="ai-prompt-explanation">
          {generation.explanation}
        </p>
      )}
      {generation.status === "done" && generation.components?.length ? (
        <p className="fnb-help" data-testid="ai-prompt-components">
          Components written: {generation.components.join(", ")}
        </p>
      ) : null}
      {generation.status === "error" && generation.errors?.length ? (
        <ul className="fnb-field-error fnb-ai-errors" data-testid="ai-prompt-errors" role="alert">
          {generation.errors.map((error, i) => (
            <li key={i}>{error}</li>
          ))}
        </ul>
      ) : null}
    </div>
  );
});
