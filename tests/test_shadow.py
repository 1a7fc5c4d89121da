"""Shadow comparisons from real shadow records written by the Router against the simulator."""
from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pytest

from toolkit.evals import LLMJudge, bootstrap_ci, compare_shadow
from toolkit.router import Router

from .conftest import ROOT, read_records

TRIAGE = "Customer says: my invoice was charged twice. Label it."


def shadowed_policy(policy_copy, candidate: str, store: bool = False):
    text = policy_copy.read_text()
    old = "owner: support-platform}"
    assert old in text, "the demo policy's triage route changed; update this test"
    extra = f", shadow: {candidate}, shadow_rate: 1.0" + (", store_prompts: true" if store else "")
    policy_copy.write_text(text.replace(old, "owner: support-platform" + extra + "}"))
    return policy_copy


def traffic(policy, log_dir, n: int) -> Router:
    router = Router(policy, log=log_dir, seed=1)
    for k in range(n):
        router.complete("triage", f"{TRIAGE} #{k}", team="support")
    router.drain()
    return router


def test_agreement_verdicts_and_deltas_from_shadow_records(sim_env, policy_copy, tmp_path):
    policy = shadowed_policy(policy_copy, "ollama-llama")   # a self-hosted model: cheaper than any vendor's
    sim_env.state.set("gpt-4o-mini", {"answer": "billing"})
    sim_env.state.set("llama3.2", {"answer": "billing"})
    agree_log = tmp_path / "agree"
    traffic(policy, agree_log, 35)
    [c] = compare_shadow(agree_log)
    assert (c.intent, c.production, c.candidate, c.pairs, c.metric) == ("triage", "fast-openai", "ollama-llama", 35,
                                                                      "agreement")
    assert c.value == 1.0 and (c.ci_low, c.ci_high) == (1.0, 1.0)
    records = read_records(agree_log)
    shadows = [r for r in records if r["shadow_of"]]
    prod = [r for r in records if not r["shadow_of"]]
    assert len(shadows) == len(prod) == 35 and {s["shadow_of"] for s in shadows} == {p["request_id"] for p in prod}
    mean = lambda rs: sum(r["cost_usd"] for r in rs) / len(rs)  # noqa: E731
    assert c.cost_delta_pct == pytest.approx((mean(shadows) - mean(prod)) / mean(prod) * 100)
    assert c.cost_delta_pct < 0   # the Ollama model costs nothing per token
    assert c.verdict == "switch"

    sim_env.state.set("llama3.2", {"answer": "bug"})
    differ_log = tmp_path / "differ"
    traffic(policy, differ_log, 35)
    [d] = compare_shadow(differ_log)
    assert d.value == 0.0 and d.verdict == "do not switch" and "below 0.90" in d.reason

    few_log = tmp_path / "few"
    traffic(policy, few_log, 10)
    [f] = compare_shadow(few_log)
    assert f.verdict == "not enough data" and "10 scored pairs < 30" in f.reason
    assert compare_shadow(few_log, intent="code") == []

    r = subprocess.run([sys.executable, "-m", "toolkit.cli", "eval", "shadow", "--log", str(agree_log), "--json"],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["verdict"] == "switch"


def test_win_rate_from_scores_dearer_but_better_and_failures_count_as_losses(sim_env, policy_copy, tmp_path):
    policy = shadowed_policy(policy_copy, "mid-anthropic")   # claude-haiku-4-5: dearer than gpt-4o-mini
    log = tmp_path / "log"
    traffic(policy, log, 32)
    records = read_records(log)
    scores = pl.DataFrame({"request_id": [r["request_id"] for r in records],
                           "score": [1.0 if r["shadow_of"] else 0.0 for r in records]})
    [c] = compare_shadow(log, scores=scores)
    assert c.metric == "win_rate" and c.value == 1.0 and c.cost_delta_pct > 0
    assert c.verdict == "switch" and c.reason.startswith("better")
    # same scores for both: as good, but dearer
    [t] = compare_shadow(log, scores=scores.with_columns(score=pl.lit(1.0)))
    assert t.value == 0.5 and t.verdict == "do not switch" and "as good" in t.reason

    sim_env.state.set("claude-haiku-4-5", {"error_rate": 1.0, "error_status": 503})
    failing = tmp_path / "failing"
    traffic(policy, failing, 32)
    [f] = compare_shadow(failing)
    assert f.candidate_failures == 32 and f.value == 0.0 and f.verdict == "do not switch"


def test_pairwise_judge_routed_through_the_toolkit(sim_env, policy_copy, tmp_path):
    policy = shadowed_policy(policy_copy, "ollama-llama", store=True)
    sim_env.state.set("gemini-3.1-pro-preview", {"answer": "WINNER: TIE\nBoth say the same."})
    log = tmp_path / "log"
    traffic(policy, log, 31)
    judge_log = tmp_path / "judge-log"
    [c] = compare_shadow(log, judge=LLMJudge(Router(policy_copy, log=judge_log)))
    assert c.metric == "win_rate" and c.value == 0.5 and c.unjudged == 0
    assert c.verdict == "switch"        # ties: not worse by more than the margin, and cheaper
    judged = read_records(judge_log)
    assert len(judged) == 31 and {r["team"] for r in judged} == {"eval-judge"}
    assert all(r["cost_usd"] > 0 for r in judged)


def test_bootstrap_is_seeded_and_sane():
    xs = [1.0] * 30 + [0.0] * 10
    assert bootstrap_ci(xs, seed=3) == bootstrap_ci(xs, seed=3)
    lo, hi = bootstrap_ci(xs, seed=3)
    assert lo < 0.75 < hi and 0.55 < lo and hi < 0.9
    assert bootstrap_ci([1.0] * 5) == (1.0, 1.0)
