"""routekit log scan | compact | synth | import | recover"""
from __future__ import annotations

import argparse
import sys

from .common import add_log_arg, add_policy_arg, day, oserror_line, whole

ORDER = 50

EPILOG = """examples:
  routekit log scan --log routelog
  routekit log compact --log routelog
  routekit log synth --days 90 --requests 100000 --seed 7 --log /tmp/synthlog
  routekit log import litellm-csv spend.csv --log routelog
  routekit log import litellm-postgres postgresql://litellm@db:5432/litellm --log routelog
  routekit log import otel traces.json --log routelog
  routekit log recover --log routelog
"""


def register(sub: argparse._SubParsersAction) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("log", help="the route log: scan, compact to Parquet, synthesize history, import spend",
                       description="The route log holds one audit record per request, as JSON lines per UTC day "
                                   "under LOG_DIR/date=YYYY-MM-DD/, compacted to Parquet once a day is closed.",
                       epilog=EPILOG, formatter_class=raw)
    ps = p.add_subparsers(dest="log_command", metavar="ACTION", required=True)

    s = ps.add_parser("scan", help="count records, bad lines and damaged files",
                      description="Read the whole log (JSONL and every page of every Parquet part) and print its "
                                  "size, date range, records by source and outcome, and every kind of damage found: "
                                  "damaged Parquet parts (file), bad lines (file:line) and records with a value "
                                  "outside its domain (file, request). Damage is skipped, never changed on disk. "
                                  "Exit 1 if something was skipped, 2 if LOG is not a directory.",
                      formatter_class=raw,
                      epilog="example:\n  routekit log scan --log routelog")
    add_log_arg(s)
    s.set_defaults(func=scan)

    c = ps.add_parser("compact", help="rewrite closed days to Parquet (idempotent, safe to interrupt)",
                      description="Rewrite every closed day (before today, UTC) from JSON lines to one Parquet file "
                                  "per day and run, hive-partitioned by date. Safe to interrupt and to run while "
                                  "routers are writing; running it again finishes an interrupted run. Lines that do "
                                  "not parse are kept verbatim beside the Parquet (rejected-*.jsonl).",
                      formatter_class=raw, epilog="examples:\n  routekit log compact\n"
                                                  "  routekit log compact --log /var/log/routekit --before 2026-11-01")
    add_log_arg(c)
    c.add_argument("--before", type=day, metavar="YYYY-MM-DD",
                   help="compact only days before this one (default: today)")
    c.set_defaults(func=compact)

    y = ps.add_parser("synth", help="write a realistic synthetic history (incidents included)",
                      description="Write REQUESTS records over DAYS closed days through the real writer and "
                                  "compactor: teams and intents from the policy, daily and weekly load, a vendor "
                                  "outage with fallbacks, a rate-limit storm with a few degraded serves, a runaway "
                                  "team, a latency creep and a price change. What was injected (dates, team, "
                                  "models) is written to LOG/_synth_truth.json. 10M records take a few minutes.",
                      formatter_class=raw,
                      epilog="examples:\n  routekit log synth --log /tmp/demo-log\n"
                             "  routekit log synth --days 90 --requests 10000000 --seed 1 --log /tmp/big-log")
    add_log_arg(y)
    y.add_argument("--days", type=whole, default=90, help="days of history, ending yesterday (default 90)")
    y.add_argument("--requests", type=whole, default=100_000, help="records in total (default 100000)")
    y.add_argument("--seed", type=int, default=0, help="random seed (same seed and --end: same log)")
    y.add_argument("--end", type=day, metavar="YYYY-MM-DD", help="last day (default: yesterday, UTC)")
    add_policy_arg(y, "policy whose routes, models and prices shape the history")
    y.add_argument("--replace", action="store_true", help="overwrite an existing synthetic log in LOG")
    y.set_defaults(func=synth)

    i = ps.add_parser("import", help="import LiteLLM proxy spend logs or OTel GenAI spans",
                      description="Turn spend another gateway recorded into route records (same schema; unmapped "
                                  "fields kept in 'extra'; raw prompts hashed, never stored).\n\n"
                                  "  litellm-csv FILE        a CSV export of the LiteLLM_SpendLogs table\n"
                                  "  litellm-postgres URL    the proxy's Postgres (postgresql://user@host:port/db;\n"
                                  "                          put the password in PGPASSWORD, not in the URL)\n"
                                  "  otel FILE               OTLP JSON trace export (a document or JSON lines)",
                      formatter_class=raw,
                      epilog="examples:\n  routekit log import litellm-csv spend.csv\n"
                             "  PGPASSWORD=... routekit log import litellm-postgres postgresql://litellm@db/litellm "
                             "--since 2026-11-01\n  routekit log import otel otel-traces.jsonl --log routelog")
    i.add_argument("kind", choices=["litellm-csv", "litellm-postgres", "otel"])
    i.add_argument("source", help="file path, or a postgresql:// URL")
    i.add_argument("--since", type=day, metavar="YYYY-MM-DD", help="litellm-postgres: only rows from this day on")
    add_log_arg(i)
    i.set_defaults(func=import_)

    r = ps.add_parser("recover", help="move spooled records (written when the log could not take them) into the log",
                      description="When the route log cannot take a record after a provider has answered (a "
                                  "read-only or full disk), the Router returns the answer and spools the record "
                                  "(with a 'spooled' warning) to $ROUTEKIT_SPOOL_DIR, else "
                                  "~/.local/state/routekit/spool. This appends every spooled record to the log, "
                                  "skipping any whose request_id is already there, then empties the spool. Safe "
                                  "to run while routers spool and to run again. Exit 1 if some spooled lines are "
                                  "not records (they stay in the spool, named).",
                      formatter_class=raw, epilog="examples:\n  routekit log recover\n"
                                                  "  routekit log recover --log /var/log/routekit --spool /srv/spool")
    add_log_arg(r)
    r.add_argument("--spool", help="spool directory (default: $ROUTEKIT_SPOOL_DIR or ~/.local/state/routekit/spool)")
    r.set_defaults(func=recover)


def _is_log(args: argparse.Namespace) -> bool:
    """A typo in --log must not read as an empty log: says so and returns False."""
    from ..errors import BadInput
    from ..routelog import require_log

    try:
        require_log(args.log)
    except BadInput as e:
        print(f"routekit log {args.log_command}: {e}", file=sys.stderr)
        return False
    return True


def scan(args: argparse.Namespace) -> int:
    import polars as pl

    from ..routelog import scan_log

    if not _is_log(args):
        return 2
    result = scan_log(args.log, verify=True)  # every page of every part: damage inside a part is found too
    summary = result.frame.select(
        pl.len().alias("records"), pl.col("timestamp").min().alias("first"), pl.col("timestamp").max().alias("last"),
        pl.col("timestamp").dt.date().n_unique().alias("days")).collect().row(0, named=True)
    print(f"{args.log}: {summary['records']} records, {result.files} files, {summary['days']} days"
          + (f" ({summary['first']:%Y-%m-%d} .. {summary['last']:%Y-%m-%d})" if summary["records"] else ""))
    counts = result.frame.group_by("source", "outcome").agg(pl.len().alias("n")).sort("source", "outcome").collect()
    for source, outcome, n in counts.iter_rows():
        print(f"  {source or '?':<14} {outcome or '?':<8} {n}")
    if result.skipped:
        print(f"{result.summary()} (not lost: the files are untouched):")
        for line in result.details():
            print(f"  {line}")
        return 1
    print("no bad lines, no damaged files")
    return 0


def compact(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..errors import Busy
    from ..routelog import compact

    if not _is_log(args):
        return 2
    try:
        report = compact(args.log, before=args.before and args.before.isoformat(),
                         progress=lambda parts: tqdm(parts, desc="compact", unit="day"))
    except Busy as e:
        print(e, file=sys.stderr)
        return 1
    print(f"compacted {len(report.days)} days: {report.records} records to {len(report.parts)} Parquet files"
          + (f", {report.bad_lines} bad lines kept in rejected-*.jsonl" if report.bad_lines else ""))
    return 0


def synth(args: argparse.Namespace) -> int:
    import time

    from ..policy import PolicyError
    from ..synth import synthesize

    t0 = time.perf_counter()
    try:
        result = synthesize(args.log, days=args.days, requests=args.requests, seed=args.seed, policy=args.policy,
                            end=args.end, replace=args.replace, progress=True)
    except (FileExistsError, ValueError, PolicyError) as e:
        print(f"routekit log synth: {e}", file=sys.stderr)
        return 2
    t = result.truth["totals"]
    print(f"{t['records']} records over {args.days} days in {time.perf_counter() - t0:.1f}s -> {args.log} "
          f"(${t['cost_usd']:,.2f}, {t['fallback_used']} fallbacks, {t['degraded']} degraded)")
    print(f"what was injected: {result.truth_path}")
    return 0


def import_(args: argparse.Namespace) -> int:
    from datetime import datetime, time, timezone

    from .. import importers

    try:
        if args.kind == "litellm-csv":
            report = importers.import_litellm_csv(args.source, args.log)
        elif args.kind == "otel":
            report = importers.import_otel_json(args.source, args.log)
        else:
            since = datetime.combine(args.since, time(), timezone.utc) if args.since else None
            report = importers.import_litellm_postgres(args.source, args.log, since=since)
    except (OSError, ValueError) as e:
        print(f"routekit log import: {oserror_line(e) if isinstance(e, OSError) else e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 — psycopg's errors (unreachable server, no such table)
        if type(e).__module__.startswith("psycopg"):
            print(f"routekit log import: {args.source.split('@')[-1]}: {e}", file=sys.stderr)
            return 2
        raise
    print(report.summary())
    for example in report.examples:
        print(f"  {example}")
    return 1 if report.bad else 0


def recover(args: argparse.Namespace) -> int:
    from ..spool import recover as run, spool_dir

    where = args.spool or spool_dir()
    try:
        done = run(args.log, where)
    except OSError as e:
        print(f"routekit: cannot recover from {where} into {args.log}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"{done.records} record(s) recovered from {where} into {args.log}"
          + (f"; {done.duplicates} already there" if done.duplicates else ""))
    for bad in done.bad_lines:
        print(f"  not a record, left in the spool: {bad}", file=sys.stderr)
    return 1 if done.bad_lines else 0
