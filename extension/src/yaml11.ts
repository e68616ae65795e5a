// YAML as the kernel reads it: PyYAML's YAML 1.1. The `yaml` package's 1.1 schema also takes
// y/n as booleans and turns dates into Date objects; PyYAML's resolver does neither for y/n
// (so a layout's `y: 120` stays a key "y"), and a config is JSON, so dates stay text here.
import {
  parse,
  parseDocument,
  stringify,
  type Document,
  type DocumentOptions,
  type ParseOptions,
  type SchemaOptions,
  type Tags,
} from "yaml";

const PYYAML_TRUE = /^(?:yes|Yes|YES|true|True|TRUE|on|On|ON)$/;
const PYYAML_FALSE = /^(?:no|No|NO|false|False|FALSE|off|Off|OFF)$/;
const BOOL = "tag:yaml.org,2002:bool";
const TIMESTAMP = "tag:yaml.org,2002:timestamp";

function pyyamlTags(tags: Tags): Tags {
  return tags
    .filter((t) => typeof t === "string" || t.tag !== TIMESTAMP || !("test" in t))
    .map((t) => {
      if (typeof t === "string" || t.tag !== BOOL || !("test" in t) || !t.test) return t;
      return { ...t, test: t.test.test("true") ? PYYAML_TRUE : PYYAML_FALSE };
    });
}

const OPTIONS: DocumentOptions & ParseOptions & SchemaOptions = { version: "1.1", customTags: pyyamlTags };

export function parseDocument11(text: string): Document.Parsed {
  return parseDocument(text, { ...OPTIONS, prettyErrors: true });
}

export function parse11(text: string): unknown {
  return parse(text, OPTIONS);
}

export function stringify11(value: unknown): string {
  return stringify(value, { ...OPTIONS, lineWidth: 0, aliasDuplicateObjects: false });
}
