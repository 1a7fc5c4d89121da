"""`routekit report`: papermill runs of the four notebooks into offline HTML and an index.

The session fixtures here (a small synthetic log, the reports written from it once) are shared with
test_browser.py and test_notebooks.py.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from toolkit import reports, resources
from toolkit.cli import main

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "notebooks"
QUALITY = FIXTURES / "quality"
POLICY = ROOT / "data" / "policy.demo.yaml"        # the policy the synthetic log was routed with


# Fixtures imported by other test modules are instantiated once per module that holds them: this cache makes the
# log and the reports once per session wherever they are used.
_ONCE: dict[str, object] = {}


@pytest.fixture(scope="session")
def fixture_log(tmp_path_factory) -> Path:
    """Two weeks of synthetic traffic, 3,000 requests (toolkit.synth: real writer, real compaction)."""
    from toolkit.synth import synthesize

    if "log" not in _ONCE:
        _ONCE["log"] = synthesize(tmp_path_factory.mktemp("fixture") / "routelog", days=14, requests=3000,
                                  seed=3).log_dir
    return _ONCE["log"]


@pytest.fixture(scope="session")
def report_params() -> dict:
    return {"quality_dir": str(QUALITY), "policy_path": str(POLICY)}


@pytest.fixture(scope="session")
def written(fixture_log, report_params, tmp_path_factory) -> tuple[Path, list[Path]]:
    """Every report, run once for the session (the way `make demo` calls it), two notebooks at a time."""
    if "reports" not in _ONCE:
        out = tmp_path_factory.mktemp("reports")
        _ONCE["reports"] = out, reports.run_all(fixture_log, out, report_params, jobs=2)
    return _ONCE["reports"]


def test_run_all_writes_each_notebook_html_and_the_index_last(written):
    out, paths = written
    assert [p.name for p in paths] == ["spend_review.ipynb", "spend_review.html", "latency.ipynb", "latency.html",
                                       "quality.ipynb", "quality.html", "what_if.ipynb", "what_if.html",
                                       "readiness.ipynb", "readiness.html", "routing_research.ipynb",
                                       "routing_research.html", "index.html"]
    assert all(p.parent == out and p.stat().st_size > 0 for p in paths)
    index = (out / "index.html").read_text()
    for page in ("spend_review.html", "latency.html", "quality.html", "what_if.html", "readiness.html",
                 "routing_research.html"):
        assert f'href="{page}"' in index


def test_executed_notebooks_ran_on_the_given_log_without_errors(written, fixture_log):
    out, _ = written
    for name, n_charts in (("spend_review", 9), ("latency", 5), ("quality", 5), ("what_if", 2), ("readiness", 2)):
        nb = json.loads((out / f"{name}.ipynb").read_text())
        injected = next(c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", []))
        assert f"log_dir = \"{fixture_log}\"" in "".join(injected["source"])
        outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
        assert not [o for o in outputs if o["output_type"] == "error"], name
        charts = [o for o in outputs if "image/svg+xml" in o.get("data", {})]
        assert len(charts) == n_charts, name
        # JupyterLab gets the interactive Vega-Lite spec beside the SVG
        assert all(any(k.startswith("application/vnd.vegalite") for k in o["data"]) for o in charts)


def test_html_is_self_contained_and_offline(written):
    out, _ = written
    for page, n_charts in (("spend_review.html", 9), ("latency.html", 5), ("quality.html", 5), ("what_if.html", 2),
                           ("readiness.html", 2), ("routing_research.html", 4), ("index.html", 0)):
        html = (out / page).read_text()
        assert not re.search(r"<script[^>]*\ssrc=", html), page           # no script fetched from anywhere
        assert not re.search(r"""(?:src|href)=["']https?://""", html), page  # no CDN, no font server
        assert len(re.findall(r'<svg [^>]*class="marks"', html)) == n_charts, page  # inline SVG, not <img>
        if n_charts:
            assert "<title>" in html.split("<svg", 1)[1]  # marks carry hover titles
        if page != "index.html":  # each page ends saying what its numbers leave out: here, nothing
            assert re.search(r'<footer class="routekit-damage" style="margin: 2em; color: #555"><p>Route log: every '
                             r'file and line was read, nothing skipped.</p></footer>\s*</body>\s*</html>\s*$', html)


def test_reports_show_findings_and_the_quality_inputs(written):
    out, _ = written
    spend = (out / "spend_review.html").read_text()
    assert "Findings" in spend and "Spend by team per day" in spend
    quality = (out / "quality.html").read_text()
    assert "the primary model of every intent is down for the first half of the run" in quality   # the drill
    assert "switch" in quality and "Baseline quality per model and intent" in quality
    what_if = (out / "what_if.html").read_text()
    for scenario in ("all-strong", "tiered-cached", "as logged"):
        assert scenario in what_if
    assert 'href="readiness.html"' in quality                       # the quality report links the checklist
    ready = (out / "readiness.html").read_text()
    # the fixture's drill covered extraction and synthesis; its baseline measured triage's first two models
    assert "Launch readiness" in ready and "Blast radius: each provider unavailable" in ready
    assert "no measured score for mid-anthropic" in ready and "routekit eval baseline" in ready
    assert "Intents that fail without a provider: none." in ready                 # the demo policy survives each
    assert "No measured model clears the bar" in ready and "Wilson" in ready      # triage's recommendation, why


def test_a_short_period_is_reported_by_the_hour_with_no_grain_given(fixture_log, tmp_path):
    """The on-call's `routekit report latency -p since <yesterday>`: the latency and spend pages of a short period
    chart by the hour on their own, and every cell runs."""
    last = max(p.name.removeprefix("date=") for p in fixture_log.glob("date=*"))
    reports.run(["latency", "spend"], fixture_log, tmp_path, {"since": last, "policy_path": str(POLICY)},
                progress=False, jobs=1)
    for name in ("latency", "spend_review"):
        nb = json.loads((tmp_path / f"{name}.ipynb").read_text())
        outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
        assert not [o for o in outputs if o["output_type"] == "error"], name
        assert f"{last} .. {last} (1 day)" in json.dumps(outputs), name
        specs = [json.dumps(v) for o in outputs for k, v in o.get("data", {}).items() if "vegalite" in k]
        assert any('"Hour (UTC)"' in spec for spec in specs), name
        if name == "latency":   # (spend's budget burn-down stays by the day: budgets run by the day)
            assert not any('"Day (UTC)"' in spec for spec in specs)


def test_unknown_report_parameter_or_missing_log_fail_clearly(tmp_path, fixture_log):
    with pytest.raises(reports.ReportError, match="unknown report weekly"):
        reports.run("weekly", fixture_log, tmp_path)
    with pytest.raises(reports.ReportError, match="unknown parameter colour for spend"):
        reports.run("spend", fixture_log, tmp_path, {"colour": "red"})
    with pytest.raises(reports.ReportError, match=f"route log {tmp_path / 'nope'}: no such directory"):
        reports.run("all", tmp_path / "nope", tmp_path)
    assert not list(tmp_path.glob("*.html"))


def test_parse_value_types_like_papermill():
    assert [reports.parse_value(v) for v in ("None", "true", "False", "12", "2.5", "2026-11-01", "team")] == [
        None, True, False, 12, 2.5, "2026-11-01", "team"]


def test_names_and_declared_parameters():
    assert reports.names("all") == ["spend", "latency", "quality", "what-if", "readiness", "research"]
    assert reports.names(["quality", "spend", "quality"]) == ["quality", "spend"]
    declared = reports.notebook_parameters("what-if")
    assert {"log_dir", "since", "until", "policy_path", "out_dir", "scenarios_path", "volume", "interactive"} <= set(
        declared)
    assert declared["interactive"] == "True"  # (as source text) the runner turns widgets off; JupyterLab keeps them


def test_every_assignment_of_a_parameters_cell_is_a_declared_parameter():
    """papermill skips (with a warning) a parameters line it cannot parse, e.g. a comment holding "=": that
    parameter could then not be set by `routekit report -p` and printed a warning on every run."""
    import ast

    for name in reports.names("all"):
        nb = json.loads((resources.notebook_dir() / f"{reports.REPORTS[name][0]}.ipynb").read_text())
        cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
        assigned = {t.id for node in ast.parse("".join(cell["source"])).body if isinstance(node, ast.Assign)
                    for t in node.targets}
        assert assigned == set(reports.notebook_parameters(name)), name


def test_cli_help_teaches_and_bad_input_exits_2(tmp_path):
    helped = subprocess.run([sys.executable, "-m", "toolkit.cli", "report", "--help"], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert helped.returncode == 0 and "routekit report all --log routelog" in helped.stdout
    failed = subprocess.run([sys.executable, "-m", "toolkit.cli", "report", "spend", "--log", str(tmp_path / "none")],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    # bad input is exit 2 like every command's (it was 1, the code of a notebook that failed)
    assert failed.returncode == 2 and "no such directory" in failed.stderr
    assert "--jobs N" in helped.stdout and "the number of cores" in helped.stdout
    assert "1 a notebook failed in a cell" in helped.stdout and "2 bad input" in helped.stdout
    zero = subprocess.run([sys.executable, "-m", "toolkit.cli", "report", "spend", "--jobs", "0"], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert zero.returncode == 2 and "'0' is not a whole number of notebooks at least 1" in zero.stderr


def test_a_failing_notebook_is_reported_and_the_others_still_publish(fixture_log, tmp_path, monkeypatch, capsys):
    # a scenario file that does not exist: what-if fails in its cell while spend runs beside it (jobs=2); spend
    # still gets its page and the index; exit 1 (a run that failed), not 2 (bad input)
    monkeypatch.chdir(tmp_path)
    code = main(["report", "what-if", "spend", "--log", str(fixture_log), "--out", str(tmp_path), "-p",
                 "scenarios_path", str(tmp_path / "nope.yaml"), "-p", "out_dir", "charts", "--jobs", "2",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and re.search(r"^routekit report: what-if: cell \d+ failed: ScenarioError: .*nope.yaml.*\)$",
                                   err.strip()), err
    assert (tmp_path / "spend_review.html").exists() and (tmp_path / "what_if.ipynb").exists()
    # -p out_dir: PNG copies of the charts, the path taken relative to the caller's directory
    assert sorted(p.name for p in (tmp_path / "charts").glob("*.png")) == sorted(
        f"spend_{k}.png" for k in ("team", "intent", "model", "provider", "budgets", "drivers", "waste",
                                   "cost_per_success", "cache_savings"))
    assert not (tmp_path / "what_if.html").exists()
    assert 'href="spend_review.html"' in (tmp_path / "index.html").read_text()


def test_a_job_runs_its_notebooks_in_one_kernel_with_a_clean_namespace_each(fixture_log, tmp_path, monkeypatch):
    """Kernel start-up and imports are paid once per job: the next notebook runs in the same kernel process, but
    sees no name the one before it defined."""
    import nbformat

    folder = tmp_path / "notebooks"
    folder.mkdir()
    code = {"first": "import os\nleft_behind = 42\nprint(os.getpid(), 'left_behind' in dir())",
            "second": "import os\nprint(os.getpid(), 'left_behind' in dir())"}
    for name, source in code.items():
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
        nb.metadata["kernelspec"] = {"name": reports.KERNEL, "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, folder / f"{name}.ipynb")
    monkeypatch.setattr(reports, "notebook_dir", lambda: folder)
    monkeypatch.setattr(reports, "REPORTS", {name: (name, name.title()) for name in code})
    reports.run(["first", "second"], fixture_log, tmp_path / "out", progress=False, jobs=1)
    printed = {name: nbformat.read(tmp_path / "out" / f"{name}.ipynb", 4).cells[-1].outputs[0]["text"].split()
               for name in code}
    assert printed["first"][1] == "True" and printed["second"][1] == "False"
    assert printed["first"][0] == printed["second"][0]      # one kernel process


def test_a_damaged_log_still_reports_and_the_footer_names_what_was_skipped(fixture_log, report_params, tmp_path):
    """A broken Parquet copy and a torn line once made every report fail naming no file."""
    import shutil

    from tests.test_routelog_damage import damage_part

    log = tmp_path / "routelog"
    shutil.copytree(fixture_log, log, ignore=shutil.ignore_patterns("_rollups"))
    first = sorted(log.glob("date=*"))[0]
    broken = damage_part(next(first.glob("part-*.parquet")), first / "part-copy.parquet", "truncated")
    with open(sorted(log.glob("date=*"))[-1] / "routes.jsonl", "a") as f:
        f.write('{"request_id": "torn-by-a-crash", "timesta\n')
    done = reports.run("quality", log, tmp_path / "out", report_params, progress=False)
    page = done[0].html.read_text()
    footer = page[page.index('<footer class="routekit-damage"'):]
    assert "Not in these numbers:</strong> skipped 1 damaged file, 1 bad line in the route log" in footer
    assert f"<li><code>{broken}: not a readable Parquet file" in footer
    assert f"<li><code>{sorted(log.glob('date=*'))[-1] / 'routes.jsonl'}:1: not a route record" in footer
    assert "Model mismatches" in page and "No provider reported serving a model other than the one asked for." in page


def _index_rows(out: Path) -> dict[str, str]:
    """Each index row's period and headline numbers (its run time and date left out), by report title."""
    rows = re.findall(r'<tr><td><a href="[^"]*">(.*?)</a>(.*?)</td><td class="numbers">(.*?)</td>',
                      (out / "index.html").read_text(), re.S)
    return {title: " ".join(re.sub(r"<[^>]+>", " ", period + numbers).split()) for title, period, numbers in rows}


def test_one_job_at_a_time_writes_what_concurrent_jobs_wrote(written, fixture_log, report_params, tmp_path):
    """`written` ran every notebook two at a time; two of them, one at a time, give the same files and the same
    period and headline numbers in the index (the order of the list returned is the order asked, as
    test_run_all_writes_each_notebook_html_and_the_index_last checks for the concurrent run)."""
    out, _ = written
    done = reports.run(["what-if", "latency"], fixture_log, tmp_path,
                       {"policy_path": report_params["policy_path"]}, progress=False, jobs=1)
    assert [r.name for r in done] == ["what-if", "latency"]
    ours = {p.name for p in tmp_path.iterdir()}
    assert ours == {"index.html", "latency.ipynb", "latency.html", "what_if.ipynb", "what_if.html"}
    assert {p.name for p in out.iterdir() if p.name.startswith(("latency", "what_if", "what-if"))} | {
        "index.html"} == ours
    alone, together = _index_rows(tmp_path), _index_rows(out)
    assert set(alone) == {"Latency and reliability", "What if: cost projections"}
    assert all(re.search(r"\d", alone[title]) for title in alone)   # headline numbers, not an empty cell
    assert alone == {title: together[title] for title in alone}


DTYPES = {"str", "f64", "i64", "i32", "u32", "bool", "datetime[μs]", "list[str]"}   # polars' dtype row


def _cells(page: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", page, re.S)]


def test_report_tables_read_like_a_review(written):
    """great_tables, not polars' debugging repr: no shape line, no dtype row, no quoted strings; money, shares and
    latencies formatted; a long table cut with a line saying how many rows were left out and a CSV beside it."""
    out, _ = written
    pages = {p.name: p.read_text() for p in out.glob("*.html")}
    for name, page in pages.items():
        assert "shape: (" not in page, name
        cells = _cells(page)
        assert not DTYPES & set(cells), (name, DTYPES & set(cells))
        assert not [c for c in cells if c.startswith("&quot;") or c.startswith('"')], name
    spend, latency = _cells(pages["spend_review.html"]), _cells(pages["latency.html"])
    assert any(re.fullmatch(r"\$\d{1,3}(,\d{3})*\.\d{2}", c) for c in spend)          # $1,234.56
    assert any(re.fullmatch(r"-?\d+\.\d%", c) for c in spend)                           # 12.3%
    assert any(re.fullmatch(r"\d{1,3}(,\d{3})* ms", c) for c in latency)               # 1,234 ms
    gaps = pl.read_csv(out / "research-arena-gaps.csv")
    assert gaps.height > 10
    assert f"{gaps.height - 10} more rows not shown; the full table: " in pages["routing_research.html"]
    assert 'href="research-arena-gaps.csv"' in pages["routing_research.html"]


def test_index_shows_each_reports_period_and_headline_numbers(written, fixture_log):
    out, _ = written
    rows = [" ".join(re.sub(r"<[^>]+>", " ", r).split())
            for r in re.findall(r"<tr>(.*?)</tr>", (out / "index.html").read_text(), re.S)]
    days = sorted(p.name[5:] for p in fixture_log.glob("date=*"))
    period = f"{days[0]} .. {days[-1]} (14 days)"
    spend = next(r for r in rows if r.startswith("Spend review"))
    assert period in spend and re.search(r"spend \$\d[\d,]*\.\d\d", spend)
    latency = next(r for r in rows if r.startswith("Latency"))
    assert period in latency and re.search(r"p95 [\d,]+ ms", latency) and "error rate" in latency
    quality = next(r for r in rows if r.startswith("Quality"))
    assert re.search(r"degraded serves \d+", quality) and "silent downgrades (drills) 0" in quality
    assert "cheapest" in next(r for r in rows if r.startswith("What if"))
    assert "AIQ GSM8K 0.8" in next(r for r in rows if r.startswith("Routing research"))


def test_a_long_table_is_cut_with_a_note_and_its_csv(tmp_path):
    from toolkit import tables

    frame = pl.DataFrame({"model": [f"m{i}" for i in range(30)], "cost_usd": [1234.5 - i for i in range(30)],
                          "error_rate": [0.123] * 30, "p95_ms": [1234.4] * 30, "requests": [12345] * 30})
    page = tables.show(frame, "models", csv_dir=tmp_path, max_rows=20).as_raw_html()
    cells = _cells(page)
    assert "$1,234.50" in cells and "12.3%" in cells and "1,234 ms" in cells and "12,345" in cells
    assert "m19" in cells and "m20" not in cells
    assert "10 more rows not shown" in page and 'href="models.csv"' in page
    assert pl.read_csv(tmp_path / "models.csv").equals(frame)
    assert [c for c in cells if c in ("cost", "error rate", "p95", "requests")] == ["cost", "error rate", "p95",
                                                                                      "requests"]


def test_a_dashboard_kernels_imports_leave_out_litellm_and_the_iri_grammar():
    """What every report notebook imports: no litellm (seconds), and altair without jsonschema's IRI checker
    (rfc3987_syntax compiles a grammar for a second on import; the Vega-Lite schema has no IRI format), which
    stays importable afterwards for whoever needs it."""
    code = ("import sys; from toolkit import charts, dashboards, findings, tables, reports; "
            "print(sorted(m for m in ('litellm', 'rfc3987_syntax', 'jsonschema') if m in sys.modules)); "
            "import rfc3987_syntax; print(rfc3987_syntax.is_valid_syntax('iri', 'https://example.com/ä'))")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split("\n")[:2] == ["['jsonschema']", "True"]
