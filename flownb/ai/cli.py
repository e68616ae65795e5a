"""`flownb generate "INTENT" [-o FILE]`: a validated workflow from plain language.

The YAML goes to FILE (or stdout, so `> app.yaml` works); components go to the components
directory beside it; the summary and the explanation go to stderr. Exit 0 when a valid
workflow was written, 1 with one clear message otherwise (no key, API failure, no valid
answer within the bounds: the last errors are listed).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flownb.errors import FlownbError

if TYPE_CHECKING:
    from flownb.ai.results import GenerationResult


def generate_command(
    intent: str,
    *,
    output: str | None = None,
    context: str | None = None,
    constraints: Sequence[str] = (),
    provider: str | None = None,
    model: str | None = None,
    components_dir: str | None = None,
) -> int:
    from flownb.ai.api import run_sync
    from flownb.ai.deployment import Deployment, deploy, deploy_components
    from flownb.ai.generator import get_generator

    try:
        context_text = _read(context) if context else None
        options: dict[str, Any] = {"model": model} if model else {}
        if output is not None:
            options["base_dir"] = Path(output).resolve().parent
        if components_dir is not None:
            options["components_dir"] = components_dir
        generator = get_generator(provider, **options)
        _err(f"flownb: generating with {generator.provider} {generator.model}".rstrip() + "…")

        async def run() -> GenerationResult:
            try:
                return await generator.generate_workflow(intent, context_text, list(constraints))
            finally:
                await generator.aclose()

        result = run_sync(run)
        deployment: Deployment | None = None
        if output is not None:
            deployment = deploy(result, output, components_dir=components_dir)
        else:
            sys.stdout.write(result.yaml)
            if result.components:
                files = deploy_components(result, components_dir=components_dir)
                deployment = Deployment("components", None, files)
    except FlownbError as exc:
        _err(f"flownb: error: {exc}")
        return 1
    _err(f"flownb: {result.summary()}")
    if deployment is not None:
        _err(f"flownb: {deployment}")
    if result.explanation:
        _err(result.explanation)
    return 0


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise FlownbError(f"cannot read --context file {path}: {exc.strerror or exc}") from None


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
