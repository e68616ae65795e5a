"""What AI generation reports: not configured, a provider failure, or no valid answer.

All are `FlownbError`s, so the CLI, the magics and the canvas print them as one message
without a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence

from flownb.errors import FlownbError


class AIError(FlownbError):
    """Base of every AI generation error."""


class NotConfigured(AIError):
    """No provider can be used: no key, a missing extra, or the Copilot CLI not found."""


class ProviderError(AIError):
    """The provider failed: HTTP errors after the client's retries, timeouts, bad bodies."""


class GenerationFailed(AIError):
    """No valid answer within the bounds; carries the last validation errors."""

    def __init__(self, reason: str, errors: Sequence[str] = ()) -> None:
        self.reason, self.errors = reason, list(errors)
        lines = [reason]
        if self.errors:
            lines.append("last errors:")
            lines.extend(f"  {e}" for e in self.errors)
        super().__init__("\n".join(lines))


class NotDeployed(AIError):
    """A result failed validation against the deployment target; nothing was written."""

    def __init__(self, target: str, errors: Sequence[str]) -> None:
        self.target, self.errors = target, list(errors)
        super().__init__("\n".join([f"not deployed to {target}: it does not validate", *errors]))
