"""AI generation where notebooks reach it: `%%workflow NAME --generate` and the canvas prompt.

Both generate against the workflow they will change (its config is the context, its
registry, functions and folder are used for validation), write the components first, and
hand over only a valid config. The canvas runs the generation on a helper thread and
reports back on the kernel's event loop, so the canvas and running workflows stay live.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flownb.errors import FlownbError

if TYPE_CHECKING:
    from flownb.ai.results import GenerationResult
    from flownb.workflow import Workflow

NO_INTENT = "write in the cell what the workflow should do (the intent), e.g. 'a hello API'"


@dataclass(frozen=True)
class CellGeneration:
    """What `%%workflow NAME --generate` gets: YAML for the cell (None: written to a file)."""

    yaml: str | None
    note: str


def generate_cell(
    intent: str, *, existing: Workflow | None = None, file: str | None = None, **options: Any
) -> CellGeneration:
    """Generate for a `%%workflow --generate` cell; blocks (on a helper thread if needed)."""
    from flownb.ai.api import generate, target_options
    from flownb.ai.deployment import deploy, deploy_components

    if not intent.strip():
        raise FlownbError(NO_INTENT)
    target: Workflow | str | None = file or existing
    context = existing if existing is not None and existing.raw else None
    result = generate(intent, context=context, **target_options(target), **options)
    if file is not None:
        deployment = deploy(result, file)
        return CellGeneration(None, _note(result, deployment.components))
    written = deploy_components(result, existing)
    return CellGeneration(result.yaml, _note(result, written))


def _note(result: GenerationResult, written: tuple[Path, ...]) -> str:
    lines = [result.summary()]
    if written:
        lines.append("components written: " + ", ".join(str(p) for p in written))
    if result.explanation:
        lines.append(result.explanation)
    return "\n".join(lines)


Outcome = Callable[["GenerationResult | None", "BaseException | None"], None]


def start_generation(
    intent: str, workflow: Workflow, done: Outcome, **options: Any
) -> threading.Thread | None:
    """Generate for `workflow` (its config as the context) off the calling thread.

    `done(result, error)` is called on the event loop running in this thread (the kernel's)
    when there is one, else at once on this thread (a script: the call blocks). Returns the
    helper thread, or None when it ran inline.
    """
    from flownb.ai.api import generate, target_options

    context = workflow if workflow.raw else None

    def work() -> tuple[GenerationResult | None, BaseException | None]:
        try:
            return generate(intent, context=context, **target_options(workflow), **options), None
        except Exception as exc:  # reported to the canvas, never raised into the kernel
            return None, exc

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        done(*work())
        return None

    def run() -> None:
        outcome = work()
        if not loop.is_closed():
            loop.call_soon_threadsafe(done, *outcome)

    thread = threading.Thread(target=run, name="flownb-ai-generate", daemon=True)
    thread.start()
    return thread
