"""The calls users make: `generate` (blocking, for scripts, cells and the CLI) and `agenerate`.

Both validate for the deployment target when one is given (a `flownb.Workflow` or a file
path): its registry, functions and folder are used while generating, and `deploy_to`
writes the components and applies the config once the result is valid.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from flownb.ai.deployment import checker_for, deploy
from flownb.ai.generator import BaseGenerator, get_generator
from flownb.ai.results import GenerationResult
from flownb.config import Config

if TYPE_CHECKING:
    from flownb.workflow import Workflow

T = TypeVar("T")


async def agenerate(
    intent: str,
    *,
    context: str | Mapping[str, Any] | Config | Workflow | None = None,
    constraints: Sequence[str] | Mapping[str, Any] | str | None = None,
    provider: str | None = None,
    generator: BaseGenerator | None = None,
    deploy_to: Workflow | str | os.PathLike[str] | None = None,
    components_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> GenerationResult:
    """Generate a workflow for `intent` (see `generate`)."""
    own = generator is None
    if own and (deploy_to is not None or components_dir is not None):
        options = {**target_options(deploy_to, components_dir), **options}
    gen = generator or get_generator(provider, **options)
    try:
        result = await gen.generate_workflow(intent, context, constraints)
    finally:
        if own:
            await gen.aclose()
    if deploy_to is not None:
        deploy(result, deploy_to, components_dir=components_dir)
    return result


def generate(
    intent: str,
    *,
    context: str | Mapping[str, Any] | Config | Workflow | None = None,
    constraints: Sequence[str] | Mapping[str, Any] | str | None = None,
    provider: str | None = None,
    generator: BaseGenerator | None = None,
    deploy_to: Workflow | str | os.PathLike[str] | None = None,
    components_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> GenerationResult:
    """A validated workflow (with its components) for a plain-language `intent`.

    `context` is a workflow to change; `constraints` extra requirements; `provider` is
    `auto` (default, or `FLOWNB_AI_PROVIDER`), `anthropic` or `copilot`; `deploy_to` a
    `flownb.Workflow` or a file path to deploy the result to. Other options go to the
    generator (`model`, `bounds`, `timeout`...). Blocks until done; in a notebook the work
    runs on a helper thread, so it is safe to call from a cell.
    """
    return run_sync(
        lambda: agenerate(
            intent,
            context=context,
            constraints=constraints,
            provider=provider,
            generator=generator,
            deploy_to=deploy_to,
            components_dir=components_dir,
            **options,
        )
    )


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion, also from a thread whose event loop is running."""

    async def main() -> T:
        return await make()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with ThreadPoolExecutor(1, thread_name_prefix="flownb-ai") as pool:
        return pool.submit(asyncio.run, main()).result()


def target_options(
    target: Workflow | str | os.PathLike[str] | None,
    components_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Generator options that make its checks those of the deployment target."""
    checker = checker_for(target, components_dir)
    return {
        "registry": checker.registry,
        "functions": checker.functions,
        "environ": checker.environ,
        "base_dir": checker.base_dir,
        "components_dir": checker.components_dir,
    }
