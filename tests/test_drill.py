"""Fallback drills against the real simulator (and the real local model for private intents)."""
from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pytest

from toolkit.drill import DrillError, _classify, interleave, load_drill, run_drill, sim_served, wire_name
from toolkit.evals import PromptItem, load_prompts
from toolkit.policy import load_policy

from .conftest import DATA, ROOT

DRILLS = DATA / "drills"
PROMPTS = DATA / "prompts"
ROUTED_SETS = ["triage", "extraction", "synthesis", "code", "review"]


def test_primary_down_for_half_the_run(sim_env, local_model, policy_copy, tmp_path, monkeypatch):
    """The must-show drill: every intent's primary down for half the run, the real local model serving
    the private intents: zero silent downgrades, zero boundary violations, every degraded serve flagged."""
    monkeypatch.setenv("ROUTEKIT_LOCAL_URL", local_model)
    private = load_prompts(PROMPTS / "private.jsonl")
    # one prompt per private intent: the real model takes seconds per answer on a busy 2-core machine
    prompts = load_prompts([PROMPTS / f"{n}.jsonl" for n in ROUTED_SETS]) + [
        next(p for p in private if p.intent == "private"), next(p for p in private if p.intent == "private-chat")]
    out = tmp_path / "drill"
    report = run_drill(policy_copy, DRILLS / "primary-down.yaml", prompts, sim_url=sim_env.url, out_dir=out,
                       log=tmp_path / "log", progress=False)
    s, req = report.summary, report.requests
    n = len(prompts) * 2
    assert s["requests"] == req.height == n
    assert report.ok and s["ok"]
    assert s["totals"]["silent_downgrades"] == 0
    assert s["totals"]["boundary_violations_records"] == s["totals"]["boundary_violations_sim"] == 0
    # every serve below the floor carries the flag (computed from the policy's tiers, not the Router's flag)
    assert req.filter(pl.col("below_floor"))["degraded"].all() if req["below_floor"].any() else True
    assert s["totals"]["degraded"] == s["totals"]["below_floor"]
    assert [a["step"] for a in s["steps_applied"]] == ["primaries=True set {\"down\": true}", "reset"]
    assert [a["before_request"] for a in s["steps_applied"]] == [0, n // 2]
    assert s["not_controllable"] == ["local", "local-chat"]

    policy = load_policy(policy_copy)
    primaries = {i: policy.chain(i)[0] for i in policy.routes}
    first_half = req.filter(pl.col("request") < n // 2)
    for r in first_half.iter_rows(named=True):
        primary = primaries[r["intent"]]
        if sim_served(policy.models[primary], sim_env.url):
            assert r["served_alias"] != primary, r          # it was down: never served by it
    assert first_half["fallback_used"].sum() > 0
    # private intents stay on local models and are really served by the real local model
    private = req.filter(pl.col("needs_local"))
    assert private.height == 4 and set(private["served_alias"].drop_nulls()) <= {"local", "local-chat"}
    assert private["outcome"].to_list().count("served") >= 2
    # the simulator's own request count equals the attempts the route records show on simulator models
    sim_attempts = sum(1 for r in req.iter_rows(named=True) for a in (r["attempts"] or "").split(",")
                       if a and sim_served(policy.models[a], sim_env.url))
    assert s["simulator_requests"] == sim_attempts > 0
    # every intent appears in both halves (requests are interleaved)
    assert set(first_half["intent"]) == set(req.filter(pl.col("request") >= n // 2)["intent"]) == set(
        p.intent for p in prompts)
    saved = json.loads((out / "drill_report.json").read_text())
    assert saved["totals"] == s["totals"]
    assert pl.read_parquet(out / "drill_requests.parquet").height == n
    assert set(pl.read_parquet(out / "drill_intents.parquet")["intent"]) == {p.intent for p in prompts}


def test_brownout_degrades_with_the_flag_and_fails_loudly(sim_env, policy_copy, tmp_path):
    prompts = load_prompts([PROMPTS / "extraction.jsonl", PROMPTS / "synthesis.jsonl"])
    report = run_drill(policy_copy, DRILLS / "brownout.yaml", prompts, sim_url=sim_env.url, log=tmp_path / "log",
                       out_dir=tmp_path / "quality" / "brownout", progress=False)
    by_intent = {r["intent"]: r for r in report.intents.iter_rows(named=True)}
    ext = by_intent["extraction"]
    # openai rate-limited, bedrock empty: the tier-1 regex tool serves, below the floor of 2, flagged
    assert ext["served"] == ext["degraded"] == ext["below_floor"] == 8 and ext["silent_downgrades"] == 0
    assert set(report.requests.filter(pl.col("intent") == "extraction")["served_alias"]) == {"regex-extract"}
    assert by_intent["synthesis"]["failed_loudly"] >= 1
    assert report.ok
    # when it ran, for `routekit readiness`: the intents it covered pass the drill check, the others do not
    s = report.summary
    assert s["started_at"] <= s["finished_at"] and s["finished_at"].endswith("Z")
    from toolkit.playbook import readiness

    drilled = {c.intent: c.ok for c in readiness(load_policy(policy_copy), quality=[tmp_path / "quality"]).checks
               if c.check == "drill"}
    assert drilled["extraction"] and drilled["synthesis"] and not drilled["triage"]


def test_boundary_violation_is_caught_by_records_and_simulator(sim_env, policy_copy, tmp_path):
    """A policy edit that lets private requests fall back to a vendor: the drill exits 1.  (An undeclared label is
    refused before any call, so the edit declares "private" a vendor class.)"""
    text = policy_copy.read_text()
    old = "{primary: local, fallbacks: [], boundary: local,"
    assert old in text, "the demo policy's private route changed; update this test"
    policy_copy.write_text(text.replace(old, "{primary: local, fallbacks: [fast-openai],")
                           + "\nsensitivity: {private: vendor}\n")
    prompts = tmp_path / "private.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{k}", "intent": "private", "prompt": f"salary of employee {k}",
                                           "expected": "x", "check": "contains", "sensitivity": "private",
                                           "local_only": True}) + "\n" for k in range(2)))
    r = subprocess.run([sys.executable, "-m", "toolkit.cli", "drill", "--policy", str(policy_copy),
                        "--scenario", str(DRILLS / "primary-down.yaml"), "--prompts", str(prompts),
                        "--sim-url", sim_env.url, "--out", str(tmp_path / "out"), "--log", str(tmp_path / "log"),
                        "--no-progress"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "BOUNDARY VIOLATION" in r.stdout and "FAIL" in r.stdout
    totals = json.loads((tmp_path / "out" / "drill_report.json").read_text())["totals"]
    # 2 prompts x repeat 2; local is down, so each went to fast-openai: seen in the records and by the simulator
    assert totals["boundary_violations_records"] == totals["boundary_violations_sim"] == 4



def test_a_label_the_policy_does_not_declare_stops_the_drill_before_any_request(sim_env, policy_copy, tmp_path):
    # before: the drill ran until that prompt, then the Router's error escaped (no file named)
    prompts = tmp_path / "labelled.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{k}", "intent": "triage", "prompt": f"spam {k}?",
                                           "expected": "no", "check": "contains",
                                           **({"sensitivity": "privat"} if k else {})}) + "\n" for k in range(2)))
    with pytest.raises(DrillError) as e:
        run_drill(policy_copy, DRILLS / "primary-down.yaml", load_prompts(prompts), sim_url=sim_env.url,
                  out_dir=tmp_path / "out", progress=False)
    assert f"{prompts}:2: unknown sensitivity 'privat'" in str(e.value)
    assert sum(sim_env.state.stats.values()) == 0 and not (tmp_path / "out").exists()


def test_silent_downgrade_detector_uses_policy_tiers(policy_copy):
    policy = load_policy(policy_copy)
    item = PromptItem("x", "extraction", ({"role": "user", "content": "q"},))
    row = {"served_alias": "regex-extract", "fallback_used": True, "degraded_flag": False, "error": None,
           "request_id": "r", "cost_usd": 0.0, "latency_ms": 1.0}
    silent = _classify(policy, item, 0, 1, False, ["mid-openai", "regex-extract"], {}, row)
    assert silent["below_floor"] and silent["silent_downgrade"]
    flagged = _classify(policy, item, 0, 1, False, ["regex-extract"], {}, {**row, "degraded_flag": True})
    assert flagged["below_floor"] and not flagged["silent_downgrade"]
    ok = _classify(policy, item, 0, 1, False, ["mid-bedrock"], {}, {**row, "served_alias": "mid-bedrock"})
    assert not ok["below_floor"] and not ok["silent_downgrade"]


def test_scenario_resolution_and_errors(policy_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTEKIT_SIM_URL", "http://127.0.0.1:1")
    policy = load_policy(policy_copy)
    sc = load_drill(DRILLS / "brownout.yaml", policy, "http://127.0.0.1:1")
    openai = {wire_name(m) for m in policy.models.values() if not m.is_tool and m.effective_vendor == "openai"
              and sim_served(m, "http://127.0.0.1:1")}
    assert openai and set(sc.steps[0].models) == openai and sc.steps[-1].reset and sc.steps[-1].at == 0.75
    assert set(sc.not_controllable) == {"local", "local-chat"}   # openai/ prefix, but served by llama.cpp
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n"
                   "  - {at: 0.0, alias: nope, set: {down: true}}\n"
                   "  - {at: 1.5, model: x, set: {down: true}}\n"
                   "  - {at: 0.2, vendor: openai, set: {dwn: true}}\n"
                   "  - {at: 0.3, reset: true, model: x}\n"
                   "  - {at: 0.4, model: x}\n"
                   "repeat: 0\n")
    with pytest.raises(DrillError) as e:
        load_drill(bad, policy, "http://127.0.0.1:1")
    msg = str(e.value)
    for line, what in [(2, "unknown model alias 'nope'"), (3, "at: a fraction"), (4, "unknown behaviour keys"),
                       (5, "a reset step takes no selector"), (6, "give one selector")]:
        assert f"{bad}:{line}: steps[{line - 2}]: " in msg and what in msg, (line, what)
    assert "repeat: must be a positive integer" in msg


def test_interleave_spreads_each_intent_over_the_run():
    items = [PromptItem(f"{i}{k}", i, ()) for i, n in (("a", 6), ("b", 2)) for k in range(n)]
    order = [x.intent for x in interleave(items)]
    assert order.count("b") == 2 and order.index("b") < 4 and len(order) - 1 - order[::-1].index("b") >= 4
    assert len(interleave(items, repeat=3)) == 24
