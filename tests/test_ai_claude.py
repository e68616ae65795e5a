"""The Anthropic backend: key and model from the environment, provider choice, and API
failures (429 with the client's own backoff, 5xx, timeouts, malformed bodies) reported as
one clear error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from flownb.ai import (
    AnthropicGenerator,
    CopilotGenerator,
    NotConfigured,
    ProviderError,
    get_generator,
)
from flownb.ai.claude import DEFAULT_MODEL
from flownb.errors import UnknownNameError
from flownb.testing import FakeAnthropic, Reply

HELLO = (Path(__file__).resolve().parent.parent / "examples" / "hello" / "hello.yaml").read_text()
AI_ENV = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "FLOWNB_AI_MODEL",
    "FLOWNB_AI_PROVIDER",
    "COPILOT_CLI_PATH",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in AI_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")  # no `copilot` CLI to find


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


async def run(fake: FakeAnthropic, tmp_path: Path, **options: object) -> None:
    async with fake.generator(base_dir=tmp_path, **options) as gen:
        await gen.generate_workflow("a hello API")


# --- configuration -------------------------------------------------------------------------
def test_without_a_key_the_error_names_the_variable() -> None:
    with pytest.raises(NotConfigured) as caught:
        get_generator()
    assert "ANTHROPIC_API_KEY" in str(caught.value)
    with pytest.raises(NotConfigured, match="ANTHROPIC_API_KEY is not set"):
        get_generator("anthropic")


def test_auto_picks_what_is_configured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    assert isinstance(get_generator(), AnthropicGenerator)
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    cli = tmp_path / "copilot"
    cli.write_text("#!/bin/sh\n")
    cli.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert isinstance(get_generator(sdk=SimpleNamespace()), CopilotGenerator)
    monkeypatch.setenv("FLOWNB_AI_PROVIDER", "anthropic")
    with pytest.raises(NotConfigured, match="ANTHROPIC_API_KEY"):
        get_generator()
    with pytest.raises(UnknownNameError, match="did you mean 'copilot'"):
        get_generator("copilt")


async def test_the_model_comes_from_the_environment(
    fake: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.add(Reply.submit_workflow(HELLO), Reply.submit_workflow(HELLO))
    await run(fake, tmp_path)
    monkeypatch.setenv("FLOWNB_AI_MODEL", "claude-test-model")
    await run(fake, tmp_path)
    assert [r.body["model"] for r in fake.requests] == [DEFAULT_MODEL, "claude-test-model"]
    headers = fake.requests[0].headers
    assert "sk-ant-fake-key" in (headers.get("x-api-key") or headers["authorization"])


async def test_key_and_base_url_from_the_environment(
    fake: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in fake.env().items():
        monkeypatch.setenv(name, value)
    fake.add(Reply.submit_workflow(HELLO))
    async with get_generator(base_dir=tmp_path) as gen:
        result = await gen.generate_workflow("a hello API")
    assert result.provider == "anthropic" and len(fake.requests) == 1


async def test_a_refused_key_is_reported_as_such(fake: FakeAnthropic, tmp_path: Path) -> None:
    fake.add(Reply.http_error(401, "invalid x-api-key", kind="authentication_error"))
    with pytest.raises(NotConfigured) as caught:
        await run(fake, tmp_path)
    assert "refused ANTHROPIC_API_KEY" in str(caught.value) and "invalid x-api-key" in str(
        caught.value
    )
    assert len(fake.requests) == 1, "a 401 is not retried"


# --- failures the client retries itself, and what is left after ------------------------------
async def test_429_is_retried_after_retry_after(fake: FakeAnthropic, tmp_path: Path) -> None:
    fake.add(Reply.rate_limited(0.05), Reply.rate_limited(0.05), Reply.submit_workflow(HELLO))
    await run(fake, tmp_path, max_retries=2)
    assert len(fake.requests) == 3
    assert [r.headers.get("x-stainless-retry-count") for r in fake.requests] == ["0", "1", "2"]


async def test_429_after_the_retries_is_a_clear_error(fake: FakeAnthropic, tmp_path: Path) -> None:
    fake.add(*[Reply.rate_limited(0.01)] * 3)
    with pytest.raises(ProviderError) as caught:
        await run(fake, tmp_path, max_retries=2)
    message = str(caught.value)
    assert "429" in message and "after 2 retries" in message and "try again later" in message
    assert len(fake.requests) == 3


async def test_5xx_is_retried_then_reported(fake: FakeAnthropic, tmp_path: Path) -> None:
    fake.add(Reply.server_error(500), Reply.server_error(529), Reply.submit_workflow(HELLO))
    await run(fake, tmp_path, max_retries=2)
    assert len(fake.requests) == 3
    fake.add(Reply.server_error(503), Reply.server_error(500))
    with pytest.raises(
        ProviderError, match=r"answered 500: Internal server error \(after 1 retry\)"
    ):
        await run(fake, tmp_path, max_retries=1)


async def test_a_timeout_is_reported(fake: FakeAnthropic, tmp_path: Path) -> None:
    slow = Reply.submit_workflow(HELLO).after(5)
    fake.add(slow, slow)
    with pytest.raises(ProviderError) as caught:
        await run(fake, tmp_path, max_retries=1, timeout=0.2)
    assert "did not answer within 0.2 s (after 1 retry)" in str(caught.value)
    assert len(fake.requests) == 2


async def test_a_malformed_body_is_reported(fake: FakeAnthropic, tmp_path: Path) -> None:
    fake.add(Reply.malformed())
    with pytest.raises(ProviderError, match="malformed answer"):
        await run(fake, tmp_path)


async def test_a_bad_request_is_not_retried(fake: FakeAnthropic, tmp_path: Path) -> None:
    fake.add(Reply.http_error(400, "max_tokens: too large", kind="invalid_request_error"))
    with pytest.raises(ProviderError, match=r"answered 400: max_tokens: too large$"):
        await run(fake, tmp_path)
    assert len(fake.requests) == 1
