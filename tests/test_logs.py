"""Request ids flow into logs, history and outgoing calls; JSON logs; `flownb run --log-json`
and `flownb history` end to end."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from flownb.history import HistoryRecorder, MemoryHistory
from flownb.logs import ContextFilter, JsonFormatter, execution_id, request_id
from flownb.testing import run_engine

CONFIG = """
modules:
  - {name: server, type: http.server, config: {address: "127.0.0.1:0"}}
  - {name: router, type: http.router}
  - {name: ids, type: http.middleware.requestid}
workflows:
  http:
    middlewares: [ids]
    routes:
      - {method: GET, path: /outer, handler: outer}
      - {method: GET, path: /peek, handler: peek}
pipelines:
  outer:
    - type: log
      message: "outer for {{ request.query.who }}"
      logger: test.flow
      fields: {who: "{{ request.query.who }}"}
    - {type: call, name: python, function: note}
    - {type: http_call, name: call, url: "http://{{ request.headers['Host'] }}/peek"}
    - {type: respond, body: {seen: "{{ steps.call.body.seen }}"}}
  peek:
    - {type: respond, body: {seen: "{{ request.headers['X-Request-ID'] }}"}}
"""


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []
        self.setFormatter(JsonFormatter())
        self.addFilter(ContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


def note(data: Any) -> dict[str, Any]:
    logging.getLogger("test.python").warning("from python code")
    return {}


async def test_the_request_id_reaches_logs_history_and_outgoing_calls() -> None:
    capture = Capture()
    for name in ("test.flow", "test.python"):
        logging.getLogger(name).addHandler(capture)
        logging.getLogger(name).setLevel(logging.INFO)
    store = MemoryHistory()
    try:
        async with run_engine(
            CONFIG, functions={"note": note}, observers=[HistoryRecorder(store)]
        ) as h:
            reply = await h.client.get(
                "/outer", params={"who": "ada"}, headers={"X-Request-ID": "abc-123"}
            )
    finally:
        for name in ("test.flow", "test.python"):
            logging.getLogger(name).removeHandler(capture)
    assert reply.json() == {"seen": "abc-123"}, "the outgoing call carried the request id"
    assert reply.headers["x-request-id"] == "abc-123"
    step_log, python_log = capture.lines
    assert step_log["message"] == "outer for ada" and step_log["who"] == "ada"
    assert step_log["request_id"] == python_log["request_id"] == "abc-123"
    outer = next(r for r in store.select(limit=5) if r.action == "GET /outer")
    assert outer.request_id == "abc-123"
    assert step_log["execution_id"] == python_log["execution_id"] == outer.id
    assert python_log["level"] == "WARNING" and python_log["logger"] == "test.python"
    assert execution_id.get() is None and request_id.get() is None, "reset after the execution"


def test_json_formatter_keeps_extras_and_errors() -> None:
    formatter = JsonFormatter()
    try:
        raise ValueError("bad")
    except ValueError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info()
        )
    record.order = 7
    out = json.loads(formatter.format(record))
    assert out["message"] == "failed here" and out["order"] == 7
    assert "ValueError: bad" in out["error"] and out["time"].endswith("Z")


@pytest.fixture
def service_dir(tmp_path: Path) -> Path:
    # the same config without the Python function (a service has none)
    (tmp_path / "wf.yaml").write_text(
        CONFIG.replace("    - {type: call, name: python, function: note}\n", "")
    )
    return tmp_path


def test_flownb_run_log_json_and_flownb_history(service_dir: Path) -> None:
    env = {**os.environ, "FLOWNB_API_ADDRESS": "127.0.0.1:0"}
    data = service_dir / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "flownb", "run", "wf.yaml", "--log-json", "--data-dir", str(data)],
        cwd=service_dir,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    url = None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if "server listening on " in line:
                url = line.rsplit(" ", 1)[1].strip()
        assert url is not None, "".join(lines)
        reply = httpx.get(
            url + "/outer", params={"who": "bo"}, headers={"X-Request-ID": "req-json-1"}
        )
        assert reply.json() == {"seen": "req-json-1"}
        found = None
        while found is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if line.startswith("{") and "outer for bo" in line:
                found = json.loads(line)
        assert found is not None, "".join(lines)
        assert found["request_id"] == "req-json-1" and len(found["execution_id"]) == 32
        assert found["who"] == "bo" and found["logger"] == "test.flow"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    tokens = data / "api-tokens.json"
    assert oct(tokens.stat().st_mode & 0o777) == "0o600"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "flownb",
            "history",
            "--json",
            "--data-dir",
            str(data),
            "--limit",
            "5",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    records = json.loads(result.stdout)
    outer = next(r for r in records if r["action"] == "GET /outer")
    assert outer["request_id"] == "req-json-1" and outer["status"] == "ok"
    assert [s["name"] for s in outer["steps"]][-1] == "2:respond"
    text = subprocess.run(
        [
            sys.executable,
            "-m",
            "flownb",
            "history",
            "--workflow",
            "http",
            "--status",
            "ok",
            "--data-dir",
            str(data),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "GET /outer" in text and "request req-json-1" in text
    empty = subprocess.run(
        [sys.executable, "-m", "flownb", "history", "--data-dir", str(service_dir / "none")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert empty.returncode == 1 and "no history at" in empty.stderr
