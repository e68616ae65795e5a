"""Write the JSON fixtures the canvas tests read: the `schema` trait and every example config.

The canvas never restates a module type's fields, so its tests need the real schema that
`flownb.Canvas` sends; and the round-trip tests need each example as the kernel reads it
(PyYAML, YAML 1.1). Run from anywhere with the project's Python:

    .venv/bin/python extension/scripts/dump_fixtures.py          # rewrite the fixtures
    .venv/bin/python extension/scripts/dump_fixtures.py --check  # exit 1 if any is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "extension" / "fixtures"
sys.path.insert(0, str(ROOT))

from flownb.registry import json_schema  # noqa: E402
from flownb.schema import file_schema  # noqa: E402


def canvas_schema() -> dict[str, Any]:
    """The `schema` trait exactly as docs/canvas.md defines it."""
    registry = json_schema()
    return {
        "types": registry["types"],
        "categories": registry["categories"],
        "file": file_schema(),
    }


def fixtures() -> dict[Path, str]:
    out = {FIXTURES / "schema.json": _dump(canvas_schema())}
    for source in sorted((ROOT / "examples").glob("*/*.yaml")):
        if source.name.endswith(".layout.yaml"):
            continue
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
        name = f"{source.parent.name}-{source.stem}.json"
        out[FIXTURES / "examples" / name] = _dump(
            {"source": source.relative_to(ROOT).as_posix(), "config": data}
        )
    return out


def _dump(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=False, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale fixtures")
    args = parser.parse_args()
    wanted = fixtures()
    existing = set((FIXTURES / "examples").glob("*.json")) | {FIXTURES / "schema.json"}
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text("utf-8") != text]
    extra = sorted(p for p in existing if p.exists() and p not in wanted)
    if args.check:
        for path in [*stale, *extra]:
            print(f"stale fixture: {path.relative_to(ROOT)}", file=sys.stderr)
        if stale or extra:
            print("regenerate with: .venv/bin/python extension/scripts/dump_fixtures.py")
            return 1
        return 0
    for path in extra:
        path.unlink()
    for path, text in wanted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    print(f"wrote {len(wanted)} fixtures to {FIXTURES.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
