"""routekit as a user gets it: the wheel installed into a fresh virtual environment (pip's cache reused, no network
but the package index), run from an empty directory with no checkout in sight.

First the core install (no extras): product code routes a call through the simulator and prices it; `routekit
estimate` equals the price map's arithmetic and the checkout's answer; `routekit report all` names the missing
extra. Then with the notebooks extra, the README's five commands from an empty directory.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import DATA, ROOT

pytestmark = pytest.mark.slow

ESTIMATE = ["estimate", "--model", "gpt-4o-mini", "--requests-per-day", "10000", "--input-tokens", "500",
            "--output-tokens", "200", "--json"]

ROUTE_AND_PRICE = """
import json, os, sys
from toolkit import PriceBook, Router, SimServer, Usage, resources
with SimServer() as sim:
    os.environ["ROUTEKIT_SIM_URL"] = sim.url
    router = Router(resources.data_file("policy.demo.yaml"), log="routelog")
    r = router.complete("triage", "Is this invoice overdue?", team="product")
book = PriceBook.load()
expected = sum(book.rates_for(router.policy.models[a.alias]).cost(Usage(a.input_tokens, a.output_tokens,
               a.cache_read_tokens, a.cache_write_tokens, a.reasoning_tokens))[0] for a in r.attempts)
print(json.dumps({"served": r.served_model, "cost": r.cost_usd, "expected": expected,
                  "toolkit": __import__("toolkit").__file__, "modules": sorted(m for m in sys.modules
                  if m.split(".")[0] in ("altair", "papermill", "jupyterlab", "duckdb", "redis", "pyspark"))}))
"""


@pytest.fixture(scope="module")
def venv(built_wheel, tmp_path_factory) -> dict:
    """A fresh venv holding the wheel and its core dependencies only; ``work``: an empty directory."""
    root = tmp_path_factory.mktemp("install")
    bin_ = root / "venv" / "bin"
    work = root / "work"
    work.mkdir()
    # nothing of the checkout: no PYTHONPATH, no ROUTEKIT_* paths, a HOME of its own (kernels, caches; pip's cache is
    # found through PIP_CACHE_DIR or, by default, the real HOME's)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROUTEKIT_", "PYTHON", "JUPYTER", "VIRTUAL_ENV"))}
    env.update(HOME=str(root / "home"), PATH=f"{bin_}{os.pathsep}{env.get('PATH', '')}",
               LITELLM_LOCAL_MODEL_COST_MAP="True",
               PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip"))
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=300, env=env)
    pip = subprocess.run([str(bin_ / "python"), "-m", "pip", "install", "-q", str(built_wheel)], env=env, cwd=work,
                         capture_output=True, text=True, timeout=1200)
    assert pip.returncode == 0, pip.stderr[-3000:]
    return {"bin": bin_, "work": work, "env": env, "wheel": built_wheel}


def run(venv: dict, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=venv["work"], env=venv["env"], capture_output=True, text=True,
                          timeout=timeout)


def test_core_install_routes_and_prices_and_names_the_missing_extra(venv):
    routed = run(venv, str(venv["bin"] / "python"), "-c", ROUTE_AND_PRICE)
    assert routed.returncode == 0, routed.stderr[-3000:]
    r = json.loads(routed.stdout.splitlines()[-1])
    assert r["toolkit"].startswith(str(venv["bin"].parent)) and "site-packages" in r["toolkit"]
    assert r["cost"] > 0 and r["cost"] == pytest.approx(r["expected"], rel=1e-12)
    assert r["modules"] == []                         # no optional dependency was needed (or importable)

    # the estimate: the price map's arithmetic, and the same answer as from the checkout
    snapshot = json.loads(sorted((DATA / "prices").glob("*.json"))[-1].read_bytes())["gpt-4o-mini"]
    per_request = 500 * snapshot["input_cost_per_token"] + 200 * snapshot["output_cost_per_token"]
    installed = run(venv, "routekit", *ESTIMATE)
    assert installed.returncode == 0, installed.stderr
    checkout = subprocess.run([sys.executable, "-m", "toolkit.cli", *ESTIMATE], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
    estimate = json.loads(installed.stdout)
    assert estimate == json.loads(checkout.stdout)
    assert estimate["rows"][0]["cost_per_request_usd"] == pytest.approx(per_request, rel=1e-12)
    assert estimate["scenarios"][0]["monthly_usd"] == pytest.approx(per_request * 10000 * 30, rel=1e-12)

    synth = run(venv, "routekit", "log", "synth", "--days", "3", "--requests", "3000", "--log", "synthlog")
    assert synth.returncode == 0, synth.stderr[-2000:]
    report = run(venv, "routekit", "report", "all", "--log", "synthlog")
    assert report.returncode == 2
    assert report.stderr.strip().splitlines()[-1] == (
        "routekit report: papermill is not installed: it comes with the notebooks extra "
        "(pip install 'routekit[notebooks]')")


def test_with_the_notebooks_extra_the_readme_commands_work_from_an_empty_directory(venv):
    pip = run(venv, str(venv["bin"] / "python"), "-m", "pip", "install", "-q", f"{venv['wheel']}[notebooks]",
              timeout=1800)
    assert pip.returncode == 0, pip.stderr[-3000:]
    empty = venv["work"] / "fresh"
    empty.mkdir()
    venv = {**venv, "work": empty}
    for args in (ESTIMATE[:-1], ["policy", "check", "data/policy.example.yaml"],
                 ["log", "synth", "--days", "3", "--requests", "3000"],
                 ["report", "all", "--log", "routelog", "--no-progress"], ["notebooks", "./nb"]):
        done = run(venv, "routekit", *args)
        assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-3000:])
    assert sorted(p.name for p in (empty / "reports").glob("*.html")) == [
        "index.html", "latency.html", "quality.html", "readiness.html", "routing_research.html", "spend_review.html",
        "what_if.html"]
    # the research page replays without the research extra and says what training needs
    assert "No trained routers here" in (page := (empty / "reports" / "routing_research.html").read_text())
    assert "routekit[research]" in page
    assert sorted(p.name for p in (empty / "nb").iterdir()) == [
        "latency.ipynb", "policy.example.yaml", "quality.ipynb", "readiness.ipynb", "routing_research.ipynb",
        "spend_review.ipynb", "what_if.ipynb"]
    assert not list(Path(empty).glob("data"))          # everything came from the installed package
