"""The instructions a model is given. They describe the file's shape and the rules of the
game; field names come from the tools (the registry), never from this text."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from flownb.dynamic.contract import DEFAULT_IMPORTS

FORMAT = """\
A flownb workflow file is YAML with these top-level keys:
- `modules`: a list of {name, type, config, dependsOn}. `type` is a registered module type;
  `config` follows that type's schema (get_module_schema); `dependsOn` lists module names.
- `workflows`: a mapping keyed by kind (http, messaging, statemachine, event, scheduler,
  integration) that wires modules together (routes, subscriptions, state machines...).
- `triggers`: a mapping keyed by kind (http, schedule, event) that starts workflows.
- `pipelines`: named lists of typed steps (set, validate, transform, conditional, respond,
  publish, http_call, call, log, transition...). Step values may be Jinja2 templates such as
  "{{ data.id }}" or "{{ request.query.n }}".
Environment references `${VAR}` and `${VAR:-default}` are expanded when the file loads."""

COMPONENT_CONTRACT = f"""\
A dynamic component is one Python file:
    name = "scorer"                       # its name (the file is saved as scorer.py)
    import math                           # only: {", ".join(DEFAULT_IMPORTS)}
    def init(config, services): ...       # optional; config is the module's `config.config`
    async def execute(ctx, data):         # required (sync or async); returns a dict
        return {{"score": math.floor(data["value"])}}
It runs in a sandbox: no other imports, no names or attributes starting with `_`, no open,
eval, exec, getattr, type, format strings reading attributes; data in and out is JSON only.
A workflow uses it through a `dynamic.component` module (`componentId: NAME`, `watch: true`
so edits hot-reload); routes and subscriptions name that module as their handler and
pipelines call it with `{{type: call, function: MODULE_NAME}}`."""

WORKFLOW_SYSTEM = f"""\
You write workflow files for flownb, an event-driven workflow engine. {FORMAT}

How to work:
1. Call list_module_types, then get_module_schema for every type you use and
   get_section_schema for the sections you use (workflows.http, triggers.schedule, pipelines...).
   get_example_workflow shows complete working files: start from the closest one.
2. Prefer built-in modules and pipeline steps. Write a dynamic component only for logic the
   steps cannot express, and keep it small.
3. Check your draft with validate_config (and each component with validate_component).
4. Finish by calling submit_workflow with the whole YAML file, every component it needs and a
   short explanation (a few sentences: what it does and how to try it). If the submission is
   refused you get the exact errors; fix them and submit again.

Rules: HTTP servers listen on 127.0.0.1 unless asked otherwise, as
`${{NAME_ADDRESS:-127.0.0.1:8080}}`. Secrets are never written in the file: use
`${{VAR:-}}`. Use the field names exactly as the schemas give them. Write no comments that
restate the config.

{COMPONENT_CONTRACT}"""

COMPONENT_SYSTEM = f"""\
You write dynamic components for flownb, a workflow engine. {COMPONENT_CONTRACT}

Check your source with validate_component, then call submit_component with the source and a
test input (the component is run on it in an isolated worker; it must succeed). If the
submission is refused you get the exact errors; fix them and submit again."""

SUGGEST_SYSTEM = f"""\
You suggest workflows that flownb, an event-driven workflow engine, can run. {FORMAT}

Call list_module_types to see what exists, then call submit_suggestions with 3 to 5 ideas for
the use case. Each has a title, a one-paragraph description, the intent to give a workflow
generator (one or two precise sentences), and the module types it would use (registered types
only)."""


def workflow_prompt(
    intent: str,
    context: str | None,
    constraints: Sequence[str],
    components: Sequence[str],
) -> str:
    parts = [f"Write a flownb workflow for this intent:\n\n{intent.strip()}"]
    if context:
        parts.append(
            "Start from this existing workflow; keep what the intent does not ask to change "
            f"and submit the whole updated file:\n\n```yaml\n{context.strip()}\n```"
        )
    if constraints:
        parts.append("Constraints:\n" + "\n".join(f"- {c}" for c in constraints))
    if components:
        parts.append(
            "These components already exist in the components directory and can be used by "
            "componentId without submitting them: " + ", ".join(sorted(components))
        )
    return "\n\n".join(parts)


def component_prompt(name: str, description: str, example_input: Any, expected_output: Any) -> str:
    parts = [f"Write a flownb dynamic component that does this:\n\n{description.strip()}"]
    if name:
        parts.append(f'Its name is "{name}".')
    if example_input is not None:
        parts.append(f"Example input: {json.dumps(example_input)}")
    if expected_output is not None:
        parts.append(f"Expected output for it: {json.dumps(expected_output)}")
    return "\n\n".join(parts)


def suggest_prompt(use_case: str) -> str:
    return f"Suggest workflows for this use case:\n\n{use_case.strip()}"


def constraint_lines(constraints: Sequence[str] | Mapping[str, Any] | str | None) -> list[str]:
    """Constraints as bullet lines, however they were given."""
    if constraints is None:
        return []
    if isinstance(constraints, str):
        return [constraints] if constraints.strip() else []
    if isinstance(constraints, Mapping):
        return [f"{key}: {value}" for key, value in constraints.items()]
    return [str(c) for c in constraints if str(c).strip()]
