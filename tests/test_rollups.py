"""Rollups: contract, exact sums against the raw records, engines agreeing, incremental and interrupted builds.

The logs here are written by the real RouteLogWriter (JSONL) and compacted by the real compactor
(Parquet); expected numbers are computed in plain Python from the records that were written.
"""
from __future__ import annotations

import json
import math
import random
import signal
import subprocess
import sys
import time as systime
from collections import Counter
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from toolkit import rollups
from toolkit.routelog import RouteLogWriter, compact

MODELS = {  # alias -> (model, provider, median latency ms)
    "fast": ("openai/gpt-4o-mini", "openai", 200.0),
    "strong": ("anthropic/claude-sonnet-4-5", "anthropic", 1500.0),
    "local": ("ollama/gemma-3-270m", "ollama", 60.0),
}
ROUTES = {"triage": ("fast", "local"), "code": ("strong", "fast"), "private": ("local", None)}
TEAMS = ("search", "support", "ml")
DAY0 = date(2026, 10, 5)


def synth_records(rng: random.Random, day: date, n: int, *, latency_scale: float = 1.0) -> list[dict]:
    """n route records of one UTC day, shaped like the router's (attempts, skips, fallbacks, shadows)."""
    out = []
    for _ in range(n):
        intent = rng.choice(list(ROUTES))
        primary, fallback = ROUTES[intent]
        outcome = rng.choices(["served", "failed", "blocked"], [88, 9, 3])[0]
        use_fallback = outcome == "served" and fallback is not None and rng.random() < 0.15
        alias = fallback if use_fallback else primary
        model, provider, median = MODELS[alias]
        latency = round(median * latency_scale * rng.lognormvariate(0, 0.5), 3)

        def attempt(a: str, result: str) -> dict:
            return {"alias": a, "model": MODELS[a][0], "provider": MODELS[a][1], "outcome": result,
                    "latency_ms": latency / 2, "cost_usd": 0.0001}

        attempts = []
        if outcome != "blocked":
            if use_fallback or outcome == "failed":
                attempts.append(attempt(primary, rng.choice(["rate_limited", "timeout"])))
            if outcome == "failed" and fallback:
                attempts.append(attempt(fallback, "server_error"))
            if outcome == "served":
                attempts.append(attempt(alias, "ok"))
        skipped = [{"alias": primary, "reason": rng.choice(["circuit_open", "budget", "context_window"]),
                    "detail": "x"} for _ in range(rng.choice([0, 0, 0, 1, 2]))]
        unpriced = rng.random() < 0.03
        served = outcome == "served"
        ts = datetime.combine(day, time(), timezone.utc) + timedelta(microseconds=rng.randrange(86_400_000_000))
        out.append({
            "request_id": f"{rng.getrandbits(64):016x}", "timestamp": ts,
            "gen_ai.operation.name": "chat", "gen_ai.request.model": MODELS[primary][0],
            "gen_ai.response.model": model if served else None, "gen_ai.provider.name": provider if served else None,
            "gen_ai.usage.input_tokens": rng.randint(10, 3000), "gen_ai.usage.output_tokens": rng.randint(0, 800),
            "usage.cache_read_tokens": rng.choice([0, 0, 128]), "usage.cache_write_tokens": rng.choice([0, 64]),
            "usage.reasoning_tokens": rng.randint(0, 50), "intent": intent, "route_id": intent,
            "team": rng.choice(TEAMS), "outcome": outcome,
            "error_kind": None if served else ("budget" if outcome == "blocked" else "rate_limited"),
            "requested_alias": primary, "served_alias": alias if served else None,
            "fallback_used": use_fallback, "degraded": served and rng.random() < 0.04,
            "verification": rng.choice(["pass", "fail", "skipped", "skipped"]),
            "attempt_count": len(attempts), "attempts": attempts, "skipped": skipped,
            "cost_usd": None if unpriced else round(rng.uniform(0, 0.02), 12),
            "failed_cost_usd": round(0.0001 * sum(a["outcome"] != "ok" for a in attempts), 12),
            "cache_savings_usd": round(rng.choice([0.0, 0.00025]), 12), "unpriced": unpriced,
            "latency_ms": latency, "prompt_tokens": rng.randint(10, 3000),
            "shadow_of": f"{rng.getrandbits(64):016x}" if rng.random() < 0.03 else None, "source": "synth",
            "model_mismatch": served and rng.random() < 0.05,
        })
    return out


def make_log(root: Path, per_day: list[int], *, seed: int = 7, compacted: tuple[int, ...] = (0,),
             torn: tuple[int, ...] = (1,)) -> list[dict]:
    """A log of len(per_day) days from DAY0: days in ``compacted`` go to Parquet through the real
    compactor, days in ``torn`` get a torn (unparseable) line.  Returns the good records."""
    rng = random.Random(seed)
    records: list[dict] = []
    with RouteLogWriter(root) as writer:
        for i, n in enumerate(per_day):
            recs = synth_records(rng, DAY0 + timedelta(days=i), n)
            writer.write_records(recs)
            records += recs
    for i in torn:
        with open(root / f"date={DAY0 + timedelta(days=i)}" / "routes.jsonl", "a") as f:
            f.write('{"request_id": "torn-by-a-crash", "timesta\n')
    if compacted:
        compact(root, days=[(DAY0 + timedelta(days=i)).isoformat() for i in compacted])
    return records


def failed_attempts(record: dict) -> int:
    """The record's own count; a record written before that field, counted from its attempts."""
    if record.get("failed_attempt_count") is not None:
        return record["failed_attempt_count"]
    return sum(a["outcome"] != "ok" for a in record["attempts"])


def expected_totals(records: list[dict]) -> dict[str, float]:
    """Every measure of the contract, summed in plain Python from the records (money in whole nano-dollars and
    latency in whole microseconds, as the contract sums them)."""
    def total(f) -> float:
        return sum(f(r) for r in records)

    def nano(x: float) -> int:
        return math.floor(x * 1e9 + 0.5)

    def micro(x: float) -> int:
        return math.floor(x * 1e3 + 0.5)

    return {
        "requests": len(records), "attempts": total(lambda r: r["attempt_count"]),
        "failed_attempts": total(failed_attempts),
        "retried_requests": total(lambda r: r["attempt_count"] > 1),
        "input_tokens": total(lambda r: r["gen_ai.usage.input_tokens"]),
        "output_tokens": total(lambda r: r["gen_ai.usage.output_tokens"]),
        "cache_read_tokens": total(lambda r: r["usage.cache_read_tokens"]),
        "cache_write_tokens": total(lambda r: r["usage.cache_write_tokens"]),
        "reasoning_tokens": total(lambda r: r["usage.reasoning_tokens"]),
        "cost_usd": total(lambda r: nano(r["cost_usd"] or 0.0)) / 1e9,
        "failed_cost_usd": total(lambda r: nano(r["failed_cost_usd"])) / 1e9,
        "cache_savings_usd": total(lambda r: nano(r["cache_savings_usd"])) / 1e9,
        "unpriced_requests": total(lambda r: r["unpriced"]),
        "latency_ms_sum": total(lambda r: micro(r["latency_ms"])) / 1e3,
        "circuit_open_skips": total(lambda r: sum(s["reason"] == "circuit_open" for s in r["skipped"])),
        "verification_failures": total(lambda r: r["verification"] == "fail"),
        "prompt_tokens": total(lambda r: r["prompt_tokens"]),
        "model_mismatches": total(lambda r: r["model_mismatch"]),
    }


def table(log: Path | str, grain: str = "hour") -> pl.DataFrame:
    """The stored rollup, in a canonical row order."""
    keys = list(rollups.KEYS if grain == "hour" else rollups.DAY_KEYS)
    return rollups.load_rollups(log, build=False, grain=grain).collect().sort(keys, nulls_last=True)


@pytest.fixture(scope="module")
def small_log(tmp_path_factory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("rollups") / "routelog"
    return root, make_log(root, [400, 350, 300], compacted=(0,), torn=(1,))


def test_rollup_sums_equal_the_raw_records(small_log, tmp_path):
    src, records = small_log
    log = tmp_path / "routelog"
    _copy(src, log)
    report = rollups.build_rollups(log)
    assert report.records_read == len(records) == 1050  # the torn line is not a record
    df = table(log)
    assert df.schema == pl.Schema(rollups.rollup_schema())
    got = df.select(pl.col(m).sum() for m in rollups.MEASURE_ORDER).row(0, named=True)
    for measure, want in expected_totals(records).items():
        if isinstance(got[measure], int):
            assert got[measure] == want, measure
        else:
            assert got[measure] == pytest.approx(want, rel=1e-15), measure  # exact sums, one division

    # keys: per UTC day and hour, per team x outcome, per latency bin (the contract's formula)
    def key_counts(f) -> Counter:
        return Counter(f(r) for r in records)

    def rollup_counts(*cols: str) -> Counter:
        return Counter({tuple(r[:-1]) if len(cols) > 1 else r[0]: r[-1]
                        for r in df.group_by(*cols).agg(pl.col("requests").sum()).iter_rows()})

    assert rollup_counts("date") == key_counts(lambda r: r["timestamp"].date())
    assert rollup_counts("hour") == key_counts(lambda r: r["timestamp"].replace(minute=0, second=0, microsecond=0))
    assert rollup_counts("team", "outcome") == key_counts(lambda r: (r["team"], r["outcome"]))
    bins = df.select(pl.col("latency_hist").explode().struct.unnest()).group_by("bin").agg(pl.col("n").sum())
    assert Counter(dict(bins.iter_rows())) == key_counts(
        lambda r: math.floor(math.log10(max(r["latency_ms"], 0.01)) * 100))
    # one row per hour and keys, the histogram inside it (v2 had a row per latency bin too)
    groups = {(r["timestamp"].replace(minute=0, second=0, microsecond=0), r["team"], r["intent"], r["route_id"],
               r["gen_ai.request.model"], r["gen_ai.response.model"], r["served_alias"], r["gen_ai.provider.name"],
               r["outcome"], r["error_kind"], r["fallback_used"], r["degraded"], r["shadow_of"] is not None)
              for r in records}
    assert df.height == len(groups) and df.select(rollups.KEYS).is_unique().all()
    assert (df["latency_hist"].list.eval(pl.element().struct.field("n").sum()).list.first() == df["requests"]).all()
    assert rollup_counts("is_shadow") == key_counts(lambda r: r["shadow_of"] is not None)
    assert rollup_counts("served_model", "provider") == key_counts(
        lambda r: (r["gen_ai.response.model"], r["gen_ai.provider.name"]))
    # one file per day, hive-partitioned, with the date inside too
    files = sorted(p.relative_to(log).as_posix() for p in log.glob("_rollups/v3/date=*/*.parquet"))
    assert files == [f"_rollups/v3/date={DAY0 + timedelta(days=i)}/{name}" for i in range(3)
                     for name in ("day.parquet", "part-0.parquet")]


def test_duckdb_and_polars_agree_exactly(small_log, tmp_path):
    src, _ = small_log
    a, b = tmp_path / "a", tmp_path / "b"
    _copy(src, a)
    _copy(src, b)
    rollups.build_rollups(a, "polars")
    rollups.build_rollups(b, "duckdb")
    assert table(a).equals(table(b))


def test_day_grain_is_the_hour_grain_merged_and_engines_agree_on_it(small_log, tmp_path, monkeypatch):
    src, records = small_log
    a, b = tmp_path / "a", tmp_path / "b"
    _copy(src, a, rollups_too=False)
    _copy(src, b, rollups_too=False)
    rollups.build_rollups(a, "polars")
    monkeypatch.setitem(rollups.BYTES_PER_QUERY, "duckdb", 1)  # one day per DuckDB query: the same tables
    assert rollups.build_rollups(b, "duckdb").records_read == len(records)
    day = table(a, "day")
    assert day.schema == pl.Schema(rollups.rollup_schema("day")) and "hour" not in day.columns
    merged = rollups.merge(table(a), rollups.DAY_KEYS).select(day.columns).collect()
    assert day.equals(merged.sort(list(rollups.DAY_KEYS), nulls_last=True))
    assert day.height < table(a).height and day["requests"].sum() == len(records)
    assert table(b, "day").equals(day)
    by_model = lambda f: rollups.summarize(f, ["requested_model"])  # noqa: E731
    assert by_model(day).equals(by_model(table(a)))


def test_rollups_built_in_two_halves_and_merged_equal_the_rollup_built_at_once(tmp_path):
    """Half of each day's records in one log (rolled up by DuckDB), half in another (polars): merging the two
    rollups gives the rollup of all records, every count, sum and histogram bin; percentiles within 1% of exact."""
    rng = random.Random(11)
    records = [r for i in range(2) for r in synth_records(rng, DAY0 + timedelta(days=i), 900)]
    halves = records[::2], records[1::2]
    for name, recs in (("whole", records), ("a", halves[0]), ("b", halves[1])):
        with RouteLogWriter(tmp_path / name) as w:
            w.write_records(recs)
    rollups.build_rollups(tmp_path / "whole")
    rollups.build_rollups(tmp_path / "a", "duckdb")
    rollups.build_rollups(tmp_path / "b", "polars")
    whole = table(tmp_path / "whole")
    parts = pl.concat([table(tmp_path / "a"), table(tmp_path / "b")])
    assert parts.height > whole.height  # some (hour, keys) rows are in both halves
    merged = rollups.merge(parts, rollups.KEYS).select(whole.columns).collect()
    assert merged.sort(list(rollups.KEYS), nulls_last=True).equals(whole)

    exact = (pl.DataFrame({"requested_model": [r["gen_ai.request.model"] for r in records],
                           "latency_ms": [r["latency_ms"] for r in records]})
             .group_by("requested_model")
             .agg(*(pl.col("latency_ms").quantile(q, "linear").alias(f"x{q * 100:g}") for q in (0.5, 0.95, 0.99))))
    got = rollups.summarize(merged, ["requested_model"]).join(exact, on="requested_model")
    assert got.height == len(MODELS)
    for q in ("50", "95", "99"):
        assert ((got[f"p{q}_ms"] / got[f"x{q}"] - 1).abs() < 0.01).all(), q


def test_an_older_rollup_format_is_rebuilt_on_first_read_with_a_message(small_log, tmp_path, caplog, capsys):
    """A log rolled up by routekit before contract v3 has ``_rollups/v2`` (one row per latency bin): it is not read;
    the first read builds v3 and says so, once."""
    from toolkit.cli import main

    src, records = small_log
    log = tmp_path / "routelog"
    _copy(src, log, rollups_too=False)
    rollups.build_rollups(log)
    want = table(log)
    # the v2 layout: the same numbers, one row per latency bin, under _rollups/v2 with a version-2 manifest
    v2 = log / "_rollups/v2"
    manifest = json.loads((log / "_rollups/v3/_manifest.json").read_text())
    for day in manifest["days"]:
        binned = (pl.read_parquet(log / f"_rollups/v3/date={day}/part-0.parquet").explode("latency_hist")
                  .with_columns(latency_bin=pl.col("latency_hist").struct.field("bin"),
                                requests=pl.col("latency_hist").struct.field("n")).drop("latency_hist"))
        (v2 / f"date={day}").mkdir(parents=True)
        binned.write_parquet(v2 / f"date={day}/part-0.parquet")
    (v2 / "_manifest.json").write_text(json.dumps({"version": 2, "days": manifest["days"]}))
    import shutil

    shutil.rmtree(log / "_rollups/v3")

    with caplog.at_level("WARNING", logger="routekit.rollups"):
        frame = rollups.load_rollups(log).collect()
    assert frame.sort(list(rollups.KEYS), nulls_last=True).equals(want)
    assert frame["requests"].sum() == len(records)
    [message] = [r.getMessage() for r in caplog.records if r.name == "routekit.rollups"]
    assert "older format" in message and "_rollups/v2" in message and "_rollups/v3" in message
    # once: the next build reads the v3 manifest and has nothing to say
    assert rollups.build_rollups(log).replaced == ""
    shutil.rmtree(log / "_rollups/v3")
    assert main(["rollup", "--log", str(log)]) == 0
    assert "older format (" in capsys.readouterr().out


def test_duckdb_and_polars_agree_on_a_log_of_parquet_only(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    records = make_log(a, [60, 50], compacted=(0, 1), torn=())
    make_log(b, [60, 50], compacted=(0, 1), torn=())
    assert rollups.build_rollups(a, "polars").records_read == rollups.build_rollups(b, "duckdb").records_read == 110
    assert table(a).equals(table(b)) and table(a)["requests"].sum() == len(records)


def test_failed_attempts_are_the_records_count_or_counted_from_attempts_in_older_records(tmp_path):
    """Records carry failed_attempt_count; one written before that field is counted from its attempts.  A Parquet
    part whose every record carries it is read without its attempts lists (decoding them was most of a polars
    build); a part mixing both is read record by record; a record keeping the count without the attempt details
    (as an importer may) is taken at its word.  Polars and DuckDB agree."""
    rng = random.Random(11)
    days = [DAY0 + timedelta(days=i) for i in range(3)]

    def counted(recs: list[dict]) -> list[dict]:
        return [{**r, "failed_attempt_count": sum(a["outcome"] != "ok" for a in r["attempts"])} for r in recs]

    bare = [{**r, "attempts": [], "failed_attempt_count": r["attempt_count"]}
            for r in synth_records(rng, days[1], 30) if r["attempt_count"]]
    by_day = [synth_records(rng, days[0], 150),                                    # all older
              counted(synth_records(rng, days[1], 150)) + bare,                     # all counted
              synth_records(rng, days[2], 80) + counted(synth_records(rng, days[2], 80))]   # both in one part
    records = [r for recs in by_day for r in recs]
    assert bare and sum(failed_attempts(r) for r in bare) > 0
    tables = {}
    for engine in ("polars", "duckdb"):
        root = tmp_path / engine
        with RouteLogWriter(root) as writer:
            writer.write_records(records)
        compact(root, days=[d.isoformat() for d in days])
        assert rollups.build_rollups(root, engine).records_read == len(records)
        tables[engine] = table(root)
        got = dict(tables[engine].group_by("date").agg(pl.col("failed_attempts").sum()).iter_rows())
        assert got == {d: sum(failed_attempts(r) for r in recs) for d, recs in zip(days, by_day)}, engine
        assert tables[engine]["attempts"].sum() == sum(r["attempt_count"] for r in records)
    assert tables["polars"].equals(tables["duckdb"])


def test_file_urls_read_and_write_through_each_engine(small_log, tmp_path):
    src, records = small_log
    log = tmp_path / "routelog"
    _copy(src, log)
    url = log.resolve().as_uri()
    assert url.startswith("file:///")
    expected = None
    for engine in ("polars", "duckdb"):
        report = rollups.build_rollups(url, engine, force=True)
        assert report.records_read == len(records)
        got = rollups.load_rollups(url, build=False).collect().sort(list(rollups.KEYS), nulls_last=True)
        expected = got if expected is None else expected
        assert got.equals(expected)
    assert table(log).equals(expected)  # the same files, seen by path


def test_incremental_build_reads_only_changed_days(tmp_path):
    log = tmp_path / "routelog"
    records = make_log(log, [120, 100, 90, 80], compacted=(0, 1), torn=())
    days = [(DAY0 + timedelta(days=i)).isoformat() for i in range(4)]
    first = rollups.build_rollups(log)
    assert first.days_built == days and first.records_read == 390 == len(records)

    # nothing changed: nothing is written (not even the manifest), so dashboards may ask as often as they load
    manifest = log / "_rollups/v3/_manifest.json"
    inode = manifest.stat().st_ino
    again = rollups.build_rollups(log)
    assert again.days_built == [] and again.days_unchanged == 4 and again.records_read == 0
    assert manifest.stat().st_ino == inode and not list((log / "_rollups/v3/_staging").iterdir())
    built = table(log)
    assert rollups.build_rollups(log, force=True).days_built == days and table(log).equals(built)  # idempotent

    # new records land on day 2 only
    more = synth_records(random.Random(99), DAY0 + timedelta(days=2), 25)
    with RouteLogWriter(log) as w:
        w.write_records(more)
    r = rollups.build_rollups(log)
    assert r.days_built == [days[2]] and r.records_read == 90 + 25 and r.days_unchanged == 3

    # compacting a day changes its files, not its numbers
    before = table(log)
    compact(log, days=[days[3]])
    r = rollups.build_rollups(log)
    assert r.days_built == [days[3]]
    assert table(log).equals(before)

    # a day whose log is gone loses its rollup
    import shutil

    shutil.rmtree(log / f"date={days[0]}")
    r = rollups.build_rollups(log)
    assert r.days_built == [] and r.days_removed == [days[0]]
    assert not (log / f"_rollups/v3/date={days[0]}").exists()
    remaining = [x for x in records + more if x["timestamp"].date() != DAY0]
    assert table(log)["requests"].sum() == len(remaining)

    # and the incremental result is what a fresh build gives
    fresh = tmp_path / "fresh"
    _copy(log, fresh, rollups_too=False)
    rollups.build_rollups(fresh)
    assert table(fresh).equals(table(log))


def test_interrupted_build_leaves_old_or_new_days_and_the_next_build_finishes(tmp_path, monkeypatch):
    log = tmp_path / "routelog"
    make_log(log, [60, 60, 60], compacted=(), torn=())
    rollups.build_rollups(log)
    old = table(log)
    with RouteLogWriter(log) as w:  # every day changes
        for i in range(3):
            w.write_records(synth_records(random.Random(i), DAY0 + timedelta(days=i), 10))

    real_replace, calls = rollups._replace, []

    def dies_on_the_second_day(where, tmp, path):
        calls.append(path)
        if len(calls) == 4:  # day 1's first file (day 0's two files and the manifest went through)
            raise KeyboardInterrupt
        real_replace(where, tmp, path)

    monkeypatch.setattr(rollups, "_replace", dies_on_the_second_day)
    monkeypatch.setitem(rollups.BYTES_PER_QUERY, "polars", 1)  # one day per query, manifest after each
    with pytest.raises(KeyboardInterrupt):
        rollups.build_rollups(log)
    monkeypatch.undo()

    # readers see whole files only: day 0 new, days 1 and 2 still old
    now = table(log)
    per_day = lambda df: dict(df.group_by("date").agg(pl.col("requests").sum()).iter_rows())  # noqa: E731
    assert per_day(now) == {DAY0: 70, DAY0 + timedelta(days=1): 60, DAY0 + timedelta(days=2): 60}
    assert per_day(old) == {DAY0 + timedelta(days=i): 60 for i in range(3)}

    # the manifest vouches for day 0 only, so the next build redoes days 1 and 2, and cleans up
    r = rollups.build_rollups(log)
    assert r.days_built == [(DAY0 + timedelta(days=i)).isoformat() for i in (1, 2)]
    assert per_day(table(log)) == {DAY0 + timedelta(days=i): 70 for i in range(3)}
    leftovers = [p.name for p in (log / "_rollups").rglob("*") if p.is_file() and p.name.startswith((".part",
                                                                                                   ".day"))]
    assert leftovers == []


def test_killed_rollup_process_leaves_a_readable_state(tmp_path):
    """SIGKILL a real `routekit rollup` mid-way (wherever it is), then check nothing is half-written."""
    log = tmp_path / "routelog"
    make_log(log, [150] * 8, compacted=tuple(range(8)), torn=())
    proc = subprocess.Popen([sys.executable, "-m", "toolkit.cli", "rollup", "--log", str(log)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = systime.monotonic() + 60
    while not list(log.glob("_rollups/v3/date=*/part-0.parquet")) and systime.monotonic() < deadline:
        systime.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    # every day the manifest vouches for has its whole file; no file is half-written
    manifest = rollups._read_manifest(rollups.Log.at(log))
    for day, entry in manifest.items():
        assert pl.read_parquet(log / f"_rollups/v3/date={day}/part-0.parquet")["requests"].sum() == entry["records"]
    for part in log.glob("_rollups/v3/date=*/part-0.parquet"):
        assert pl.read_parquet(part).height > 0
    r = rollups.build_rollups(log)
    assert sorted(r.days_built + list(manifest)) == sorted(rollups.Log.at(log).sources())
    assert table(log)["requests"].sum() == 1200


def test_a_record_stored_in_another_days_partition_keeps_its_own_date(tmp_path):
    log = tmp_path / "routelog"
    rec = synth_records(random.Random(1), DAY0, 1)[0]
    rec["timestamp"] = datetime.combine(DAY0 + timedelta(days=1), time(0, 30), timezone.utc)
    from toolkit.routelog import record_line

    with RouteLogWriter(log) as w:
        w.write_lines(DAY0.isoformat(), [record_line(rec)])  # e.g. an importer's late write
    rollups.build_rollups(log)
    assert (log / f"_rollups/v3/date={DAY0}/part-0.parquet").exists()
    assert rollups.load_rollups(log, since=DAY0 + timedelta(days=1), build=False).collect()["requests"].sum() == 1
    assert rollups.load_rollups(log, until=DAY0, build=False).collect().height == 0


def test_unknown_engine_and_missing_log_are_clear_errors(tmp_path, capsys):
    from toolkit.cli import main

    with pytest.raises(ValueError, match="unknown engine 'pandas'"):
        rollups.build_rollups(tmp_path, "pandas")
    assert main(["rollup", "--log", str(tmp_path / "nope")]) == 2
    assert "no route log at" in capsys.readouterr().err
    # a directory that is not a log (a typo of the log's parent) gets no _rollups folder written into it
    other = tmp_path / "project"
    (other / "notes").mkdir(parents=True)
    (other / "README.md").write_text("x")
    assert main(["rollup", "--log", str(other)]) == 2
    assert "holds no date=YYYY-MM-DD partitions" in capsys.readouterr().err
    assert sorted(p.name for p in other.iterdir()) == ["README.md", "notes"]
    empty = tmp_path / "fresh"       # a log nothing was written to yet is a log
    empty.mkdir()
    assert main(["rollup", "--log", str(empty)]) == 0


def test_rollup_command_prints_what_it_did(small_log, tmp_path, capsys):
    import json

    from toolkit.cli import main

    src, records = small_log
    log = tmp_path / "routelog"
    _copy(src, log)
    assert main(["rollup", "--log", str(log), "--engine", "duckdb"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"duckdb: read {len(records):,} records from 3 changed day(s), wrote ")
    assert main(["rollup", "--log", str(log), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["engine"] == "polars" and report["records_read"] == 0 and report["days_unchanged"] == 3
    assert report["seconds"] > 0


# --- damage: skipped, named, never summed (issue 14) -------------------------------------------


def damage_deep(good: Path, dst: Path) -> Path:
    """``dst``: the Parquet part ``good`` with pages overwritten that every engine's rollup reads, but neither the
    footer check nor the domain check does (e.g. the team column): only the engine notices, and the build must find
    which part broke it."""
    import struct

    from toolkit.routelog import DOMAIN, Damage, screen_parquet

    data = good.read_bytes()
    end = len(data) - 8 - struct.unpack("<I", data[-8:-4])[0]   # where the footer starts
    read_by_rollup = [c for c in rollups.SOURCE_COLUMNS.values() if c not in DOMAIN and c != "outcome"]
    for start in range(end - 64, 4, -64):   # the first window from the end that breaks such a column
        dst.write_bytes(data[:start] + bytes(b ^ 0x5A for b in data[start:start + 64]) + data[start + 64:])
        if screen_parquet([str(dst)], Damage()) == ([str(dst)], False):
            try:
                pl.read_parquet(dst, columns=[c for c in read_by_rollup if c in pl.read_parquet_schema(dst)])
            except Exception:  # noqa: BLE001
                return dst
    raise AssertionError("no page of this part breaks alone")


def _out_of_domain(day: date) -> list[dict]:
    recs = synth_records(random.Random(5), day, 4)
    for r, (field_, value) in zip(recs, [("cost_usd", 1e308), ("cost_usd", -999_999.99), ("outcome", "maybe"),
                                         ("latency_ms", math.nan)]):
        r[field_] = value
    return recs


def make_damaged(root: Path) -> None:
    """Damage ``root`` (a ``make_log(..., compacted=(0, 2), torn=(1,))`` log) every way a reader meets: four broken
    copies of day 0's part, one with a broken column read only by the rollup on day 2, a foreign part of out-of-domain
    records and a rejected line on day 2, and an out-of-domain line written around the writer on day 1 (beside its
    torn line)."""
    from tests.test_routelog_damage import DAMAGE, damage_part
    from toolkit.routelog import polars_schema

    day0, day1, day2 = (root / f"date={DAY0 + timedelta(days=i)}" for i in range(3))
    good = next(day0.glob("part-*.parquet"))
    for kind in DAMAGE:
        damage_part(good, day0 / f"part-{kind}.parquet", kind)
    damage_deep(good, day2 / "part-deep.parquet")   # another day: found by the engine failing, nothing before
    bad = pl.DataFrame(_out_of_domain(DAY0 + timedelta(days=2)), schema_overrides=polars_schema(), strict=False)
    bad.select(c for c in bad.columns if c not in ("attempts", "skipped")).write_parquet(day2 / "part-foreign.parquet")
    (day2 / "rejected-foreign.jsonl").write_text('{"request_id": "r", "timesta\n')  # counted once its part exists
    line = {**_out_of_domain(DAY0 + timedelta(days=1))[0], "timestamp": f"{DAY0 + timedelta(days=1)}T12:00:00Z"}
    with open(day1 / "routes.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")


DAMAGED_FILES = (f"date={DAY0}/part-truncated.parquet", f"date={DAY0}/part-empty.parquet",
                 f"date={DAY0}/part-random.parquet", f"date={DAY0}/part-pages.parquet",
                 f"date={DAY0 + timedelta(days=2)}/part-deep.parquet")


@pytest.fixture(scope="module")
def damaged_log(tmp_path_factory) -> tuple[Path, Path, list[dict]]:
    """(clean, damaged): the same records, once without and once with every kind of damage."""
    base = tmp_path_factory.mktemp("damaged")
    records = make_log(base / "clean", [150, 120, 100], compacted=(0, 2), torn=(1,))
    make_log(base / "damaged", [150, 120, 100], compacted=(0, 2), torn=(1,))
    make_damaged(base / "damaged")
    return base / "clean", base / "damaged", records


def check_damage(found, log: Path) -> None:
    """The damage ``make_damaged`` did, every piece named."""
    assert len(found.damaged_files) == 5 and found.bad_lines == 3 and found.quarantined == 4
    named = "\n".join(found.details())
    for name in DAMAGED_FILES:
        assert f"{log / name}: not a readable Parquet file" in named
    for what in ("field 'cost_usd': 1e+308 is outside", "field 'cost_usd': -999999.99 is outside",
                 "field 'outcome': 'maybe' is not one of", "field 'latency_ms': nan is outside",
                 "rejected-foreign.jsonl:1: rejected at compaction", "routes.jsonl:121: not a route record",
                 "routes.jsonl:122: request "):
        assert what in named, what


@pytest.mark.parametrize("engine", ["polars", "duckdb"])
def test_a_damaged_log_rolls_up_as_its_good_records_and_names_the_rest(damaged_log, tmp_path, engine):
    clean, damaged, records = damaged_log
    log = tmp_path / "routelog"
    _copy(damaged, log)
    before = {p: p.read_bytes() for p in log.glob("date=*/*")}
    report = rollups.build_rollups(log, engine)
    assert report.records_read == len(records)
    fresh = tmp_path / "clean"
    _copy(clean, fresh)
    rollups.build_rollups(fresh, engine)
    assert table(log).equals(table(fresh))          # 1e308 and $-999,999.99 summed nowhere
    check_damage(report.damage, log)
    check_damage(rollups.damage(log), log)           # what reports and stats read back
    assert {p: p.read_bytes() for p in log.glob("date=*/*")} == before   # the damage is left where it was


def test_damage_is_remembered_for_unchanged_days_and_forgotten_once_repaired(damaged_log, tmp_path):
    _, damaged, _ = damaged_log
    log = tmp_path / "routelog"
    _copy(damaged, log, rollups_too=False)
    rollups.build_rollups(log)
    again = rollups.build_rollups(log)
    assert again.days_built == [] and len(again.damage.damaged_files) == 5
    for name in DAMAGED_FILES:   # the operator removes the broken copies
        (log / name).unlink()
    r = rollups.build_rollups(log)
    assert r.days_built == [DAY0.isoformat(), (DAY0 + timedelta(days=2)).isoformat()]
    assert r.damage.damaged_files == [] and r.damage.quarantined == 4


def test_rollup_and_stats_commands_name_the_damage_without_a_traceback(damaged_log, tmp_path, capsys):
    from toolkit.cli import main

    _, damaged, records = damaged_log
    log = tmp_path / "routelog"
    _copy(damaged, log, rollups_too=False)
    assert main(["rollup", "--log", str(log)]) == 0
    out = capsys.readouterr().out
    assert f"read {len(records):,} records" in out
    assert "skipped 5 damaged files, 3 bad lines, 4 records outside their domain (left out of the rollups" in out
    assert f"  {log / f'date={DAY0}' / 'part-empty.parquet'}: not a readable Parquet file" in out
    assert main(["stats", "--log", str(log)]) == 0
    out = capsys.readouterr().out
    assert "not counted above: skipped 5 damaged files, 3 bad lines, 4 records outside their domain" in out
    assert "part-random.parquet: not a readable Parquet file" in out
    assert main(["stats", "--log", str(log), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["total"]["requests"] == len(records) and len(stats["skipped"]["damaged_files"]) == 5


def test_an_engine_failure_that_is_not_damage_is_a_clear_error(small_log, tmp_path, monkeypatch, capsys):
    from toolkit.cli import main

    src, _ = small_log
    log = tmp_path / "routelog"
    _copy(src, log, rollups_too=False)

    def broken(where, files, session):  # e.g. an engine bug or a cluster that went away mid-query
        raise OSError("connection to the cluster lost")

    monkeypatch.setitem(rollups.LOADERS, "duckdb", broken)
    assert main(["rollup", "--log", str(log), "--engine", "duckdb"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rollup failed: the duckdb engine failed on {DAY0} .. ")
    assert "connection to the cluster lost" in err and "Traceback" not in err


# --- finishing numbers -------------------------------------------------------------------------


def _rows(rows: list[dict]) -> pl.DataFrame:
    """A hand-made rollup from rows of one latency bin each: given columns, zero/null elsewhere."""
    schema = {**rollups.rollup_schema(), "latency_bin": pl.Int32}
    del schema["latency_hist"]
    full = [{c: r.get(c, 0 if schema[c] in (pl.Int64, pl.Float64) else None) for c in schema} for r in rows]
    return rollups.fold(pl.DataFrame(full, schema=schema), rollups.KEYS).collect()


def test_summarize_rates_and_cost_per_success_by_hand():
    df = _rows([
        {"team": "a", "outcome": "served", "requests": 6, "cost_usd": 0.6, "latency_bin": 200, "fallback_used": True},
        {"team": "a", "outcome": "served", "requests": 2, "cost_usd": 0.2, "latency_bin": 300, "degraded": True},
        {"team": "a", "outcome": "failed", "requests": 2, "cost_usd": 0.2, "failed_cost_usd": 0.2,
         "latency_bin": 300},
        {"team": "b", "outcome": "blocked", "requests": 5, "latency_bin": None},
    ])
    s = {r["team"]: r for r in rollups.summarize(df, ["team"]).iter_rows(named=True)}
    a, b = s["a"], s["b"]
    assert (a["requests"], a["served"], a["failed"], a["blocked"]) == (10, 8, 2, 0)
    assert a["error_rate"] == pytest.approx(0.2) and a["fallback_rate"] == pytest.approx(0.6)
    assert a["degraded_rate"] == pytest.approx(0.2)
    assert a["cost_per_success_usd"] == pytest.approx(1.0 / 8)  # all spend over served requests
    assert b["cost_per_success_usd"] is None and b["p50_ms"] is None and b["blocked"] == 5
    # 10 requests: 6 in bin 200 (100.0..102.3 ms), 4 in bin 300 (1000..1023 ms)
    assert 100 <= a["p50_ms"] < 102.33 and 1000 <= a["p95_ms"] < 1023.3
    total = rollups.summarize(df).row(0, named=True)
    assert total["requests"] == 15 and total["cost_usd"] == pytest.approx(1.0)


def test_percentiles_interpolate_inside_the_bin():
    # 100 requests spread evenly over bin 200 (100 ms .. 10**2.01 ms): request k sits at k + 0.5
    # hundredths of the bin's width, in log space; p99 is request 0.99 * 99 = 98.01
    df = _rows([{"team": "a", "requests": 100, "latency_bin": 200}])
    p = rollups.percentiles(df).row(0, named=True)
    assert p["p50_ms"] == pytest.approx(10 ** (2 + 0.01 * (49.5 + 0.5) / 100))
    assert p["p99_ms"] == pytest.approx(10 ** (2 + 0.01 * (98.01 + 0.5) / 100))
    # one request alone in its bin reads as the bin's middle
    one = rollups.percentiles(_rows([{"requests": 1, "latency_bin": 250}])).row(0, named=True)
    assert one["p50_ms"] == one["p99_ms"] == pytest.approx(10 ** 2.505)


def _copy(src: Path, dst: Path, rollups_too: bool = True) -> None:
    import shutil

    shutil.copytree(src, dst, ignore=None if rollups_too else shutil.ignore_patterns("_rollups"))
