"""Where the time of `routekit report` goes, and what running the notebooks concurrently saves, on one route log.

    .venv/bin/python bench/report_time.py [LOG] [--reports all|spend|latency|quality|what-if ...] [--jobs N]
                                          [--out DIR]

LOG defaults to the 10M-record synthetic log other benches leave at /tmp/routekit-bench-log-10m (when it is
complete: its _synth_truth.json exists), else a 90-day, 200k-request synthetic log made in a temporary directory.

In one run, after the rollups are built (timed once, apart): the reports one at a time (`--jobs 1`), then N at a
time (default: the number of cores), each as `routekit report` runs them; the wall time of each and their ratio.
For each notebook of each run:
- wall: papermill's execute_notebook, as `routekit report` calls it;
- start-up: wall minus the time of all cells (kernel launch, papermill and nbclient overhead, and carrying the
  outputs from the kernel into the notebook file); a one-cell notebook's run is printed for comparison;
- imports: the notebook's import cell (polars, altair, vl-convert, toolkit) in the fresh kernel;
- cells: the other cells (aggregation, charts drawn as SVG, tables);
- html: nbconvert's export (with the damage footer).
Run concurrently, each notebook's phases stretch (two kernels share the cores): the table says by how much.
Last, the toolkit's own aggregation: the notebooks' cells executed in this process with display() a no-op and no
chart rendered: what the toolkit spends turning rollups into numbers and findings, per notebook, with the time spent
in toolkit.charts (building Altair specs) and toolkit.tables (building great_tables) measured apart.
"""
from __future__ import annotations

import argparse
import functools
import inspect
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


class Spent:
    """Seconds spent inside the public functions of some modules (outermost calls only), while patched in."""

    def __init__(self, *modules: Any) -> None:
        self.modules, self.seconds, self._depth, self._saved = modules, 0.0, 0, []

    def _timed(self, fn: Any) -> Any:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._depth += 1
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth -= 1
                if not self._depth:
                    self.seconds += time.perf_counter() - t0
        return timed

    def __enter__(self) -> "Spent":
        for module in self.modules:
            for name, fn in vars(module).copy().items():
                if inspect.isfunction(fn) and fn.__module__ == module.__name__ and not name.startswith("_"):
                    self._saved.append((module, name, fn))
                    setattr(module, name, self._timed(fn))
        return self

    def __exit__(self, *exc: Any) -> None:
        for module, name, fn in self._saved:
            setattr(module, name, fn)


def aggregate_in_process(name: str, params: dict) -> dict[str, float]:
    """Seconds the notebook's cells take here, after the parameters and imports, with nothing displayed: all, and of
    them in toolkit.charts and toolkit.tables."""
    import os

    import IPython.display

    from toolkit import charts, tables

    cells, at = notebook_code(name)
    shown, cwd = IPython.display.display, os.getcwd()
    IPython.display.display = lambda *a, **k: None  # the cells import display after this: they get the no-op
    os.chdir(resources.notebook_dir())                  # where papermill runs them: default paths are relative to it
    try:
        ns: dict = {"display": IPython.display.display}  # a kernel's builtin, for notebooks that do not import it
        exec(cells[at], ns)
        ns.update(params)
        exec(cells[at + 1], ns)  # imports
        with Spent(charts) as in_charts, Spent(tables) as in_tables:
            t0 = time.perf_counter()
            for code in cells[at + 2:]:
                exec(code, ns)
            total = time.perf_counter() - t0
        return {"total": total, "charts": in_charts.seconds, "tables": in_tables.seconds}
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
    """(all code cells, the import cell: the first after the injected parameters) as papermill recorded them."""
    nb = json.loads(notebook.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    took = [float(c["metadata"].get("papermill", {}).get("duration") or 0.0) for c in code]
    injected = next(i for i, c in enumerate(code) if "injected-parameters" in c["metadata"].get("tags", []))
    return sum(took), took[injected + 1]


def timed_run(names: list[str], log: Path, out: Path, jobs: int) -> tuple[float, list[reports.Report]]:
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    done = reports.run(names, log, out, {}, progress=False, jobs=jobs)
    return time.perf_counter() - t0, done


def phase_table(title: str, done: list[reports.Report]) -> dict[str, float]:
    """Print one run's phases per notebook; return their sums."""
    header = f"{'notebook':<9} {'wall s':>7} {'start-up':>15} {'imports':>15} {'cells':>15} {'html s':>7}"
    print(f"\n{title}\n{header}\n{'-' * len(header)}")
    sums = dict.fromkeys(("wall", "start-up", "imports", "cells", "html"), 0.0)
    for r in done:
        cells, imports = cell_seconds(r.notebook)
        row = {"wall": r.seconds, "start-up": r.seconds - cells, "imports": imports, "cells": cells - imports,
               "html": r.export_seconds}
        pct = lambda s: f"{s:6.2f} ({s / r.seconds:4.0%})"  # noqa: E731
        print(f"{r.name:<9} {r.seconds:7.2f} {pct(row['start-up']):>15} {pct(row['imports']):>15} "
              f"{pct(row['cells']):>15} {r.export_seconds:7.2f}")
        sums = {k: sums[k] + row[k] for k in sums}
    print(f"{'sum':<9} {sums['wall']:7.2f} {sums['start-up']:15.2f} {sums['imports']:15.2f} {sums['cells']:15.2f} "
          f"{sums['html']:7.2f}")
    return sums


def main() -> None:
    import os

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("log", nargs="?", help="route log directory (default: see above)")
    ap.add_argument("--reports", nargs="+", default=["all"])
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="the concurrent run's jobs (default: cores)")
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
    out.mkdir(parents=True, exist_ok=True)
    empty = empty_run_seconds(out)
    print(f"papermill on a one-cell notebook (kernel launch + papermill): {empty:.2f} s")
    names = reports.names(args.reports)
    serial_s, serial = timed_run(names, log, out / "jobs-1", 1)
    together_s, together = timed_run(names, log, out / f"jobs-{args.jobs}", args.jobs)
    one = phase_table(f"--jobs 1: {serial_s:.1f} s wall", serial)
    many = phase_table(f"--jobs {args.jobs}: {together_s:.1f} s wall", together)
    stretch = ", ".join(f"{k} {many[k] / one[k]:.2f}x" for k in one if one[k] > 0)
    print(f"\nreport {' '.join(args.reports)} ({len(names)} notebooks): --jobs 1 {serial_s:.1f} s, --jobs {args.jobs} "
          f"{together_s:.1f} s wall: {together_s / serial_s:.2f}x the time ({serial_s / together_s:.2f}x faster); "
          f"summed phases concurrent vs one at a time: {stretch}")

    base = {**reports.RUNNER_DEFAULTS, "log_dir": str(log.resolve()), "out_dir": "", "tables_dir": str(out / "agg")}
    print("\nin process, nothing drawn:")
    print(f"{'notebook':<9} {'cells s':>8} {'charts':>8} {'tables':>8} {'aggregation':>12}")
    sums = dict.fromkeys(("total", "charts", "tables"), 0.0)
    for name in names:
        declared = reports.notebook_parameters(name)
        spent = aggregate_in_process(name, {k: v for k, v in base.items() if k in declared})
        print(f"{name:<9} {spent['total']:8.2f} {spent['charts']:8.2f} {spent['tables']:8.2f} "
              f"{spent['total'] - spent['charts'] - spent['tables']:12.2f}")
        sums = {k: sums[k] + spent[k] for k in sums}
    agg = sums["total"] - sums["charts"] - sums["tables"]
    print(f"the toolkit's own aggregation across the notebooks: {agg:.2f} s ({agg / serial_s:.0%} of the --jobs 1 "
          f"wall); chart specs {sums['charts']:.2f} s and tables {sums['tables']:.2f} s beside it; reports in {out}")


if __name__ == "__main__":
    main()
