"""The notebooks in a real JupyterLab, driven in headless Chromium over DevTools, as a user runs them after
`make demo`: opened from notebooks/ beside demo/routelog and demo/quality, Run All with no parameter changed.

- what_if.ipynb: the explorer's sliders are live ipywidgets (JupyterLab's widget manager, not a static fallback);
  moving the volume slider redraws the chart with new numbers;
- routing_research.ipynb and spend_review.ipynb: no request leaves 127.0.0.1, every chart has drawn marks, no
  findings line is rendered as LaTeX math;
- no notebook opens marked as modified (saved with its kernel metadata).

A screenshot of each notebook is kept in the test's tmp directory (what_if.png shows the sliders).
"""
from __future__ import annotations

import platform
import shutil
from urllib.parse import urlsplit

import nbformat
import pytest

from tests.devtools import CHARTS_JS, Chromium, JupyterLab, Notebook
from tests.test_reports import QUALITY, fixture_log  # noqa: F401  (shared session fixture)
from toolkit import resources

# the explorer's chart marks, as their aria-labels (vega writes each mark's fields and values there)
EXPLORER_LABELS = """[...document.querySelectorAll('.widget-output svg.marks [aria-label]')]
  .map(e => e.getAttribute('aria-label')).filter(t => t.includes('per month'))"""


@pytest.fixture(scope="module")
def lab(fixture_log, tmp_path_factory):
    """The repository's layout in tmp: notebooks/ (copies), demo/routelog, demo/quality; JupyterLab over it."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(resources.notebook_dir(), root / "notebooks")
    for path in (root / "notebooks").glob("*.ipynb"):
        # the one field that differs between machines: the Python patch release (JupyterLab writes the kernel's)
        nb = nbformat.read(path, as_version=4)
        nb.metadata.language_info.version = platform.python_version()
        nbformat.write(nb, path)
    shutil.copytree(fixture_log, root / "demo" / "routelog")
    shutil.copytree(QUALITY, root / "demo" / "quality")
    env = {"ROUTEKIT_LOG_DIR": "", "ROUTEKIT_POLICY": ""}      # the notebooks' own defaults, as after `make demo`
    server = JupyterLab(root, env=env)
    yield server
    server.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Chromium(tmp_path_factory.mktemp("chromium-profile"), window="1400,1000")
    yield b
    b.close()


def local_only(urls: list[str], lab: JupyterLab) -> list[str]:
    """The URLs that are neither the JupyterLab server nor in-page data."""
    return [u for u in urls if urlsplit(u).scheme not in ("data", "blob")
            and not u.startswith(f"{lab.url}/") and not u.startswith(f"ws://127.0.0.1:{lab.port}/")]


def test_what_if_sliders_are_live_widgets_that_redraw_the_chart(lab, browser, tmp_path):
    nb = Notebook(browser, lab, "notebooks/what_if.ipynb")
    assert not nb.dirty                                   # kernel metadata saved: it does not open modified
    nb.run_all()
    assert nb.errors() == []
    # three sliders drawn by the widget manager: a noUiSlider track with a handle each, not "VBox(children=...)"
    sliders = browser.wait_until("document.querySelectorAll('.jupyter-widgets.widget-slider .noUi-handle').length"
                                 " >= 3 && document.querySelectorAll('.jupyter-widgets.widget-slider').length", 60)
    assert sliders >= 3
    assert not browser.eval("document.body.innerText.includes('VBox(children=')")
    before = browser.wait_until(f"(() => {{ const l = {EXPLORER_LABELS}; return l.length ? l : null; }})()", 60)
    assert not [t for t in before if "(edited)" in t]
    # the volume slider: type 2 into its readout, as a user can
    browser.click(".jupyter-widgets.widget-slider .widget-readout")
    browser.eval("document.execCommand('selectAll')")
    browser.type("2.00")
    browser.key("Enter", keycode=13)
    after = browser.wait_until(f"(() => {{ const l = {EXPLORER_LABELS}; "
                               "return l.some(t => t.includes('(edited)')) ? l : null; })()", 60)
    assert after != before
    browser.screenshot(tmp_path / "what_if.png")
    print(f"screenshot: {tmp_path / 'what_if.png'}")
    assert local_only(browser.requested(), lab) == []


@pytest.mark.parametrize("notebook, n_charts", [("routing_research", 4), ("spend_review", 9)])
def test_notebooks_draw_offline_with_money_not_math(lab, browser, tmp_path, notebook, n_charts):
    nb = Notebook(browser, lab, f"notebooks/{notebook}.ipynb")
    assert not nb.dirty
    nb.run_all()
    assert nb.errors() == []
    charts = browser.wait_until(f"(() => {{ const c = JSON.parse({CHARTS_JS}); "
                                f"return c.length >= {n_charts} ? c : null; }})()", 60)
    assert len(charts) == n_charts
    assert all(c["marks"] > 0 and c["w"] > 100 for c in charts), charts
    # a finding's dollars are text, not MathJax
    assert browser.eval("document.querySelectorAll('.jp-RenderedMarkdown mjx-container, .jp-RenderedMarkdown "
                        ".MathJax').length") == 0
    if notebook == "spend_review":
        assert browser.eval("[...document.querySelectorAll('.jp-RenderedMarkdown li')].some("
                            "e => /\\$\\d/.test(e.textContent))")
    browser.screenshot(tmp_path / f"{notebook}.png")
    assert local_only(browser.requested(), lab) == []
    assert not [p for p in browser.problems() if "Error loading script" in p or "cdn" in p]
