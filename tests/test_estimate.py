"""Estimates: one request, named scenarios side by side, scenario files, fits from a real route log."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from toolkit.costs import PriceBook, UnknownModel, prices_dir
from toolkit.errors import BadInput
from toolkit.estimate import (Dist, Scenario, ScenarioError, estimate_request, estimate_scenarios,
                              fit_from_log, load_scenarios, reprice_prompts, scenario_totals)
from toolkit.router import Router
from toolkit.tokens import count_messages

from .conftest import DATA, ROOT, read_records

RAW = json.loads(sorted(prices_dir().glob("*.json"))[-1].read_bytes())
MINI, CLAUDE = RAW["gpt-4o-mini"], RAW["claude-sonnet-4-5"]
SCENARIOS = DATA / "scenarios" / "three-approaches.yaml"


def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "toolkit.cli", "estimate", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.fixture(scope="module")
def prices():
    return PriceBook.load()


def test_monthly_total_of_the_issue_example(prices):
    r = cli("--model", "gpt-4o-mini", "--requests-per-day", "10000", "--input-tokens", "500", "--output-tokens", "200",
            "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    [s] = out["scenarios"]
    assert s["monthly_usd"] == 10000 * 30 * (500 * MINI["input_cost_per_token"] + 200 * MINI["output_cost_per_token"])
    assert s["monthly_usd"] == pytest.approx(58.50)          # 300k requests x $0.000195
    assert out["price_version"] == prices.version and s["price_version"] == prices.version
    table = cli("--model", "gpt-4o-mini", "--requests-per-day", "10000", "--input-tokens", "500",
                "--output-tokens", "200")
    assert table.returncode == 0 and prices.version in table.stdout and "58.50" in table.stdout


def test_scenarios_side_by_side_in_one_call(prices):
    tokens = dict(requests_per_day=10_000, input_tokens=Dist(500, 100, 2000), output_tokens=Dist(200, 50, 600))
    scenarios = [Scenario.single("mini", "gpt-4o-mini", **tokens),
                 Scenario.single("sonnet", "claude-sonnet-4-5", **tokens),
                 Scenario.single("mix", {"gpt-4o-mini": 0.75, "claude-sonnet-4-5": 0.25}, **tokens)]
    rows = estimate_scenarios(scenarios, prices)
    per = lambda e, i, o: i * e["input_cost_per_token"] + o * e["output_cost_per_token"]  # noqa: E731
    mini = rows.filter(rows["scenario"] == "mini").row(0, named=True)
    assert mini["monthly_usd"] == pytest.approx(300_000 * per(MINI, 500, 200), rel=1e-12)
    assert mini["low_usd"] == pytest.approx(300_000 * per(MINI, 100, 50), rel=1e-12)
    assert mini["high_usd"] == pytest.approx(300_000 * per(MINI, 2000, 600), rel=1e-12)
    summary = scenario_totals(rows)
    assert summary["scenario"].to_list() == ["mini", "sonnet", "mix"]
    expect_mix = 0.75 * 300_000 * per(MINI, 500, 200) + 0.25 * 300_000 * per(CLAUDE, 500, 200)
    assert summary["monthly_usd"][2] == pytest.approx(expect_mix, rel=1e-12)
    assert summary["relative"][1] == pytest.approx(per(CLAUDE, 500, 200) / per(MINI, 500, 200), rel=1e-12)
    assert summary["relative"][0] == 1.0 and set(summary["price_version"]) == {prices.version}


def test_cache_hits_growth_and_price_changes(prices):
    base = dict(requests_per_day=1000, input_tokens=1000, output_tokens=100)
    cached = Scenario.single("cached", "claude-sonnet-4-5", cache_hit_rate=0.6, **base)
    grow = Scenario.single("grow", "claude-sonnet-4-5", growth_per_month=0.25, months=3, **base)
    cheaper = Scenario.single("cheaper", "claude-sonnet-4-5", price_changes={"claude-sonnet-4-5": 0.5}, **base)
    custom = Scenario.single("custom", "claude-sonnet-4-5", price_changes={"*": {"input_per_mtok": 1,
                                                                               "output_per_mtok": 2}}, **base)
    rows = estimate_scenarios([cached, grow, cheaper, custom], prices)
    by = {(r["scenario"], r["month"]): r for r in rows.iter_rows(named=True)}
    full = 400 * CLAUDE["input_cost_per_token"] + 600 * CLAUDE["cache_read_input_token_cost"] \
        + 100 * CLAUDE["output_cost_per_token"]
    assert by[("cached", 1)]["cost_per_request_usd"] == pytest.approx(full, rel=1e-12)
    plain = 1000 * 3e-6 + 100 * 1.5e-5
    assert [by[("grow", m)]["monthly_usd"] for m in (1, 2, 3)] == pytest.approx(
        [30_000 * plain, 37_500 * plain, 46_875 * plain], rel=1e-12)
    assert by[("cheaper", 1)]["monthly_usd"] == pytest.approx(30_000 * plain / 2, rel=1e-12)
    assert by[("custom", 1)]["cost_per_request_usd"] == pytest.approx(1000 * 1e-6 + 100 * 2e-6, rel=1e-12)
    with pytest.raises(ValueError, match="price_changes"):
        estimate_scenarios([Scenario.single("typo", "gpt-4o-mini", price_changes={"gpt-4o-mnii": 0.5}, **base)], prices)
    # not a number is not a volume, a growth or a share (NaN passed every `< 0` check and priced a month at nan)
    for bad, said in (({"requests_per_day": float("nan")}, "requests_per_day must be a finite number >= 0 (got nan)"),
                      ({"requests_per_day": float("inf")}, "requests_per_day must be a finite number >= 0 (got inf)"),
                      ({"growth_per_month": float("nan")}, "growth_per_month must be a finite number > -1 (got nan)"),
                      ({"model": {"gpt-4o-mini": float("nan"), "gpt-4o": 1.0}}, "shares >= 0 summing to 1")):
        with pytest.raises(ValueError, match=re.escape(said)):
            Scenario.single("x", **{"model": "gpt-4o-mini", **base, **bad})
    r = cli("--model", "gpt-4o-mini", "--input-tokens", "10", "--requests-per-day", "nan")
    assert r.returncode == 2 and "requests_per_day must be a finite number >= 0 (got nan)" in r.stderr


def test_token_distributions_from_samples():
    d = Dist.of([100, 200, 300, 400, 500])
    assert (d.mean, d.p10, d.p90) == (300, 140, 460)          # linear interpolation, by hand
    assert Dist.of({"mean": 50}) == Dist(50, 50, 50) and Dist.of(7) == Dist(7, 7, 7)
    with pytest.raises(ValueError):
        Dist.of({"mean": 10, "p10": 20, "p90": 5})
    with pytest.raises(ValueError, match="p90 inf"):    # before: an infinite cost
        Dist.of({"mean": 10, "p10": 5, "p90": float("inf")})


def test_self_hosted_per_hour_is_a_fixed_monthly_row(tmp_path, prices):
    p = tmp_path / "policy.yaml"
    p.write_text("""
models:
  gpu:     {model: openai/llama-3.3-70b, tier: 2, boundary: local, api_base: "http://10.0.0.5:8000/v1",
            price: {input_per_mtok: 0, output_per_mtok: 0, per_hour: 2.0}}
  mystery: {model: openai/house-model, tier: 2}
routes:
  work: {primary: gpu}
""")
    sc = Scenario.single("self-hosted", "gpu", requests_per_day=2000, input_tokens=800, output_tokens=300)
    unp = Scenario.single("unpriced", "mystery", requests_per_day=2000, input_tokens=800, output_tokens=300)
    rows = estimate_scenarios([sc, unp], prices, policy=p)
    fixed = rows.filter(rows["kind"] == "fixed").row(0, named=True)
    assert fixed["monthly_usd"] == 2.0 * 24 * 30 and fixed["requests"] == 60_000
    assert fixed["cost_per_request_usd"] == pytest.approx(1440 / 60_000)    # amortised over the month's requests
    tokens_row = rows.filter((rows["scenario"] == "self-hosted") & (rows["kind"] == "tokens")).row(0, named=True)
    assert tokens_row["monthly_usd"] == 0.0
    mystery = rows.filter(rows["scenario"] == "unpriced").row(0, named=True)
    assert mystery["unpriced"] and mystery["monthly_usd"] is None and mystery["cost_per_request_usd"] is None
    summary = {r["scenario"]: r for r in scenario_totals(rows).iter_rows(named=True)}
    assert summary["self-hosted"]["monthly_usd"] == 1440.0
    unpriced = summary["unpriced"]
    assert unpriced["unpriced_models"] == ["mystery"] and unpriced["monthly_usd"] is None    # never $0
    assert unpriced["relative"] is None


def test_single_request_from_messages(prices):
    msgs = [{"role": "user", "content": "Draft a polite reminder about the overdue invoice #4411."}]
    e = estimate_request("openai/gpt-4o-mini", messages=msgs, output_tokens=120, prices=prices)
    n = count_messages("gpt-4o-mini", msgs).tokens
    assert e.input_tokens == n and e.approx is False and e.tokenizer == "o200k_base"
    assert e.cost_usd == n * MINI["input_cost_per_token"] + 120 * MINI["output_cost_per_token"]
    c = estimate_request("anthropic/claude-sonnet-4-5", messages=msgs, output_tokens=120, prices=prices)
    assert c.approx is True and c.price_version == prices.version
    alias = estimate_request("open-llama", input_tokens=1000, output_tokens=100, prices=prices,
                             policy=DATA / "policy.example.yaml")
    assert alias.cost_usd == pytest.approx(1000 * 0.13e-6 + 100 * 0.40e-6) and alias.rates_source == "policy override"
    with pytest.raises(ValueError, match="exactly one"):
        estimate_request("gpt-4o-mini", prices=prices)
    # before: a negative or NaN count came back as a negative or NaN cost
    for field, value in (("output_tokens", -5), ("output_tokens", float("nan")), ("input_tokens", -1),
                         ("cache_read_tokens", float("inf")), ("output_tokens", "100")):
        kw = {"text": "hi", "output_tokens": 10, field: value}
        if field == "input_tokens":
            kw.pop("text")
        with pytest.raises(BadInput, match=f"{field} must be a finite number of tokens, 0 or more, not {value!r}"):
            estimate_request("gpt-4o-mini", prices=prices, **kw)


def test_scenario_file(prices):
    spec = load_scenarios(SCENARIOS)
    assert [s.name for s in spec.scenarios] == ["all-strong", "tiered", "tiered-cached"]
    rows = estimate_scenarios(spec.scenarios, prices, policy=spec.policy, days=spec.days)
    triage = rows.filter((rows["scenario"] == "all-strong") & (rows["intent"] == "triage")).row(0, named=True)
    assert triage["monthly_usd"] == pytest.approx(6000 * 30 * (450 * 3e-6 + 60 * 1.5e-5), rel=1e-12)
    summary = scenario_totals(rows)
    first = summary.filter(summary["month"] == 1)
    assert first["relative"][1] < 1 and first["relative"][2] < first["relative"][1]
    assert summary.filter(summary["scenario"] == "tiered-cached")["requests"].to_list() == pytest.approx(
        [300_000, 330_000, 363_000])


@pytest.mark.parametrize("body, message", [
    ("scenarios:\n  a:\n    modle: gpt-4o-mini\n", ":3: scenarios.a.modle: unknown key"),
    ("requests_per_day: 10\nintents:\n  x: {share: 0.5, input_tokens: 1, output_tokens: 1}\n"
     "  y: {share: 0.2, input_tokens: 1, output_tokens: 1}\nscenarios:\n  a: {model: gpt-4o-mini}\n",
     "must sum to 1"),
    ("scenarios:\n  a: {model: gpt-4o-mini, requests_per_day: 5, output_tokens: 1}\n", "missing input_tokens"),
    ("scenarios:\n  a: {model: gpt-4o-mini, requests_per_day: 5, input_tokens: {mean: 1, p10: 9, p90: 2},\n"
     "      output_tokens: 1}\n", "scenarios.a.input_tokens: need 0 <= p10 <= p90"),
    ("scenarios: [1, 2]\n", "non-empty 'scenarios' mapping"),
    ("scenarios:\n  a: {model: gpt-4o-mini\n", "not valid YAML"),
    ("days: abc\nscenarios:\n  a: {model: gpt-4o-mini, requests_per_day: 5, input_tokens: 1, output_tokens: 1}\n",
     ":1: days: a whole number of days in a month, at least 1 (got 'abc')"),
    ("days: 0\nscenarios:\n  a: {model: gpt-4o-mini, requests_per_day: 5, input_tokens: 1, output_tokens: 1}\n",
     ":1: days: a whole number of days in a month, at least 1 (got 0)"),
    ("scenarios:\n  a: {model: gpt-4o-mini, requests_per_day: 5, input_tokens: 1, output_tokens: 1}\ndays: 30.5\n",
     ":3: days: a whole number of days in a month, at least 1 (got 30.5)"),
])
def test_scenario_file_errors_name_file_line_and_key(tmp_path, body, message):
    f = tmp_path / "bad.yaml"
    f.write_text(body)
    with pytest.raises(ScenarioError) as e:
        load_scenarios(f)
    assert str(f) in str(e.value) and message in str(e.value)


def test_cli_scenarios_json_and_bad_input(prices):
    r = cli("--scenarios", str(SCENARIOS), "--only", "tiered,all-strong", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [s["scenario"] for s in out["scenarios"]] == ["all-strong", "tiered"]
    assert out["price_version"] == prices.version and {row["intent"] for row in out["rows"]} == {
        "triage", "extraction", "synthesis"}
    table = cli("--scenarios", str(SCENARIOS))
    assert table.returncode == 0 and "tiered-cached" in table.stdout and prices.version in table.stdout
    bad = cli("--model", "gpt-4o-mnii", "--input-tokens", "10")
    assert bad.returncode == 2 and "did you mean gpt-4o-mini" in bad.stderr and "Traceback" not in bad.stderr
    missing = cli("--model", "gpt-4o-mini")
    assert missing.returncode == 2 and "--input-tokens" in missing.stderr
    # a month of 0 days, a cache hit rate over 1, no months: usage errors naming the flag, one request or a month
    for flag, value, said in (("--days", "0", "'0' is not a whole number at least 1"),
                              ("--months", "0", "'0' is not a whole number at least 1"),
                              ("--cache-hit-rate", "2", "'2' is not a share within 0..1")):
        for month in ([], ["--requests-per-day", "100"]):
            r = cli("--model", "gpt-4o-mini", "--input-tokens", "10", *month, flag, value)
            assert r.returncode == 2 and f"argument {flag}: {said}" in r.stderr, r.stderr
    # --days given with a scenario file is the month it prices (the file's days otherwise)
    months = {d: json.loads(cli("--scenarios", str(SCENARIOS), "--only", "tiered", "--json", *d).stdout)
              for d in ((), ("--days", "31"))}
    assert [r["requests"] for r in months[("--days", "31")]["rows"]] == pytest.approx(
        [r["requests"] * 31 / 30 for r in months[()]["rows"]])
    # a model named twice is one scenario (before: two, added up in the totals: twice the requests and the cost)
    twice = json.loads(cli("--model", "gpt-4o-mini", "--model", "gpt-4o-mini", "--input-tokens", "10",
                           "--requests-per-day", "100", "--json").stdout)
    assert [(s["scenario"], s["requests"]) for s in twice["scenarios"]] == [("gpt-4o-mini", 3000)]
    one = Scenario.single("x", "gpt-4o-mini", requests_per_day=1, input_tokens=1, output_tokens=1)
    with pytest.raises(ValueError, match=r"scenario names must differ: \['x'\] given more than once"):
        estimate_scenarios([one, one], prices)
    with pytest.raises(ValueError, match="days in a month must be at least 1"):
        estimate_scenarios([Scenario.single("x", "gpt-4o-mini", requests_per_day=1, input_tokens=1,
                                            output_tokens=1)], prices, days=0)
    with pytest.raises(UnknownModel):
        estimate_scenarios([Scenario.single("x", "no-such-model", requests_per_day=1, input_tokens=1,
                                            output_tokens=1)], prices)


def test_fit_from_a_real_route_log(sim_env, policy_copy, log_dir, prices):
    sim_env.state.set("gpt-4o-mini", {"output_tokens": 30, "cached_tokens": 4})
    sim_env.state.set("claude-sonnet-4-6", {"output_tokens": 300})
    router = Router(policy_copy, log=log_dir, prices=prices)
    for i in range(8):
        router.complete("triage", "Is this message spam? " + "word " * (5 * i))
    for i in range(3):
        router.complete("synthesis", "Summarise: " + "finding " * (20 + 10 * i))
    loads = fit_from_log(log_dir)
    records = read_records(log_dir)
    triage = [r for r in records if r["intent"] == "triage"]
    assert set(loads) == {"triage", "synthesis"}
    t = loads["triage"]
    assert t.requests_per_day == 8 and dict(t.mix) == {"fast-openai": 1.0}
    assert t.input_tokens.mean == pytest.approx(sum(r["prompt_tokens"] for r in triage) / 8)
    assert t.output_tokens == Dist(30, 30, 30)
    assert t.cache_hit_rate == pytest.approx(4 * 8 / sum(r["gen_ai.usage.input_tokens"] for r in triage))
    assert loads["synthesis"].mix == {"strong-anthropic": 1.0}
    # as logged, priced with the policy's aliases; then the same traffic re-priced on one model
    rows = estimate_scenarios([Scenario("as logged", tuple(loads.values()))], prices, policy=policy_copy)
    assert set(rows["model"]) == {"fast-openai", "strong-anthropic"}
    r = cli("--from-log", str(log_dir), "--model", "gpt-4o-mini", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {row["model"] for row in out["rows"]} == {"gpt-4o-mini"} and out["scenarios"][0]["requests"] == 11 * 30


def test_reprice_prompts_equals_one_by_one(prices):
    prompts = [[{"role": "user", "content": "hello " * n}] for n in range(1, 30)]
    outs = list(range(10, 39))
    counts, costs, tok = reprice_prompts("gpt-4.1", prompts, outs, prices=prices)
    for p, o, n, c in zip(prompts, outs, counts, costs):
        e = estimate_request("gpt-4.1", messages=p, output_tokens=o, prices=prices)
        assert (n, c) == (e.input_tokens, e.cost_usd)
    assert tok.exact


def test_help_teaches():
    r = cli("--help")
    assert r.returncode == 0
    assert "examples:" in r.stdout and "--scenarios" in r.stdout and "--requests-per-day 10000" in r.stdout
