"""Open each HTML report from disk in headless Chromium (Debian's, no network), the way a reviewer would.

Driven over the DevTools protocol (websocket-client): every page loads with no console error, no failed request,
no uncaught exception; every chart is an SVG with a size and marks in it; a full-page screenshot of each is kept
in the test's tmp directory (look at one when a chart changes).
"""
from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.test_reports import fixture_log, report_params, written  # noqa: F401  (shared session fixtures)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--remote-debugging-port=0",
         "--window-size=1280,1000", "about:blank"]

# every chart SVG on the page: its size and how many drawn marks it holds
CHARTS_JS = """JSON.stringify([...document.querySelectorAll('svg.marks')].map(s => {
  const r = s.getBoundingClientRect();
  return {w: r.width, h: r.height, marks: s.querySelectorAll('[class*="mark-"] > path, [class*="mark-"] > text, '
          + '[class*="mark-"] > line, [class*="mark-"] > rect, [class*="mark-"] > circle').length,
          titled: s.querySelectorAll('title').length};
}))"""


class Chromium:
    """One headless Chromium with a fresh profile, driven through its first page target."""

    def __init__(self, profile: Path):
        import websocket

        if not Path(CHROMIUM).exists():
            raise RuntimeError(f"{CHROMIUM}: no Chromium (Debian package chromium; make system installs it)")
        self.proc = subprocess.Popen([CHROMIUM, f"--user-data-dir={profile}", *FLAGS], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            page = next(t for t in json.load(r) if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self.next_id, self.events = 0, []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, e in enumerate(self.events):
                if e.get("method") == method:
                    return self.events.pop(i)
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(method)

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads seen so far."""
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(f"console: {[a.get('value', a.get('description')) for a in p.get('args', [])]}")
            elif m == "Runtime.exceptionThrown":
                out.append(f"exception: {p['exceptionDetails'].get('text')}")
            elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(f"log: {p['entry']['text']} {p['entry'].get('url', '')}")
            elif m == "Network.loadingFailed":
                out.append(f"load failed: {p.get('errorText')} {p.get('type')}")
        return out

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


def open_page(browser: Chromium, path: Path) -> None:
    browser.events.clear()
    browser.call("Page.navigate", url=path.as_uri())
    browser.wait_for("Page.loadEventFired")


def screenshot(browser: Chromium, dest: Path) -> Path:
    size = json.loads(browser.call("Runtime.evaluate", expression=(
        "JSON.stringify([document.documentElement.scrollWidth, document.documentElement.scrollHeight])"),
        returnByValue=True)["result"]["value"])
    shot = browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                        clip={"x": 0, "y": 0, "width": size[0], "height": min(size[1], 12000), "scale": 1})
    dest.write_bytes(base64.b64decode(shot["data"]))
    return dest


@pytest.mark.parametrize("page, n_charts", [("spend_review.html", 9), ("latency.html", 5), ("quality.html", 5),
                                             ("what_if.html", 2), ("readiness.html", 2)])
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
    png = screenshot(browser, tmp_path / page.replace(".html", ".png"))
    assert png.stat().st_size > 20_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert browser.problems() == []


def test_index_links_every_report(browser, written):
    out, _ = written
    open_page(browser, out / "index.html")
    links = json.loads(browser.call("Runtime.evaluate", returnByValue=True, expression=(
        "JSON.stringify([...document.querySelectorAll('a')].map(a => a.getAttribute('href')))"))["result"]["value"])
    assert {"spend_review.html", "latency.html", "quality.html", "what_if.html", "readiness.html"} <= set(links)
    assert browser.problems() == []
