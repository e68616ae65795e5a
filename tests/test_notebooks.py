"""Headless notebook runs: `flownb.execute` and `flownb notebook run` (papermill, real kernels)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import flownb
from flownb import FlownbError
from flownb.notebooks import NotebookError, NotebookFailed, declared_parameters, parse_value

KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}


def notebook(path: Path, *cells: str, parameters: str | None = "n = 1\nname = 'ada'") -> Path:
    """Write a notebook: a markdown title, the parameters cell (if any), then `cells`."""
    nb = new_notebook(metadata=KERNEL)
    nb.cells.append(new_markdown_cell("# test"))
    if parameters is not None:
        cell = new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nb.cells.extend(new_code_cell(source) for source in cells)
    nbformat.write(nb, str(path))
    return path


def outputs(path: Path) -> list[str]:
    """Text of every output of the notebook at `path`, in order."""
    nb = nbformat.read(str(path), as_version=4)
    found: list[str] = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            found.append(out.get("text") or out.get("data", {}).get("text/plain", ""))
    return found


def flownb_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flownb", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_parameter_values_read_as_json_else_text() -> None:
    assert parse_value("3") == 3
    assert parse_value("true") is True
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value('"3"') == "3"
    assert parse_value("ada") == "ada"


def test_execute_overrides_parameters_and_writes_the_output(tmp_path: Path) -> None:
    source = notebook(tmp_path / "nb.ipynb", "import os\nprint(n * 2, name, os.getcwd())")
    done: list[tuple[int, int]] = []
    run = flownb.execute(
        source,
        tmp_path / "out" / "nb.ipynb",
        {"n": 21, "name": "grace"},
        progress=lambda d, t: done.append((d, t)),
    )
    assert run.output == str(tmp_path / "out" / "nb.ipynb") and run.cells == 3
    assert run.parameters == {"n": 21, "name": "grace"}
    assert outputs(tmp_path / "out" / "nb.ipynb") == [f"42 grace {tmp_path}\n"]
    assert done == [(1, 3), (2, 3), (3, 3)]
    meta = nbformat.read(run.output, as_version=4).metadata["papermill"]
    assert meta["parameters"] == {"n": 21, "name": "grace"}


def test_unknown_parameters_are_refused_with_a_suggestion(tmp_path: Path) -> None:
    source = notebook(tmp_path / "nb.ipynb", "print(n)")
    assert declared_parameters(source) == {"n": "1", "name": "'ada'"}
    with pytest.raises(NotebookError, match=r"does not set 'nme'; did you mean 'name'\?"):
        flownb.execute(source, tmp_path / "out.ipynb", {"nme": "x"})
    bare = notebook(tmp_path / "bare.ipynb", "print(1)", parameters=None)
    with pytest.raises(NotebookError, match="no cell is tagged 'parameters'"):
        flownb.execute(bare, tmp_path / "out.ipynb", {"n": 2})
    with pytest.raises(NotebookError, match="no notebook at"):
        flownb.execute(tmp_path / "missing.ipynb", tmp_path / "out.ipynb")
    with pytest.raises(FlownbError, match="invalid expression 'executions >'"):
        flownb.execute(source, tmp_path / "out.ipynb", until="executions >")
    (tmp_path / "junk.ipynb").write_text("{not json")
    with pytest.raises(NotebookError, match="is not a readable notebook"):
        flownb.execute(tmp_path / "junk.ipynb", tmp_path / "out.ipynb")
    assert not (tmp_path / "out.ipynb").exists()
    with pytest.raises(NotebookError, match="no Jupyter kernel named 'no-such-kernel'"):
        flownb.execute(source, tmp_path / "out.ipynb", kernel="no-such-kernel")


def test_a_failing_cell_is_named_by_its_place_in_the_input(tmp_path: Path) -> None:
    source = notebook(tmp_path / "nb.ipynb", "x = 1", "total = x / (n - 1)", "print('never')")
    with pytest.raises(NotebookFailed) as caught:
        flownb.execute(source, tmp_path / "out.ipynb", {"n": 1})  # the injected cell is not counted
    failed = caught.value
    assert failed.cell == 4 and failed.error == "ZeroDivisionError: division by zero"
    assert str(failed).startswith(
        f"{source}: cell 4 (In [4]: total = x / (n - 1)) failed: ZeroDivisionError"
    )
    text = "\n".join(outputs(tmp_path / "out.ipynb"))
    assert "never" not in text  # the run stopped at the failing cell; the output was written
    assert "papermill-error-cell" in (tmp_path / "out.ipynb").read_text()


def test_a_cell_timeout_fails_the_run(tmp_path: Path) -> None:
    source = notebook(tmp_path / "nb.ipynb", "import time\ntime.sleep(30)", parameters=None)
    with pytest.raises(NotebookFailed, match=r"cell 2 .*did not finish within 1 s"):
        flownb.execute(source, tmp_path / "out.ipynb", cell_timeout=1)


def test_serve_limits_reach_the_kernel_and_replace_the_notebooks(tmp_path: Path) -> None:
    source = notebook(
        tmp_path / "nb.ipynb",
        "%load_ext flownb",
        "%%workflow ticker --no-canvas\n"
        "modules:\n"
        "  - {name: every, type: scheduler, config: {interval: 0.02s, runOnStart: true}}\n"
        "workflows:\n"
        "  scheduler:\n"
        "    jobs: [{scheduler: every, job: beat}]\n"
        "pipelines:\n"
        "  beat:\n"
        "    - {type: set, target: data, values: {ok: true}}\n",
        "result = await ticker.serve(seconds=600)\nprint(result.executions, result.reason)",
        parameters=None,
    )
    flownb.execute(source, tmp_path / "a.ipynb", until_executions=3)
    assert outputs(tmp_path / "a.ipynb") == ["3 3 executions\n"]
    flownb.execute(source, tmp_path / "b.ipynb", serve="600s", until="executions >= 2")
    assert outputs(tmp_path / "b.ipynb") == ["2 until executions >= 2\n"]


def test_cli_runs_a_notebook_with_parameters(tmp_path: Path) -> None:
    notebook(tmp_path / "nb.ipynb", "print(n + 1, name)")
    (tmp_path / "params.yaml").write_text("name: from-file\nn: 5\n")
    result = flownb_cli(
        "notebook", "run", "nb.ipynb", "out/nb.ipynb", "-f", "params.yaml", "-p", "n", "41",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "flownb: ran nb.ipynb in" in result.stderr and "output: out/nb.ipynb" in result.stderr
    assert outputs(tmp_path / "out" / "nb.ipynb") == ["42 from-file\n"]


def test_cli_failures_name_the_cell_without_a_traceback(tmp_path: Path) -> None:
    notebook(tmp_path / "nb.ipynb", "raise ValueError(f'bad {name}')")
    result = flownb_cli(
        "notebook", "run", "nb.ipynb", "out.ipynb", "--progress", "json", cwd=tmp_path
    )
    assert result.returncode == 1
    assert result.stderr.startswith(
        "flownb: error: nb.ipynb: cell 3 (In [2]: raise ValueError(f'bad {name}')) failed: "
        "ValueError: bad ada; the output notebook out.ipynb shows the traceback"
    )
    assert "Traceback" not in result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0] == {"cell": 1, "cells": 2}
    assert lines[-1]["cell"] == 3 and "ValueError: bad ada" in lines[-1]["failed"]

    typo = flownb_cli("notebook", "run", "nb.ipynb", "out.ipynb", "-p", "nam", "x", cwd=tmp_path)
    assert typo.returncode == 1 and "Traceback" not in typo.stderr
    assert "does not set 'nam'; did you mean 'name'?" in typo.stderr
    missing = flownb_cli("notebook", "run", "nope.ipynb", "out.ipynb", cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "flownb: error: no notebook at nope.ipynb"
