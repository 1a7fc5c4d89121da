"""Dashboard aggregates on a small hand-built rollup (contract v3), checked against numbers worked out by hand.

``make_rollup`` / ``SMALL`` are shared with test_charts and test_findings.
"""
from __future__ import annotations

from datetime import date, datetime, timezone

import polars as pl
import pytest

from toolkit import dashboards as d

D1, D2 = date(2026, 3, 1), date(2026, 3, 2)

ROLLUP_SCHEMA = {
    "date": pl.Date, "hour": pl.Datetime("us", "UTC"), "team": pl.String, "intent": pl.String, "route_id": pl.String,
    "requested_model": pl.String, "served_model": pl.String, "served_alias": pl.String, "provider": pl.String,
    "outcome": pl.String, "error_kind": pl.String, "fallback_used": pl.Boolean, "degraded": pl.Boolean,
    "is_shadow": pl.Boolean, "latency_bin": pl.Int32,
    **{m: pl.Int64 for m in ("requests", "attempts", "failed_attempts", "retried_requests", "input_tokens",
                             "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
                             "unpriced_requests", "circuit_open_skips", "verification_failures", "prompt_tokens",
                             "model_mismatches")},
    **{m: pl.Float64 for m in ("cost_usd", "failed_cost_usd", "cache_savings_usd", "latency_ms_sum")},
}


def at(latency_bin: int, frac: float) -> float:
    """A latency ``frac`` of the way through a histogram bin, log-linear, as rollups.percentiles reads them: the
    q-quantile of N requests is request q*(N-1), aimed at its middle, rank t = q*(N-1) + 0.5; with n requests in
    the bin holding t and c before it, frac = (t - c) / n."""
    return 10 ** ((latency_bin + frac) / 100)


def make_rollup(rows: list[dict]) -> pl.DataFrame:
    """A rollup (contract v3) from short dicts, one latency bin each (rows differing only in their bin become one
    row with both bins in its histogram): missing measures are 0, missing flags False, hour from date."""
    from toolkit import rollups

    full = []
    for r in rows:
        r = dict(r)
        day = r["date"]
        r.setdefault("hour", datetime(day.year, day.month, day.day, r.pop("h", 10), tzinfo=timezone.utc))
        r.setdefault("intent", r.get("route_id"))
        r.setdefault("outcome", "served")
        r.setdefault("attempts", r.get("requests", 0))
        for k, t in ROLLUP_SCHEMA.items():
            if k not in r:
                r[k] = {pl.Boolean: False, pl.Int64: 0, pl.Float64: 0.0}.get(t)
        full.append(r)
    binned = pl.DataFrame(full, schema=ROLLUP_SCHEMA)
    return rollups.fold(binned, rollups.KEYS).select(list(rollups.rollup_schema())).collect()


SMALL_ROWS = [
    # day 1
    dict(date=D1, team="a", route_id="triage", requested_model="m-fast", served_model="m-fast", served_alias="fast",
         provider="openai", latency_bin=200, requests=8, input_tokens=8000, output_tokens=1600, cost_usd=0.80),
    dict(date=D1, team="a", route_id="triage", requested_model="m-fast", served_model="m-mid", served_alias="mid",
         provider="anthropic", fallback_used=True, latency_bin=300, requests=2, attempts=4, failed_attempts=2,
         retried_requests=2, input_tokens=4000, output_tokens=400, cost_usd=0.60, failed_cost_usd=0.10,
         circuit_open_skips=1),
    dict(date=D1, team="b", route_id="synthesis", requested_model="m-strong", served_model=None, served_alias=None,
         provider="anthropic", outcome="failed", error_kind="timeout", latency_bin=400, requests=1, attempts=3,
         failed_attempts=3, retried_requests=1, cost_usd=0.05, failed_cost_usd=0.05),
    dict(date=D1, team="b", route_id="synthesis", requested_model="m-strong", served_model="m-strong",
         served_alias="strong", provider="openai", latency_bin=300, requests=4, input_tokens=8000, output_tokens=4000,
         cache_read_tokens=2000, cost_usd=2.00, cache_savings_usd=0.30, verification_failures=1),
    dict(date=D1, team="b", route_id="synthesis", requested_model="m-strong", served_model="m-mid",
         served_alias="mid", provider="anthropic", is_shadow=True, latency_bin=200, requests=2, cost_usd=0.20),
    # day 2
    dict(date=D2, team="a", route_id="triage", requested_model="m-fast", served_model="m-fast", served_alias="fast",
         provider="openai", latency_bin=200, requests=10, input_tokens=10000, output_tokens=2000, cost_usd=1.00),
    dict(date=D2, team="b", route_id="extraction", requested_model="m-mid", served_model="m-fast",
         served_alias="fast", provider="openai", fallback_used=True, degraded=True, latency_bin=250, requests=3,
         attempts=6, failed_attempts=3, retried_requests=3, cost_usd=0.30, failed_cost_usd=0.06),
    dict(date=D2, team="b", route_id="synthesis", requested_model="m-strong", served_model=None, served_alias=None,
         provider=None, outcome="blocked", error_kind=None, latency_bin=0, requests=1, attempts=0),
]

POLICY_YAML = """
version: 1
models:
  fast:   {model: openai/m-fast, tier: 1}
  mid:    {model: openai/m-mid, tier: 2}
  strong: {model: openai/m-strong, tier: 3}
routes:
  triage:     {primary: fast, fallbacks: [mid], min_tier: 1}
  extraction: {primary: mid, fallbacks: [fast], min_tier: 2, on_exhausted: degrade}
  synthesis:  {primary: strong, fallbacks: [mid], min_tier: 3}
budgets:
  - {name: team-a-daily, scope: {team: a}, period: daily, limit_usd: 1.2}
  - {name: all-monthly, period: monthly, limit_usd: 5}
"""


@pytest.fixture
def small() -> pl.DataFrame:
    return make_rollup(SMALL_ROWS)


@pytest.fixture
def small_policy(tmp_path):
    from toolkit.policy import load_policy

    p = tmp_path / "policy.yaml"
    p.write_text(POLICY_YAML)
    return load_policy(p)


def as_dict(frame: pl.DataFrame, key: str | list[str], value: str) -> dict:
    keys = [key] if isinstance(key, str) else key
    return {(r[0] if len(keys) == 1 else tuple(r[:-1])): r[-1] for r in frame.select(*keys, value).iter_rows()}


def test_period_defaults_to_data_range_and_previous_has_equal_length(small):
    p = d.period_of(small)
    assert (p.since, p.until, p.days) == (D1, D2, 2)
    assert (p.previous.since, p.previous.until) == (date(2026, 2, 27), date(2026, 2, 28))
    assert d.period_of(small, since="2026-03-02").since == D2
    assert p.last(30) == p and p.last(1) == d.Period(D2, D2) and p.last(1).previous == d.Period(D1, D1)
    assert (str(p), str(p.last(1))) == (f"{D1} .. {D2} (2 days)", f"{D2} .. {D2} (1 day)")
    with pytest.raises(ValueError, match=f"until {D1} is before since {D2}"):
        d.period_of(small, since=D2, until=D1)
    with pytest.raises(ValueError, match=f"until {D2} is before since 2026-03-05"):   # the log ends before it
        d.period_of(small, since="2026-03-05")


def test_totals(small):
    t = d.totals(small).row(0, named=True)
    assert (t["requests"], t["served"], t["failed"], t["blocked"]) == (29, 27, 1, 1)
    assert t["cost_usd"] == pytest.approx(4.95)
    assert t["shadow_cost_usd"] == pytest.approx(0.20)
    assert t["failed_cost_usd"] == pytest.approx(0.21)
    assert t["cache_savings_usd"] == pytest.approx(0.30)
    assert t["cost_per_success_usd"] == pytest.approx(4.95 / 27)


def test_spend_by_team_per_day_includes_shadow_cost(small):
    s = d.spend(small, by="team")
    assert as_dict(s, ["period", "team"], "cost_usd") == pytest.approx(
        {(D1, "a"): 1.40, (D1, "b"): 2.25, (D2, "a"): 1.00, (D2, "b"): 0.30})
    assert as_dict(s, ["period", "team"], "requests") == {(D1, "a"): 10, (D1, "b"): 5, (D2, "a"): 10, (D2, "b"): 4}


def test_spend_by_model_names_unserved_and_rejects_unknown_grouping(small):
    s = d.spend(small, by="model", grain="month")
    assert as_dict(s, "model", "cost_usd") == pytest.approx(
        {"m-fast": 2.10, "m-mid": 0.80, "m-strong": 2.00, d.NONE: 0.05})
    with pytest.raises(ValueError, match="unknown grouping 'colour'"):
        d.spend(small, by="colour")
    with pytest.raises(ValueError, match="unknown grain"):
        d.spend(small, grain="fortnight")


def test_hour_grain_is_naive_utc(small):
    s = d.spend(small, by="team", grain="hour")
    assert s.schema["period"] == pl.Datetime("us")
    assert s["period"].min() == datetime(2026, 3, 1, 10)


def test_cost_drivers_against_previous_period(small):
    c = d.cost_drivers(small, d.Period(D2, D2), by="team")
    assert c["team"].to_list() == ["a", "b"]
    a, b = c.rows(named=True)
    assert (a["cost_usd"], a["previous_usd"], a["change_usd"]) == pytest.approx((1.00, 1.40, -0.40))
    assert a["change_pct"] == pytest.approx(-0.40 / 1.40)
    assert b["change_pct"] == pytest.approx(-1.95 / 2.25)
    assert a["share"] == pytest.approx(1.00 / 1.30)
    assert d.cost_drivers(small, d.Period(D2, D2), by="team", n=1).height == 1


def test_waste_per_day(small):
    w = d.waste(small).row(0, named=True)
    assert w["period"] == D1
    assert w["failed_cost_usd"] == pytest.approx(0.15)
    assert (w["failed_attempts"], w["retried_requests"], w["fallback_requests"], w["failed_requests"],
            w["requests"]) == (5, 3, 2, 1, 15)


def test_cost_per_success_is_production_only(small):
    c = d.cost_per_success(small, by="model")
    got = as_dict(c.filter(pl.col("period") == D1), "model", "cost_per_success_usd")
    assert got["m-fast"] == pytest.approx(0.10)
    assert got["m-mid"] == pytest.approx(0.30)       # the shadow call's $0.20 is not a production cost
    assert got["m-strong"] == pytest.approx(0.50)
    assert got[d.NONE] is None                      # paid, nothing served


def test_cache_savings(small):
    c = d.cache_savings(small).row(0, named=True)
    assert c["cache_savings_usd"] == pytest.approx(0.30)
    assert c["cache_read_share"] == pytest.approx(2000 / 20000)


def test_budget_status_series_and_alerts(small, small_policy):
    series, alerts = d.budget_status(small, small_policy.budgets)
    got = as_dict(series, ["budget", "date"], "spent_usd")
    assert got == pytest.approx({("team-a-daily", D1): 1.40, ("team-a-daily", D2): 1.00,
                                 ("all-monthly", D1): 3.65, ("all-monthly", D2): 4.95})
    crossed = {(r["budget"], r["threshold"], r["date"]) for r in alerts.iter_rows(named=True)}
    assert crossed == {("team-a-daily", 0.5, D1), ("team-a-daily", 0.8, D1), ("team-a-daily", 1.0, D1),
                       ("team-a-daily", 0.5, D2), ("team-a-daily", 0.8, D2),
                       ("all-monthly", 0.5, D1), ("all-monthly", 0.8, D2)}
    empty_s, empty_a = d.budget_status(small, [])
    assert empty_s.is_empty() and empty_a.is_empty()


def test_latency_percentiles_from_histograms(small):
    lat = d.latency(small, by="route", grain="day")
    got = as_dict(lat.filter(pl.col("period") == D1), ["route", "percentile"], "latency_ms")
    # triage day 1: 8 requests in bin 200, 2 in bin 300; p50 rank 0.5*9+0.5 = 5 is 5/8 into bin 200,
    # p95 rank 0.95*9+0.5 = 9.05 is (9.05-8)/2 into bin 300
    assert got[("triage", "p50")] == pytest.approx(at(200, 5 / 8))
    assert got[("triage", "p95")] == pytest.approx(at(300, 0.525))
    # synthesis day 1, shadow row excluded: 4 in bin 300, 1 in bin 400 -> ranks 2.5 and 0.99*4+0.5 = 4.46
    assert got[("synthesis", "p50")] == pytest.approx(at(300, 2.5 / 4))
    assert got[("synthesis", "p99")] == pytest.approx(at(400, 0.46))
    # by model: the failed request (nothing served) is no model's latency
    assert d.NONE not in set(d.latency(small, by="model")["model"])


def test_rates(small):
    r = d.rates(small)
    day1 = as_dict(r.filter(pl.col("period") == D1), "kind", "rate")
    assert day1["error"] == pytest.approx(1 / 15)
    assert day1["timeout"] == pytest.approx(1 / 15)
    assert day1["fallback"] == pytest.approx(2 / 15)
    assert day1["degraded"] == 0
    assert day1["failed attempt"] == pytest.approx(5 / 19)
    day2 = as_dict(r.filter(pl.col("period") == D2), "kind", "rate")
    assert day2["blocked"] == pytest.approx(1 / 14)
    assert day2["degraded"] == pytest.approx(3 / 14)
    assert day2["failed attempt"] == pytest.approx(3 / 16)
    by_route = d.rates(small, by="route", grain=None)
    assert as_dict(by_route.filter(pl.col("kind") == "error"), "route", "rate")["synthesis"] == pytest.approx(1 / 6)


def test_circuit_openings_and_slowest(small):
    c = d.circuit_openings(small)
    assert c.rows() == [(D1, "triage", 1)]
    s = d.slowest(small, by="route")
    assert s["route"].to_list() == ["synthesis", "triage", "extraction"]
    # p95 ranks: synthesis (blocked request excluded) 4 in bin 300 and 1 in 400, 0.95*4+0.5 = 4.3;
    # triage 18 in bin 200 and 2 in 300, 0.95*19+0.5 = 18.55; extraction 3 in bin 250, 0.95*2+0.5 = 2.4
    assert s["p95_ms"].to_list() == pytest.approx([at(400, 0.3), at(300, 0.55 / 2), at(250, 2.4 / 3)])
    assert s["p50_ms"][0] == pytest.approx(at(300, 2.5 / 4))
    assert s["error_rate"][0] == pytest.approx(1 / 5)


def test_verification_degraded_and_lower_tier_fallbacks(small, small_policy):
    v = d.verification(small, by="model")
    assert v.row(0, named=True)["model"] == "m-strong"
    assert v.row(0, named=True)["rate"] == pytest.approx(1 / 4)
    deg = d.degraded_serves(small)
    assert deg.rows(named=True) == [dict(date=D2, route="extraction", team="b", requested_model="m-mid",
                                         alias="fast", model="m-fast", requests=3)]
    low = d.lower_tier_fallbacks(small, small_policy)
    # triage fell back fast -> mid (a higher tier: not listed); extraction mid -> fast is lower.
    assert low.select("route", "primary", "primary_tier", "alias", "served_tier", "degraded", "requests").rows() == [
        ("extraction", "mid", 2, "fast", 1, True, 3)]


def test_model_mismatches_per_alias_and_reported_model(small):
    assert d.model_mismatches(small).is_empty()   # nothing reported: no rows (the notebook says so in words)
    rows = make_rollup([
        *SMALL_ROWS,
        # the provider of "fast" said it served m-fast-lite for 3 of day 2's requests
        dict(date=D2, team="a", route_id="triage", requested_model="m-fast", served_model="m-fast-lite",
             served_alias="fast", provider="openai", latency_bin=200, requests=3, model_mismatches=3),
        dict(date=D2, team="b", route_id="triage", requested_model="m-fast", served_model="m-fast-lite",
             served_alias="fast", provider="openai", latency_bin=200, requests=1, model_mismatches=1,
             is_shadow=True),                                   # shadow traffic: not counted (production only)
    ])
    m = d.model_mismatches(rows)
    # every served production request of "fast": 8 + 10 + 3 (day 2's extraction fallback served by fast: 3 more)
    assert m.rows(named=True) == [
        dict(alias="fast", model="m-fast-lite", requests=3, model_mismatches=3, share=pytest.approx(3 / 24)),
        dict(alias="fast", model="m-fast", requests=21, model_mismatches=0, share=0.0)]


def test_serve_summary(small, small_policy):
    two_days = make_rollup([*SMALL_ROWS, dict(SMALL_ROWS[6], date=D1, team="c", requests=2)])
    summary = d.serve_summary(d.degraded_serves(two_days))
    assert summary.rows(named=True) == [dict(route="extraction", alias="fast", requests=5, days=2, first=D1, last=D2,
                                             teams="b, c")]
    low = d.serve_summary(d.lower_tier_fallbacks(small, small_policy))
    assert low.select("route", "primary", "primary_tier", "alias", "served_tier", "requests").rows() == [
        ("extraction", "mid", 2, "fast", 1, 3)]


def test_shadow_vs_production(small):
    s = d.shadow_vs_production(small)
    rows = {r["traffic"]: r for r in s.iter_rows(named=True)}
    assert set(s["route"]) == {"synthesis"}
    assert rows["production"]["requests"] == 6
    assert rows["production"]["cost_per_request_usd"] == pytest.approx(2.05 / 6)
    assert rows["shadow"]["cost_per_request_usd"] == pytest.approx(0.10)
    assert rows["shadow"]["p50_ms"] == pytest.approx(at(200, 0.5))


def test_spend_top_groups_lumps_the_rest(small):
    s = d.spend(small, by="model", grain="month", top=2)
    # m-fast $2.10 and m-strong $2.00 stay; m-mid $0.80 + (none) $0.05 become (other)
    assert as_dict(s, "model", "cost_usd") == pytest.approx({"m-fast": 2.10, "m-strong": 2.00, d.OTHER: 0.85})


def test_reductions_give_the_same_numbers_as_the_full_rollup(small, small_policy):
    counts, hist = d.counts(small), d.histograms(small)
    assert "latency_hist" not in counts.columns and {"team", "hour"} <= set(counts.columns)
    assert counts.height == 8 and hist.height == 8  # every SMALL row differs in more than its bin
    for fn in (lambda f: d.spend(f, "team"), lambda f: d.rates(f), lambda f: d.waste(f), d.totals,
               lambda f: d.lower_tier_fallbacks(f, small_policy), d.degraded_serves,
               lambda f: d.budget_status(f, small_policy.budgets)[1]):
        assert fn(counts).equals(fn(small))
    for fn in (lambda f: d.latency(f, "route"), lambda f: d.slowest(f, "model"), d.shadow_vs_production):
        assert fn(hist).equals(fn(small))
    with pytest.raises(pl.exceptions.ColumnNotFoundError):
        d.latency(counts, "route")
    # rows that differ only in their bin are one row; the bins stay apart in its histogram, and add up when merged
    two = make_rollup([dict(SMALL_ROWS[0], latency_bin=200), dict(SMALL_ROWS[0], latency_bin=201),
                       dict(SMALL_ROWS[0], latency_bin=201, h=11)])
    assert two.height == 2 and d.counts(two)["requests"].sum() == 24
    assert d.histograms(two)["latency_hist"].to_list() == [[{"bin": 200, "n": 8}, {"bin": 201, "n": 16}]]


def test_load_reduces_a_real_log_for_a_period(tmp_path):
    from toolkit.rollups import load_rollups
    from toolkit.synth import synthesize

    log = synthesize(tmp_path / "log", days=10, requests=1500, seed=5, end="2026-03-10").log_dir
    data = d.load(log, since="2026-03-08")
    assert data.period == d.Period(date(2026, 3, 8), date(2026, 3, 10))
    full = load_rollups(log, build=False).collect()
    # the history (all 10 days, for jumps and incidents) and the period agree with the rollups, bin for bin summed
    assert data.counts["requests"].sum() == full["requests"].sum() == 1500
    assert data.now.collect()["requests"].sum() == full.filter(pl.col("date") >= date(2026, 3, 8))["requests"].sum()
    with pytest.raises(ValueError, match="latency=True"):
        data.now_latency
    # latency from the day-grain table: the same numbers as from the hours
    daily = d.load(log, since="2026-03-08", latency=True)
    from_hours = d.histograms(load_rollups(log, build=False))
    assert daily.histograms.height < full.height and daily.histograms["date"].max() == date(2026, 3, 10)
    for fn in (lambda f: d.latency(f, "route", "week"), lambda f: d.slowest(f, "model"), d.shadow_vs_production):
        assert fn(daily.now_latency).equals(fn(d.within(from_hours, daily.period)))
    hourly = d.load(log, since="2026-03-10", latency=True, grain="hour")
    assert hourly.histograms["date"].unique().to_list() == [date(2026, 3, 10)]
    assert d.latency(hourly.now_latency, "route", "hour")["period"].dt.date().unique().to_list() == [date(2026, 3, 10)]
    # counts per day unless hourly: the same numbers, ~10x fewer rows; the hours are there when asked (incidents)
    assert "hour" not in data.counts.columns and "hour" in hourly.counts.columns
    hours = data.hours.lazy().collect()
    assert data.counts.height < hours.height and hours.equals(d.counts(load_rollups(log, build=False)))
    assert d.totals(data.now).equals(d.totals(d.within(hourly.counts, data.period)))
    for by in ("team", "model", "provider"):
        assert d.spend(data.now, by, "day").equals(d.spend(d.within(data.hours, data.period), by, "day"))
    assert d.rates(data.now, grain="week").equals(d.rates(d.within(data.hours, data.period), grain="week"))
    assert d.load(log, since="2026-03-08") is not data and d.load(log, since="2026-03-08").counts is data.counts


def test_a_short_period_is_charted_by_the_hour_unless_a_grain_is_asked_for(tmp_path):
    """grain=None (the spend and latency notebooks' default): a period of up to HOURLY_DAYS days by the hour (the
    hour tables read), a longer one by the day; a grain asked for is kept; an unknown one is refused by name."""
    from toolkit.synth import synthesize

    log = synthesize(tmp_path / "log", days=10, requests=1500, seed=5, end="2026-03-10").log_dir
    assert d.HOURLY_DAYS == 2
    short = d.load(log, since="2026-03-09", latency=True, grain=None)
    assert (short.grain, short.period.days) == ("hour", 2)
    assert "hour" in short.counts.columns and "hour" in short.histograms.columns
    assert d.latency(short.now_latency, "route", short.grain)["period"].dt.hour().n_unique() > 2
    longer = d.load(log, since="2026-03-08", latency=True, grain=None)
    assert (longer.grain, longer.period.days) == ("day", 3) and "hour" not in longer.counts.columns
    asked = d.load(log, since="2026-03-09")   # by the day unless told (a notebook that charts nothing by time)
    assert asked.grain == "day" and "hour" not in asked.counts.columns
    assert d.load(log, grain="week").grain == "week"
    with pytest.raises(ValueError, match="unknown grain 'hours'; choose one of hour, day, week, month, or None"):
        d.load(log, grain="hours")


def test_by_the_hour_the_history_reaches_back_the_periods_length_and_at_least_four_weeks(tmp_path):
    """Counts by the hour cover the period and as long before it, at least HOURLY_HISTORY_DAYS, however long the
    log: what changed since the span before reads the same as by the day; by the day the history is whole."""
    from toolkit.synth import synthesize

    log = synthesize(tmp_path / "log", days=90, requests=3000, seed=7, end="2026-03-31").log_dir
    assert d.HOURLY_HISTORY_DAYS == 28
    short = d.load(log, since="2026-03-31", grain=None)
    assert short.grain == "hour" and short.counts["date"].min() == date(2026, 3, 3)
    assert short.hours is short.counts
    month = d.load(log, since="2026-03-02", grain="hour")          # 30 days: as long again before it
    assert month.counts["date"].min() == date(2026, 1, 31)
    by_day = d.load(log, since="2026-03-02")
    assert by_day.counts["date"].min() == date(2026, 1, 1)         # the whole log
    assert by_day.hours.select(pl.col("date").min()).collect().item() == date(2026, 1, 31)
    for days in (30, 7):
        assert d.spend_headline(month, days) == d.spend_headline(by_day, days)
    assert d.cost_drivers(month.counts, month.period, "team").equals(d.cost_drivers(by_day.counts, by_day.period, "team"))


def test_agent_call_failures_per_model_from_the_records(sim_env, policy_copy, tmp_path):
    """Real records (Router, litellm, simulator): a model's invalid tool calls and schema answers are counted
    against it even when the request was escalated past it; shadow records are left out."""
    from toolkit.router import Router
    from toolkit.routelog import scan_log

    log = tmp_path / "log"
    router = Router(policy_copy, log=log)
    tool = {"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}}}
    schema = {"type": "json_schema", "json_schema": {"name": "s", "schema": {
        "type": "object", "properties": {"y": {"type": "integer"}}, "required": ["y"]}}}
    for _ in range(3):
        router.complete("agent", "call f", tools=[tool])                 # mid-anthropic answers, valid
    sim_env.state.set("claude-haiku-4-5", {"fault": "bad_json"})
    router.complete("agent", "call f", tools=[tool])                     # invalid -> fast-openai serves
    router.complete("agent", "shape it", response_format=schema)         # invalid -> fast-openai serves
    router.complete("triage", "plain chat")                              # neither: not counted
    records = scan_log(log).frame
    shadow = records.head(1).with_columns(shadow_of=pl.lit("x"), request_id=pl.lit("shadow-1"))
    out = d.agent_call_failures(pl.concat([records, shadow]))
    assert out.rows(named=True) == [
        dict(alias="fast-openai", model="openai/gpt-4o-mini", tool_answers=1, tool_call_failures=0,
             tool_call_failure_rate=0.0, schema_answers=1, schema_failures=0, schema_failure_rate=0.0),
        dict(alias="mid-anthropic", model="anthropic/claude-haiku-4-5", tool_answers=4, tool_call_failures=1,
             tool_call_failure_rate=0.25, schema_answers=1, schema_failures=1, schema_failure_rate=1.0)]
    assert d.agent_call_failures(records.head(0)).is_empty()
