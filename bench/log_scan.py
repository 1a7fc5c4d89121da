"""Spend by team x day over a compacted synthetic route log: routekit's reader vs a plain Parquet scan.

    .venv/bin/python bench/log_scan.py                      # 10M records under /tmp (written once, then reused)
    .venv/bin/python bench/log_scan.py --requests 1000000 --log /tmp/rk-1m

Writes the log with toolkit.synth (through the real writer and compactor) unless LOG already holds
one made with the same days/requests/seed, then times, in one run and alternating, the same query
both ways, and prints rows/s for each and the ratio.  Target: the reader within 1.5x of the plain scan.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import polars as pl  # noqa: E402
from polars.testing import assert_frame_equal  # noqa: E402

from toolkit.routelog import scan_log  # noqa: E402
from toolkit.synth import TRUTH_NAME, synthesize  # noqa: E402


def spend(frame: pl.LazyFrame) -> pl.DataFrame:
    return (frame.group_by("team", pl.col("timestamp").dt.date().alias("day"))
            .agg(pl.col("cost_usd").sum(), pl.len().alias("requests")).sort("team", "day").collect())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log", default="/tmp/routekit-bench-log-10m", help="log directory (created or reused)")
    ap.add_argument("--requests", type=int, default=10_000_000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    root = Path(args.log)
    truth = root / TRUTH_NAME
    made = json.loads(truth.read_text()) if truth.exists() else {}
    if (made.get("requests"), made.get("days"), made.get("seed")) == (args.requests, args.days, args.seed):
        print(f"reusing {root} ({args.requests:,} records, {args.days} days)")
    else:
        t0 = time.perf_counter()
        synthesize(root, days=args.days, requests=args.requests, seed=args.seed, replace=truth.exists(),
                   progress=True)
        took = time.perf_counter() - t0
        print(f"synth: {args.requests:,} records over {args.days} days in {took:.1f}s "
              f"({args.requests / took:,.0f} records/s, written and compacted)")
    files = sorted(str(p) for p in root.glob("date=*/*.parquet"))
    size = sum(Path(f).stat().st_size for f in files)
    print(f"{len(files)} Parquet files, {size / 1e6:.0f} MB")

    toolkit_s, plain_s = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ours = spend(scan_log(root).frame)
        toolkit_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        plain = spend(pl.scan_parquet(files))
        plain_s.append(time.perf_counter() - t0)
    assert_frame_equal(ours, plain, check_exact=False, rel_tol=1e-9)  # float sums may add up in another order
    rows = int(plain["requests"].sum())
    t_ours, t_plain = statistics.median(toolkit_s), statistics.median(plain_s)
    print(f"rows: {rows:,}  (cost by team x day: {plain.height} groups, ${plain['cost_usd'].sum():,.2f})")
    print(f"toolkit scan_log(...).frame : {t_ours:.3f}s  {rows / t_ours / 1e6:6.1f} M rows/s  (median of {args.repeat})")
    print(f"plain pl.scan_parquet(...)  : {t_plain:.3f}s  {rows / t_plain / 1e6:6.1f} M rows/s")
    ratio = t_ours / t_plain
    print(f"ratio toolkit/plain: {ratio:.2f}x  (target <= 1.5x: {'met' if ratio <= 1.5 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
