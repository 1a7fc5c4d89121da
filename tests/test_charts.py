"""Chart builders: each drawn for real by vl-convert from the small hand-built rollup of test_dashboards, checked
through what a reader sees — the hover title of every mark (the tooltip fields, formatted in $, ms, %) — against
numbers worked out by hand there, plus titles, units and the empty-data panels."""
from __future__ import annotations

import re
from datetime import date

import altair as alt
import polars as pl
import pytest

from tests.test_dashboards import D1, D2, POLICY_YAML, SMALL_ROWS, make_rollup
from toolkit import charts as c
from toolkit import dashboards as d


@pytest.fixture(scope="module")
def small() -> pl.DataFrame:
    return make_rollup(SMALL_ROWS)


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    from toolkit.policy import load_policy

    p = tmp_path_factory.mktemp("policy") / "policy.yaml"
    p.write_text(POLICY_YAML)
    return load_policy(p)


def tips(chart: alt.TopLevelMixin) -> list[dict[str, str]]:
    """The hover title of each mark of the rendered SVG, as {field: shown value}."""
    out = []
    for text in re.findall(r"<title>(.*?)</title>", c.to_svg(chart), re.S):
        out.append(dict(line.split(": ", 1) for line in text.splitlines() if ": " in line))
    return out


def shown(chart, field: str, **where: str) -> list[str]:
    return [t[field] for t in tips(chart) if field in t and all(t.get(k) == v for k, v in where.items())]


def test_theme_and_renderer_are_registered_once_and_enabled():
    c.setup()
    c.setup()
    assert alt.theme.active == "routekit" and alt.renderers.active == "routekit"
    assert alt.theme.names().count("routekit") == 1
    bundle = alt.renderers.get()(c.no_data("t", "m").to_dict())
    assert set(bundle) == {c.VEGALITE_MIME, c.VEGALITE5_MIME, "image/svg+xml", "text/plain"}
    assert bundle["image/svg+xml"].startswith("<svg") and bundle["text/plain"] == "<chart: t>"


def test_money_format_has_enough_decimals():
    assert c.usd(pl.Series([1234.5, 3.0])) == "$,.2f"
    assert c.usd(0.5) == "$,.3f"            # 2 + ceil(-log10 0.5) = 3
    assert c.usd(0.00092) == "$,.6f"        # 2 + ceil(3.04) = 6
    assert c.usd(pl.Series([None, 0.05]), sign=True) == "+$,.4f"
    assert c.usd(pl.Series([], dtype=pl.Float64)) == "$,.2f"


def test_spend_over_time(small):
    chart = c.spend_over_time(d.spend(small, "team"), "team")
    assert chart.to_dict()["title"]["text"] == "Spend by team per day"
    assert sorted(shown(chart, "spend")) == ["$0.30", "$1.00", "$1.40", "$2.25"]
    assert shown(chart, "requests", team="b", spend="$2.25") == ["5"]


def test_budget_vs_actual_marks_every_alert(small, policy):
    chart = c.budget_vs_actual(*d.budget_status(small, policy.budgets))
    alerts = [t for t in tips(chart) if "alert at" in t]
    # team-a-daily: 50/80/100% on day 1, 50/80% on day 2; all-monthly: 50% on day 1, 80% on day 2
    assert sorted((t["budget"], t["date"], t["alert at"]) for t in alerts) == [
        ("all-monthly", "2026-03-01", "50%"), ("all-monthly", "2026-03-02", "80%"),
        ("team-a-daily", "2026-03-01", "100%"), ("team-a-daily", "2026-03-01", "50%"),
        ("team-a-daily", "2026-03-01", "80%"), ("team-a-daily", "2026-03-02", "50%"),
        ("team-a-daily", "2026-03-02", "80%")]
    assert shown(chart, "share of limit", budget="all-monthly", date="2026-03-02") == ["99.0%"]


def test_cost_drivers_shows_spend_and_signed_change(small):
    chart = c.cost_drivers(d.cost_drivers(small, d.Period(D2, D2), "team"), "team", "Mar 2 vs Mar 1")
    a = [t for t in tips(chart) if t["team"] == "a"][0]
    assert (a["this period"], a["previous period"], a["change"], a["change %"], a["share of spend"]) == (
        "$1.00", "$1.40", "−$0.40", "−28.6%", "76.9%")


def test_waste_and_cache_savings(small):
    w = c.waste(d.waste(small))
    assert shown(w, "paid for failures") == ["$0.150", "$0.060"]       # 0.10 + 0.05, then 0.06
    assert shown(w, "count", kind="served by a fallback") == ["2", "3"]
    cache = c.cache_savings(d.cache_savings(small))
    assert shown(cache, "saved") == ["$0.300", "$0.000"]
    assert shown(cache, "input tokens from cache") == ["10.0%", "0.0%"]  # 2,000 of 20,000 input tokens


def test_cost_per_success_per_model(small):
    chart = c.cost_per_success(d.cost_per_success(small, "model"), "model")
    got = {(t["Day (UTC)"], t["model"]): t["per success"] for t in tips(chart)}
    assert got == {("Mar 01", "m-fast"): "$0.100", ("Mar 01", "m-mid"): "$0.300",
                   ("Mar 01", "m-strong"): "$0.500", ("Mar 02", "m-fast"): "$0.100"}  # (1.00 + 0.30) / 13


def test_latency_panels_per_percentile(small):
    chart = c.latency(d.latency(small, "route"), "route")
    assert [f["sort"] for f in [chart.to_dict()["facet"]["column"]]] == [["p50", "p95", "p99"]]
    # triage day 1: 8 requests in bin 200, 2 in bin 300 (test_dashboards): p50 = 10^2.00625, p95 = 10^3.00525
    assert shown(chart, "latency (ms)", route="triage", percentile="p50", **{"Day (UTC)": "Mar 01"}) == ["101"]
    assert shown(chart, "latency (ms)", route="triage", percentile="p95", **{"Day (UTC)": "Mar 01"}) == ["1,012"]


def test_rates_circuit_openings_and_slowest(small):
    r = c.rates(d.rates(small))
    assert shown(r, "rate", kind="error", **{"Day (UTC)": "Mar 01"}) == ["6.67%"]            # 1 of 15
    assert shown(r, "rate", kind="failed attempt", **{"Day (UTC)": "Mar 02"}) == ["18.75%"]  # 3 of 16
    circuits = c.circuit_openings(d.circuit_openings(small), span=(D1, D2))
    assert shown(circuits, "skips") == ["1"]
    slow = c.slowest(d.slowest(small))
    assert [t["route"] for t in tips(slow)][:3] == ["synthesis", "triage", "extraction"]
    assert shown(slow, "error rate", route="synthesis")[0] == "20.00%"


def test_quality_charts(small, policy):
    v = c.verification(d.verification(small))
    assert shown(v, "rate", model="m-strong") == ["25.00%"]
    deg = c.serves(d.degraded_serves(small), "Degraded serves per day", "none", span=(D1, D2))
    assert [(t["date"], t["route"], t["served by"], t["requests"]) for t in tips(deg)] == [
        ("2026-03-02", "extraction", "fast", "3")]
    base = c.baseline_scores(pl.DataFrame({"model": ["a", "a", "b"], "intent": ["x", "y", "x"],
                                           "score": [0.9, 0.5, 0.7], "n": [10, 8, 10]}))
    assert sorted(shown(base, "mean score")) == ["0.500", "0.700", "0.900"]
    shadow = c.shadow_comparison(pl.DataFrame({"comparison": ["x: b vs a"], "rate": [0.6], "low": [0.5],
                                               "high": [0.7], "verdict": ["switch"], "n": [100]}))
    assert shown(shadow, "verdict") and set(shown(shadow, "rate")) == {"60.0%"}


def test_playbook_grids_show_each_cell():
    grid = pl.DataFrame({"provider": ["anthropic", "openai", "anthropic"], "intent": ["x", "x", "y"],
                         "effect": ["fallback", "fails", "unaffected"], "served_by": ["b", None, "a"],
                         "requests_per_day": [12.5, 3.0, 0.0], "monthly_cost_before_usd": [10.0, 2.0, 1.0],
                         "monthly_cost_after_usd": [7.5, 0.0, 1.0]})
    blast = c.blast_radius(grid)
    assert shown(blast, "effect", intent="x", without="openai") == ["fails"]
    assert shown(blast, "$/month after", intent="x", without="anthropic") == ["$7.50"]
    ready = c.readiness(pl.DataFrame({"check": ["drill", "keys"], "intent": ["x", "x"], "ok": [False, True],
                                      "detail": ["no drill report covers it", "owned"]}))
    assert shown(ready, "status", check="drill") == ["FAIL"] and shown(ready, "status", check="keys") == ["ok"]
    assert "No hosted provider" in c.to_svg(c.blast_radius(grid.head(0)))


def test_empty_frames_say_so_instead_of_drawing_nothing(small, policy):
    empty = small.head(0)
    for chart, sentence in [
        (c.spend_over_time(d.spend(empty, "team"), "team"), "No spend in the period."),
        (c.serves(d.degraded_serves(empty), "Degraded", "No degraded serves in the period."),
         "No degraded serves in the period."),
        (c.budget_vs_actual(*d.budget_status(small, [])), "No budgets in the policy"),
        (c.verification(d.verification(small.filter(pl.col("verification_failures") == 0))),
         "No answer failed its route's verification"),
    ]:
        svg = c.to_svg(chart)
        assert sentence in svg, sentence


def test_what_if_charts_and_explorer(tmp_path):
    from toolkit.estimate import Scenario, estimate_scenarios
    from toolkit.policy import load_policy

    # $1 / $2 per million input / output tokens: 1,000 requests/day x 30 days x (500 x 1e-6 + 100 x 2e-6) = $21.00
    p = tmp_path / "p.yaml"
    p.write_text("models:\n  m: {model: openai/m, tier: 1, price: {input_per_mtok: 1, output_per_mtok: 2}}\n"
                 "routes:\n  r: {primary: m}\n")
    policy = load_policy(p)
    base = Scenario.single("base", "m", requests_per_day=1000, input_tokens=500, output_tokens=100, intent="r")
    rows = estimate_scenarios([base], policy=policy)
    comparison = c.scenario_comparison(d.scenario_costs(rows, "intent"), "intent")
    assert shown(comparison, "per month") == ["$21.00"]
    sens = c.sensitivity(d.sensitivity(base, policy=policy, factors=(0.5, 1.0, 2.0)))
    assert sorted(shown(sens, "per month", driver=d.SAME_DRIVERS)) == ["$10.50", "$21.00", "$42.00"]

    box = c.what_if_explorer([base], policy=policy)
    volume = box.children[1].children[0]
    volume.value = 2.0                                    # moving the slider re-estimates and re-draws
    edited = {t["scenario"]: t["per month"] for t in tips(box.charts[0]) if "per month" in t}
    assert edited == {"base": "$21.00", "base (edited)": "$42.00"}
    box.children[0].children[1].value = "model"           # and so does the split dropdown
    assert "model" in box.charts[0].to_dict()["layer"][0]["encoding"]["color"]["field"]

    # a scenario file's 31-day month: $21.70 at the plan, in the sensitivity lines and in the explorer alike
    sens31 = c.sensitivity(d.sensitivity(base, policy=policy, factors=(1.0,), days=31))
    assert shown(sens31, "per month", driver=d.SAME_DRIVERS) == ["$21.70"]
    box31 = c.what_if_explorer([base], policy=policy, days=31)
    assert {t["per month"] for t in tips(box31.charts[0]) if "per month" in t} == {"$21.70"}


def test_export_svg_png_html(small, tmp_path):
    chart = c.spend_over_time(d.spend(small, "team"), "team")
    paths = c.save_all({"spend": chart}, tmp_path / "out", "png") + [c.save(chart, tmp_path / "s.svg"),
                                                                    c.save(chart, tmp_path / "s.html")]
    assert paths[0].read_bytes()[:4] == b"\x89PNG"
    assert "<title>" in paths[1].read_text()
    assert "vegaEmbed" in paths[2].read_text() and "cdn.jsdelivr" not in paths[2].read_text()  # JS inlined
    with pytest.raises(ValueError, match="export as .svg, .png or .html"):
        c.save(chart, tmp_path / "s.pdf")


def test_raw_records_are_refused():
    # 10M rows must never reach altair: the builders say what to do, altair's own guard stays on behind them
    rows = pl.DataFrame({"period": [date(2026, 3, 1)] * 6000, "team": ["a"] * 6000, "cost_usd": [1.0] * 6000,
                         "requests": [1] * 6000})
    with pytest.raises(ValueError, match="6,000 points per hour: too many to draw; choose a coarser grain"):
        c.spend_over_time(rows, "team", "hour")
    with pytest.raises(alt.MaxRowsError):
        alt.Chart(rows).mark_bar().encode(x="period:T", y="cost_usd:Q").to_dict()


def test_every_chart_compiles_with_vegalite_5_for_jupyterlab(small, policy):
    """JupyterLab 4 draws Vega-Lite 3-5 only: each builder must use nothing newer (vl-convert bundles 5.8)."""
    import vl_convert as vlc

    scen = pl.DataFrame({"scenario": ["a", "b"], "intent": ["x", "x"], "monthly_usd": [1.0, 2.0],
                         "low_usd": [0.5, 1.0], "high_usd": [2.0, 3.0]})
    charts = [
        c.spend_over_time(d.spend(small, "team"), "team"), c.budget_vs_actual(*d.budget_status(small, policy.budgets)),
        c.cost_drivers(d.cost_drivers(small, d.Period(D2, D2), "team"), "team"), c.waste(d.waste(small)),
        c.cost_per_success(d.cost_per_success(small, "model"), "model"), c.cache_savings(d.cache_savings(small)),
        c.latency(d.latency(small, "model"), "model"), c.rates(d.rates(small)),
        c.circuit_openings(d.circuit_openings(small), span=(D1, D2)), c.slowest(d.slowest(small)),
        c.verification(d.verification(small)), c.serves(d.degraded_serves(small), "t", "none", (D1, D2)),
        c.baseline_scores(pl.DataFrame({"model": ["a"], "intent": ["x"], "score": [0.5], "n": [3]})),
        c.shadow_comparison(pl.DataFrame({"comparison": ["x"], "rate": [0.6], "low": [0.5], "high": [0.7],
                                          "verdict": ["switch"], "n": [40]})),
        c.scenario_comparison(scen), c.sensitivity(pl.DataFrame({"driver": ["volume"], "factor": [1.0],
                                                                  "monthly_usd": [1.0]})),
        c.blast_radius(pl.DataFrame({"provider": ["p"], "intent": ["x"], "effect": ["fails"], "served_by": [None]},
                                    schema_overrides={"served_by": pl.String})),
        c.readiness(pl.DataFrame({"check": ["drill"], "intent": ["x"], "ok": [True], "detail": ["ok"]})),
        c.no_data("t", "nothing"),
    ]
    for chart in charts:
        v5 = vlc.vegalite_to_svg(c.as_vegalite5(chart.to_dict()), vl_version="5.8")
        assert v5.count("<path") + v5.count("<text") > 3


def _days(n: int, end: date) -> list[date]:
    from datetime import timedelta

    return [end - timedelta(days=n - 1 - i) for i in range(n)]


def test_the_day_in_progress_is_marked_partial_not_drawn_as_a_cliff():
    from datetime import datetime, timedelta, timezone

    today = datetime.now(timezone.utc).date()
    frame = pl.DataFrame({"period": _days(5, today), "team": ["a"] * 5, "cost_usd": [5.0, 5.2, 4.9, 5.1, 0.3],
                          "requests": [100] * 4 + [6]})
    svg = c.to_svg(c.spend_over_time(frame, "team"))
    assert "so far (partial)" in svg and "Spend by team per day" in svg
    closed = frame.with_columns(period=pl.col("period") - timedelta(days=1))          # the log ends yesterday
    assert "so far (partial)" not in c.to_svg(c.spend_over_time(closed, "team"))
    # a series that ends today: rates, waste and cost per success carry the same mark
    waste = pl.DataFrame({"period": _days(3, today), "failed_cost_usd": [1.0, 2.0, 0.1], "failed_attempts": [3, 4, 1],
                          "retried_requests": [1, 1, 0], "fallback_requests": [2, 2, 0], "failed_requests": [0, 1, 0]})
    assert c.to_svg(c.waste(waste)).count(">so far (partial)</text>") == 2        # one per panel
    # latency percentiles of a few hours are left out, and the subtitle says so
    lat = pl.DataFrame({"period": _days(3, today) * 3, "model": ["m"] * 9, "percentile": ["p50"] * 3 + ["p95"] * 3
                        + ["p99"] * 3, "latency_ms": [100.0] * 9, "requests": [50] * 9})
    spec = c.latency(lat, "model").to_dict()
    assert "the day in progress left out" in str(spec["title"])
    assert all(row["period"] != str(today) and str(today) not in str(row["period"])
               for rows in spec["datasets"].values() for row in rows)


def test_latency_by_model_draws_the_busiest_models_only():
    lat = pl.DataFrame({"period": [date(2026, 3, 1)] * 14, "model": [f"model-{i:02d}" for i in range(14)],
                        "percentile": ["p95"] * 14, "latency_ms": [100.0 + i for i in range(14)],
                        "requests": [1000 - i for i in range(14)]})
    spec = c.latency(lat, "model").to_dict()
    drawn = {row["model"] for rows in spec["datasets"].values() for row in rows}
    assert drawn == {f"model-{i:02d}" for i in range(6)}
    assert "the 6 models with the most requests of 14" in str(spec["title"])


def test_sensitivity_folds_what_moves_alike_and_shows_each_models_price(tmp_path):
    from toolkit.estimate import IntentLoad, Scenario, Dist
    from toolkit.policy import load_policy

    p = tmp_path / "p.yaml"
    p.write_text("models:\n  cheap: {model: openai/cheap, tier: 1, price: {input_per_mtok: 1, output_per_mtok: 2}}\n"
                 "  dear: {model: openai/dear, tier: 3, price: {input_per_mtok: 10, output_per_mtok: 30}}\n"
                 "routes:\n  r: {primary: cheap}\n")
    policy = load_policy(p)
    one = Scenario.single("one", "cheap", requests_per_day=1000, input_tokens=500, output_tokens=100, intent="r")
    folded = d.sensitivity(one, policy=policy, factors=(0.5, 1.0, 2.0))
    assert folded["driver"].unique().to_list() == [d.SAME_DRIVERS]                 # one line, not three panels
    assert folded["monthly_usd"].to_list() == pytest.approx([10.5, 21.0, 42.0])
    both = Scenario("both", (IntentLoad("r", 1000, Dist.of(500), Dist.of(100), {"cheap": 0.5, "dear": 0.5}),))
    lines = d.sensitivity(both, policy=policy, factors=(1.0, 2.0))
    slope = {k: g["monthly_usd"].to_list()[1] - g["monthly_usd"].to_list()[0]
             for (k,), g in lines.group_by("driver")}
    assert set(slope) == {d.SAME_DRIVERS, "price of dear", "price of cheap"}
    assert slope["price of dear"] > 5 * slope["price of cheap"] > 0                 # the dear model's price matters
    chart = c.sensitivity(lines)
    assert sorted(set(shown(chart, "driver"))) == sorted(slope)


def test_every_chart_fits_a_notebook_column_with_long_legend_labels():
    names = [f"meta-llama/llama-3.3-70b-instruct-variant-{i}" for i in range(8)]
    frame = pl.DataFrame({"period": [date(2026, 3, 1)] * 8, "model": names, "cost_usd": [1.0] * 8, "requests": [5] * 8})
    for chart in (c.spend_over_time(frame, "model"),
                  c.cost_per_success(frame.with_columns(cost_per_success_usd=pl.lit(0.2), served=pl.lit(5)), "model"),
                  c.latency(frame.with_columns(percentile=pl.lit("p95"), latency_ms=pl.lit(100.0)), "model")):
        width = float(re.search(r'<svg[^>]*width="([\d.]+)"', c.to_svg(chart))[1])
        assert width <= 820, width


def test_research_charts_go_through_the_offline_renderer():
    from toolkit import research

    report = research.frontier_report(research.load_outcomes(research_table()), [])
    bundle = c.frontier_chart(report)._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert {"image/svg+xml", c.VEGALITE5_MIME} <= set(data)
    assert "cdn.jsdelivr" not in str(data) and "<script" not in str(data)


def research_table():
    from toolkit import resources

    return resources.data_file("outcomes/routerarena.csv")
