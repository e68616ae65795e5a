"""The GitHub Copilot backend, on `github-copilot-sdk` (the `copilot` extra).

The SDK drives the Copilot CLI, which runs the agent loop itself and calls back the tools
registered on the session; those are the same tools (and the same judging) as Claude's,
and only they are made available (no shell, no file edits). One `send_and_wait` is one
round; an answer that was not accepted is sent back as the next prompt with its errors,
within the same bounds. The session is always closed and the client stopped.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from typing import Any

from flownb.ai.errors import AIError, NotConfigured, ProviderError
from flownb.ai.generator import BaseGenerator
from flownb.ai.tasks import Task
from flownb.ai.tools import ToolSpec

MODEL_ENV = "FLOWNB_AI_MODEL"
CLI_MISSING = (
    "the GitHub Copilot CLI was not found: install it (npm install -g @github/copilot), sign "
    "in, or set COPILOT_CLI_PATH to it"
)


def _sdk() -> Any:
    try:
        import copilot
    except ImportError:
        raise NotConfigured(
            "the Copilot backend needs the copilot extra: pip install 'flownb[copilot]'"
        ) from None
    return copilot


class CopilotGenerator(BaseGenerator):
    """GitHub Copilot with flownb's tools. `model` (or `FLOWNB_AI_MODEL`) picks the model,
    default: the CLI's. `sdk` stands in for the `copilot` module (tests); `client_options`
    go to `CopilotClient`."""

    provider = "copilot"

    def __init__(
        self,
        *,
        model: str | None = None,
        timeout: float = 300.0,
        sdk: Any = None,
        client_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        self._sdk = sdk if sdk is not None else _sdk()
        super().__init__(**options)
        self.model = model or os.environ.get(MODEL_ENV) or ""
        self.timeout = timeout
        self.client_options = dict(client_options or {})

    async def _converse(self, task: Task[Any]) -> None:
        client = self._sdk.CopilotClient(**self.client_options)
        try:
            await _start(client)
            session = await self._session(client, task)
            try:
                await self._rounds(session, task)
            finally:
                await _close(session)
        finally:
            with contextlib.suppress(Exception):  # stopping must not hide the outcome
                await client.stop()

    async def _session(self, client: Any, task: Task[Any]) -> Any:
        sdk = self._sdk
        tools = [self._tool(spec, task) for spec in task.specs]
        wanted: dict[str, Any] = {
            "on_permission_request": sdk.PermissionHandler.approve_all,
            "tools": tools,
            "system_message": {"mode": "append", "content": task.system},
            "available_tools": [spec.name for spec in task.specs],
        }
        if self.model:
            wanted["model"] = self.model
        try:
            return await client.create_session(**_accepted(client.create_session, wanted))
        except Exception as exc:
            raise ProviderError(f"could not create a GitHub Copilot session: {exc}") from None

    def _tool(self, spec: ToolSpec, task: Task[Any]) -> Any:
        sdk = self._sdk
        limit = self.bounds.max_rounds * 10

        async def handler(invocation: Any) -> Any:
            if task.done:
                reply_text, failed = "Already accepted; stop now.", False
            elif task.fixes > task.max_fixes or len(task.calls) >= limit:
                reply_text, failed = "No attempts left; stop now.", True
            else:
                reply = await task.call(spec.name, getattr(invocation, "arguments", None))
                reply_text, failed = reply.text, reply.is_error
            return sdk.ToolResult(
                text_result_for_llm=reply_text,
                result_type="failure" if failed else "success",
                error=reply_text if failed else None,
            )

        fields: dict[str, Any] = {
            "name": spec.name,
            "description": spec.description,
            "handler": handler,
            "parameters": spec.input_schema,
            "skip_permission": True,
            "is_terminal": spec.name == task.submit.name,
        }
        return sdk.Tool(**_accepted(sdk.Tool, fields))

    async def _rounds(self, session: Any, task: Task[Any]) -> None:
        prompt = task.prompt
        for turn in range(1, self.bounds.max_rounds + 1):
            calls_before = len(task.calls)
            try:
                event = await session.send_and_wait(prompt, timeout=self.timeout)
            except TimeoutError:
                raise ProviderError(
                    f"GitHub Copilot did not finish within {self.timeout:g} s"
                ) from None
            except AIError:
                raise
            except Exception as exc:
                raise ProviderError(f"the GitHub Copilot session failed: {exc}") from None
            task.rounds = turn
            if task.done:
                return
            text = _content(event)
            if not text.strip() and len(task.calls) == calls_before:
                raise ProviderError(
                    "GitHub Copilot returned an empty response (no message, no tool call); "
                    "check that the CLI is signed in and the model is available"
                )
            reply = await task.answer_text(text)
            if not reply.is_error:  # accepted
                return
            task.check_bounds()
            prompt = reply.text
        raise task.out_of_rounds(self.bounds.max_rounds)


async def _start(client: Any) -> None:
    try:
        await client.start()
    except FileNotFoundError:
        raise NotConfigured(CLI_MISSING) from None
    except Exception as exc:
        if "not found" in str(exc).lower():
            raise NotConfigured(f"{CLI_MISSING} ({exc})") from None
        raise ProviderError(f"the GitHub Copilot CLI failed to start: {exc}") from None


async def _close(session: Any) -> None:
    """Close a session: `disconnect` (current SDKs) or `destroy` (older ones)."""
    close = getattr(session, "disconnect", None) or getattr(session, "destroy", None)
    if close is None:
        return
    with contextlib.suppress(Exception):  # closing must not hide the outcome
        await close()


def _content(event: Any) -> str:
    """The assistant message text of a `send_and_wait` answer (None: no message)."""
    if event is None:
        return ""
    data = getattr(event, "data", None)
    content = getattr(data, "content", None)
    return content if isinstance(content, str) else ""


def _accepted(fn: Any, wanted: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments `fn` takes (SDK versions differ in what they offer)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return wanted
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return wanted
    return {k: v for k, v in wanted.items() if k in params}
