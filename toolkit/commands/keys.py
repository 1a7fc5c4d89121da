"""routekit keys --policy P [--log DIR]"""
from __future__ import annotations

import argparse
import json
import sys

from .common import add_policy_arg, whole

ORDER = 48

EXAMPLES = """examples:
  routekit keys --policy data/policy.example.yaml
  routekit keys --policy data/policy.example.yaml --log routelog --max-age 60 --json

Keys are environment-variable NAMES, never values: declare them in the policy with who owns them and when they
were rotated,
    keys:
      OPENAI_API_KEY: {owner: platform-team, purpose: production OpenAI account, rotated: 2026-10-01}
and every model names its key with api_key_env. Problems (each names the key): no owner; declared but used by
nothing; one key shared across vendors or boundary classes; rotated more than --max-age days ago (or no date);
referenced but not set in the environment. Whether a key is set is checked; its value is never printed.

Exit status: 0 with no problem, 1 on any problem, 2 on bad input.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="the API-key inventory: owners, use, sharing, rotation (against key sprawl)",
                       description="List every API key the policy declares (keys:) or references (api_key_env, "
                                   "webhooks, the state URL): owner, models, vendors, routes and teams using it, "
                                   "whether it is set, its last use in the log; and every problem.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_policy_arg(p)
    p.add_argument("--log", help="route log directory: teams and last use per key (from its rollups)")
    p.add_argument("--max-age", type=whole, default=90, metavar="DAYS", help="rotation age limit (default 90 days)")
    p.add_argument("--json", action="store_true", help="print JSON: {policy, keys: [...], problems: [...]}")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import BadInput
    from ..playbook import key_inventory
    from ..playbook.traffic import load_traffic
    from ..policy import load_policy

    try:
        policy = load_policy(args.policy)
        traffic = load_traffic(args.log, days=36500) if args.log else None
    except (BadInput, FileNotFoundError) as e:
        print(f"routekit keys: {e}", file=sys.stderr)
        return 2
    inv = key_inventory(policy, traffic=traffic, max_age_days=args.max_age)
    print(json.dumps(inv.to_dict(), indent=2) if args.json else inv.render())
    return 1 if inv.problems else 0
