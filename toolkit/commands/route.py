"""routekit route --policy FILE --intent NAME "prompt" """
from __future__ import annotations

import argparse
import json
import os
import sys

ORDER = 10


def add_policy_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", default=os.environ.get("ROUTEKIT_POLICY", "data/policy.demo.yaml"),
                   help="policy YAML file (default: $ROUTEKIT_POLICY or data/policy.demo.yaml)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("route", help="route one prompt by intent and explain where it went",
                       description="Route one prompt through the policy: prints the answer, then which model "
                                   "served and why (skipped candidates, attempts, cost). Exit 1 when no "
                                   "candidate could serve, 2 on bad input.")
    add_policy_arg(p)
    p.add_argument("--intent", required=True, help="task intent, a route of the policy (e.g. triage, synthesis)")
    p.add_argument("--team", default=os.environ.get("ROUTEKIT_TEAM", "default"), help="team to charge")
    p.add_argument("--sensitivity", help="request sensitivity (e.g. private: keeps the request on local models)")
    p.add_argument("--max-tokens", type=int, help="cap on output tokens")
    p.add_argument("--log", default=os.environ.get("ROUTEKIT_LOG_DIR", "routelog"),
                   help="route log directory (default ./routelog)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("prompt", help='the prompt text, or "-" to read it from stdin')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..policy import PolicyError
    from ..router import NoEligibleRoute, Router, UnknownIntent

    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    try:
        router = Router(args.policy, log=args.log)
        result = router.complete(args.intent, prompt, team=args.team, sensitivity=args.sensitivity,
                                 max_tokens=args.max_tokens)
    except PolicyError as e:
        print(f"bad policy:\n{e}", file=sys.stderr)
        return 2
    except UnknownIntent as e:
        print(e, file=sys.stderr)
        return 2
    except NoEligibleRoute as e:
        if args.json:
            print(json.dumps({"error": "no_eligible_route", "message": str(e),
                              "attempts": e.record["attempts"], "skipped": e.record["skipped"]}, indent=2))
        print(f"routekit: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.text)
        print()
        print(result.explain())
    return 0
