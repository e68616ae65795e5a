"""The Anthropic backend: Claude through the official `anthropic` SDK, with tool use.

The tool loop is bounded (`Bounds.max_rounds` model turns; each turn may call several tools,
all answered in the next message). The SDK retries 408/409/429/5xx and connection errors
itself, honouring `retry-after`, with exponential backoff (`max_retries`); what is left after
that is reported as a `ProviderError` naming the status and what to do, never a traceback.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from flownb.ai.errors import NotConfigured, ProviderError
from flownb.ai.generator import BaseGenerator
from flownb.ai.tasks import Task

if TYPE_CHECKING:
    import anthropic

DEFAULT_MODEL = "claude-sonnet-5-5"
MODEL_ENV = "FLOWNB_AI_MODEL"
KEY_ENV = "ANTHROPIC_API_KEY"
NO_KEY = (
    f"{KEY_ENV} is not set: export {KEY_ENV}=sk-ant-... (an Anthropic API key) to generate "
    "with Claude"
)


def _sdk() -> Any:
    try:
        import anthropic
    except ImportError:
        raise NotConfigured(
            "the Anthropic backend needs the ai extra: pip install 'flownb[ai]'"
        ) from None
    return anthropic


class AnthropicGenerator(BaseGenerator):
    """Claude with flownb's tools. Key from `ANTHROPIC_API_KEY`, model from `FLOWNB_AI_MODEL`
    (default `DEFAULT_MODEL`), base URL from `ANTHROPIC_BASE_URL` (the SDK reads it) unless
    given; other keyword arguments as for `BaseGenerator`."""

    provider = "anthropic"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        model: str | None = None,
        base_url: str | None = None,
        max_retries: int = 2,
        timeout: float = 120.0,
        max_tokens: int = 16_000,
        **options: Any,
    ) -> None:
        key = api_key or os.environ.get(KEY_ENV)
        if not key:
            raise NotConfigured(NO_KEY)
        sdk = _sdk()
        super().__init__(**options)
        self.model = model or os.environ.get(MODEL_ENV) or DEFAULT_MODEL
        self.max_tokens = max_tokens
        self.max_retries, self.timeout = max_retries, timeout
        self._sdk = sdk
        self._client: anthropic.AsyncAnthropic = sdk.AsyncAnthropic(
            api_key=key, base_url=base_url, max_retries=max_retries, timeout=timeout
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def _converse(self, task: Task[Any]) -> None:
        messages: list[dict[str, Any]] = [{"role": "user", "content": task.prompt}]
        tools = [
            {"name": s.name, "description": s.description, "input_schema": s.input_schema}
            for s in task.specs
        ]
        for turn in range(1, self.bounds.max_rounds + 1):
            response = await self._ask(task.system, messages, tools)
            task.rounds = turn
            blocks = _blocks(response)
            messages.append({"role": "assistant", "content": blocks or _EMPTY})
            uses = [b for b in response.content or () if getattr(b, "type", None) == "tool_use"]
            content: str | list[dict[str, Any]]
            if uses:
                content = []
                for use in uses:  # the input as sent: a malformed one is the task's to report
                    reply = await task.call(use.name, use.input)
                    content.append(
                        {
                            "type": "tool_result",
                            "tool_use_id": use.id,
                            "content": reply.text,
                            "is_error": reply.is_error,
                        }
                    )
            else:
                text = "\n".join(b["text"] for b in blocks if b["type"] == "text")
                truncated = getattr(response, "stop_reason", None) == "max_tokens"
                content = (await task.answer_text(text, truncated=truncated)).text
            if task.done:
                return
            task.check_bounds()
            messages.append({"role": "user", "content": content})
        raise task.out_of_rounds(self.bounds.max_rounds)

    async def _ask(
        self, system: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> Any:
        sdk = self._sdk
        retries = f"after {self.max_retries} retr{'y' if self.max_retries == 1 else 'ies'}"
        try:
            return await self._client.messages.create(
                model=self.model,
                max_tokens=self.max_tokens,
                system=system,
                messages=messages,  # type: ignore[arg-type]
                tools=tools,  # type: ignore[arg-type]
            )
        except sdk.AuthenticationError as exc:
            raise NotConfigured(
                f"the Anthropic API refused {KEY_ENV} (401: {_message(exc)}); check the key"
            ) from None
        except sdk.RateLimitError as exc:
            raise ProviderError(
                f"the Anthropic API is rate limiting this key (429: {_message(exc)}) {retries} "
                "with backoff; try again later"
            ) from None
        except sdk.APITimeoutError:
            raise ProviderError(
                f"the Anthropic API did not answer within {self.timeout:g} s ({retries}); "
                "try again, or raise the timeout"
            ) from None
        except sdk.APIConnectionError as exc:
            raise ProviderError(
                f"cannot reach the Anthropic API at {self._client.base_url} ({retries}): {exc}"
            ) from None
        except sdk.APIStatusError as exc:
            raise ProviderError(
                f"the Anthropic API answered {exc.status_code}: {_message(exc)}"
                + (f" ({retries})" if exc.status_code >= 500 else "")
            ) from None
        except (sdk.APIResponseValidationError, ValueError) as exc:
            raise ProviderError(f"the Anthropic API sent a malformed answer: {exc}") from None


_EMPTY = [{"type": "text", "text": "(empty answer)"}]


def _blocks(response: Any) -> list[dict[str, Any]]:
    """The answer's text and tool_use blocks as plain dicts (to send back as the history)."""
    blocks: list[dict[str, Any]] = []
    for block in getattr(response, "content", None) or []:
        kind = getattr(block, "type", None)
        if kind == "text" and block.text:
            blocks.append({"type": "text", "text": block.text})
        elif kind == "tool_use":
            data = block.input if isinstance(block.input, dict) else {}
            blocks.append({"type": "tool_use", "id": block.id, "name": block.name, "input": data})
    return blocks


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return str(getattr(exc, "message", exc))
