"""What-if explorer: time from moving the volume slider to the re-rendered charts, in a real JupyterLab.

Lays out notebooks/ beside a small synthetic demo/routelog (14 days, 3,000 requests), starts JupyterLab on
127.0.0.1 and headless Chromium (tests/devtools.py), runs what_if.ipynb, then sets the volume slider N times
(typing into its readout, as a user can) and measures in the page, from the Enter key to the moment both of the
explorer's charts show new marks. Beside it, the kernel's own share: the same redraw timed in-process (estimates
of the fixed and edited scenarios, the sensitivity lines and both chart specs; no log is read: the observed
scenario comes from the rollups once, when the notebook runs).

    .venv/bin/python bench/widget_latency.py [--moves 12]

Prints p50 / p90 in ms and their ratio to the 200 ms goal (one run; the machine is shared and noisy).
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.devtools import Chromium, JupyterLab, Notebook  # noqa: E402
from toolkit import resources  # noqa: E402

GOAL_MS = 200.0

WATCH = """(() => {
  const out = document.querySelector('.widget-output');
  const sigs = () => [...out.querySelectorAll('svg.marks')].map(s => [...s.querySelectorAll('[aria-label]')]
      .map(e => e.getAttribute('aria-label')).join('|'));
  window.__bench = {t0: 0, done: 0, last: sigs()};
  document.addEventListener('keydown', e => {
    if (e.key === 'Enter') { window.__bench.t0 = performance.now(); window.__bench.done = 0; } }, true);
  new MutationObserver(() => {
    const b = window.__bench, now = sigs();
    if (!b.t0 || b.done || now.length < 2) return;
    if (now.every((s, i) => s && s !== b.last[i])) { b.done = performance.now(); b.last = now; }
  }).observe(out, {childList: true, subtree: true, attributes: true});
  return true; })()"""


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def in_kernel(moves: list[float]) -> list[float]:
    """The redraw alone, in this process: what the kernel spends per slider change."""
    from toolkit import charts, dashboards as d
    from toolkit.costs import PriceBook
    from toolkit.estimate import load_scenarios

    spec = load_scenarios(resources.data_file("scenarios/three-approaches.yaml"))
    policy = spec.policy or d.load_policy_or_default(None)
    box = charts.what_if_explorer(list(spec.scenarios), PriceBook.load(), policy)
    volume = box.children[1].children[0]
    out = []
    for v in moves:
        t0 = time.perf_counter()
        volume.value = v
        out.append((time.perf_counter() - t0) * 1000)
    return out


def in_browser(moves: list[float], work: Path) -> list[float]:
    from toolkit.synth import synthesize

    shutil.copytree(resources.notebook_dir(), work / "notebooks")
    synthesize(work / "demo" / "routelog", days=14, requests=3000, seed=3)
    lab = JupyterLab(work, env={"ROUTEKIT_LOG_DIR": "", "ROUTEKIT_POLICY": ""})
    (work / "profile").mkdir()
    browser = Chromium(work / "profile", window="1400,1000")
    try:
        Notebook(browser, lab, "notebooks/what_if.ipynb").run_all()
        browser.wait_until("document.querySelectorAll('.widget-output svg.marks').length >= 2", 60)
        browser.eval(WATCH)
        out = []
        for v in moves:
            browser.click(".jupyter-widgets.widget-slider .widget-readout")
            browser.eval("document.execCommand('selectAll')")
            browser.type(f"{v:.2f}")
            browser.key("Enter", keycode=13)
            done = browser.wait_until("window.__bench.done && window.__bench.done - window.__bench.t0", 30, 0.02)
            out.append(float(done))
        return out
    finally:
        browser.close()
        lab.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moves", type=int, default=12)
    args = ap.parse_args()
    moves = [round(1.1 + 0.1 * (i % 10), 2) for i in range(args.moves)]   # every move a new value
    kernel = in_kernel(moves)
    with tempfile.TemporaryDirectory(prefix="routekit-widget-bench-") as tmp:
        browser = in_browser(moves, Path(tmp))
    for name, ms in (("kernel redraw (in-process)", kernel), ("slider -> charts in JupyterLab", browser)):
        print(f"{name:32} p50 {pct(ms, 50):7.1f} ms  p90 {pct(ms, 90):7.1f} ms  "
              f"p50 / goal {pct(ms, 50) / GOAL_MS:.2f}  ({len(ms)} moves)")
    print(f"kernel share of the slider-to-chart time (p50): {pct(kernel, 50) / pct(browser, 50):.0%}")


if __name__ == "__main__":
    main()
