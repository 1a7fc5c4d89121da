"""routekit stats: requests, latency percentiles, error/fallback/degraded rates and cost per group."""
from __future__ import annotations

import argparse
import json
import sys

from .common import add_log_arg, check_period, day

ORDER = 56

# --by names for the on-call person -> rollup columns.  "model" and "provider" are the ones that
# answered (requests nothing served show as "(not served)"); requested_model is the route's first choice.
BY = {"model": "served_model", "team": "team", "intent": "intent", "provider": "provider", "route": "route_id",
      "requested_model": "requested_model", "alias": "served_alias", "outcome": "outcome",
      "error": "error_kind", "day": "date", "hour": "hour"}

EXAMPLES = """examples:
  routekit stats --by model                      # all days, ./routelog
  routekit stats --by team --since 2026-11-01
  routekit stats --by intent,model --log /data/routelog --json

Percentiles come from the rollups' summed latency histograms (within 1% of exact); rates are shares
of all requests; cost/ok is all spend, failed attempts included, per served request.  Stale days are
rolled up first (polars), unless --no-build.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stats", help="requests, p50/p95/p99, error/fallback rates and cost per model, team...",
                       description="Numbers for the on-call person, without a notebook: per group, requests, "
                                   "p50/p95/p99 latency, error / fallback / degraded rates and cost, read from "
                                   "the rollups.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_log_arg(p)
    p.add_argument("--by", default="model", type=_by,
                   help=f"group by one or more of {', '.join(BY)} (comma-separated; default model)")
    p.add_argument("--since", type=day, metavar="YYYY-MM-DD", help="first day (UTC), inclusive")
    p.add_argument("--until", type=day, metavar="YYYY-MM-DD", help="last day (UTC), inclusive")
    p.add_argument("--no-build", action="store_true", help="read the rollups as they are (no build first)")
    p.add_argument("--json", action="store_true", help="print rows as JSON")
    p.set_defaults(func=run)


def _by(text: str) -> list[str]:
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))   # each key once
    bad = [n for n in names if n not in BY]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown --by {', '.join(bad) or text!r}: choose from {', '.join(BY)}")
    return names


def run(args: argparse.Namespace) -> int:
    from ..rollups import damage, load_rollups, summarize

    check_period(args.since, args.until)
    try:  # the day grain unless grouped by hour: the same numbers from far fewer rows
        frame = load_rollups(args.log, since=args.since, until=args.until, build=not args.no_build,
                             progress=not args.json, grain="hour" if "hour" in args.by else "day")
        # Each summary streams the files (the table is never held whole: 10M records by the hour, 481k rows).
        table = summarize(frame, [BY[n] for n in args.by]).rename({BY[n]: n for n in args.by})
        total = summarize(frame)
    except (OSError, RuntimeError) as e:  # no log, an unreadable directory, an engine failure (RollupError)
        print(f"routekit stats: {e}", file=sys.stderr)
        return 2
    skipped = damage(args.log)
    if args.json:
        print(json.dumps({"by": args.by, "since": args.since, "until": args.until, "groups": table.to_dicts(),
                          "total": total.to_dicts()[0] if total.height else None, "skipped": skipped.to_dict()},
                         indent=2, default=str))
        return 0
    print(render(table, args.by, total) if not table.is_empty() else "no requests in the rollups for that period")
    if skipped.skipped:  # the numbers above leave these out: say so, every time
        print(f"\nnot counted above: {skipped.summary()} in the log (files untouched):")
        for line in skipped.details():
            print(f"  {line}")
    return 0


def render(table, by: list[str], total) -> str:
    """A fixed-width table: one row per group, busiest first, then the total."""
    def pct(x) -> str:
        return "-" if x is None else f"{x * 100:.1f}%"

    def ms(x) -> str:
        return "-" if x is None else f"{x:,.0f}" if x >= 100 else f"{x:.1f}"

    def usd(x) -> str:
        return "-" if x is None else f"${x:,.2f}" if x >= 1 else f"${x:.4f}"

    head = [*by, "requests", "p50 ms", "p95 ms", "p99 ms", "error", "fallback", "degraded", "cost", "cost/ok"]
    rows = []
    everything = {**total.row(0, named=True), **{b: "" for b in by}, by[0]: "all"}
    for r in [*table.iter_rows(named=True), everything]:
        keys = [str(r[b]) if r[b] is not None else "(not served)" if b in ("model", "provider") else "(none)"
                for b in by]
        rows.append([*keys, f"{r['requests']:,}", ms(r["p50_ms"]), ms(r["p95_ms"]), ms(r["p99_ms"]),
                     pct(r["error_rate"]), pct(r["fallback_rate"]), pct(r["degraded_rate"]), usd(r["cost_usd"]),
                     usd(r["cost_per_success_usd"])])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    left = len(by)

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(head), *(line(row) for row in rows)])
