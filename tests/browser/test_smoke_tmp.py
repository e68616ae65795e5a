from tests.browser.conftest import open_notebook, run_cell


def test_smoke(lab, page):
    nb = lab.notebook(
        "smoke.ipynb", ["print(1 + 1)", "import ipywidgets as w\nw.IntSlider(value=7)"]
    )
    open_notebook(page, lab, nb)
    out = run_cell(page, 0)
    assert "2" in out
    run_cell(page, 1)
    page.wait_for_selector(".widget-slider", timeout=30000)
