"""nbval over the five dashboard notebooks, on the small synthetic fixture log.

Each notebook gets its parameters injected the way papermill does (a cell after the ``parameters`` cell), into a
copy in tmp, and nbval runs the copies in a fresh kernel: every cell must run without error (``--nbval-lax``:
outputs are data-dependent and not compared).  what_if keeps ``interactive = True``, so its ipywidgets path runs
too.  The notebooks in the repository keep literal defaults that work from JupyterLab in notebooks/.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

from tests.test_reports import QUALITY, POLICY, ROOT, fixture_log  # noqa: F401  (shared session fixture)
from toolkit.rollups import ROLLUP_VERSION

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


ALL_NOTEBOOKS = (*NOTEBOOKS, "routing_research")


def run_as_opened(project: Path) -> dict[str, str]:
    """Copy the notebooks into ``project/notebooks`` and run each there with no parameter changed, the way Run All
    in JupyterLab does (kernel started in the notebook's folder); returns each notebook's markdown outputs."""
    import shutil

    from toolkit import resources

    folder = project / "notebooks"
    folder.mkdir(parents=True, exist_ok=True)
    shown = {}
    for name in ALL_NOTEBOOKS:
        shutil.copy(resources.notebook_dir() / f"{name}.ipynb", folder / f"{name}.ipynb")
        out = folder / f"{name}.out.ipynb"
        papermill.execute_notebook(str(folder / f"{name}.ipynb"), str(out), cwd=str(folder), kernel_name="python3",
                                   progress_bar=False)   # raises PapermillExecutionError on any failing cell
        nb = nbformat.read(out, as_version=4)
        shown[name] = "\n".join(o.get("data", {}).get("text/markdown", "") for c in nb.cells if c.cell_type == "code"
                                for o in c.outputs)
    return shown


def test_every_notebook_runs_as_opened_with_no_log(tmp_path, monkeypatch):
    """$ROUTEKIT_LOG_DIR names an empty folder: each notebook says there is no log in one line and shows what it
    can (what-if still projects its scenarios; research needs no log)."""
    empty = tmp_path / "empty-log"
    empty.mkdir()
    monkeypatch.setenv("ROUTEKIT_LOG_DIR", str(empty))
    monkeypatch.delenv("ROUTEKIT_POLICY", raising=False)
    shown = run_as_opened(tmp_path)
    for name in NOTEBOOKS:
        assert f"**No route log** at `{empty}`" in shown[name], name
        assert "routekit log synth" in shown[name]
    assert "**Scenarios** from" in shown["what_if"]
    assert not list(empty.iterdir())          # nothing written into the (empty) log folder


def test_a_read_only_log_is_viewed_with_its_rollups_in_the_cache(fixture_log, tmp_path):
    """The log folder mounted read-only (a user and mount namespace, so it holds for root too): the spend notebook
    still runs on it, nothing is written into the log, and the rollups go to $ROUTEKIT_CACHE_DIR."""
    import shutil

    if subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
        pytest.skip("unshare -rm is not permitted here (no user namespaces): cannot mount a read-only log")
    log, cache = tmp_path / "log", tmp_path / "cache"
    shutil.copytree(fixture_log, log, ignore=shutil.ignore_patterns("_rollups"))
    before = sorted(str(p.relative_to(log)) for p in log.rglob("*"))
    run = (f"import papermill; papermill.execute_notebook({str(ROOT / 'notebooks' / 'spend_review.ipynb')!r}, "
           f"{str(tmp_path / 'spend.ipynb')!r}, parameters={{'log_dir': {str(log)!r}}}, kernel_name='python3', "
           f"cwd={str(tmp_path)!r}, progress_bar=False)")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" '
                           '&& exec "$1" -c "$2"', str(log), sys.executable, run],
                          env={**os.environ, "ROUTEKIT_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(str(p.relative_to(log)) for p in log.rglob("*")) == before       # nothing written into the log
    assert len(list(cache.glob(f"rollups/*/v{ROLLUP_VERSION}/_manifest.json"))) == 1
    shown = nbformat.read(tmp_path / "spend.ipynb", as_version=4)
    assert f"**Log** `{log}`" in str(shown.cells)


def test_notebooks_are_saved_with_their_kernel_metadata():
    """What JupyterLab writes on opening is already there, so a notebook does not open marked as modified (the
    JupyterLab test checks the tab too)."""
    from toolkit import resources

    for path in sorted(resources.notebook_dir().glob("*.ipynb")):
        meta = nbformat.read(path, as_version=4).metadata
        assert meta.kernelspec == {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
        assert {"name", "version", "mimetype", "file_extension", "codemirror_mode", "pygments_lexer",
                "nbconvert_exporter"} <= set(meta.language_info), path.name


def test_quality_notebook_shows_agent_call_failures_per_model(sim_env, policy_copy, tmp_path):
    """On a route log with real agent calls (Router, litellm, simulator), the quality notebook's agent section
    shows each model's tool-call and schema-validation failure rates."""
    from toolkit.router import Router

    log = tmp_path / "log"
    router = Router(policy_copy, log=log)
    tool = {"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}}}
    router.complete("agent", "call f", tools=[tool])
    sim_env.state.set("claude-haiku-4-5", {"fault": "bad_json"})
    router.complete("agent", "call f", tools=[tool])
    out = tmp_path / "quality.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "quality.ipynb"), str(out),
                               {"log_dir": str(log), "policy_path": str(policy_copy), "out_dir": "",
                                "quality_dir": str(tmp_path / "none")}, progress_bar=False, cwd=str(tmp_path))
    [cell] = [c for c in nbformat.read(out, as_version=4).cells if c.get("id") == "agent-calls"]
    shown = "".join(o.get("data", {}).get("text/html", "") for o in cell.outputs)
    assert "tool call failure rate" in shown and "mid-anthropic" in shown and "50.0%" in shown


def test_what_if_prices_months_of_the_scenario_files_days(tmp_path):
    """Before: the notebook priced 30-day months whatever the file's ``days:`` said (the CLI used the file's)."""
    from toolkit import dashboards as d
    from toolkit.estimate import estimate_scenarios, load_scenarios
    from toolkit.reports import read_headline

    shipped = ROOT / "data" / "scenarios" / "three-approaches.yaml"
    text = shipped.read_text().replace("days: 30", "days: 31").replace(
        "policy: ../policy.example.yaml", f"policy: {ROOT / 'data' / 'policy.example.yaml'}")
    assert "days: 31" in text
    (tmp_path / "s.yaml").write_text(text)
    out = tmp_path / "what_if.out.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "what_if.ipynb"), str(out), {
        "log_dir": str(tmp_path / "no-log"), "scenarios_path": str(tmp_path / "s.yaml"), "interactive": False},
        cwd=str(tmp_path), progress_bar=False)
    spec = load_scenarios(tmp_path / "s.yaml")
    want = {days: d.what_if_headline(estimate_scenarios(spec.scenarios, policy=spec.policy, days=days))
            for days in (30, 31)}
    assert want[30] != want[31] and read_headline(out).numbers == want[31]
