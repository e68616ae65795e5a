"""AI generation: workflows and components from plain language, validated before they run.

```python
result = flownb.generate("an HTTP API that stores orders and rate-limits clients")
print(result.explanation)
result.save("orders.yaml")               # the file and its components/, validated again
```

A generator (`get_generator`: Claude through the `anthropic` SDK, or GitHub Copilot) works
with tools that read the registry and run the real checks (`flownb.ai.tools`); every answer
is validated by the engine's validator, a dry build and the component sandbox, and an invalid
one is sent back with its exact errors (`flownb.ai.tasks`). The result is valid, or
`GenerationFailed` names the last errors. `deploy` writes components where the engine's
component watcher reads them and applies the config to a running `flownb.Workflow` or a file.

The SDKs are optional extras (`flownb[ai]`, `flownb[copilot]`), imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flownb.ai.api import agenerate, generate
    from flownb.ai.claude import AnthropicGenerator
    from flownb.ai.copilot import CopilotGenerator
    from flownb.ai.deployment import Deployment, deploy
    from flownb.ai.errors import (
        AIError,
        GenerationFailed,
        NotConfigured,
        NotDeployed,
        ProviderError,
    )
    from flownb.ai.generator import BaseGenerator, Bounds, Generator, get_generator
    from flownb.ai.results import (
        ComponentSpec,
        GeneratedComponent,
        GenerationResult,
        MissingComponent,
        Suggestion,
    )

_HOME = {
    "AIError": "errors",
    "AnthropicGenerator": "claude",
    "BaseGenerator": "generator",
    "Bounds": "generator",
    "ComponentSpec": "results",
    "CopilotGenerator": "copilot",
    "Deployment": "deployment",
    "GeneratedComponent": "results",
    "GenerationFailed": "errors",
    "GenerationResult": "results",
    "Generator": "generator",
    "MissingComponent": "results",
    "NotConfigured": "errors",
    "NotDeployed": "errors",
    "ProviderError": "errors",
    "Suggestion": "results",
    "agenerate": "api",
    "deploy": "deployment",
    "generate": "api",
    "get_generator": "generator",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'flownb.ai' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"flownb.ai.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "AIError",
    "AnthropicGenerator",
    "BaseGenerator",
    "Bounds",
    "ComponentSpec",
    "CopilotGenerator",
    "Deployment",
    "GeneratedComponent",
    "GenerationFailed",
    "GenerationResult",
    "Generator",
    "MissingComponent",
    "NotConfigured",
    "NotDeployed",
    "ProviderError",
    "Suggestion",
    "agenerate",
    "deploy",
    "generate",
    "get_generator",
]
