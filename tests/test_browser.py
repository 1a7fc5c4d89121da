"""Open each HTML report from disk in headless Chromium (Debian's, no network), the way a reviewer would.

Driven over the DevTools protocol (websocket-client): every page loads with no console error, no failed request,
no uncaught exception; every chart is an SVG with a size and marks in it; a full-page screenshot of each is kept
in the test's tmp directory (look at one when a chart changes).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.devtools import CHARTS_JS, Chromium
from tests.test_reports import fixture_log, report_params, written  # noqa: F401  (shared session fixtures)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


def open_page(browser: Chromium, path: Path) -> None:
    browser.open(path.as_uri())


@pytest.mark.parametrize("page, n_charts", [("spend_review.html", 9), ("latency.html", 5), ("quality.html", 5),
                                             ("what_if.html", 2), ("readiness.html", 2), ("routing_research.html", 4)])
def test_report_renders_its_charts_with_no_console_errors(browser, written, page, n_charts, tmp_path):
    out, _ = written
    open_page(browser, out / page)
    charts = json.loads(browser.call("Runtime.evaluate", expression=CHARTS_JS, returnByValue=True)["result"]["value"])
    assert len(charts) == n_charts
    for chart in charts:
        assert chart["w"] > 100 and chart["h"] > 30, chart
        assert chart["marks"] > 0, chart
    # charts with data carry hover titles on their marks (the "no data" panels are plain text)
    assert sum(c["titled"] for c in charts) > n_charts
    png = browser.screenshot(tmp_path / page.replace(".html", ".png"))
    assert png.stat().st_size > 20_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert browser.problems() == []


def test_index_links_every_report(browser, written):
    out, _ = written
    open_page(browser, out / "index.html")
    links = json.loads(browser.call("Runtime.evaluate", returnByValue=True, expression=(
        "JSON.stringify([...document.querySelectorAll('a')].map(a => a.getAttribute('href')))"))["result"]["value"])
    assert {"spend_review.html", "latency.html", "quality.html", "what_if.html", "readiness.html",
            "routing_research.html"} <= set(links)
    assert browser.problems() == []
