// The toolbar (import, export, undo, redo, validate, fit view, auto-layout, settings, save,
// AI) and its import/export dialogs.
import { useReactFlow } from "@xyflow/react";
import { memo, useMemo, useRef, useState, type ChangeEvent } from "react";
import { useCanvas, useKernel } from "../context";
import { exportLayoutYaml, exportYaml } from "../serialization";

export type Dialog = "import" | "export" | "ai" | null;

function Button(props: { id: string; label: string; title: string; onClick(): void; disabled?: boolean }) {
  return (
    <button
      type="button"
      className="fnb-button"
      data-testid={`toolbar-${props.id}`}
      title={props.title}
      disabled={props.disabled}
      onClick={props.onClick}
    >
      {props.label}
    </button>
  );
}

export const Toolbar = memo(function Toolbar({ openDialog }: { openDialog(dialog: Dialog): void }) {
  const actions = useCanvas((s) => s.actions);
  const canUndo = useCanvas((s) => s.past.length > 0);
  const canRedo = useCanvas((s) => s.future.length > 0);
  const problemCount = useCanvas((s) => s.problemCount);
  const running = useCanvas((s) => s.running);
  const kernel = useKernel();
  const flow = useReactFlow();
  const mod = typeof navigator !== "undefined" && /Mac/.test(navigator.platform) ? "⌘" : "Ctrl+";
  return (
    <div className="fnb-toolbar" role="toolbar">
      <Button id="import" label="Import" title="Import YAML (paste or upload)" onClick={() => openDialog("import")} />
      <Button id="export" label="Export" title="Export YAML (download or copy)" onClick={() => openDialog("export")} />
      <span className="fnb-sep" />
      <Button id="undo" label="↶ Undo" title={`Undo (${mod}Z)`} disabled={!canUndo} onClick={actions.undo} />
      <Button id="redo" label="↷ Redo" title={`Redo (${mod}Shift+Z)`} disabled={!canRedo} onClick={actions.redo} />
      <span className="fnb-sep" />
      <Button
        id="validate"
        label="Validate"
        title="Check the config here and with a dry build in the kernel"
        onClick={() => {
          actions.ensureValidator();
          kernel.validate();
        }}
      />
      <Button id="fit" label="Fit" title="Fit the view" onClick={() => flow.fitView({ duration: 200 })} />
      <Button
        id="layout"
        label="Auto-layout"
        title="Lay every node out again"
        onClick={() => {
          actions.autoLayoutAll();
          requestAnimationFrame(() => flow.fitView({ duration: 200 }));
        }}
      />
      <Button
        id="settings"
        label="Workflow"
        title="Workflow-level settings (state machines, event patterns…)"
        onClick={() => actions.select({ kind: "config" })}
      />
      {kernel.has.save && (
        <Button id="save" label="Save" title={`Save to the workflow's file (${mod}S)`} onClick={kernel.save} />
      )}
      {kernel.has.generate && (
        <Button
          id="ai"
          label="AI…"
          title="Generate or change the workflow from a description (validated before it is applied)"
          onClick={() => openDialog("ai")}
        />
      )}
      <span className="fnb-grow" />
      {running && (
        <span className="fnb-running" data-testid="running">
          ● running
        </span>
      )}
      <button
        type="button"
        className={`fnb-problem-count${problemCount ? " fnb-has-problems" : ""}`}
        data-testid="diagnostics-count"
        data-count={problemCount}
        title="Problems (click for workflow-level ones)"
        onClick={() => actions.select({ kind: "config" })}
      >
        {problemCount ? `⚠ ${problemCount}` : "✓ valid"}
      </button>
    </div>
  );
});

function download(name: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: "application/yaml" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

async function copy(text: string, fallback: HTMLTextAreaElement | null): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (!fallback) return false;
    fallback.select();
    return document.execCommand("copy");
  }
}

export function ExportDialog({ onClose }: { onClose(): void }) {
  const config = useCanvas((s) => s.config);
  const layout = useCanvas((s) => s.layout);
  const auto = useCanvas((s) => s.auto);
  const [inline, setInline] = useState(false);
  const [copied, setCopied] = useState<string | null>(null);
  const area = useRef<HTMLTextAreaElement>(null);
  const positions = useMemo(() => ({ ...auto, ...layout }), [auto, layout]);
  const text = useMemo(() => exportYaml(config, inline ? positions : undefined), [config, inline, positions]);
  const layoutText = useMemo(() => exportLayoutYaml(positions), [positions]);
  return (
    <div className="fnb-dialog" role="dialog" aria-label="Export YAML" data-testid="export-dialog">
      <div className="fnb-dialog-head">
        <strong>Export YAML</strong>
        <button type="button" className="fnb-mini" data-testid="dialog-close" onClick={onClose}>
          ×
        </button>
      </div>
      <label className="fnb-check">
        <input
          type="checkbox"
          data-testid="export-inline-layout"
          checked={inline}
          onChange={(e) => setInline(e.target.checked)}
        />
        positions in a <code>layout:</code> block (else in <code>NAME.layout.yaml</code> beside the file)
      </label>
      <textarea
        ref={area}
        className="fnb-input fnb-code"
        data-testid="export-yaml"
        readOnly
        value={text}
        rows={18}
        spellCheck={false}
      />
      <div className="fnb-dialog-actions">
        <button
          type="button"
          className="fnb-button"
          data-testid="export-download"
          onClick={() => download("workflow.yaml", text)}
        >
          Download
        </button>
        <button
          type="button"
          className="fnb-button"
          data-testid="export-copy"
          onClick={() => void copy(text, area.current).then((ok) => setCopied(ok ? "copied" : "copy failed"))}
        >
          Copy
        </button>
        {!inline && (
          <button
            type="button"
            className="fnb-button"
            data-testid="export-layout-download"
            onClick={() => download("workflow.layout.yaml", layoutText)}
          >
            Download layout
          </button>
        )}
        {copied && <span className="fnb-help">{copied}</span>}
      </div>
      {!inline && (
        <details>
          <summary>layout (NAME.layout.yaml)</summary>
          <textarea
            className="fnb-input fnb-code"
            data-testid="export-layout-yaml"
            readOnly
            value={layoutText}
            rows={8}
          />
        </details>
      )}
    </div>
  );
}

export function ImportDialog({ onClose, onImported }: { onClose(): void; onImported(): void }) {
  const actions = useCanvas((s) => s.actions);
  const [text, setText] = useState("");
  const [error, setError] = useState<string | null>(null);
  const apply = () => {
    const problem = actions.importYaml(text);
    setError(problem);
    if (!problem) onImported();
  };
  const upload = (e: ChangeEvent<HTMLInputElement>) => {
    const file = e.target.files?.[0];
    if (!file) return;
    void file.text().then((t) => setText(t));
  };
  return (
    <div className="fnb-dialog" role="dialog" aria-label="Import YAML" data-testid="import-dialog">
      <div className="fnb-dialog-head">
        <strong>Import YAML</strong>
        <button type="button" className="fnb-mini" data-testid="dialog-close" onClick={onClose}>
          ×
        </button>
      </div>
      <p className="fnb-help">
        Paste a workflow file (or upload one). It replaces the canvas; Undo brings the old one back.
      </p>
      <input type="file" accept=".yaml,.yml,.json,text/yaml" data-testid="import-file" onChange={upload} />
      <textarea
        className="fnb-input fnb-code"
        data-testid="import-yaml"
        value={text}
        rows={16}
        spellCheck={false}
        placeholder={"modules:\n  - name: server\n    type: http.server"}
        onChange={(e) => setText(e.target.value)}
      />
      {error && (
        <div className="fnb-field-error" data-testid="import-error" role="alert">
          {error}
        </div>
      )}
      <div className="fnb-dialog-actions">
        <button type="button" className="fnb-button fnb-primary" data-testid="import-apply" onClick={apply}>
          Import
        </button>
      </div>
    </div>
  );
}
