"""`routekit stats` and percentiles from rollups, against exact numbers over the raw records."""
from __future__ import annotations

import json
import random
from datetime import timedelta

import polars as pl
import pytest

from tests.test_rollups import DAY0, make_log, synth_records
from toolkit import rollups
from toolkit.cli import main
from toolkit.routelog import RouteLogWriter, scan_log


@pytest.fixture(scope="module")
def big_log(tmp_path_factory):
    root = tmp_path_factory.mktemp("stats") / "routelog"
    records = make_log(root, [10000, 10000, 10000], compacted=(0, 1), torn=(2,))
    rollups.build_rollups(root)   # so that a test reading them with --no-build may run alone
    return root, records


def stats(capsys, *argv: str) -> dict:
    assert main(["stats", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_stats_by_model_percentiles_within_one_percent_of_exact(big_log, capsys):
    log, records = big_log
    out = stats(capsys, "--log", str(log), "--by", "model")
    exact = (scan_log(log).frame.group_by(pl.col("gen_ai.response.model").alias("model"))
             .agg(pl.len().alias("requests"),
                  *(pl.col("latency_ms").quantile(q).alias(f"p{q * 100:g}_ms") for q in (0.5, 0.95, 0.99)))
             .collect())
    exact = {r["model"]: r for r in exact.iter_rows(named=True)}
    assert {g["model"] for g in out["groups"]} == set(exact) and None in exact  # (not served) included
    for g in out["groups"]:
        want = exact[g["model"]]
        assert g["requests"] == want["requests"]
        for p in ("p50_ms", "p95_ms", "p99_ms"):
            assert g[p] == pytest.approx(want[p], rel=0.01), (g["model"], p)
    assert out["total"]["requests"] == len(records) == 30000


def test_all_period_p95_is_right_from_combined_days_where_averaging_daily_p95s_is_wrong(tmp_path):
    # A quiet fast day and a short slow incident day: the period's p95 is set by the incident.
    log = tmp_path / "routelog"
    rng = random.Random(3)
    with RouteLogWriter(log) as w:
        w.write_records(synth_records(rng, DAY0, 2000, latency_scale=1.0))
        w.write_records(synth_records(rng, DAY0 + timedelta(days=1), 250, latency_scale=20.0))
    frame = rollups.load_rollups(log).collect()
    raw = scan_log(log).frame.collect()["latency_ms"]
    exact = raw.quantile(0.95)

    combined = rollups.summarize(frame)["p95_ms"][0]
    daily = rollups.summarize(frame, ["date"])
    averaged = (daily["p95_ms"] * daily["requests"]).sum() / daily["requests"].sum()  # request-weighted
    assert combined == pytest.approx(exact, rel=0.01)
    assert abs(averaged / exact - 1) > 0.2  # what averaging percentiles would have shown


def test_stats_table_for_the_on_call_person(big_log, capsys):
    log, records = big_log
    assert main(["stats", "--log", str(log), "--by", "team", "--since", str(DAY0 + timedelta(days=1))]) == 0
    table, skipped = capsys.readouterr().out.split("\n\n")
    lines = table.splitlines()
    assert lines[0].split() == ["team", "requests", "p50", "ms", "p95", "ms", "p99", "ms", "error", "fallback",
                                "degraded", "cost", "cost/ok"]
    since = [r for r in records if r["timestamp"].date() >= DAY0 + timedelta(days=1)]
    assert lines[-1].split()[:2] == ["all", f"{len(since):,}"]
    teams = {line.split()[0]: int(line.split()[1].replace(",", "")) for line in lines[1:-1]}
    assert teams == {t: sum(r["team"] == t for r in since) for t in {r["team"] for r in since}}
    # the log's torn line is not in these numbers, and the table says so
    torn = log / f"date={DAY0 + timedelta(days=2)}" / "routes.jsonl"
    assert skipped.splitlines() == ["not counted above: skipped 1 bad line in the log (files untouched):",
                                    f"  {torn}:10001: not a route record: invalid JSON (Unterminated string "
                                    "starting at: line 1 column 35 (char 34))"]


def test_stats_json_by_two_keys_with_rates(big_log, capsys):
    log, records = big_log
    out = stats(capsys, "--log", str(log), "--by", "intent,provider", "--no-build")
    assert out["by"] == ["intent", "provider"]
    row = next(g for g in out["groups"] if g["intent"] == "code" and g["provider"] == "anthropic")
    mine = [r for r in records if r["intent"] == "code" and r["gen_ai.provider.name"] == "anthropic"]
    assert row["requests"] == len(mine)
    assert row["fallback_rate"] == pytest.approx(sum(r["fallback_used"] for r in mine) / len(mine))
    assert row["cost_usd"] == pytest.approx(sum(r["cost_usd"] or 0 for r in mine), rel=1e-9)
    failed = [g for g in out["groups"] if g["provider"] is None]
    assert sum(g["failed"] for g in failed) == sum(r["outcome"] == "failed" for r in records)
    # a key named twice is one key (before: polars' DuplicateError and its query plan, exit 3)
    assert stats(capsys, "--log", str(log), "--by", "intent,provider,intent", "--no-build") == out


def test_stats_reads_the_day_grain_unless_grouped_by_hour_with_the_same_numbers(big_log, capsys):
    log, records = big_log
    out = stats(capsys, "--log", str(log), "--by", "model,team")
    assert sum(g["requests"] for g in out["groups"]) == len(records)
    hourly = rollups.summarize(rollups.load_rollups(log, build=False), ["served_model", "team"])
    assert out["groups"] == hourly.rename({"served_model": "model"}).to_dicts()  # every count, sum and percentile
    by_hour = stats(capsys, "--log", str(log), "--by", "hour", "--no-build")
    assert len(by_hour["groups"]) == len({r["timestamp"].replace(minute=0, second=0, microsecond=0) for r in records})
    assert by_hour["total"] == out["total"]


def test_stats_bad_input(tmp_path, capsys):
    assert main(["stats", "--log", str(tmp_path / "missing")]) == 2
    assert "no route log at" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["stats", "--log", str(tmp_path), "--by", "colour"])
    assert "unknown --by 'colour'" in capsys.readouterr().err
