"""`flownb components validate` and `flownb components run`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flownb.cli import main

GOOD = "name = 'greeter'\ndef execute(ctx, data):\n    return {'hello': data.get('who', 'world')}\n"
BAD = "import os\ndef execute(ctx, data):\n    return {'x': data.__class__}\n"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "good.py").write_text(GOOD)
    (tmp_path / "bad.py").write_text(BAD)
    (tmp_path / "spin.py").write_text("def execute(ctx, data):\n    while True:\n        pass\n")
    (tmp_path / "fail.py").write_text("def execute(ctx, data):\n    return {'x': 1 / 0}\n")
    (tmp_path / "conf.py").write_text(
        "c = {}\ndef init(config, services):\n    c.update(config)\n"
        "def execute(ctx, data):\n    return c\n"
    )
    return tmp_path


def test_validate_ok(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["components", "validate", str(files / "good.py")]) == 0
    assert "valid (component 'greeter')" in capsys.readouterr().out


def test_validate_reports_line_and_column(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = files / "bad.py"
    assert main(["components", "validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path.resolve()}:1:1: import of 'os' is not allowed" in err
    assert f"{path.resolve()}:3:18: " in err and "__class__" in err
    assert "2 problems" in err and "Traceback" not in err


def test_validate_missing_file(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["components", "validate", str(files / "nope.py")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_run_prints_json(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["components", "run", str(files / "good.py"), "--input", '{"who": "ann"}'])
    assert code == 0
    assert json.loads(capsys.readouterr().out) == {"hello": "ann"}


def test_run_with_config(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["components", "run", str(files / "conf.py"), "--config", '{"k": 1}']) == 0
    assert json.loads(capsys.readouterr().out) == {"k": 1}


@pytest.mark.parametrize(
    ("file", "args", "message"),
    [
        ("spin.py", ["--timeout", "0.3"], "exceeded the wall-time limit of 0.3 s"),
        ("fail.py", [], "ZeroDivisionError: division by zero (line 2)"),
        ("good.py", ["--input", "{nope"], "--input is not valid JSON"),
        ("bad.py", [], "import of 'os' is not allowed"),
    ],
    ids=["timeout", "exception", "bad-input", "check"],
)
def test_run_failures_exit_1_with_reason(
    files: Path, capsys: pytest.CaptureFixture[str], file: str, args: list[str], message: str
) -> None:
    assert main(["components", "run", str(files / file), *args]) == 1
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
    assert captured.out == ""


def test_as_a_process(files: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flownb", "components", "run", str(files / "good.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"hello": "world"}
