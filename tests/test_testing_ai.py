"""The fake Anthropic Messages API itself: it answers as scripted and refuses what the real
API would refuse, so a client bug cannot hide behind a lenient fake."""

from __future__ import annotations

import httpx

from flownb.testing import FakeAnthropic, Reply

HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}


def body(*messages: dict[str, object]) -> dict[str, object]:
    return {"model": "m", "max_tokens": 10, "messages": list(messages)}


def test_it_answers_scripted_tool_use_and_checks_the_tool_results() -> None:
    with FakeAnthropic([Reply.tool_use("list_module_types", {}), Reply.text("ok")]) as fake:
        url = f"{fake.url}/v1/messages"
        first = httpx.post(url, json=body({"role": "user", "content": "hi"}), headers=HEADERS)
        message = first.json()
        assert first.status_code == 200 and message["stop_reason"] == "tool_use"
        [use] = message["content"]
        assert use["type"] == "tool_use" and use["id"].startswith("toolu_fake_")
        history = [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": message["content"]},
            {"role": "user", "content": "no tool_result here"},
        ]
        refused = httpx.post(url, json=body(*history), headers=HEADERS)
        assert refused.status_code == 400
        assert "without tool_result" in refused.json()["error"]["message"]
        assert fake.problems and fake.remaining == 1, "a refused request takes no scripted reply"
        history[2] = {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use["id"], "content": "[]"}],
        }
        answered = httpx.post(url, json=body(*history), headers=HEADERS)
        assert answered.json()["content"] == [{"type": "text", "text": "ok"}]
        assert fake.requests[-1].tool_results()[0]["tool_use_id"] == use["id"]


def test_it_refuses_what_the_api_refuses_and_reports_an_exhausted_script() -> None:
    with FakeAnthropic() as fake:
        url = f"{fake.url}/v1/messages"
        no_key = httpx.post(url, json=body({"role": "user", "content": "hi"}))
        assert no_key.status_code == 400 and "x-api-key" in no_key.text
        twice = body({"role": "user", "content": "a"}, {"role": "user", "content": "b"})
        assert "alternate" in httpx.post(url, json=twice, headers=HEADERS).text
        empty = httpx.post(url, json=body({"role": "user", "content": "hi"}), headers=HEADERS)
        assert empty.status_code == 500 and "script is exhausted" in empty.text
        assert empty.headers["x-should-retry"] == "false"
        assert len(fake.problems) == 3


def test_errors_carry_their_headers() -> None:
    with FakeAnthropic([Reply.rate_limited(2.5), Reply.server_error(529)]) as fake:
        url = f"{fake.url}/v1/messages"
        limited = httpx.post(url, json=body({"role": "user", "content": "hi"}), headers=HEADERS)
        assert limited.status_code == 429 and limited.headers["retry-after"] == "2.5"
        assert limited.json()["error"]["type"] == "rate_limit_error"
        overloaded = httpx.post(url, json=body({"role": "user", "content": "hi"}), headers=HEADERS)
        assert overloaded.status_code == 529
        assert overloaded.json()["error"]["type"] == "overloaded_error"
