"""The demo notebooks in notebooks/ run headless with parameters (papermill).

nbval runs the same notebooks as they are (pyproject.toml's addopts) and compares every
cell's output with the stored one; the checks here make sure that comparison means something
(every code cell has a stored result) and that each notebook's parameters take effect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest

import flownb

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

# notebook -> (parameters for its `parameters` cell, text its output must then show)
CASES: dict[str, tuple[dict[str, Any], str]] = {
    "quickstart": ({"greeting": "papermill"}, "(200, {'hello': 'papermill', 'n': '1'})"),
    "orders": ({"qty": 3, "price": 2.0}, "'qty': 3, 'price': 2.0, 'total': 6.0}"),
    "messaging": ({"messages": 2, "user": "grace"}, "(['hello 0', 'hello 1'], 2)"),
    "headless": ({"beats": 2}, "(2, '2 executions')"),
    "ai": ({"name": "grace"}, "{'hello': 'grace'}"),
}  # fmt: skip


def shown(path: Path) -> str:
    nb = nbformat.read(str(path), as_version=4)
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            texts.append(out.get("text") or out.get("data", {}).get("text/plain", ""))
    return "\n".join(texts)


def test_every_notebook_is_covered_and_stored_with_its_outputs() -> None:
    names = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    assert names == sorted(CASES), "add each notebook to CASES with a parameter it shows"
    for name in names:
        nb = nbformat.read(str(NOTEBOOKS / f"{name}.ipynb"), as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{name}: one cell tagged 'parameters'"
        code = [c for c in nb.cells if c.cell_type == "code"]
        # nbval checks only cells that were run: a notebook saved without outputs checks nothing
        unrun = [i for i, c in enumerate(code) if c.execution_count is None]
        assert not unrun, f"{name}: code cells {unrun} have no stored result; run `make notebooks`"
        errors = [o for c in code for o in c.outputs if o.output_type == "error"]
        assert not errors, f"{name}: stored with an error output"
        assert "widgets" not in nb.metadata, f"{name}: stored widget state (large, volatile)"


@pytest.mark.parametrize("name", sorted(CASES))
def test_notebook_runs_under_papermill_with_parameters(name: str, tmp_path: Path) -> None:
    parameters, expected = CASES[name]
    run = flownb.execute(
        NOTEBOOKS / f"{name}.ipynb",
        tmp_path / f"{name}.ipynb",
        parameters,
        env={"ANTHROPIC_API_KEY": ""},  # the AI notebook then uses the fake AI server
    )
    assert run.parameters == parameters
    assert expected in shown(tmp_path / f"{name}.ipynb")
