"""The `flownb` command, run the way users run it: as a process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

GOOD = "pipelines:\n  hello:\n    - type: respond\n      body: {hello: world}\n"
BAD = """modules:
  - name: server
    type: http.servr
pipelines:
  hello:
    - type: respnd
"""


def flownb(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flownb", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def test_version() -> None:
    result = flownb("version")
    assert result.returncode == 0
    assert result.stdout.startswith("flownb ")


def test_validate_valid_and_invalid(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bad.yaml").write_text(BAD)
    ok = flownb("validate", "good.yaml", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "good.yaml: valid" in ok.stdout
    bad = flownb("validate", "bad.yaml", cwd=tmp_path)
    assert bad.returncode == 1
    lines = bad.stderr.strip().splitlines()
    assert lines[0].startswith(
        "bad.yaml:3:11: modules[0].type: unknown module type "
        "'http.servr'; did you mean 'http.server'?"
    )
    assert lines[1].startswith(
        "bad.yaml:6:13: pipelines.hello.steps[0].type: unknown step type 'respnd'"
    )
    assert lines[-1] == "bad.yaml: 2 errors"
    assert "Traceback" not in bad.stderr


def test_validate_json_output(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(BAD)
    result = flownb("validate", "--json", "bad.yaml", cwd=tmp_path)
    assert result.returncode == 1
    errors = json.loads(result.stdout)
    assert [e["path"] for e in errors] == ["modules[0].type", "pipelines.hello.steps[0].type"]
    assert errors[0]["line"] == 3 and errors[0]["col"] == 11


def test_validate_missing_file_is_one_clean_error(tmp_path: Path) -> None:
    result = flownb("validate", "nope.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert "nope.yaml:1:1: (root): cannot read file" in result.stderr
    assert "Traceback" not in result.stderr


def test_modules_lists_types_by_category_and_as_json() -> None:
    table = flownb("modules")
    assert table.returncode == 0
    assert "\nHTTP\n" in table.stdout
    assert "http.server" in table.stdout
    as_json = json.loads(flownb("modules", "--json").stdout)
    assert "http.server" in as_json["types"]
    assert as_json["types"]["http.server"]["configSchema"]["type"] == "object"


def test_run_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(GOOD)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flownb", "run", "wf.yaml"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if "press Ctrl+C to stop" in line:
                break
        else:
            pytest.fail("flownb run did not report that it is running")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "SIGTERM: draining" in err
    assert "flownb: stopped" in err


def test_run_with_invalid_config_exits_1(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(BAD)
    result = flownb("run", "bad.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert "bad.yaml:3:11:" in result.stderr
    assert "Traceback" not in result.stderr


SLOW = """
modules:
  - {name: server, type: http.server, config: {address: "127.0.0.1:${PORT}"}}
  - {name: router, type: http.router}
workflows:
  http:
    routes:
      - {method: GET, path: /slow, handler: slow}
pipelines:
  slow:
    - type: call
      function: "slowmod:wait"
    - type: respond
      body: {done: true}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_slow_service(tmp_path: Path) -> None:
    (tmp_path / "slowmod.py").write_text(
        "import asyncio\nasync def wait(data):\n    await asyncio.sleep(1.0)\n    return data\n"
    )
    (tmp_path / "wf.yaml").write_text(SLOW)


def start_service(tmp_path: Path, port: int) -> subprocess.Popen[str]:
    write_slow_service(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flownb", "run", "wf.yaml"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PORT": str(port), "PYTHONPATH": str(tmp_path)},
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "press Ctrl+C to stop" in line:
            return proc
    proc.kill()
    pytest.fail("flownb run did not start: " + proc.communicate()[1])


def test_sigint_drains_the_request_in_flight(tmp_path: Path) -> None:
    port = free_port()
    proc = start_service(tmp_path, port)
    try:
        with ThreadPoolExecutor(1) as pool:
            reply = pool.submit(httpx.get, f"http://127.0.0.1:{port}/slow", timeout=10)
            time.sleep(0.3)  # let the request reach the handler (it takes 1 s there)
            proc.send_signal(signal.SIGINT)
            response = reply.result(timeout=10)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert response.status_code == 200 and response.json() == {"done": True}
    assert proc.returncode == 0, err
    assert "SIGINT: draining" in err and "flownb: stopped\n" in err
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/slow", timeout=2)


def test_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        write_slow_service(tmp_path)
        result = subprocess.run(
            [sys.executable, "-m", "flownb", "run", "wf.yaml"],
            cwd=tmp_path,
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PORT": str(port), "PYTHONPATH": str(tmp_path)},
        )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert errors == [
        f"flownb: error: module 'server' failed to start: cannot listen on 127.0.0.1:{port}: "
        "address already in use"
    ], result.stderr
    assert "Traceback" not in result.stderr


HELLO = """modules:
  - {name: server, type: http.server, config: {address: "127.0.0.1:${PORT}"}}
  - {name: router, type: http.router}
workflows:
  http:
    routes:
      - {method: GET, path: /hello, handler: greet}
pipelines:
  greet:
    - type: respond
      body: {hello: GREETING}
"""


def read_until(proc: subprocess.Popen[str], text: str, seen: list[str]) -> str:
    """The first stderr line holding `text` (every line read goes to `seen`)."""
    assert proc.stderr is not None
    for line in proc.stderr:
        seen.append(line)
        if text in line:
            return line
    pytest.fail(f"flownb run never said {text!r}:\n" + "".join(seen))


def test_run_prints_new_tokens_once_and_reloads_on_sighup(tmp_path: Path) -> None:
    port, config = free_port(), tmp_path / "wf.yaml"
    config.write_text(HELLO.replace("GREETING", "world"))

    def start() -> tuple[subprocess.Popen[str], list[str]]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flownb", "run", "wf.yaml"],
            cwd=tmp_path,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PORT": str(port)},
        )
        seen: list[str] = []
        read_until(proc, "press Ctrl+C to stop", seen)
        return proc, seen

    proc, seen = start()
    try:
        saved = json.loads((tmp_path / ".flownb" / "api-tokens.json").read_text())
        [shown] = [line for line in seen if "new API tokens" in line]
        assert saved["write"] in shown and saved["read"] in shown
        url = f"http://127.0.0.1:{port}/hello"
        assert httpx.get(url).json() == {"hello": "world"}

        config.write_text(HELLO.replace("GREETING", "again"))
        proc.send_signal(signal.SIGHUP)
        assert "revision 2" in read_until(proc, "SIGHUP: reloaded", seen)
        assert httpx.get(url).json() == {"hello": "again"}

        config.write_text(HELLO.replace("type: respond", "type: respnd"))
        proc.send_signal(signal.SIGHUP)
        read_until(proc, "SIGHUP: the config was not reloaded; still on revision 2", seen)
        assert any("wf.yaml:" in line and "respnd" in line for line in seen), seen
        assert httpx.get(url).json() == {"hello": "again"}, "the running config goes on"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err + "".join(seen)

    config.write_text(HELLO.replace("GREETING", "world"))
    again, seen = start()  # the saved tokens are used, and not shown again
    again.terminate()
    again.communicate(timeout=30)
    assert not any("new API tokens" in line for line in seen)
    assert any("tokens: " in line and "api-tokens.json" in line for line in seen)
