// The palette: every registered module type grouped by the registry's categories, plus
// pipelines and triggers, with a search box. Drag an item onto the canvas (or double-click
// it, or press Enter on it) to add it with a unique name.
import { memo, useMemo, useState, type DragEvent } from "react";
import { useCanvas } from "../context";
import { CATEGORY_COLORS, PIPELINE_COLOR, TRIGGER_COLOR } from "../nodes/colors";
import type { PaletteItem } from "../store";

export const PALETTE_MIME = "application/x-flownb-palette";

interface Entry {
  key: string;
  label: string;
  description: string;
  item: PaletteItem;
  color: string;
}

export function paletteKey(item: PaletteItem): string {
  if (item.kind === "module") return item.type;
  if (item.kind === "pipeline") return "pipeline";
  return `trigger.${item.trigger}`;
}

const FLOW_ENTRIES: Entry[] = [
  {
    key: "pipeline",
    label: "pipeline",
    description: "a named list of steps",
    item: { kind: "pipeline" },
    color: PIPELINE_COLOR,
  },
  {
    key: "trigger.http",
    label: "http trigger",
    description: "an HTTP route that starts a workflow",
    item: { kind: "trigger", trigger: "http" },
    color: TRIGGER_COLOR,
  },
  {
    key: "trigger.schedule",
    label: "schedule trigger",
    description: "a cron or interval job",
    item: { kind: "trigger", trigger: "schedule" },
    color: TRIGGER_COLOR,
  },
  {
    key: "trigger.event",
    label: "event trigger",
    description: "a broker topic that starts a workflow",
    item: { kind: "trigger", trigger: "event" },
    color: TRIGGER_COLOR,
  },
];

export const Palette = memo(function Palette({ onAdd }: { onAdd(item: PaletteItem): void }) {
  const schema = useCanvas((s) => s.schema);
  const [query, setQuery] = useState("");
  const groups = useMemo(() => {
    const out: { name: string; entries: Entry[] }[] = [];
    const types = Object.values(schema?.types ?? {});
    const categories = [...(schema?.categories ?? [])];
    for (const t of types) if (!categories.includes(t.category)) categories.push(t.category);
    for (const category of categories) {
      const entries = types
        .filter((t) => t.category === category)
        .map((t) => ({
          key: t.type,
          label: t.type,
          description: t.description,
          item: { kind: "module", type: t.type } as PaletteItem,
          color: CATEGORY_COLORS[category] ?? "#a1a1aa",
        }));
      if (entries.length) out.push({ name: category, entries });
    }
    out.push({ name: "Flow", entries: FLOW_ENTRIES });
    return out;
  }, [schema]);
  const q = query.trim().toLowerCase();
  const shown = groups
    .map((g) => ({
      ...g,
      entries: q
        ? g.entries.filter((e) => `${e.label} ${e.description} ${g.name}`.toLowerCase().includes(q))
        : g.entries,
    }))
    .filter((g) => g.entries.length);
  const onDragStart = (e: DragEvent, entry: Entry) => {
    e.dataTransfer.setData(PALETTE_MIME, JSON.stringify(entry.item));
    e.dataTransfer.setData("text/plain", entry.key);
    e.dataTransfer.effectAllowed = "copy";
  };
  return (
    <div className="fnb-palette" data-testid="palette">
      <input
        className="fnb-input fnb-search"
        type="search"
        placeholder="Search modules…"
        data-testid="palette-search"
        aria-label="search the palette"
        value={query}
        onChange={(e) => setQuery(e.target.value)}
      />
      {!schema && <p className="fnb-help">No module types yet: the kernel sends them with the widget.</p>}
      {shown.map((g) => (
        <div className="fnb-palette-group" key={g.name} data-testid={`palette-group-${g.name}`}>
          <div className="fnb-palette-category">{g.name}</div>
          {g.entries.map((e) => (
            <div
              key={e.key}
              className="fnb-palette-item"
              data-testid={`palette-item-${e.key}`}
              draggable
              tabIndex={0}
              role="button"
              title={`${e.description}\n(drag onto the canvas, or double-click)`}
              onDragStart={(ev) => onDragStart(ev, e)}
              onDoubleClick={() => onAdd(e.item)}
              onKeyDown={(ev) => {
                if (ev.key === "Enter") onAdd(e.item);
              }}
            >
              <span className="fnb-node-dot" style={{ background: e.color }} />
              {e.label}
            </div>
          ))}
        </div>
      ))}
      {shown.length === 0 && <p className="fnb-help">Nothing matches “{query}”.</p>}
    </div>
  );
});
