// A form generated from JSON Schema. Every field is drawn from the schema the registry
// exports: no field of any module type is written here.
//
// Scalars commit on blur or Enter, after `onChange` has checked them against the schema: a
// rejected value stays in the box with the schema's message and is never applied (so never
// sent to the kernel). Structural changes (adding an item, picking a branch) always apply and
// show whatever is still missing as inline errors.
import {
  createContext,
  memo,
  useContext,
  useEffect,
  useMemo,
  useState,
  type KeyboardEvent,
  type ReactNode,
} from "react";
import { deepEqual, isObject } from "../json";
import { parse11, stringify11 } from "../yaml11";
import type { SchemaIndex } from "../schema";
import type { Json, JsonObject, JsonSchema, Path } from "../types";
import {
  branchLabel,
  classify,
  defaultFor,
  formatScalar,
  parseScalar,
  type Classified,
  type ScalarType,
} from "./classify";

/**
 * Apply `value` at `path` (relative to the form's value). Returns the reason it was refused,
 * or null. `structural` changes are applied without the check.
 */
export type FormChange = (path: Path, value: Json | undefined, structural: boolean) => string | null;

interface FormContextValue {
  index: SchemaIndex;
  errors: Record<string, string>;
  change: FormChange;
  readOnly: ReadonlySet<string>;
}

const FormContext = createContext<FormContextValue | null>(null);

function useForm(): FormContextValue {
  const ctx = useContext(FormContext);
  if (!ctx) throw new Error("schema form fields need a SchemaForm");
  return ctx;
}

export interface SchemaFormProps {
  index: SchemaIndex;
  schema: JsonSchema;
  value: Json | undefined;
  /** Messages by dotted path (relative to `value`), e.g. "config.port". */
  errors?: Record<string, string>;
  onChange: FormChange;
  /** Dotted paths shown but not editable (the module `type`). */
  readOnly?: ReadonlySet<string>;
}

const NONE: ReadonlySet<string> = new Set();

export function SchemaForm({ index, schema, value, errors = {}, onChange, readOnly = NONE }: SchemaFormProps) {
  const ctx = useMemo(() => ({ index, errors, change: onChange, readOnly }), [index, errors, onChange, readOnly]);
  return (
    <FormContext.Provider value={ctx}>
      <div className="fnb-form">
        <Field path={[]} schema={schema} value={value} label={null} required />
      </div>
    </FormContext.Provider>
  );
}

const dotted = (path: Path) => path.join(".");

interface FieldProps {
  path: Path;
  schema: JsonSchema;
  value: Json | undefined;
  label: string | null;
  required: boolean;
  /** Property names not to draw (a tagged union's tag, shown as its picker). */
  hidden?: string;
  onRemove?: () => void;
}

const Field = memo(function Field(props: FieldProps) {
  const { index } = useForm();
  const c = useMemo(() => classify(index, props.schema), [index, props.schema]);
  switch (c.spec.kind) {
    case "object":
    case "map":
    case "array":
    case "tagged":
    case "union":
    case "free":
      return <CompoundField {...props} c={c} />;
    default:
      return <ScalarField {...props} c={c} />;
  }
});

function Label({ text, required, htmlFor }: { text: string | null; required: boolean; htmlFor?: string }) {
  if (text === null) return null;
  return (
    <label className="fnb-label" htmlFor={htmlFor}>
      {text}
      {required && (
        <span className="fnb-required" title="required">
          *
        </span>
      )}
    </label>
  );
}

function Help({ text }: { text?: string }) {
  return text ? <div className="fnb-help">{text}</div> : null;
}

function FieldError({ path, message }: { path: Path; message?: string | null }) {
  if (!message) return null;
  return (
    <div className="fnb-field-error" data-testid={`field-error-${dotted(path)}`} role="alert">
      {message}
    </div>
  );
}

function ScalarField({ path, value, label, required, c, onRemove }: FieldProps & { c: Classified }) {
  const { errors, readOnly } = useForm();
  const key = dotted(path);
  const [rejected, setRejected] = useState<string | null>(null);
  useEffect(() => setRejected(null), [value]);
  const id = `fnb-f-${key}`;
  const locked = readOnly.has(key);
  let widget: ReactNode;
  const spec = c.spec;
  if (spec.kind === "const" || locked) {
    widget = (
      <input
        id={id}
        className="fnb-input"
        data-testid={`field-${key}`}
        value={formatScalar(value ?? (spec.kind === "const" ? spec.value : ""))}
        readOnly
      />
    );
  } else if (spec.kind === "enum") {
    widget = (
      <EnumInput
        id={id}
        path={path}
        value={value}
        options={spec.options}
        required={required}
        defaultValue={c.defaultValue}
        onRejected={setRejected}
      />
    );
  } else if (spec.kind === "boolean") {
    widget = (
      <BooleanInput
        id={id}
        path={path}
        value={value}
        env={spec.env}
        defaultValue={c.defaultValue}
        onRejected={setRejected}
      />
    );
  } else if (spec.kind === "text") {
    widget = (
      <TextInput
        id={id}
        path={path}
        value={value}
        types={spec.types}
        env={spec.env}
        defaultValue={c.defaultValue}
        onRejected={setRejected}
      />
    );
  }
  return (
    <div className={`fnb-field fnb-field-scalar${rejected || errors[key] ? " fnb-field-invalid" : ""}`}>
      <div className="fnb-field-row">
        <Label text={label} required={required} htmlFor={id} />
        {widget}
        {onRemove && <RemoveButton path={path} onClick={onRemove} />}
      </div>
      <Help text={c.description} />
      <FieldError path={path} message={rejected ?? errors[key]} />
    </div>
  );
}

function placeholderOf(defaultValue: Json | undefined): string | undefined {
  if (defaultValue === undefined || defaultValue === null) return undefined;
  return typeof defaultValue === "object" ? JSON.stringify(defaultValue) : `default: ${String(defaultValue)}`;
}

interface InputProps {
  id: string;
  path: Path;
  value: Json | undefined;
  defaultValue?: Json;
  onRejected(message: string | null): void;
}

function TextInput({
  id,
  path,
  value,
  types,
  env,
  defaultValue,
  onRejected,
}: InputProps & { types: ScalarType[]; env: boolean }) {
  const { change } = useForm();
  const shown = formatScalar(value);
  const [draft, setDraft] = useState(shown);
  useEffect(() => setDraft(shown), [shown]);
  const commit = () => {
    const next = parseScalar(draft, types, env);
    if (deepEqual(next, value) && draft === shown) return;
    if (next === undefined && value === undefined) return;
    onRejected(change(path, next, false));
  };
  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === "Enter" && !(e.target instanceof HTMLTextAreaElement)) commit();
  };
  const common = {
    id,
    className: "fnb-input",
    "data-testid": `field-${dotted(path)}`,
    value: draft,
    placeholder: placeholderOf(defaultValue) ?? (env ? "${VAR}" : undefined),
    onChange: (e: { target: { value: string } }) => setDraft(e.target.value),
    onBlur: commit,
    onKeyDown,
    spellCheck: false,
  };
  if (draft.includes("\n")) return <textarea rows={Math.min(8, draft.split("\n").length + 1)} {...common} />;
  const numeric = !types.includes("string") && !env;
  return <input type="text" inputMode={numeric ? "decimal" : undefined} {...common} />;
}

function EnumInput({
  id,
  path,
  value,
  options,
  required,
  defaultValue,
  onRejected,
}: InputProps & { options: Json[]; required: boolean }) {
  const { change } = useForm();
  const selected = options.findIndex((o) => deepEqual(o, value));
  return (
    <select
      id={id}
      className="fnb-input"
      data-testid={`field-${dotted(path)}`}
      value={selected < 0 ? "" : String(selected)}
      onChange={(e) =>
        onRejected(change(path, e.target.value === "" ? undefined : options[Number(e.target.value)], false))
      }
    >
      {(!required || selected < 0) && (
        <option value="">
          {defaultValue !== undefined && defaultValue !== null ? `(default: ${String(defaultValue)})` : "—"}
        </option>
      )}
      {options.map((o, i) => (
        <option key={i} value={String(i)}>
          {String(o)}
        </option>
      ))}
    </select>
  );
}

function BooleanInput({ id, path, value, env, defaultValue, onRejected }: InputProps & { env: boolean }) {
  const { change } = useForm();
  const [asText, setAsText] = useState(typeof value === "string");
  useEffect(() => {
    if (typeof value === "string") setAsText(true);
  }, [value]);
  if (env && asText) {
    return (
      <span className="fnb-bool-env">
        <TextInput
          id={id}
          path={path}
          value={value}
          types={["boolean"]}
          env
          defaultValue={defaultValue}
          onRejected={onRejected}
        />
        <button type="button" className="fnb-mini" title="use a checkbox" onClick={() => setAsText(false)}>
          ☑
        </button>
      </span>
    );
  }
  const checked = value === undefined ? defaultValue === true : value === true;
  return (
    <span className="fnb-bool">
      <input
        id={id}
        type="checkbox"
        data-testid={`field-${dotted(path)}`}
        checked={checked}
        onChange={(e) => onRejected(change(path, e.target.checked, false))}
      />
      {env && (
        <button
          type="button"
          className="fnb-mini"
          title="write a ${VAR} reference instead"
          onClick={() => setAsText(true)}
        >
          {"${}"}
        </button>
      )}
    </span>
  );
}

function RemoveButton({ path, onClick }: { path: Path; onClick(): void }) {
  return (
    <button
      type="button"
      className="fnb-mini fnb-remove"
      data-testid={`remove-${dotted(path)}`}
      title="remove"
      onClick={onClick}
    >
      ×
    </button>
  );
}

function CompoundField({ path, schema, value, label, required, c, hidden, onRemove }: FieldProps & { c: Classified }) {
  const { errors, change, index } = useForm();
  const key = dotted(path);
  const [rejected, setRejected] = useState<string | null>(null);
  useEffect(() => setRejected(null), [value]);
  const spec = c.spec;
  const absent = value === undefined || value === null;
  const remove = onRemove ?? (!required && !absent && path.length ? () => change(path, undefined, true) : undefined);
  // An optional (nullable) part is offered with "+ add"; any other absent part is drawn empty
  // and made by its first edit.
  if (absent && c.nullable && spec.kind !== "free" && path.length > 0) {
    return (
      <div className="fnb-field fnb-field-absent">
        <div className="fnb-field-row">
          <Label text={label} required={required} />
          <button
            type="button"
            className="fnb-mini fnb-add"
            data-testid={`add-${key}`}
            onClick={() => change(path, defaultFor(index, schema), true)}
          >
            + add
          </button>
        </div>
        <Help text={c.description} />
        <FieldError path={path} message={errors[key]} />
      </div>
    );
  }
  let body: ReactNode;
  switch (spec.kind) {
    case "object":
      body = <ObjectBody path={path} schema={spec.schema} value={value} hidden={hidden} />;
      break;
    case "map":
      body = <MapBody path={path} values={spec.values} value={value} />;
      break;
    case "array":
      body = <ArrayBody path={path} items={spec.items} value={value} />;
      break;
    case "tagged":
      body = <TaggedBody path={path} tag={spec.tag} options={spec.options} value={value} />;
      break;
    case "union":
      body = <UnionBody path={path} branches={spec.branches} value={value} required={required} />;
      break;
    case "free":
      body = <YamlInput path={path} value={value} onRejected={setRejected} />;
      break;
  }
  if (label === null) {
    return (
      <>
        {body}
        <FieldError path={path} message={rejected ?? errors[key]} />
      </>
    );
  }
  return (
    <fieldset className={`fnb-field fnb-field-${spec.kind}${rejected || errors[key] ? " fnb-field-invalid" : ""}`}>
      <legend className="fnb-legend">
        <Label text={label} required={required} />
        {remove && <RemoveButton path={path} onClick={remove} />}
      </legend>
      <Help text={c.description} />
      {body}
      <FieldError path={path} message={rejected ?? errors[key]} />
    </fieldset>
  );
}

function ObjectBody({
  path,
  schema,
  value,
  hidden,
}: {
  path: Path;
  schema: JsonSchema;
  value: Json | undefined;
  hidden?: string;
}) {
  const { change } = useForm();
  const obj = isObject(value) ? value : {};
  const props = schema.properties ?? {};
  const required = new Set(schema.required ?? []);
  const unknown = Object.keys(obj).filter((k) => !(k in props));
  return (
    <div className="fnb-object">
      {Object.entries(props).map(([name, sub]) =>
        name === hidden ? null : (
          <Field
            key={name}
            path={[...path, name]}
            schema={sub}
            value={obj[name]}
            label={name}
            required={required.has(name)}
          />
        ),
      )}
      {unknown.map((name) => (
        <Field
          key={`?${name}`}
          path={[...path, name]}
          schema={{}}
          value={obj[name]}
          label={`${name} (unknown)`}
          required={false}
          onRemove={() => change([...path, name], undefined, true)}
        />
      ))}
    </div>
  );
}

function MapBody({ path, values, value }: { path: Path; values: JsonSchema; value: Json | undefined }) {
  const { change, index } = useForm();
  const obj: JsonObject = isObject(value) ? value : {};
  const renameEntry = (oldKey: string, newKey: string): string | null => {
    if (!newKey || newKey === oldKey) return null;
    if (newKey in obj) return `"${newKey}" is already there`;
    const next: JsonObject = {};
    for (const [k, v] of Object.entries(obj)) next[k === oldKey ? newKey : k] = v;
    return change(path, next, true);
  };
  const add = () => {
    let n = Object.keys(obj).length + 1;
    while (`new-${n}` in obj) n++;
    change(path, { ...obj, [`new-${n}`]: defaultFor(index, values) }, true);
  };
  return (
    <div className="fnb-map">
      {Object.entries(obj).map(([k, v]) => (
        <div className="fnb-map-entry" key={k}>
          <div className="fnb-map-head">
            <KeyInput path={[...path, k]} name={k} onRename={renameEntry} />
            <RemoveButton path={[...path, k]} onClick={() => change([...path, k], undefined, true)} />
          </div>
          <Field path={[...path, k]} schema={values} value={v} label={null} required />
        </div>
      ))}
      <button type="button" className="fnb-mini fnb-add" data-testid={`add-${dotted(path)}`} onClick={add}>
        + add entry
      </button>
    </div>
  );
}

function KeyInput({
  path,
  name,
  onRename,
}: {
  path: Path;
  name: string;
  onRename(oldKey: string, newKey: string): string | null;
}) {
  const [draft, setDraft] = useState(name);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => setDraft(name), [name]);
  const commit = () => setError(onRename(name, draft.trim()));
  return (
    <div className="fnb-map-key">
      <input
        className="fnb-input fnb-key"
        data-testid={`key-${dotted(path)}`}
        value={draft}
        onChange={(e) => setDraft(e.target.value)}
        onBlur={commit}
        onKeyDown={(e) => e.key === "Enter" && commit()}
      />
      <FieldError path={[...path, "(key)"]} message={error} />
    </div>
  );
}

function ArrayBody({ path, items, value }: { path: Path; items: JsonSchema; value: Json | undefined }) {
  const { change, index } = useForm();
  const list = Array.isArray(value) ? value : [];
  const move = (from: number, to: number) => {
    const next = list.slice();
    const [item] = next.splice(from, 1);
    next.splice(to, 0, item);
    change(path, next, true);
  };
  return (
    <div className="fnb-array">
      {list.map((item, i) => (
        <div className="fnb-array-item" key={i}>
          <div className="fnb-array-tools">
            <span className="fnb-array-index">{i + 1}</span>
            <button
              type="button"
              className="fnb-mini"
              title="move up"
              disabled={i === 0}
              onClick={() => move(i, i - 1)}
            >
              ↑
            </button>
            <button
              type="button"
              className="fnb-mini"
              title="move down"
              disabled={i === list.length - 1}
              onClick={() => move(i, i + 1)}
            >
              ↓
            </button>
            <RemoveButton
              path={[...path, i]}
              onClick={() =>
                change(
                  path,
                  list.filter((_, j) => j !== i),
                  true,
                )
              }
            />
          </div>
          <Field path={[...path, i]} schema={items} value={item} label={null} required />
        </div>
      ))}
      <button
        type="button"
        className="fnb-mini fnb-add"
        data-testid={`add-${dotted(path)}`}
        onClick={() => change(path, [...list, defaultFor(index, items)], true)}
      >
        + add item
      </button>
    </div>
  );
}

function TaggedBody({
  path,
  tag,
  options,
  value,
}: {
  path: Path;
  tag: string;
  options: Map<string, JsonSchema>;
  value: Json | undefined;
}) {
  const { change, errors } = useForm();
  const obj = isObject(value) ? value : {};
  const current = typeof obj[tag] === "string" ? (obj[tag] as string) : "";
  const branch = options.get(current);
  const pick = (next: string) => {
    const target = options.get(next);
    const kept: JsonObject = { [tag]: next };
    // Fields the new branch also has are kept (a step's name, its condition...).
    for (const [k, v] of Object.entries(obj)) if (k !== tag && target?.properties?.[k]) kept[k] = v;
    change(path, kept, true);
  };
  const tagPath = [...path, tag];
  return (
    <div className="fnb-tagged">
      <div className="fnb-field fnb-field-scalar">
        <div className="fnb-field-row">
          <Label text={tag} required />
          <select
            className="fnb-input"
            data-testid={`field-${dotted(tagPath)}`}
            value={current}
            onChange={(e) => pick(e.target.value)}
          >
            {!branch && <option value="">—</option>}
            {[...options.keys()].map((o) => (
              <option key={o} value={o}>
                {o}
              </option>
            ))}
          </select>
        </div>
        <Help text={branch?.description} />
        <FieldError path={tagPath} message={errors[dotted(tagPath)]} />
      </div>
      {branch && <ObjectBody path={path} schema={branch} value={value} hidden={tag} />}
    </div>
  );
}

function UnionBody({
  path,
  branches,
  value,
  required,
}: {
  path: Path;
  branches: JsonSchema[];
  value: Json | undefined;
  required: boolean;
}) {
  const { index, change } = useForm();
  const matched = branches.findIndex((b) => index.accepts(b, value));
  const [chosen, setChosen] = useState(matched < 0 ? 0 : matched);
  useEffect(() => {
    if (matched >= 0) setChosen(matched);
  }, [matched]);
  const branch = branches[chosen] ?? branches[0];
  return (
    <div className="fnb-union">
      <select
        className="fnb-input fnb-branch"
        data-testid={`branch-${dotted(path)}`}
        value={String(chosen)}
        onChange={(e) => {
          const next = Number(e.target.value);
          setChosen(next);
          change(path, defaultFor(index, branches[next]), true);
        }}
      >
        {branches.map((b, i) => (
          <option key={i} value={String(i)}>
            {branchLabel(index, b)}
          </option>
        ))}
      </select>
      <Field
        path={path}
        schema={branch}
        value={matched === chosen ? value : undefined}
        label={null}
        required={required}
      />
    </div>
  );
}

function YamlInput({
  path,
  value,
  onRejected,
}: {
  path: Path;
  value: Json | undefined;
  onRejected(message: string | null): void;
}) {
  const { change } = useForm();
  const shown = value === undefined ? "" : stringify11(value).trimEnd();
  const [draft, setDraft] = useState(shown);
  useEffect(() => setDraft(shown), [shown]);
  const commit = () => {
    if (draft === shown) return;
    let next: Json | undefined;
    try {
      next = draft.trim() === "" ? undefined : (parse11(draft) as Json);
    } catch (error) {
      onRejected(`not valid YAML: ${(error as Error).message.split("\n")[0]}`);
      return;
    }
    onRejected(change(path, next, false));
  };
  return (
    <textarea
      className="fnb-input fnb-yaml"
      data-testid={`field-${dotted(path)}`}
      rows={Math.min(12, Math.max(2, draft.split("\n").length + 1))}
      value={draft}
      spellCheck={false}
      onChange={(e) => setDraft(e.target.value)}
      onBlur={commit}
    />
  );
}
