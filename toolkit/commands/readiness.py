"""routekit readiness --policy P [--log DIR] [--quality DIR] [--max-age 90d]"""
from __future__ import annotations

import argparse
import json
import os
import sys

from .common import add_policy_arg, days_ahead

ORDER = 49

EXAMPLES = """examples:
  routekit readiness --policy data/policy.demo.yaml --quality demo/quality --log demo/routelog
  routekit readiness --policy data/policy.example.yaml --max-age 30d --json

Checks per intent (each failing one prints the command that would make it pass):
  boundary      the privacy-boundary proof (the policy's static checks) holds for the route and its candidates
  drill         a routekit drill report under --quality covers the intent within --max-age, 0 silent downgrades
  kill_switch   a disable/enable of the route or its first candidate within --max-age, in the kill-switch history
                beside the overrides file (routekit disable / enable keep who, why and when)
  baseline      every candidate has measured scores (policy baselines:, or a baseline under --quality)
  budget        a budget with alerts covers the intent or its owner team
  keys          every API key the chain names has an owner (keys: in the policy)
  blast_radius  losing any one vendor leaves the intent served (or the route writes on_exhausted: fail)
  deprecation   no model of the chain is past, or within --deprecation-warning days of, its retirement date

Exit status: 0 only when every check passes, 1 when any fails, 2 on bad input.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("readiness", help="the launch checklist per intent, each failing check with its fix",
                       description="Check each intent of the policy for launch: boundary proof, a recent clean "
                                   "fallback drill, a rehearsed kill switch, baselines, budget, key owners, vendor "
                                   "blast radius and model retirement dates.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_policy_arg(p)
    p.add_argument("--log", help="route log directory (teams using each intent, for the budget check)")
    p.add_argument("--quality", action="append", metavar="DIR", default=[],
                   help="where drill reports and baselines are (repeatable; searched recursively)")
    p.add_argument("--overrides", metavar="FILE",
                   help="the kill switch's overrides file, whose history is read (default: the policy's own, or "
                        "$ROUTEKIT_OVERRIDES)")
    p.add_argument("--max-age", default="90d", help="how recent a drill and a rehearsal must be (default 90d)")
    p.add_argument("--deprecation-warning", type=days_ahead, default=30, metavar="DAYS",
                   help="fail a model this many days before its retirement date (default 30)")
    p.add_argument("--json", action="store_true", help="print JSON: {ready, checks: [...]}")
    p.set_defaults(func=run)


def days(text: str) -> float:
    """'90d', '12h', '90' (days) -> days."""
    from ..errors import BadInput
    from ..overrides import parse_duration

    try:
        return float(text) if text.strip().replace(".", "", 1).isdigit() else parse_duration(text) / 86400
    except ValueError as e:
        raise BadInput(f"--max-age: {e}") from None


def run(args: argparse.Namespace) -> int:
    from ..errors import BadInput
    from ..playbook import readiness
    from ..playbook.traffic import load_traffic
    from ..policy import load_policy

    try:
        policy = load_policy(args.policy)
        missing = [q for q in args.quality if not os.path.isdir(q)]
        if missing:
            raise BadInput(f"--quality {missing[0]}: no such directory")
        traffic = load_traffic(args.log) if args.log else None
        result = readiness(policy, quality=args.quality, traffic=traffic, overrides=args.overrides,
                           max_age_days=days(args.max_age), deprecation_warning_days=args.deprecation_warning)
    except (BadInput, FileNotFoundError) as e:
        print(f"routekit readiness: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.render())
    return 0 if result.ready else 1
