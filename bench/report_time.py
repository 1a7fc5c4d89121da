"""Where the time of `routekit report` goes, per notebook, on one route log.

    .venv/bin/python bench/report_time.py [LOG] [--reports all|spend|latency|quality|what-if ...] [--out DIR]

LOG defaults to the 10M-record synthetic log other benches leave at /tmp/routekit-bench-log-10m (when it is
complete: its _synth_truth.json exists), else a 90-day, 200k-request synthetic log made in a temporary directory.

For each notebook, in one run:
- wall: papermill's execute_notebook, as `routekit report` calls it;
- start-up: wall minus the time of all cells (kernel launch, papermill and nbclient overhead, and carrying the
  outputs from the kernel into the notebook file); a one-cell notebook's run is printed for comparison;
- imports: the notebook's import cell (polars, altair, vl-convert, toolkit) in the fresh kernel;
- aggregation: the same cells executed in this process with display() a no-op and no chart rendered: what the
  toolkit itself spends turning rollups into numbers, findings and chart specs (the rollups already built);
- render: the rest of the cell time (vl-convert drawing SVG, outputs serialised to the kernel client);
- html: nbconvert's export.
The rollup build (first read of new days) is timed once, apart, before the notebooks run.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from toolkit import reports, resources  # noqa: E402

BIG_LOG = Path("/tmp/routekit-bench-log-10m")


def pick_log(arg: str | None) -> tuple[Path, str]:
    if arg:
        return Path(arg), "given"
    if (BIG_LOG / "_synth_truth.json").exists():
        return BIG_LOG, "the 10M-record benchmark log"
    from toolkit.synth import synthesize

    where = Path(tempfile.mkdtemp(prefix="report-time-")) / "routelog"
    t0 = time.perf_counter()
    synthesize(where, days=90, requests=200_000, seed=0)
    return where, f"synthesised here in {time.perf_counter() - t0:.1f} s (90 days, 200k requests)"


def notebook_code(name: str) -> tuple[list[str], int]:
    """The code cells of a report's notebook and the index of its parameters cell."""
    nb = json.loads((resources.notebook_dir() / f"{reports.REPORTS[name][0]}.ipynb").read_text())
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    tags = [c["metadata"].get("tags", []) for c in nb["cells"] if c["cell_type"] == "code"]
    return cells, next(i for i, t in enumerate(tags) if "parameters" in t)


def aggregate_in_process(name: str, params: dict) -> float:
    """Seconds the notebook's cells take here, after the parameters and imports, with nothing displayed."""
    import os

    import IPython.display

    cells, at = notebook_code(name)
    shown, cwd = IPython.display.display, os.getcwd()
    IPython.display.display = lambda *a, **k: None  # the cells import display after this: they get the no-op
    os.chdir(resources.notebook_dir())                  # where papermill runs them: default paths are relative to it
    try:
        ns: dict = {}
        exec(cells[at], ns)
        ns.update(params)
        exec(cells[at + 1], ns)  # imports
        t0 = time.perf_counter()
        for code in cells[at + 2:]:
            exec(code, ns)
        return time.perf_counter() - t0
    finally:
        IPython.display.display = shown
        os.chdir(cwd)


def empty_run_seconds(where: Path) -> float:
    """papermill on a one-cell notebook: kernel launch and papermill's own overhead, nothing else."""
    import nbformat
    import papermill

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("pass")])
    nb.metadata["kernelspec"] = {"name": reports.KERNEL, "display_name": "Python 3", "language": "python"}
    src, dst = where / "empty.ipynb", where / "empty.out.ipynb"
    nbformat.write(nb, src)
    t0 = time.perf_counter()
    papermill.execute_notebook(str(src), str(dst), kernel_name=reports.KERNEL, progress_bar=False,
                               extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
    return time.perf_counter() - t0


def cell_seconds(notebook: Path) -> tuple[float, float]:
    """(all code cells, the import cell) as papermill recorded them."""
    nb = json.loads(notebook.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    took = [float(c["metadata"].get("papermill", {}).get("duration") or 0.0) for c in code]
    imports = next(t for c, t in zip(code, took) if "".join(c["source"]).startswith("from IPython.display import"))
    return sum(took), imports


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("log", nargs="?", help="route log directory (default: see above)")
    ap.add_argument("--reports", nargs="+", default=["all"])
    ap.add_argument("--out", help="report directory (default: a temporary one)")
    args = ap.parse_args()

    import polars as pl

    from toolkit.rollups import build_rollups, load_rollups

    log, origin = pick_log(args.log)
    t0 = time.perf_counter()
    build_rollups(log)
    build_s = time.perf_counter() - t0
    frame = load_rollups(log, build=False)
    records = frame.select(pl.col("requests").sum()).collect().item()
    rows = frame.select(pl.len()).collect().item()
    print(f"log {log} ({origin}): {records:,} records, rollup {rows:,} rows; rollup build now {build_s:.2f} s")

    out = Path(args.out or tempfile.mkdtemp(prefix="report-time-out-"))
    empty = empty_run_seconds(out)
    print(f"papermill on a one-cell notebook (kernel launch + papermill): {empty:.2f} s")
    names = reports.names(args.reports)
    base = {**reports.RUNNER_DEFAULTS, "log_dir": str(log.resolve()), "out_dir": ""}
    header = f"{'notebook':<9} {'wall s':>7} {'start-up':>15} {'imports':>15} {'aggregation':>15} {'render':>15} " \
             f"{'html s':>7}"
    print(header + "\n" + "-" * len(header))
    total_wall = total_agg = 0.0
    for name in names:
        declared = reports.notebook_parameters(name)
        params = {k: v for k, v in base.items() if k in declared}
        [r] = reports.run(name, log, out, {k: v for k, v in params.items() if k != "log_dir"}, progress=False)
        cells, imports = cell_seconds(r.notebook)
        agg = aggregate_in_process(name, params)
        startup = r.seconds - cells
        render = max(cells - imports - agg, 0.0)
        pct = lambda s: f"{s:6.2f} ({s / r.seconds:4.0%})"  # noqa: E731
        print(f"{name:<9} {r.seconds:7.2f} {pct(startup):>15} {pct(imports):>15} {pct(agg):>15} {pct(render):>15} "
              f"{r.export_seconds:7.2f}")
        total_wall += r.seconds + r.export_seconds
        total_agg += agg
    print(f"\nall {len(names)} notebooks: {total_wall:.1f} s wall (HTML included), of which the toolkit's own "
          f"aggregation {total_agg:.2f} s ({total_agg / total_wall:.0%}); reports in {out}")


if __name__ == "__main__":
    main()
