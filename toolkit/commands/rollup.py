"""routekit rollup: bring the log's additive rollups up to date (polars, DuckDB or Spark)."""
from __future__ import annotations

import argparse
import json
import sys

from .common import add_log_arg

ORDER = 55

EXAMPLES = """examples:
  routekit rollup                                   # ./routelog (or $ROUTEKIT_LOG_DIR) with polars
  routekit rollup --log /data/routelog --engine duckdb
  routekit rollup --log s3://acme-logs/routelog --engine spark --spark-master spark://head:7077
  routekit rollup --log file:///data/routelog --force --json

A damaged Parquet part, a line that is not a route record and a record with a value outside its
domain (negative cost, unknown outcome...) are left out of the rollups and named here (file, line or
request); the files stay as they are.  Only days whose log files changed since the last build are
read (a manifest in LOG/_rollups/v3 keeps their sizes and times); --force rebuilds every day.
Rollups of an older format (LOG/_rollups/v2, a row per latency bin) are not read: the first build
rebuilds every day and says so; the old folder can then be deleted.
Object storage: s3:// needs s3fs, gs:// gcsfs, with the usual credentials in the environment; see
`python -c "import toolkit.rollups as r; help(r)"` for each engine's settings.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rollup", help="build the additive rollups dashboards and `stats` read",
                       description="Roll the route log up into additive tables (requests, attempts, "
                                   "tokens, cost and a latency histogram in one row per hour x team x intent x route x "
                                   "model x provider x outcome, plus the same per day), stored as Parquet under "
                                   "LOG/_rollups/v3. Incremental, "
                                   "idempotent and safe to interrupt. Prints records read, rows written, engine "
                                   "and wall time.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_log_arg(p, "route log directory or URL (s3://, gs://, file://)")
    p.add_argument("--engine", choices=("polars", "duckdb", "spark"), default="polars",
                   help="polars (default, embedded), duckdb, or spark (needs routekit[spark] and Java 17)")
    p.add_argument("--spark-master", metavar="URL",
                   help="Spark master URL (default local[*]); e.g. spark://host:7077, yarn, k8s://...")
    p.add_argument("--force", action="store_true", help="rebuild every day, changed or not")
    p.add_argument("--json", action="store_true", help="print the build report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..rollups import build_rollups

    if args.spark_master and args.engine != "spark":
        print("--spark-master needs --engine spark", file=sys.stderr)
        return 2
    try:
        report = build_rollups(args.log, args.engine, spark_master=args.spark_master, force=args.force,
                               progress=not args.json)
    except (OSError, RuntimeError, ImportError) as e:  # RollupError is a RuntimeError
        print(f"rollup failed: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    print(report.summary())
    for line in report.damage.details():
        print(f"  {line}")
    return 0
