"""What the package ships and finds by itself: price snapshots, policies, prompt sets, scenarios, drills, outcome
tables and notebooks, inside the wheel and from any working directory (toolkit.resources)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from toolkit import resources
from toolkit.costs import PriceBook

from .conftest import DATA, ROOT

SHIPPED = ["prices/litellm-1.106.2-2026-11-23.json", "policy.demo.yaml", "policy.example.yaml",
           "prompts/triage.jsonl", "prompts/gsm8k.jsonl", "scenarios/three-approaches.yaml", "drills/primary-down.yaml",
           "drills/brownout.yaml", "outcomes/routellm-gsm8k.csv", "outcomes/routerarena.csv",
           "outcomes/routerarena/LICENSE"]
NOTEBOOKS = ["latency", "quality", "readiness", "routing_research", "spend_review", "what_if"]


def routekit(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, from ``cwd`` (the package imported from this checkout)."""
    return subprocess.run([sys.executable, "-m", "toolkit.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def test_the_wheel_holds_the_data_and_the_notebooks(built_wheel):
    names = set(zipfile.ZipFile(built_wheel).namelist())
    for name in SHIPPED:
        assert f"toolkit/data/{name}" in names, name
    assert {f"toolkit/notebooks/{n}.ipynb" for n in NOTEBOOKS} <= names
    # the same bytes as the repository's files (one source of truth), and not the raw outcome dumps
    with zipfile.ZipFile(built_wheel) as z:
        assert z.read("toolkit/data/policy.demo.yaml") == (DATA / "policy.demo.yaml").read_bytes()
    # the prompt texts the learned routers train on ship; the raw per-model dumps under outcomes/<dataset>/ do not
    assert {f"toolkit/data/outcomes/{d}.prompts.jsonl" for d in ("routellm-gsm8k", "routerarena")} <= names
    assert not [n for n in names if "/outcomes/" in n and n.count("/") > 3 and not n.endswith("LICENSE")]


def test_resources_find_the_shipped_files_and_honour_ROUTEKIT_DATA(tmp_path, monkeypatch):
    assert resources.data_file("policy.demo.yaml").read_bytes() == (DATA / "policy.demo.yaml").read_bytes()
    assert sorted(p.stem for p in resources.notebook_dir().glob("*.ipynb")) == NOTEBOOKS
    assert PriceBook.load().version.startswith("litellm-1.106.2-2026-11-23@")
    # another data directory of the same layout
    (tmp_path / "prices").mkdir()
    (tmp_path / "prices" / "mine-2030-01-01.json").write_text(json.dumps({"m": {"input_cost_per_token": 1e-6}}))
    monkeypatch.setenv("ROUTEKIT_DATA", str(tmp_path))
    assert PriceBook.load().version.startswith("mine-2030-01-01@")
    monkeypatch.setenv("ROUTEKIT_PRICES", str(DATA / "prices" / "litellm-1.106.2-2026-11-23.json"))
    assert PriceBook.load().version.startswith("litellm-1.106.2")


def test_find_prefers_the_users_file_then_the_shipped_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resources.find("data/policy.example.yaml") == resources.data_file("policy.example.yaml")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "policy.example.yaml").write_text("mine")
    assert resources.find("data/policy.example.yaml") == Path("data/policy.example.yaml")   # the user's own
    assert resources.find("data/nope.yaml") == Path("data/nope.yaml")                     # reported as missing
    assert resources.find("policy.yaml") == Path("policy.yaml")


def test_readme_commands_work_from_any_directory(tmp_path):
    """Defaults and data/... paths that used to be relative to the checkout resolve to the shipped files."""
    log = tmp_path / "log"
    synth = routekit("log", "synth", "--days", "2", "--requests", "300", "--log", str(log), cwd=tmp_path)
    assert synth.returncode == 0, synth.stderr
    assert (log / "_synth_truth.json").exists()
    check = routekit("policy", "check", "data/policy.example.yaml", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    est = routekit("estimate", "--scenarios", "data/scenarios/three-approaches.yaml", "--json", cwd=tmp_path)
    assert est.returncode == 0, est.stderr
    frontier = routekit("research", "frontier", "data/outcomes/routellm-gsm8k.csv", "--json", cwd=tmp_path)
    assert frontier.returncode == 0 and json.loads(frontier.stdout)["aiq"] > 0, frontier.stderr
    helped = routekit("route", "--help", cwd=tmp_path)
    assert "$ROUTEKIT_POLICY or the shipped demo policy" in " ".join(helped.stdout.split())
    # a file that exists nowhere is still named in the error
    missing = routekit("policy", "check", "data/policy.mine.yaml", cwd=tmp_path)
    assert missing.returncode != 0 and "data/policy.mine.yaml" in missing.stdout + missing.stderr


def test_notebooks_command_copies_notebooks_and_an_example_policy(tmp_path):
    done = routekit("notebooks", "nb", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    nb = tmp_path / "nb"
    assert sorted(p.stem for p in nb.glob("*.ipynb")) == NOTEBOOKS
    assert (nb / "policy.example.yaml").read_bytes() == (DATA / "policy.example.yaml").read_bytes()
    assert "jupyter lab" in done.stdout
    # nothing of the user's is overwritten unless asked
    (nb / "what_if.ipynb").write_text("{}")
    again = routekit("notebooks", "nb", cwd=tmp_path)
    assert again.returncode == 1 and "what_if.ipynb" in again.stderr and "--force" in again.stderr
    assert (nb / "what_if.ipynb").read_text() == "{}"
    assert routekit("notebooks", "nb", "--force", cwd=tmp_path).returncode == 0
    assert json.loads((nb / "what_if.ipynb").read_text())["cells"]


def test_a_missing_extra_is_named_in_one_line(monkeypatch, tmp_path, capsys):
    from toolkit import cli

    monkeypatch.setitem(sys.modules, "papermill", None)      # as if routekit[notebooks] were not installed
    assert cli.main(["report", "all", "--log", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("routekit report: papermill is not installed: it comes with the notebooks extra "
                   "(pip install 'routekit[notebooks]')")
