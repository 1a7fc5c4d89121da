"""routekit demo: the main job on the embedded defaults."""
from __future__ import annotations

import argparse

from .common import add_policy_arg

ORDER = 90


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job: routed traffic, quality measurements and the dashboards",
                       description="Starts the simulator and the local model; writes a synthetic 90-day history "
                                   "into the demo's route log, routes a request per intent and shows fallbacks, "
                                   "floors and the kill switch; runs a shadow trial, a baseline and a fallback "
                                   "drill; runs the playbook on them (blast radius, a recommendation, the key "
                                   "inventory, the launch checklist); then runs every dashboard notebook through "
                                   "papermill into --reports.")
    add_policy_arg(p, "policy the demo routes with; its models must be the simulator's and the local model's")
    p.add_argument("--out", default="demo", help="output directory: route log, quality tables (default demo)")
    p.add_argument("--reports", default="reports", help="dashboard HTML and index.html (default reports)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import run as demo

    summary = demo(str(args.policy), args.out, reports_dir=args.reports)
    return 0 if summary["served"] and summary["drill_ok"] else 1
