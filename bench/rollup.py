"""Rollups on a 10M-record log: each engine vs a plain exact polars aggregation of the same numbers.

Makes (once, cached) a compacted route log of N records over D days with the exact route-log schema,
written straight to Parquet partitions by a vectorised generator, then runs each measurement in its
own subprocess so peak memory (the process's high-water mark plus its children's, e.g. Spark's JVM,
sampled every 50 ms) belongs to that measurement alone:

- rollup with polars, DuckDB and Spark (local[2]; session start-up reported apart), forced full build: time, peak
  memory, rows of the hour-grain table and of the day-grain table derived from it; then the last day's file is
  touched (today, refreshed) and the incremental build that reads it alone is timed;
- plain: the same table in one polars group-by with exact p50/p95/p99 instead of a histogram;
- summarize: the aggregation part of the dashboards, over the whole rollup (several groupings): the hour grain held
  in memory, then streamed from the files (as `routekit stats` reads it), then the day grain, each in a process of
  its own.

    .venv/bin/python bench/rollup.py [--records 10000000] [--days 90] [--engines polars,duckdb,spark]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = [  # (model, provider, alias, tier, median latency ms, $ per 1k input, $ per 1k output)
    ("openai/gpt-4o-mini", "openai", "fast-a", 1, 450, 0.00015, 0.0006),
    ("anthropic/claude-haiku-4-5", "anthropic", "fast-b", 1, 520, 0.001, 0.005),
    ("gemini/gemini-2.5-flash", "gemini", "fast-c", 1, 380, 0.0003, 0.0025),
    ("openai/gpt-5", "openai", "strong-a", 3, 2400, 0.00125, 0.01),
    ("anthropic/claude-sonnet-4-5", "anthropic", "strong-b", 3, 2100, 0.003, 0.015),
    ("bedrock/meta.llama3-70b", "bedrock", "mid-a", 2, 900, 0.00099, 0.00099),
    ("ollama/gemma-3-270m", "ollama", "local", 0, 120, 0.0, 0.0),
]
# A route per intent: (primary model, fallback model), indexes into MODELS.
ROUTES = {"triage": (0, 1), "summarize": (1, 2), "extract": (2, 0), "code": (3, 4), "chat": (5, 0),
          "classify": (6, 2)}
TEAMS = {"search": ["triage", "extract", "classify"], "support": ["triage", "summarize", "chat"],
         "billing": ["extract", "classify"], "growth": ["summarize", "chat"], "platform": ["code", "triage"],
         "legal": ["summarize", "extract"], "ml": ["code", "classify", "chat"], "mobile": ["chat", "triage"]}
ERRORS = ["rate_limited", "timeout", "server_error", "connection", "empty_response"]


def generate_day(day: str, n: int, seed: int):
    """One day of route records as a polars DataFrame with routelog.polars_schema()."""
    import numpy as np
    import polars as pl

    from toolkit.routelog import polars_schema

    rng = np.random.default_rng(seed)
    pairs = [(t, i) for t, intents in TEAMS.items() for i in intents]
    weights = rng.dirichlet(np.ones(len(pairs))) * 0.5 + 0.5 / len(pairs)  # some pairs busier than others
    pair = rng.choice(len(pairs), n, p=weights / weights.sum())
    team = np.array([t for t, _ in pairs])[pair]
    intent = np.array([i for _, i in pairs])[pair]
    primary = np.array([ROUTES[i][0] for _, i in pairs])[pair]
    outcome = rng.choice(["served", "failed", "blocked"], n, p=[0.93, 0.05, 0.02])
    served = outcome == "served"
    fallback = served & (rng.random(n) < 0.06)
    m = np.where(fallback, np.array([ROUTES[i][1] for _, i in pairs])[pair], primary)  # the model that answered
    pick = lambda i, idx=m: np.array([row[i] for row in MODELS])[idx]  # noqa: E731
    attempts = np.where(outcome == "blocked", 0, 1 + (fallback | (outcome == "failed")) + (rng.random(n) < 0.05))
    latency = np.round(pick(4).astype(float) * np.exp(rng.normal(0, 0.6, n)) * np.where(fallback, 1.8, 1.0), 3)
    tin = rng.integers(20, 6000, n)
    tout = np.where(served, rng.integers(1, 1500, n), 0)
    cost = np.round(tin / 1000 * pick(5).astype(float) + tout / 1000 * pick(6).astype(float), 12)
    start = np.datetime64(f"{day}T00:00:00", "us").astype(np.int64)
    ts = np.sort(start + rng.integers(0, 86_400_000_000, n))
    ok, err = pl.lit("ok"), pl.lit("rate_limited")
    att = lambda k, last: pl.struct(  # noqa: E731  attempt k of a request: ok only if it is the served one
        alias=pl.col("requested_alias"), model=pl.col("gen_ai.request.model"), provider=pl.lit("openai"),
        region=pl.lit(None, pl.String), outcome=pl.when(last & pl.col("_served")).then(ok).otherwise(err),
        error_class=pl.lit(None, pl.String), status=pl.lit(200, pl.Int64), retryable=pl.lit(True),
        retry_after_s=pl.lit(None, pl.Float64), latency_ms=pl.col("latency_ms") / pl.col("attempt_count"),
        input_tokens=pl.col("gen_ai.usage.input_tokens"), output_tokens=pl.lit(0, pl.Int64),
        cache_read_tokens=pl.lit(0, pl.Int64), cache_write_tokens=pl.lit(0, pl.Int64),
        reasoning_tokens=pl.lit(0, pl.Int64), cost_usd=pl.lit(0.0), unpriced=pl.lit(False),
        message=pl.lit(None, pl.String))
    skip = pl.struct(alias=pl.lit("strong-a"), reason=pl.lit("circuit_open"), detail=pl.lit("cooling down"))
    has_skip = rng.random(n) < 0.03
    df = pl.DataFrame({
        "schema_version": np.ones(n, np.int64),
        "request_id": pl.Series(rng.integers(0, 2**63 - 1, n)).cast(pl.String),
        "timestamp": pl.Series(ts).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        "gen_ai.operation.name": ["chat"] * n,
        "gen_ai.request.model": pick(0, primary), "_model": pick(0), "_served": served, "_provider": pick(1),
        "gen_ai.usage.input_tokens": tin, "gen_ai.usage.output_tokens": tout,
        "usage.cache_read_tokens": np.where(rng.random(n) < 0.2, tin // 2, 0),
        "usage.cache_write_tokens": np.zeros(n, np.int64), "usage.reasoning_tokens": tout // 4,
        "intent": intent, "team": team,
        "outcome": outcome, "_error": np.array(ERRORS)[rng.integers(0, len(ERRORS), n)],
        "requested_alias": pick(2, primary), "_alias": pick(2), "_tier": pick(3).astype(np.int64),
        "fallback_used": fallback, "degraded": served & (rng.random(n) < 0.01),
        "verification": rng.choice(["pass", "fail", "skipped"], n, p=[0.3, 0.01, 0.69]),
        "attempt_count": attempts.astype(np.int64), "_skip": has_skip,
        "cost_usd": pl.Series(cost).set(pl.Series(rng.random(n) < 0.002), None), "latency_ms": latency,
        "prompt_tokens": tin, "_shadow": rng.random(n) < 0.02, "stream": rng.random(n) < 0.3,
    }).with_columns(
        pl.col("intent").alias("route_id"),
        pl.when(~pl.col("_served")).then(pl.col("_error")).alias("error_kind"),
        pl.when("_served").then(pl.col("_model")).alias("gen_ai.response.model"),
        pl.when("_served").then(pl.col("_provider")).alias("gen_ai.provider.name"),
        pl.when("_served").then(pl.col("_alias")).alias("served_alias"),
        pl.when("_served").then(pl.col("_tier")).alias("served_tier"),
        pl.lit(1, pl.Int64).alias("min_tier"),
        pl.lit("internal").alias("sensitivity"), pl.lit("vendor").alias("boundary"),
        pl.lit("3f9a1c2e").alias("policy_version"), pl.lit("litellm-1.106.2").alias("price_version"),
        pl.col("cost_usd").is_null().alias("unpriced"),
        # every attempt failed but the served one
        (pl.col("attempt_count") - pl.col("_served").cast(pl.Int64)).alias("failed_attempt_count"),
        pl.when(pl.col("attempt_count") > 1).then(pl.col("cost_usd") * 0.3).otherwise(0.0).alias("failed_cost_usd"),
        (pl.col("usage.cache_read_tokens") * 1e-7).alias("cache_savings_usd"),
        pl.col("request_id").hash(1).cast(pl.String).alias("prompt_hash"),
        pl.when("_served").then(pl.col("request_id").hash(2).cast(pl.String)).alias("output_hash"),
        pl.when("_shadow").then(pl.col("request_id")).alias("shadow_of"),
        pl.lit("synth").alias("source"),
    )
    # Lists built per attempt count (a list.head by expression is slow), then back in time order.
    empty = lambda struct: pl.concat_list(struct).list.head(0)  # noqa: E731
    df = pl.concat([df.filter(pl.col("attempt_count") == k).with_columns(
        attempts=pl.concat_list(*(att(i, pl.lit(i == k)) for i in range(1, k + 1))) if k else empty(att(1, True)))
        for k in range(4)]).sort("timestamp")
    df = df.with_columns(skipped=pl.when("_skip").then(pl.concat_list(skip)).otherwise(empty(skip)))
    schema = polars_schema()
    return df.select(pl.col(c).cast(t) if c in df.columns else pl.lit(None, t).alias(c) for c, t in schema.items())


def make_log(path: Path, records: int, days: int) -> None:
    from datetime import date, timedelta

    from tqdm import tqdm

    from toolkit.routelog import DOMAIN_ID, DOMAIN_MARK

    stamp = path / ".bench-log.json"
    want = {"records": records, "days": days, "domain": DOMAIN_ID}
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        return
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    first = date(2026, 8, 1)
    for i in tqdm(range(days), desc=f"writing a {records:,}-record log", unit="day"):
        day = (first + timedelta(days=i)).isoformat()
        n = records // days + (1 if i < records % days else 0)
        folder = path / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        # marked as compaction marks its parts: values inside the domain (the generator makes no others)
        generate_day(day, n, seed=i).write_parquet(folder / "part-bench.parquet", compression="zstd",
                                                   metadata={DOMAIN_MARK: DOMAIN_ID})
    stamp.write_text(json.dumps(want))


# --- measurements, one per subprocess ------------------------------------------------------------


class Peak:
    """Peak memory: this process's high-water mark (VmHWM, exact) plus its children's (Spark's JVM), sampled."""

    def __init__(self) -> None:
        import psutil

        self.proc, self.children, self._stop = psutil.Process(), 0, threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.children = max(self.children, sum(c.memory_info().rss for c in self.proc.children(True)))
            except Exception:  # noqa: BLE001 — a child ended while we looked
                pass
            time.sleep(0.05)

    def mb(self) -> float:
        self._stop.set()
        # Not ru_maxrss: Linux keeps it across exec, so a worker would inherit its parent's peak.
        status = Path("/proc/self/status").read_text()
        hwm = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) * 1024
        return (hwm + self.children) / 2**20


def plain_exact(log: Path):
    """The rollup's numbers without a histogram: one polars group-by with exact quantiles."""
    import polars as pl

    from toolkit import rollups
    from toolkit.routelog import scan_log

    frame = scan_log(log).frame
    src = {flat: pl.col(col) for flat, col in rollups.SOURCE_COLUMNS.items()}
    ts = pl.col("timestamp")
    keyed = frame.select(
        ts.dt.date().alias("date"), ts.dt.truncate("1h").alias("hour"),
        *(src[k].alias(k) for k in ("team", "intent", "route_id", "requested_model", "served_model",
                                     "served_alias", "provider", "outcome", "error_kind", "fallback_used",
                                     "degraded")),
        pl.col("shadow_of").is_not_null().alias("is_shadow"),
        *(src[c].alias(c) for c in ("attempt_count", "input_tokens", "output_tokens", "cache_read_tokens",
                                    "cache_write_tokens", "reasoning_tokens", "cost_usd", "failed_cost_usd",
                                    "cache_savings_usd", "unpriced", "latency_ms", "verification",
                                    "prompt_tokens")),
        pl.col("failed_attempt_count").alias("failed_attempts"),   # every record here carries it
        pl.col("skipped").list.eval(pl.element().struct.field("reason").eq_missing("circuit_open")).list.sum()
        .alias("circuit_open_skips"))
    keys = [k for k in rollups.KEYS if k != "latency_bin"]
    lat = pl.col("latency_ms")
    return keyed.group_by(keys).agg(
        pl.len().alias("requests"), pl.col("attempt_count").sum().alias("attempts"),
        pl.col("failed_attempts").sum(), (pl.col("attempt_count") > 1).sum().alias("retried_requests"),
        *(pl.col(c).sum() for c in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                                    "reasoning_tokens", "cost_usd", "failed_cost_usd", "cache_savings_usd",
                                    "prompt_tokens", "circuit_open_skips")),
        pl.col("unpriced").sum().alias("unpriced_requests"), lat.sum().alias("latency_ms_sum"),
        (pl.col("verification") == "fail").sum().alias("verification_failures"),
        lat.quantile(0.5).alias("p50_ms"), lat.quantile(0.95).alias("p95_ms"), lat.quantile(0.99).alias("p99_ms"),
    ).collect(engine="streaming")


SUMMARIES = (["requested_model", "date"], ["team"], ["intent"], ["provider"], ["route_id", "served_model"],
             ["team", "date"], ["hour"], [])
DAY_SUMMARIES = tuple(by for by in SUMMARIES if "hour" not in by)   # the day grain has no hour


def worker(kind: str, log: Path) -> dict:
    import polars as pl

    from toolkit import rollups

    peak = Peak()
    cpu0 = time.process_time()
    out: dict = {"kind": kind}
    if kind == "plain":
        t = time.perf_counter()
        table = plain_exact(log)
        out.update(seconds=time.perf_counter() - t, rows=table.height, records=int(table["requests"].sum()),
                   cost=float(table["cost_usd"].sum()))
    elif kind == "summarize":
        t = time.perf_counter()
        frame = rollups.load_rollups(log, build=False).collect()
        out["load_seconds"] = time.perf_counter() - t
        t = time.perf_counter()
        for by in SUMMARIES:
            rollups.summarize(frame, by)
        out.update(seconds=time.perf_counter() - t, groupings=len(SUMMARIES), rows=frame.height)
        out["peak_mb"] = peak.mb()   # summarize's own: the exact percentiles below read all 10M latencies
        # accuracy: all-period p50/p95/p99 per model from summed histograms vs exact over the records
        from toolkit.routelog import scan_log

        est = rollups.summarize(frame, ["requested_model"])
        exact = (scan_log(log).frame.group_by(pl.col("gen_ai.request.model").alias("requested_model"))
                 .agg(*(pl.col("latency_ms").quantile(q).alias(f"x{round(q * 100)}") for q in (0.5, 0.95, 0.99)))
                 .collect(engine="streaming"))
        j = est.join(exact, on="requested_model")
        out["max_pct_error"] = max(abs(j[f"p{q}_ms"] / j[f"x{q}"] - 1).max() for q in (50, 95, 99)) * 100
    elif kind == "summarize-streamed":   # as `routekit stats` does: each summary reads the files, none held whole
        t = time.perf_counter()
        frame = rollups.load_rollups(log, build=False)
        for by in SUMMARIES:
            rollups.summarize(frame, by)
        out.update(seconds=time.perf_counter() - t)
    elif kind == "summarize-day":   # what the dashboards read: in a process of its own, for its peak memory
        t = time.perf_counter()
        day = rollups.load_rollups(log, build=False, grain="day").collect()
        for by in DAY_SUMMARIES:
            rollups.summarize(day, by)
        out.update(seconds=time.perf_counter() - t, groupings=len(DAY_SUMMARIES), rows=day.height)
    else:
        session = None
        if kind == "spark":
            # local[2] on 2 cores; the default 1 GB driver heap is too small for a 10M-record shuffle
            os.environ.setdefault("PYSPARK_SUBMIT_ARGS", "--driver-memory 6g pyspark-shell")
            t = time.perf_counter()
            session = rollups.spark_session("local[2]")
            out["session_seconds"] = time.perf_counter() - t
        t = time.perf_counter()
        report = rollups.build_rollups(log, kind, session=session, force=True)
        out.update(seconds=time.perf_counter() - t, rows=report.rows_written, records=report.records_read,
                   day_rows=rollups.load_rollups(log, build=False, grain="day").select(pl.len()).collect().item())
        # one changed day (today, refreshed): only it is read again
        last = sorted(log.glob("date=*/part-bench.parquet"))[-1]
        os.utime(last)
        t = time.perf_counter()
        again = rollups.build_rollups(log, kind, session=session)
        out["one_day_seconds"] = time.perf_counter() - t
        assert len(again.days_built) == 1, again.days_built
        table = rollups.load_rollups(log, build=False).select(pl.col("requests").sum(), pl.col("cost_usd").sum())
        out["cost"] = float(table.collect()["cost_usd"][0])
    out["cpu_seconds"] = time.process_time() - cpu0  # this process only (not Spark's JVM)
    out.setdefault("peak_mb", peak.mb())
    return out


def run(kind: str, log: Path) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", kind, "--log", str(log)],
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode:
        raise RuntimeError(f"{kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(kinds: list[str], log: Path, repeat: int) -> dict[str, dict]:
    """Each kind ``repeat`` times (Spark once: a run costs minutes), in interleaved rounds so load from
    other processes on the machine falls on all alike; the run with the median time is kept."""
    from tqdm import tqdm

    runs: dict[str, list[dict]] = {k: [] for k in kinds}
    todo = [k for r in range(repeat) for k in kinds if r == 0 or k != "spark"]
    for kind in tqdm(todo, desc="measuring", unit="run"):
        runs[kind].append(run(kind, log))
    return {k: sorted(rs, key=lambda r: r["seconds"])[len(rs) // 2] for k, rs in runs.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--log", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "routekit-bench-log")
    ap.add_argument("--engines", default="polars,duckdb,spark")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (median kept; Spark runs once)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.log)))
        return
    make_log(args.log, args.records, args.days)
    size = sum(f.stat().st_size for f in args.log.rglob("part-bench.parquet")) / 2**20
    print(f"log: {args.records:,} records, {args.days} days, {size:.0f} MiB of Parquet at {args.log}")
    results = measure(["plain", *args.engines.split(",")], args.log, args.repeat)
    results["summarize"] = run("summarize", args.log)  # reads the rollup the last engine wrote
    results["summarize-streamed"] = run("summarize-streamed", args.log)
    results["summarize-day"] = run("summarize-day", args.log)
    plain = results["plain"]
    print(f"\n{'what':<22}{'seconds':>9}{'cpu s':>7}{'records/s':>13}{'peak MB':>9}{'rows':>11}{'day rows':>10}"
          "  notes")
    for kind, r in results.items():
        if kind.startswith("summarize"):
            continue
        note = f"session start {r['session_seconds']:.1f} s (not in seconds)" if "session_seconds" in r else ""
        if kind != "plain":
            note += f"  {r['seconds'] / plain['seconds']:.2f}x plain time"
            note += "" if abs(r["cost"] - plain["cost"]) < 1e-6 * plain["cost"] else "  COST DIFFERS"
            note += "" if r["records"] == plain["records"] else "  RECORDS DIFFER"
            note += f"  {r['rows'] / plain['rows']:.2f}x plain rows"
            note += f"  one day again {r['one_day_seconds']:.2f} s ({r['one_day_seconds'] / r['seconds']:.3f}x)"
        label = "plain exact (polars)" if kind == "plain" else f"rollup {kind}"
        day_rows = f"{r['day_rows']:>10,}" if "day_rows" in r else f"{'':>10}"
        print(f"{label:<22}{r['seconds']:>9.2f}{r['cpu_seconds']:>7.1f}{r['records'] / r['seconds']:>13,.0f}"
              f"{r['peak_mb']:>9.0f}{r['rows']:>11,}{day_rows}  {note.strip()}")
    s = results["summarize"]
    print(f"\nsummarize over the whole rollup ({s['rows']:,} rows): load {s['load_seconds'] * 1000:.0f} ms, "
          f"{s['groupings']} groupings {s['seconds'] * 1000:.0f} ms, peak {s['peak_mb']:.0f} MB")
    st = results["summarize-streamed"]
    print(f"  the same summaries streamed from the files (as `routekit stats` does): {st['seconds'] * 1000:.0f} ms, "
          f"peak {st['peak_mb']:.0f} MB")
    d = results["summarize-day"]
    print(f"summarize over the day grain ({d['rows']:,} rows, what the dashboards read): load and "
          f"{d['groupings']} groupings {d['seconds'] * 1000:.0f} ms, peak {d['peak_mb']:.0f} MB")
    print(f"p50/p95/p99 per model from the rollup vs exact: max error {s['max_pct_error']:.2f}%")
    if "polars" in results:
        r = results["polars"]
        print(f"targets (issue 19, at 10M records): polars rollup {r['seconds'] / plain['seconds']:.2f}x plain time "
              f"(<= 0.3x), peak {r['peak_mb']:.0f} MB (<= 250 MB), {r['rows']:,} hour rows (<= 200,000); "
              f"{r['records'] / r['rows']:.1f} records per hour row, {r['records'] / r.get('day_rows', r['rows']):.0f} "
              "per day row")


if __name__ == "__main__":
    main()
