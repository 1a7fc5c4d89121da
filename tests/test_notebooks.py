"""nbval over the five dashboard notebooks, on the small synthetic fixture log.

Each notebook gets its parameters injected the way papermill does (a cell after the ``parameters`` cell), into a
copy in tmp, and nbval runs the copies in a fresh kernel: every cell must run without error (``--nbval-lax``:
outputs are data-dependent and not compared).  what_if keeps ``interactive = True``, so its ipywidgets path runs
too.  The notebooks in the repository keep literal defaults that work from JupyterLab in notebooks/.
"""
from __future__ import annotations

import subprocess
import sys

import nbformat
import papermill

from tests.test_reports import QUALITY, POLICY, ROOT, fixture_log  # noqa: F401  (shared session fixture)

NOTEBOOKS = ("spend_review", "latency", "quality", "what_if", "readiness")


def test_notebooks_pass_nbval_on_the_fixture_log(fixture_log, tmp_path):
    params = {"log_dir": str(fixture_log), "policy_path": str(POLICY), "out_dir": ""}
    extra = {"quality": {"quality_dir": str(QUALITY)}, "readiness": {"quality_dir": str(QUALITY)},
             "what_if": {"scenarios_path": str(ROOT / "data" / "scenarios" / "three-approaches.yaml"),
                         "interactive": True}}
    copies = []
    for name in NOTEBOOKS:
        source = ROOT / "notebooks" / f"{name}.ipynb"
        nb = nbformat.read(source, as_version=4)
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), f"{name}: no parameters cell"
        copies.append(tmp_path / f"{name}.ipynb")
        papermill.execute_notebook(str(source), str(copies[-1]), {**params, **extra.get(name, {})},
                                   prepare_only=True, progress_bar=False)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "--nbval-lax", "--nbval-cell-timeout=300",
                          "-p", "no:cacheprovider", "--rootdir", str(tmp_path), *map(str, copies)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    # one nbval item per code cell, all passed
    cells = sum(sum(c.cell_type == "code" for c in nbformat.read(p, as_version=4).cells) for p in copies)
    assert f"{cells} passed" in run.stdout
