"""The GitHub Copilot backend with a mocked SDK: session create / send / close, the CLI not
found, session failures, empty and malformed answers, validate-and-fix through the tools."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from flownb.ai import Bounds, CopilotGenerator, GenerationFailed, NotConfigured, ProviderError
from flownb.ai.tools import SPECS

HELLO = (Path(__file__).resolve().parent.parent / "examples" / "hello" / "hello.yaml").read_text()
TYPO = HELLO.replace("address:", "adress:")


@dataclass
class Turn:
    """What the mocked agent does for one `send_and_wait`: call tools, then answer."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    text: str | None = ""
    error: BaseException | None = None


@dataclass
class FakeTool:
    name: str
    description: str
    handler: Callable[..., Any]
    parameters: dict[str, Any]
    skip_permission: bool = False
    is_terminal: bool = False


@dataclass
class FakeToolResult:
    text_result_for_llm: str = ""
    result_type: str = "success"
    error: str | None = None


class FakeSession:
    def __init__(self, tools: list[Any], turns: list[Turn], close: str) -> None:
        self.tools = {t.name: t for t in tools}
        self.turns = turns
        self.prompts: list[str] = []
        self.results: list[Any] = []
        self.closed = False
        setattr(self, close, self._close)

    async def _close(self) -> None:
        self.closed = True

    async def send_and_wait(self, prompt: str, *, timeout: float) -> Any:
        self.prompts.append(prompt)
        turn = self.turns.pop(0)
        if turn.error is not None:
            raise turn.error
        for name, args in turn.calls:
            invocation = SimpleNamespace(tool_name=name, arguments=args, tool_call_id="call-1")
            self.results.append(await self.tools[name].handler(invocation))
        if turn.text is None:
            return None
        return SimpleNamespace(type="assistant.message", data=SimpleNamespace(content=turn.text))


class FakeClient:
    """Stands in for `copilot.CopilotClient`; the test sets what it does."""

    start_error: BaseException | None = None
    session_error: BaseException | None = None
    close_with = "destroy"  # older SDKs; current ones call it `disconnect`
    turns: list[Turn]
    last: FakeClient

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.started = self.stopped = False
        self.session: FakeSession | None = None
        self.created: dict[str, Any] = {}
        type(self).last = self

    async def start(self) -> None:
        if self.start_error is not None:
            raise self.start_error
        self.started = True

    async def create_session(
        self,
        *,
        on_permission_request: Any,
        tools: list[Any],
        system_message: dict[str, str],
        available_tools: list[str],
        model: str | None = None,
    ) -> FakeSession:
        self.created = {
            "tools": tools,
            "system_message": system_message,
            "available_tools": available_tools,
            "model": model,
        }
        if self.session_error is not None:
            raise self.session_error
        self.session = FakeSession(tools, self.turns, self.close_with)
        return self.session

    async def stop(self) -> None:
        self.stopped = True


def fake_sdk(*turns: Turn, **behaviour: Any) -> Any:
    client = type("Client", (FakeClient,), {"turns": list(turns), **behaviour})
    return SimpleNamespace(
        CopilotClient=client,
        Tool=FakeTool,
        ToolResult=FakeToolResult,
        PermissionHandler=SimpleNamespace(approve_all=lambda *a: None),
    )


async def generate(sdk: Any, tmp_path: Path, **options: Any) -> Any:
    async with CopilotGenerator(sdk=sdk, base_dir=tmp_path, **options) as gen:
        return await gen.generate_workflow("a hello API")


async def test_create_send_and_close_the_session(tmp_path: Path) -> None:
    sdk = fake_sdk(
        Turn(calls=[("list_module_types", {}), ("submit_workflow", {"yaml": HELLO})], text="Done.")
    )
    result = await generate(sdk, tmp_path, model="gpt-test")
    client = sdk.CopilotClient.last
    names = {s.name for s in SPECS} | {"submit_workflow"}
    assert {t.name for t in client.created["tools"]} == names
    assert set(client.created["available_tools"]) == names, "only flownb's tools, no shell"
    assert client.created["model"] == "gpt-test"
    assert "flownb" in client.created["system_message"]["content"]
    submit = next(t for t in client.created["tools"] if t.name == "submit_workflow")
    assert submit.is_terminal and submit.skip_permission
    assert client.started and client.session.closed and client.stopped
    assert [r.result_type for r in client.session.results] == ["success", "success"]
    assert result.yaml == HELLO and result.provider == "copilot" and result.rounds == 1


async def test_an_invalid_submission_is_fixed_through_the_tool(tmp_path: Path) -> None:
    sdk = fake_sdk(
        Turn(calls=[("submit_workflow", {"yaml": TYPO}), ("submit_workflow", {"yaml": HELLO})])
    )
    result = await generate(sdk, tmp_path)
    refused, accepted = sdk.CopilotClient.last.session.results
    assert refused.result_type == "failure" and "modules[0].config.adress" in refused.error
    assert accepted.result_type == "success" and result.fixes == 1


async def test_prose_gets_a_follow_up_prompt_with_the_errors(tmp_path: Path) -> None:
    sdk = fake_sdk(
        Turn(text="I would use a server and a router."),
        Turn(calls=[("submit_workflow", {"yaml": HELLO})]),
        close_with="disconnect",
    )
    result = await generate(sdk, tmp_path)
    session = sdk.CopilotClient.last.session
    assert "has no workflow in it" in session.prompts[1] and session.closed
    assert result.fixes == 1 and result.rounds == 2


async def test_malformed_json_answers_fail_with_the_parse_error(tmp_path: Path) -> None:
    bad = Turn(text='```json\n{"yaml": "modules: [",\n```')
    sdk = fake_sdk(bad, Turn(text=bad.text), Turn(text=bad.text))
    with pytest.raises(GenerationFailed) as caught:
        await generate(sdk, tmp_path, bounds=Bounds(max_fixes=2))
    assert "the JSON in your answer does not parse" in str(caught.value)
    assert sdk.CopilotClient.last.session.closed and sdk.CopilotClient.last.stopped


async def test_the_cli_not_found_names_what_to_install(tmp_path: Path) -> None:
    for error in (FileNotFoundError("copilot"), RuntimeError("Copilot CLI not found at copilot")):
        sdk = fake_sdk(start_error=error)
        with pytest.raises(NotConfigured) as caught:
            await generate(sdk, tmp_path)
        assert "COPILOT_CLI_PATH" in str(caught.value) and "not found" in str(caught.value)
        assert sdk.CopilotClient.last.stopped


async def test_a_session_that_cannot_be_created(tmp_path: Path) -> None:
    sdk = fake_sdk(session_error=RuntimeError("not signed in"))
    with pytest.raises(
        ProviderError, match="could not create a GitHub Copilot session: not signed in"
    ):
        await generate(sdk, tmp_path)
    assert sdk.CopilotClient.last.stopped


async def test_a_session_failing_mid_conversation(tmp_path: Path) -> None:
    sdk = fake_sdk(Turn(error=ConnectionError("CLI exited")))
    with pytest.raises(ProviderError, match="the GitHub Copilot session failed: CLI exited"):
        await generate(sdk, tmp_path)
    assert sdk.CopilotClient.last.session.closed and sdk.CopilotClient.last.stopped
    sdk = fake_sdk(Turn(error=TimeoutError()))
    with pytest.raises(ProviderError, match="did not finish within 2 s"):
        await generate(sdk, tmp_path, timeout=2)


async def test_an_empty_response_is_reported(tmp_path: Path) -> None:
    sdk = fake_sdk(Turn(text=None))
    with pytest.raises(ProviderError, match="empty response"):
        await generate(sdk, tmp_path)
    assert sdk.CopilotClient.last.session.closed


def test_without_the_extra_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_copilot(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "copilot":
            raise ImportError("No module named 'copilot'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_copilot)
    with pytest.raises(NotConfigured, match=r"pip install 'flownb\[copilot\]'"):
        CopilotGenerator()


async def test_the_installed_sdk_takes_what_flownb_builds(tmp_path: Path) -> None:
    """The real `copilot.Tool`, `ToolResult` and `PermissionHandler`, with the mocked client."""
    import copilot  # the dev extra installs it

    sdk = fake_sdk(Turn(calls=[("submit_workflow", {"yaml": HELLO})]))
    sdk.Tool, sdk.ToolResult = copilot.Tool, copilot.ToolResult
    sdk.PermissionHandler = copilot.PermissionHandler
    result = await generate(sdk, tmp_path)
    [accepted] = sdk.CopilotClient.last.session.results
    assert isinstance(accepted, copilot.ToolResult) and accepted.result_type == "success"
    assert result.yaml == HELLO
