"""routekit report spend|latency|quality|what-if|readiness|research|all --log DIR --out DIR [-p key value ...]"""
from __future__ import annotations

import argparse
import os
import time

from ..reports import REPORTS
from .common import add_log_arg

ORDER = 60

EXAMPLES = """examples:
  routekit report all --log routelog                       # every dashboard into reports/
  routekit report all --log routelog --jobs 1              # one notebook at a time (less memory)
  routekit report spend --log routelog -p since 2026-11-01 -p until 2026-11-30 -p by intent
  routekit report latency --log /data/routelog --out /tmp/oncall -p since 2026-11-27   # up to 2 days: by the hour
  routekit report quality --log routelog -p quality_dir evals
  routekit report what-if --log routelog -p scenarios_path data/scenarios/three-approaches.yaml -p volume 2
  routekit report spend --log routelog -p out_dir reports/charts   # PNG copies of the charts for slides
  routekit report readiness --log routelog -p policy_path data/policy.yaml -p quality_dir evals

parameters (-p key value; see each notebook's parameters cell):
  all       since until policy_path out_dir (a directory for PNG copies of the charts) tables_dir (default: --out)
  spend     by (team|intent|model|provider|route) grain (hour|day|week|month; default: by the hour for a
            period of up to 2 days, else by the day) top compare_days
  latency   grain (as for spend) slowest_n
  quality   quality_dir
  what-if   scenarios_path by (intent|model) month focus volume tokens price
  research  gsm8k_outcomes arena_outcomes cascade_thresholds verifier_error router_column seed (reads no log)
  readiness quality_dir overrides_path max_age_days deprecation_warning_days
Values are typed as on papermill's command line (None, true/false, numbers, else text); paths are relative to
the current directory.  Each report is an executed notebook (.ipynb) and a self-contained .html that opens
offline from disk; index.html links them with each one's period and headline numbers. A table cut short in a page
is written whole beside it as CSV.

exit codes: 0 every report written; 1 a notebook failed in a cell (named; its .ipynb is kept with the traceback,
the others still publish); 2 bad input (an unknown report or parameter, a missing log, a bad day).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="run the dashboard notebooks (papermill) into HTML reports",
                       description="Run the spend, latency, quality, what-if, readiness and routing-research "
                                   "notebooks headless through papermill over a route log (they read its rollups, "
                                   "building new days first) and write executed notebooks, offline HTML pages and an "
                                   "index.html.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("which", nargs="+", metavar="REPORT", choices=[*REPORTS, "all"],
                   help=f"{', '.join(REPORTS)}, or all")
    add_log_arg(p)
    p.add_argument("--out", default="reports", help="output directory (default reports)")
    p.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                   help="notebook parameter (repeatable)")
    p.add_argument("-j", "--jobs", type=_jobs, default=None, metavar="N",
                   help=f"notebooks run at once, each in its own kernel (default: the number of cores, "
                        f"{os.cpu_count() or 1} here)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _jobs(text: str) -> int:
    n = int(text) if text.strip().isdigit() else 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of notebooks at least 1")
    return n


def run(args: argparse.Namespace) -> int:
    from ..reports import parse_value, run as run_reports

    params = {k: parse_value(v) for k, v in args.param}
    t0 = time.perf_counter()
    done = run_reports(args.which, args.log, args.out, params, progress=not args.no_progress, jobs=args.jobs)
    for r in done:
        print(f"{r.name:<9} {r.html}  ({r.seconds:.1f} s + {r.export_seconds:.1f} s HTML)")
    print(f"index     {done[0].html.parent / 'index.html'}")
    print(f"wall time {time.perf_counter() - t0:.1f} s")
    return 0
