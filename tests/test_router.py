"""Routed calls through real litellm HTTP calls to the simulator."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest

from toolkit.router import NoEligibleRoute, Router, UnknownIntent

from .conftest import read_records


@pytest.fixture
def router(sim_env, policy_copy, log_dir):
    return Router(policy_copy, log=log_dir)


def test_primary_serves(router, sim_env, log_dir):
    r = router.complete("triage", "Is this spam?", team="support")
    assert r.served_model == "fast-openai" and not r.fallback_used and not r.degraded
    assert r.text.startswith("[gpt-4o-mini]")
    assert len(r.attempts) == 1 and r.attempts[0].outcome == "ok"
    assert r.cost_usd and r.cost_usd > 0
    [rec] = read_records(log_dir)
    assert rec["served_alias"] == "fast-openai" and rec["team"] == "support"
    assert rec["gen_ai.response.model"] == "gpt-4o-mini"
    assert rec["prompt"] is None and "Is this spam" not in json.dumps(rec)


def test_primary_down_falls_back_with_two_attempts(router, sim_env, log_dir):
    sim_env.state.set("claude-sonnet-4-6", {"down": True})
    r = router.complete("synthesis", "Summarise the week.")
    assert r.served_model == "strong-openai" and r.fallback_used and not r.degraded
    assert [a.outcome for a in r.attempts] == ["connection", "ok"]
    assert r.attempts[0].retryable is True
    [rec] = read_records(log_dir)
    assert rec["fallback_used"] is True and rec["attempt_count"] == 2 and rec["failed_attempt_count"] == 1
    assert sim_env.state.stats[("anthropic", "claude-sonnet-4-6")] == 1  # no hidden SDK retries


def test_fallback_below_floor_fails_loudly(router, sim_env, log_dir):
    for m in ("claude-sonnet-4-6", "gpt-4.1"):
        sim_env.state.set(m, {"error_rate": 1.0, "error_status": 503})
    with pytest.raises(NoEligibleRoute) as e:
        router.complete("synthesis", "Summarise the week.")
    msg = str(e.value)
    assert "min_tier 3" in msg and "mid-anthropic: below_floor (tier 2 < min_tier 3)" in msg
    assert sim_env.state.stats.get(("anthropic", "claude-haiku-4-5"), 0) == 0  # never silently served
    [rec] = read_records(log_dir)
    assert rec["outcome"] == "failed" and rec["served_alias"] is None and not rec["degraded"]


def test_cli_below_floor_nonzero_exit(sim_env, policy_copy, tmp_path):
    for m in ("claude-sonnet-4-6", "gpt-4.1"):
        sim_env.state.set(m, {"down": True})
    r = subprocess.run([sys.executable, "-m", "toolkit.cli", "route", "--policy", str(policy_copy),
                        "--log", str(tmp_path / "log"), "--intent", "synthesis", "hello"],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "min_tier 3" in r.stderr and "below_floor" in r.stderr and "Traceback" not in r.stderr


def test_cli_json_result(sim_env, policy_copy, tmp_path):
    r = subprocess.run([sys.executable, "-m", "toolkit.cli", "route", "--policy", str(policy_copy), "--json",
                        "--log", str(tmp_path / "log"), "--intent", "code", "dedupe a list"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {"text", "served_model", "fallback_used", "degraded", "attempts", "skipped", "cost_usd"} <= set(out)
    assert out["served_model"] == "strong-openai"


def test_degrade_only_where_allowed_and_flagged(router, sim_env, log_dir):
    sim_env.state.set("gpt-4.1-mini", {"error_rate": 1.0, "error_status": 429, "retry_after_s": 30})
    sim_env.state.set("anthropic.claude-3-5-haiku-20241022-v1:0", {"error_rate": 1.0, "error_status": 500})
    r = router.complete("extraction", "Invoice from a@b.example dated 2026-01-02 total $5.00")
    assert r.served_model == "regex-extract" and r.degraded and r.fallback_used
    assert json.loads(r.text)["emails"] == ["a@b.example"]
    assert [a.outcome for a in r.attempts] == ["rate_limited", "server_error", "ok"]
    assert r.attempts[0].retry_after_s == 30
    assert read_records(log_dir)[0]["degraded"] is True


def test_local_boundary_never_reaches_a_vendor(router, sim_env, log_dir):
    # ROUTEKIT_LOCAL_URL points at a closed port: the local model is down.
    with pytest.raises(NoEligibleRoute):
        router.complete("private", "patient record 4411", sensitivity="private")
    with pytest.raises(NoEligibleRoute) as e:
        router.complete("triage", "patient record 4411", sensitivity="private")
    assert all(s.reason == "boundary" for s in e.value.skipped)
    assert sim_env.state.stats == {} or sum(sim_env.state.stats.values()) == 0


def test_empty_answer_moves_on(router, sim_env):
    sim_env.state.set("gpt-4o-mini", {"empty": True})
    r = router.complete("triage", "hello")
    assert r.attempts[0].outcome == "empty" and r.served_model == "fast-google"


def test_kill_switch_seen_without_restart(router, sim_env, policy_copy):
    from toolkit.overrides import Overrides

    assert router.complete("triage", "x").served_model == "fast-openai"
    Overrides(router.policy.overrides_path).disable("fast-openai", "incident 12", 60, by="oncall")
    r = router.complete("triage", "x")
    assert r.served_model == "fast-google"
    assert r.skipped[0].reason == "disabled" and "incident 12" in r.skipped[0].detail
    Overrides(router.policy.overrides_path).disable("triage", "whole route off")
    with pytest.raises(NoEligibleRoute, match="whole route off"):
        router.complete("triage", "x")
    Overrides(router.policy.overrides_path).enable("triage")
    Overrides(router.policy.overrides_path).enable("fast-openai")
    assert router.complete("triage", "x").served_model == "fast-openai"


def test_kill_switch_cli_and_expiry(sim_env, policy_copy):
    run = lambda *a: subprocess.run([sys.executable, "-m", "toolkit.cli", *a, "--policy", str(policy_copy)],  # noqa: E731
                                    capture_output=True, text=True)
    r = run("disable", "strong-openai", "--reason", "bad outputs", "--for", "1s")
    assert r.returncode == 0 and "bad outputs" in r.stdout
    assert "strong-openai" in run("status").stdout
    time.sleep(1.1)
    assert "nothing disabled" in run("status").stdout
    assert run("disable", "no-such-model", "--reason", "x").returncode == 2


def test_circuit_opens_after_repeated_failures(router, sim_env):
    sim_env.state.set("gpt-4o-mini", {"error_rate": 1.0, "error_status": 500})
    for _ in range(3):
        assert router.complete("triage", "x").served_model == "fast-google"
    before = sim_env.state.stats[("openai", "gpt-4o-mini")]
    r = router.complete("triage", "x")
    assert r.skipped[0].reason == "circuit_open"
    assert sim_env.state.stats[("openai", "gpt-4o-mini")] == before == 3


def test_short_retry_after_is_honoured_on_last_candidate(sim_env, policy_copy, log_dir):
    slept = []
    router = Router(policy_copy, log=log_dir, sleep=slept.append)
    sim_env.state.set("gemini-3.1-pro-preview", {"error_rate": 1.0, "error_status": 429, "retry_after_s": 0.5})
    for m in ("claude-sonnet-4-6", "gpt-4.1"):
        sim_env.state.set(m, {"down": True})
    with pytest.raises(NoEligibleRoute):
        router.complete("code", "x")
    assert slept == [0.5]
    assert sim_env.state.stats[("gemini", "gemini-3.1-pro-preview")] == 2


def test_unknown_intent(router):
    with pytest.raises(UnknownIntent, match="routes: agent, code"):
        router.complete("poetry", "x")


def test_async_complete_matches_sync(router, sim_env):
    sim_env.state.set("claude-sonnet-4-6", {"down": True})

    async def many():
        return await asyncio.gather(*(router.acomplete("synthesis", f"q{i}") for i in range(5)))

    results = asyncio.run(many())
    # the circuit opens after 3 failures, so later requests skip the down primary
    assert all(r.served_model == "strong-openai" and r.fallback_used for r in results)


def test_verification_escalates(sim_env, tmp_path, log_dir):
    p = tmp_path / "p.yaml"
    p.write_text(f"""
models:
  cheap: {{model: openai/gpt-4o-mini, tier: 1, api_base: "{sim_env.url}/v1"}}
  strong: {{model: openai/gpt-4.1, tier: 2, api_base: "{sim_env.url}/v1"}}
routes:
  extraction: {{primary: cheap, fallbacks: [strong], verify: {{regex: "^\\\\[gpt-4.1\\\\]"}}}}
""")
    r = Router(p, log=log_dir).complete("extraction", "x")
    assert [a.outcome for a in r.attempts] == ["verify_failed", "ok"] and r.served_model == "strong"
    assert r.verification == "pass"


def test_records_hold_no_secret_or_prompt(sim_env, policy_copy, log_dir, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789")
    text = policy_copy.read_text().replace("vendor: openai,\n                  api_base", "vendor: openai, api_key_env: FAKE_KEY,\n                  api_base", 1)
    policy_copy.write_text(text)
    router = Router(policy_copy, log=log_dir)
    sim_env.state.set("gpt-4o-mini", {"error_rate": 1.0, "error_status": 401})
    with pytest.raises(NoEligibleRoute, match="non-retryable failure \\(auth\\)"):
        router.complete("triage", "secret plan")  # a bad key fails loudly, it is not papered over
    raw = "\n".join(f.read_text() for f in log_dir.glob("date=*/*.jsonl"))
    assert "sk-proj" not in raw and "secret plan" not in raw


def _policy_with(sim_env, tmp_path, routes: str):
    p = tmp_path / "p.yaml"
    p.write_text(f"""
models:
  cheap: {{model: openai/gpt-4o-mini, tier: 1, api_base: "{sim_env.url}/v1"}}
  strong: {{model: openai/gpt-4.1, tier: 2, api_base: "{sim_env.url}/v1"}}
  local: {{model: openai/gemma-3-270m, tier: 0, boundary: local, api_base: "{sim_env.url}/v1",
          price: {{input_per_mtok: 0, output_per_mtok: 0}}}}
routes:
{routes}
""")
    return p


def test_shadow_records_both_without_touching_the_answer(sim_env, tmp_path, log_dir):
    p = _policy_with(sim_env, tmp_path, "  triage: {primary: cheap, shadow: strong, shadow_rate: 1.0}")
    seen = []
    router = Router(p, log=log_dir, shadow_sink=lambda prod, shadow: seen.append((prod, shadow)))
    r = router.complete("triage", "hello")
    router.drain()
    assert r.served_model == "cheap" and r.text.startswith("[gpt-4o-mini]")
    records = read_records(log_dir)
    [shadow] = [x for x in records if x["shadow_of"]]
    assert shadow["shadow_of"] == r.request_id and shadow["served_alias"] == "strong"
    assert seen and seen[0][1].text.startswith("[gpt-4.1]")


def test_shadow_never_crosses_the_boundary(sim_env, tmp_path, log_dir):
    p = _policy_with(sim_env, tmp_path, "  private: {primary: local, shadow: strong, shadow_rate: 1.0}")
    router = Router(p, log=log_dir)
    router.complete("private", "salary data", sensitivity="private")
    router.drain()
    assert sim_env.state.stats.get(("openai", "gpt-4.1"), 0) == 0
    assert not [x for x in read_records(log_dir) if x["shadow_of"]]


class _Budget:
    def __init__(self, deny: set[str], block: bool):
        self.deny, self.block, self.settled = deny, block, []

    def reserve(self, *, alias, **kw):
        from toolkit.router import BudgetDenied
        if alias in self.deny:
            raise BudgetDenied("team-monthly", f"budget team-monthly would be exceeded by {alias}", self.block)
        return alias

    def settle(self, hold, cost_usd):
        self.settled.append((hold, cost_usd))


def test_budget_hook_downgrades_but_never_below_floor(sim_env, tmp_path, log_dir):
    p = _policy_with(sim_env, tmp_path, "  work: {primary: strong, fallbacks: [cheap], min_tier: 1, on_exhausted: degrade}")
    budget = _Budget({"strong"}, block=False)
    r = Router(p, log=log_dir, budgets=budget).complete("work", "x")
    assert r.served_model == "cheap" and r.skipped[0].reason == "budget"
    assert budget.settled[0][0] == "cheap" and budget.settled[0][1] > 0
    p = _policy_with(sim_env, tmp_path, "  work: {primary: strong, fallbacks: [local], min_tier: 1, on_exhausted: degrade}")
    with pytest.raises(NoEligibleRoute, match="budget team-monthly"):
        Router(p, log=log_dir, budgets=_Budget({"strong"}, block=False)).complete("work", "x")


def test_budget_hook_blocks(sim_env, tmp_path, log_dir):
    p = _policy_with(sim_env, tmp_path, "  work: {primary: strong, fallbacks: [cheap]}")
    with pytest.raises(NoEligibleRoute, match="team-monthly"):
        Router(p, log=log_dir, budgets=_Budget({"strong"}, block=True)).complete("work", "x")
    assert read_records(log_dir)[-1]["outcome"] == "blocked"
    assert sum(sim_env.state.stats.values()) == 0


def test_measured_score_floor(sim_env, tmp_path, log_dir):
    routes = ("  work: {primary: cheap, fallbacks: [strong], min_tier: 1, on_exhausted: %s}\n"
              "baselines:\n  work: {min_score: 0.8, scores: {cheap: {score: 0.55, n: 40}, strong: {score: 0.9, n: 40}}}")
    r = Router(_policy_with(sim_env, tmp_path, routes % "fail"), log=log_dir).complete("work", "x")
    assert r.served_model == "strong" and not r.degraded
    assert r.skipped[0].reason == "below_floor" and "measured score 0.550 < min_score 0.8" in r.skipped[0].detail
    sim_env.state.set("gpt-4.1", {"down": True})
    r = Router(_policy_with(sim_env, tmp_path, routes % "degrade"), log=log_dir).complete("work", "x")
    assert r.served_model == "cheap" and r.degraded        # served below the measured floor: flagged
    assert read_records(log_dir)[-1]["degraded"] is True


def test_baselines_name_known_routes_and_models(sim_env, tmp_path):
    from toolkit.policy import PolicyError, load_policy

    p = _policy_with(sim_env, tmp_path, "  work: {primary: cheap}\nbaselines:\n  work: {min_score: 0.5, scores: {nope: {score: 1, n: 1}}}")
    with pytest.raises(PolicyError, match="unknown model alias 'nope'"):
        load_policy(p)
