"""The synthetic history: written and compacted for real, priced by the snapshot, incidents findable."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from toolkit.costs import PriceBook, Usage
from toolkit.policy import load_policy
from toolkit.routelog import FIELD_NAMES, polars_schema, scan_log
from toolkit.synth import DEFAULT_POLICY, TRUTH_NAME, synthesize

ROOT = Path(__file__).resolve().parent.parent
DAYS, REQUESTS, END = 28, 40_000, "2026-10-31"


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "log"
    result = synthesize(root, days=DAYS, requests=REQUESTS, seed=11, end=END)
    scan = scan_log(root)
    return result, scan, scan.frame.collect()


def attempts(df: pl.DataFrame) -> pl.DataFrame:
    return (df.select("request_id", "timestamp", "price_version", "attempts").explode("attempts")
            .unnest("attempts"))


def test_written_by_the_writer_and_compacted(synth):
    result, scan, df = synth
    assert scan.bad_lines == 0 and df.height == REQUESTS == result.truth["totals"]["records"]
    assert dict(df.schema) == polars_schema()
    days = sorted(p.name for p in result.log_dir.glob("date=*"))
    assert len(days) == DAYS and days[-1] == f"date={END}" and days[0] == "date=2026-10-04"
    for part in result.log_dir.glob("date=*"):
        assert [p.name.split("-")[0] for p in part.iterdir()] == ["part"]     # compacted, no JSON left
    assert df["request_id"].n_unique() == REQUESTS and (df["source"] == "synth").all()
    assert df["prompt"].is_null().all() and df["output"].is_null().all()
    totals = result.truth["totals"]
    assert totals["degraded"] == df["degraded"].sum() and totals["fallback_used"] == df["fallback_used"].sum()
    assert totals["cost_usd"] == pytest.approx(df["cost_usd"].sum(), abs=1e-6)
    assert json.loads((result.log_dir / TRUTH_NAME).read_text()) == result.truth


def test_records_are_consistent_like_the_routers(synth):
    _, _, df = synth
    policy = load_policy(DEFAULT_POLICY)
    assert (df["attempt_count"] == df["attempts"].list.len()).all()
    failed = df["attempts"].list.eval(pl.element().struct.field("outcome") != "ok").list.sum()
    assert (df["failed_attempt_count"] == failed).all() and failed.sum() > 0
    assert (df["policy_version"] == policy.version).all()
    chain0 = {i: policy.chain(i)[0] for i in policy.routes}
    assert (df["requested_alias"] == df["intent"].replace_strict(chain0)).all()
    served = df.filter(pl.col("outcome") == "served")
    last = served["attempts"].list.last().struct.field("alias")
    assert (served["served_alias"] == last).all()                       # the last attempt served
    assert (served["fallback_used"] == (served["served_alias"] != served["requested_alias"])).all()
    tiers = {a: m.tier for a, m in policy.models.items()}
    assert (served["served_tier"] == served["served_alias"].replace_strict(tiers)).all()
    assert (served["degraded"] == (served["served_tier"] < served["min_tier"])).all()
    # Token totals are the sums over attempts; failed attempts carry no usage.
    a = df.select("gen_ai.usage.input_tokens", pl.col("attempts").list.eval(
        pl.element().struct.field("input_tokens")).list.sum().alias("sum"))
    assert (a["gen_ai.usage.input_tokens"] == a["sum"]).all()
    # Synthesis never serves below its floor: mid-anthropic is always skipped as below_floor.
    synth_route = df.filter(pl.col("intent") == "synthesis")
    assert synth_route["skipped"].list.eval(pl.element().struct.field("reason") == "below_floor").list.any().all()



def test_every_sensitivity_label_is_one_the_policy_declares(synth):
    # The Router refuses an undeclared label, so a synthetic record must not carry one (replays would count it
    # as refused); a record on a local route carries a class the policy keeps local.
    _, _, df = synth
    policy = load_policy(DEFAULT_POLICY)
    labels = set(df["sensitivity"].drop_nulls().unique())
    assert labels and labels <= set(policy.sensitivity)
    local = [i for i in policy.routes if policy.required_boundary(policy.routes[i], None) == "local"]
    assert local
    on_local = df.filter(pl.col("intent").is_in(local))["sensitivity"]
    assert on_local.is_not_null().all() and all(policy.sensitivity[x] == "local" for x in on_local.unique())
    assert df["sensitivity"].is_null().any()


def test_every_attempt_is_priced_by_the_snapshot(synth):
    result, _, df = synth
    policy, book = load_policy(DEFAULT_POLICY), PriceBook.load()
    change = result.truth["injected"]["price_change"]
    sample = attempts(df.sample(3000, seed=1)).filter(pl.col("alias").is_not_null())
    for row in sample.iter_rows(named=True):
        usage = Usage(row["input_tokens"], row["output_tokens"], row["cache_read_tokens"], row["cache_write_tokens"],
                      row["reasoning_tokens"])
        expected = book.rates_for(policy.models[row["alias"]]).cost(usage)[0]
        after = row["timestamp"].date().isoformat() >= change["from"]
        if row["alias"] == change["alias"] and after:
            expected *= change["factor"]
        assert row["cost_usd"] == pytest.approx(expected, rel=1e-12, abs=1e-15)
        assert row["price_version"] == (change["price_version"] if after else book.version)
    totals = df.select("cost_usd", pl.col("attempts").list.eval(pl.element().struct.field("cost_usd")).list.sum()
                       .round(12).alias("sum"))
    assert (totals["cost_usd"] == totals["sum"]).all()


def test_injected_outage_is_visible(synth):
    result, _, df = synth
    o = result.truth["injected"]["vendor_outage"]
    window = pl.col("timestamp").is_between(pl.lit(o["start"]).str.to_datetime(time_zone="UTC"),
                                            pl.lit(o["end"]).str.to_datetime(time_zone="UTC"), closed="left")
    att = attempts(df)
    down = att.filter(window & pl.col("alias").is_in(o["aliases"]))
    assert down.height > 0 and set(down["outcome"]) <= {"timeout", "server_error"}
    during = df.filter(window & pl.col("requested_alias").is_in(o["aliases"]))
    assert during.height > 20 and during["fallback_used"].mean() > 0.9
    skipped = during["skipped"].list.eval(pl.element().struct.field("reason") == "circuit_open").list.any()
    assert skipped.mean() > 0.7
    failed_primary = during.filter(pl.col("attempts").list.first().struct.field("alias").is_in(o["aliases"]))
    assert failed_primary.height > 0 and failed_primary["attempt_count"].min() >= 2
    outside = df.filter(~window & pl.col("requested_alias").is_in(o["aliases"]))
    assert outside["fallback_used"].mean() < 0.02


def test_injected_storm_and_degraded_serves(synth):
    result, _, df = synth
    storm, degraded = result.truth["injected"]["rate_limit_storm"], result.truth["injected"]["degraded_serves"]
    att = attempts(df).filter(pl.col("alias") == storm["alias"])
    window = pl.col("timestamp").is_between(pl.lit(storm["start"]).str.to_datetime(time_zone="UTC"),
                                            pl.lit(storm["end"]).str.to_datetime(time_zone="UTC"), closed="left")
    rate = lambda d: (d["outcome"] == "rate_limited").mean()  # noqa: E731
    assert rate(att.filter(window)) > 0.4 and rate(att.filter(~window)) < 0.01
    assert att.filter(window & (pl.col("outcome") == "rate_limited"))["retry_after_s"].min() >= 3
    bad = df.filter(pl.col("degraded"))
    assert bad.height == degraded["count"] >= 3
    assert set(bad["intent"]) == {degraded["route"]}
    assert set(bad["timestamp"].dt.date().cast(pl.String)) == set(degraded["by_date"]) == {storm["date"]}
    assert (bad["served_tier"] < bad["min_tier"]).all()


def test_injected_runaway_creep_and_rhythm(synth):
    result, _, df = synth
    inj = result.truth["injected"]
    run = inj["runaway_team"]
    daily = (df.filter(pl.col("team") == run["team"]).group_by(day=pl.col("timestamp").dt.date())
             .agg(pl.col("cost_usd").sum()))
    before = daily.filter(pl.col("day") < date.fromisoformat(run["from"]))["cost_usd"].mean()
    after = daily.filter(pl.col("day") >= date.fromisoformat(run["from"]))["cost_usd"].mean()
    assert after > 4 * before
    creep = inj["latency_creep"]
    lat = (attempts(df).filter((pl.col("alias") == creep["alias"]) & (pl.col("outcome") == "ok"))
           .group_by(day=pl.col("timestamp").dt.date()).agg(pl.col("latency_ms").median()).sort("day"))
    assert lat["latency_ms"].tail(4).mean() > 1.4 * lat["latency_ms"].head(4).mean()
    steady = (attempts(df).filter((pl.col("alias") == "fast-openai") & (pl.col("outcome") == "ok"))
              .group_by(day=pl.col("timestamp").dt.date()).agg(pl.col("latency_ms").median()).sort("day"))
    assert steady["latency_ms"].tail(4).mean() < 1.15 * steady["latency_ms"].head(4).mean()
    per_day = df.group_by(wd=pl.col("timestamp").dt.weekday(), day=pl.col("timestamp").dt.date()).len()
    weekend = per_day.filter(pl.col("wd") >= 6)["len"].mean()
    assert weekend < 0.5 * per_day.filter(pl.col("wd") < 6)["len"].mean()
    hourly = df.group_by(pl.col("timestamp").dt.hour()).len()["len"]
    assert hourly.max() > 2.5 * hourly.min()


def test_same_seed_same_log_and_refuses_to_overwrite(tmp_path):
    a = synthesize(tmp_path / "a", days=3, requests=2000, seed=5, end="2026-06-30")
    b = synthesize(tmp_path / "b", days=3, requests=2000, seed=5, end="2026-06-30")
    c = synthesize(tmp_path / "c", days=3, requests=2000, seed=6, end="2026-06-30")
    frame = lambda r: scan_log(r.log_dir).frame.sort("request_id").collect()  # noqa: E731
    assert frame(a).equals(frame(b)) and not frame(a).equals(frame(c))
    with pytest.raises(FileExistsError, match="already holds a route log"):
        synthesize(tmp_path / "a", days=3, requests=100, seed=1, end="2026-06-30")
    synthesize(tmp_path / "a", days=2, requests=100, seed=1, end="2026-06-30", replace=True)
    assert scan_log(tmp_path / "a").frame.collect().height == 100
    for days, requests in ((0, 10), (5, 0)):  # nothing to write is bad input, said before writing anything
        with pytest.raises(ValueError, match="days and requests must each be at least 1"):
            synthesize(tmp_path / "empty", days=days, requests=requests)
        assert not (tmp_path / "empty").exists()


def test_cli_synth_then_scan(tmp_path):
    log = tmp_path / "log"
    run = lambda *a: subprocess.run([sys.executable, "-m", "toolkit.cli", "log", *a], cwd=ROOT,  # noqa: E731
                                    capture_output=True, text=True, timeout=300)
    r = run("synth", "--days", "5", "--requests", "3000", "--seed", "2", "--log", str(log))
    assert r.returncode == 0, r.stderr
    assert "3000 records over 5 days" in r.stdout and (log / TRUTH_NAME).exists()
    r = run("scan", "--log", str(log))
    assert r.returncode == 0 and "3000 records" in r.stdout and "5 days" in r.stdout and "no bad lines" in r.stdout
    r = run("synth", "--days", "5", "--requests", "10", "--log", str(log))
    assert r.returncode == 2 and "already holds a route log" in r.stderr
    assert run("synth", "--help").stdout.count("example") >= 1


def test_every_field_is_written(synth):
    result, _, _ = synth
    # The JSON lines the writer received had every field of the schema, in order.
    part = next(result.log_dir.glob("date=*/part-*.parquet"))
    assert pl.read_parquet_schema(part).names() == list(FIELD_NAMES)
    assert os.path.getsize(part) > 0
