"""routekit blast-radius --policy P (--provider NAME | --model ALIAS | --region R | --deprecated-by DATE)"""
from __future__ import annotations

import argparse
import json
import sys

from .common import add_policy_arg, day

ORDER = 46

EXAMPLES = """examples:
  routekit blast-radius --policy data/policy.demo.yaml --provider anthropic
  routekit blast-radius --policy data/policy.demo.yaml --provider openai --log demo/routelog
  routekit blast-radius --policy data/policy.demo.yaml --region eu --json
  routekit blast-radius --policy data/policy.demo.yaml --deprecated-by 2026-12-31     # what retirements break

Effects: unaffected (the first candidate still serves), fallback (another candidate at the route's floor serves),
degraded (only a below-floor candidate is left and the route says on_exhausted: degrade), fails (nothing is left).
A provider is a vendor or provider prefix (anthropic, openai, azure, google, bedrock...); models on this machine
(boundary: local) are not taken by a vendor's outage. With --log: requests/day the removed models served (last 30
days of the log, from its rollups), monthly cost as recorded and with those requests' recorded tokens priced at
the new first candidate (price snapshot or policy override), and that candidate's p95 latency in the log.

Exit status: 0 when no intent fails, 1 when any fails (a CI gate), 2 on bad input.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("blast-radius", help="what fails if a provider, model or region is unavailable",
                       description="Walk every intent's whole candidate chain with a provider, a model, a region or "
                                   "the models retiring by a date removed, through the Router's own rules (privacy "
                                   "boundary, allow-lists, quality floor incl. measured baselines, context window), "
                                   "and say per intent what happens; with --log, what it moves and costs.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_policy_arg(p)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--provider", help="a vendor or provider prefix to remove (e.g. anthropic, azure)")
    what.add_argument("--model", help="a model alias (or model string) to remove")
    what.add_argument("--region", help="a region to remove (every model in it)")
    what.add_argument("--deprecated-by", type=day, metavar="YYYY-MM-DD",
                      help="remove every model the price snapshot retires on or before this date")
    p.add_argument("--log", help="route log directory: weight intents by their last 30 days of traffic")
    p.add_argument("--json", action="store_true", help="print JSON: {removed, intents: [...]}")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..costs import PriceBook
    from ..errors import BadInput
    from ..playbook import blast_radius, removal
    from ..playbook.traffic import load_traffic
    from ..policy import load_policy

    try:
        policy = load_policy(args.policy)
        prices = PriceBook.load()
        removed = removal(policy, provider=args.provider, model=args.model, region=args.region,
                          deprecated_by=args.deprecated_by, prices=prices)
        traffic = load_traffic(args.log) if args.log else None
    except BadInput as e:
        print(f"routekit blast-radius: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"routekit blast-radius: {e}", file=sys.stderr)
        return 2
    result = blast_radius(policy, removed, traffic=traffic, prices=prices)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.render())
    return 1 if result.failing else 0
