"""Drive Debian's headless Chromium over the DevTools protocol (websocket-client), and run a real JupyterLab for it.

Shared by tests/test_browser.py (the HTML reports from disk), tests/test_jupyterlab.py (the notebooks in JupyterLab)
and bench/widget_latency.py (slider to chart).  No network: JupyterLab listens on 127.0.0.1 on a free port.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Chromium:
    """One headless Chromium with a fresh profile, driven through its first page target."""

    def __init__(self, profile: Path, window: str = "1280,1000"):
        import websocket

        if not Path(CHROMIUM).exists():
            raise RuntimeError(f"{CHROMIUM}: no Chromium (Debian package chromium; make system installs it)")
        flags = [f if not f.startswith("--window-size") else f"--window-size={window}" for f in FLAGS]
        self.proc = subprocess.Popen([CHROMIUM, f"--user-data-dir={profile}", *flags], stdout=subprocess.DEVNULL,
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
        sent = self.next_id
        self.ws.send(json.dumps({"id": sent, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == sent:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if msg.get("method") == "Page.javascriptDialogOpening":   # "leave the page?" from an edited notebook
                self.next_id += 1
                self.ws.send(json.dumps({"id": self.next_id, "method": "Page.handleJavaScriptDialog",
                                         "params": {"accept": True}}))
            self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, e in enumerate(self.events):
                if e.get("method") == method:
                    return self.events.pop(i)
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(method)

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired", timeout=60)

    def eval(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited when it is a promise)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_until(self, expression: str, timeout: float = 60.0, every: float = 0.25) -> Any:
        """Poll ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.eval(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression[:120]} still false after {timeout:.0f} s")
            time.sleep(every)

    def click(self, selector: str) -> None:
        """A real mouse click (press and release) in the middle of the first element matching ``selector``."""
        box = self.eval(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
                        f" e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();"
                        f" return [r.x + r.width / 2, r.y + r.height / 2]; }})()")
        if not box:
            raise LookupError(f"no element {selector}")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def type(self, text: str) -> None:
        self.call("Input.insertText", text=text)

    def key(self, key: str, code: str | None = None, keycode: int | None = None, modifiers: int = 0) -> None:
        extra = {"windowsVirtualKeyCode": keycode, "nativeVirtualKeyCode": keycode} if keycode else {}
        for kind in ("rawKeyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key=key, code=code or key, modifiers=modifiers, **extra)

    def requested(self) -> list[str]:
        """Every URL the page asked for since the last ``open``."""
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

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

    def screenshot(self, dest: Path, full: bool = True) -> Path:
        size = self.eval("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        clip = {"x": 0, "y": 0, "width": size[0], "height": min(size[1], 12000), "scale": 1}
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=full,
                         **({"clip": clip} if full else {}))
        dest.write_bytes(base64.b64decode(shot["data"]))
        return dest

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            self.proc.wait(10)


class JupyterLab:
    """A JupyterLab server on 127.0.0.1 (free port, no token) over ``root``, with this interpreter's kernel."""

    def __init__(self, root: Path, env: dict[str, str] | None = None, log: Path | None = None):
        self.root, self.port = root, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log or root / "jupyterlab.log", "w")
        # the user's own settings, workspaces and runtime files stay untouched (and do not change the test)
        state = {k: str(root / ".jupyter" / d) for k, d in (("JUPYTER_CONFIG_DIR", "config"),
                 ("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                 ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"))}
        # every cell in the page (no windowing: the tests read every output), and no news prompt
        for plugin, values in (("notebook-extension/tracker", {"windowingMode": "none"}),
                               ("apputils-extension/notification", {"fetchNews": "false"})):
            path = Path(state["JUPYTERLAB_SETTINGS_DIR"]) / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.root_dir={root}",
             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
             "--IdentityProvider.token=", "--ServerApp.password=", "--LabApp.news_url=None",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly",
             "--allow-root"],
            env={**os.environ, **state, **(env or {})}, stdout=self.log, stderr=subprocess.STDOUT, cwd=root)
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/api/status", timeout=5):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start: {Path(self.log.name).read_text()[-2000:]}")
                time.sleep(0.3)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class Notebook:
    """One notebook open in JupyterLab in ``browser``: run all cells, read what they show."""

    RUN_ALL = '.lm-Menu-item[data-command="runmenu:run-all"]'
    PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"     # the notebook on show

    def __init__(self, browser: Chromium, lab: JupyterLab, path: str):
        self.browser, self.lab, self.path = browser, lab, path
        browser.open(f"{lab.url}/lab/tree/{path}?reset")   # reset: only this notebook open, no restored tabs
        browser.wait_until("document.querySelectorAll('.jp-Notebook .jp-Cell').length > 0", 90)
        self.wait_idle()

    def wait_idle(self, timeout: float = 120) -> None:
        """Until the kernel is connected and idle (accepting the kernel dialog JupyterLab may show on the way)."""
        def ready() -> bool:
            if self.browser.eval("!!document.querySelector('.jp-Dialog .jp-mod-accept')"):
                self.browser.click(".jp-Dialog .jp-mod-accept")
            with urllib.request.urlopen(f"{self.lab.url}/api/sessions", timeout=10) as r:
                kernels = [s["kernel"] for s in json.load(r) if s["path"] == self.path and s.get("kernel")]
            # the server's view: the page's websocket is connected and the kernel has nothing to do
            return bool(kernels) and kernels[0]["execution_state"] == "idle" and kernels[0]["connections"] > 0 and \
                not self.browser.eval("!!document.querySelector('.jp-Dialog')")

        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise TimeoutError("the notebook's kernel did not become idle")
            time.sleep(0.3)

    @property
    def dirty(self) -> bool:
        """The notebook's tab is marked modified."""
        return self.browser.eval("!!document.querySelector('#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current"
                                 ".jp-mod-dirty')")

    def run_all(self, timeout: float = 300) -> None:
        """Run → Run All Cells, clicked as a user would; returns when every code cell has run."""
        b = self.browser
        self._menu("Run")
        b.wait_until(f"!!document.querySelector('{self.RUN_ALL}')", 10)
        b.click(self.RUN_ALL)
        prompts = f"[...document.querySelectorAll('{self.PANEL} .jp-CodeCell .jp-InputArea-prompt')]"
        try:
            b.wait_until(f"(() => {{ const p = {prompts}.map(e => e.textContent.trim());"
                         " return p.length > 0 && p.every(t => /^\\[\\d+\\]:$/.test(t)); })()", timeout)
        except TimeoutError:
            shot = b.screenshot(self.lab.root / f"{Path(self.path).stem}-stuck.png", full=False)
            raise TimeoutError(f"{self.path}: Run All did not finish (screenshot {shot})") from None
        self.wait_idle()

    def _menu(self, label: str) -> None:
        index = self.browser.eval(f"[...document.querySelectorAll('.lm-MenuBar-item')].findIndex("
                                  f"e => e.textContent.trim() === {json.dumps(label)})")
        self.browser.click(f".lm-MenuBar-item:nth-child({index + 1})")

    def charts(self) -> list[dict]:
        return json.loads(self.browser.eval(CHARTS_JS))

    def errors(self) -> list[str]:
        return self.browser.eval("[...document.querySelectorAll('.jp-RenderedText[data-mime-type="
                                 "\"application/vnd.jupyter.stderr\"], .jp-OutputArea-output .ansi-red-fg')]"
                                 ".map(e => e.textContent.slice(0, 300))")
