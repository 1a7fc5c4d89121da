"""routekit policy check FILE | routekit policy diff OLD NEW"""
from __future__ import annotations

import argparse
import json
import sys

from ..resources import find
from .common import check_period, day

ORDER = 20

DIFF_EXAMPLES = """examples:
  routekit policy diff data/policy.yaml policy.proposed.yaml
  routekit policy diff data/policy.yaml policy.proposed.yaml --log routelog --json
  routekit policy diff old.yaml new.yaml --allow-relax        # a reviewer signed off the relaxation

Static: models, routes, budgets and sensitivity classes added, removed or changed; per intent every change of the
privacy boundary, allow-lists (relaxed: more places the data may go) and quality floor (min_tier, on_exhausted,
baselines.min_score, a candidate crossing the floor), each marked relaxed or tightened. With --log: every recorded
production request is replayed through NEW (same intent, sensitivity, prompt tokens; a model the record shows
failing is passed over): requests whose serving model changes, cost before (as recorded) and after (recorded
tokens x the new model's price), by intent and team, and requests NEW would fail or degrade.

Exit status: 0; 1 when NEW relaxes a privacy boundary or a quality floor (unless --allow-relax): the check a
reviewer runs in CI on a policy pull request; 2 on bad input.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("policy", help="check a policy table, or diff two")
    ps = p.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    c = ps.add_parser("check", help="validate a policy file and print a one-screen summary",
                      description="Validate a policy: schema, unknown aliases, route cycles, privacy boundaries "
                                  "across each route's whole chain, literal secrets, prices, and the capabilities "
                                  "a route requires (requires: [tools, json_schema, vision]) of every candidate in "
                                  "its chain (from the price snapshot or the model's supports:); warn about models "
                                  "the price snapshot retires (past, or within 30 days). Exit 0 when clean "
                                  "(warnings included), 1 naming each problem.")
    c.add_argument("file", type=find, help="policy YAML file (data/policy.example.yaml: the shipped example)")
    c.add_argument("--no-prices", action="store_true",
                   help="skip the price-snapshot checks (prices and retirement dates)")
    c.set_defaults(func=check)
    d = ps.add_parser("diff", help="what a policy change does before it ships (CI gate on relaxations)",
                      description="Compare two policies: what changed, which privacy and floor rules are relaxed or "
                                  "tightened, and (with --log) what the change does to the recorded traffic.",
                      epilog=DIFF_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("old", help="the policy as it is")
    d.add_argument("new", help="the policy as proposed")
    d.add_argument("--log", help="route log directory to replay through NEW")
    d.add_argument("--since", type=day, metavar="YYYY-MM-DD", help="first day of the log to replay (default: all)")
    d.add_argument("--until", type=day, metavar="YYYY-MM-DD", help="last day of the log to replay")
    d.add_argument("--allow-relax", action="store_true", help="exit 0 even when NEW relaxes a rule")
    d.add_argument("--json", action="store_true", help="print JSON: {changes, privacy, floors, replay}")
    d.set_defaults(func=diff)


def check(args: argparse.Namespace) -> int:
    from ..policy import PolicyError, load_policy

    try:
        policy = load_policy(args.file, check_prices=not args.no_prices)
        if any(r.router is not None for r in policy.routes.values()):
            from ..research.learned import policy_problems   # a trained router's model file and aliases

            found = policy_problems(policy)
            if found:
                raise PolicyError(found)
        if any(r.requires for r in policy.routes.values()):
            from ..capabilities import requirement_problems
            from ..costs import PriceBook

            lacking = requirement_problems(policy, PriceBook.load())
            if lacking:
                raise PolicyError([policy.problem(path, message) for path, message in lacking])
    except PolicyError as e:
        print_problems(args.file, e)
        return 1
    print(summary(policy))
    if not args.no_prices:
        from ..costs import PriceBook
        from ..playbook import deprecations

        for d in deprecations(policy, PriceBook.load()):
            if d.status != "later":
                print(f"warning: {d.describe()}; move it to a current model "
                      f"(routekit blast-radius --policy {policy.path} --deprecated-by {d.retires})")
    return 0


def diff(args: argparse.Namespace) -> int:
    from ..errors import BadInput
    from ..playbook import diff_policies
    from ..policy import load_policy

    try:
        check_period(args.since, args.until)
        old, new = load_policy(args.old), load_policy(args.new)
        result = diff_policies(old, new, log=args.log, since=args.since, until=args.until)
    except BadInput as e:
        print(f"routekit policy diff: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.render())
    relaxed = result.relaxed
    if relaxed and not args.allow_relax:
        print(f"routekit policy diff: {args.new} relaxes {len(relaxed)} rule(s): "
              + "; ".join(f"{r.intent}: {r.detail}" for r in relaxed), file=sys.stderr)
        return 1
    return 0


def print_problems(file: str, e) -> None:
    """A bad policy as ``policy check`` reports it (other commands that refuse a policy say it the same way)."""
    print(f"{file}: {len(e.problems)} problem(s)", file=sys.stderr)
    for problem in e.problems:
        print(f"  {problem}", file=sys.stderr)


def summary(policy) -> str:
    lines = [f"{policy.path}: OK (version {policy.version}, {len(policy.models)} models, {len(policy.routes)} routes)",
             "", "routes:"]
    for intent, route in policy.routes.items():
        chain = policy.chain(intent)
        parts = []
        for alias in chain:
            m = policy.models[alias]
            mark = "" if m.tier >= route.min_tier else "(below floor)"
            parts.append(f"{alias}[t{m.tier}{',local' if m.effective_boundary == 'local' else ''}]{mark}")
        rules = [f"min_tier {route.min_tier}", f"on_exhausted {route.on_exhausted}"]
        if route.boundary:
            rules.append(f"boundary {route.boundary}")
        if route.router is not None:
            rules.append(f"trained router {route.router.name} {route.router.version}")
        if route.requires:
            rules.append(f"requires {', '.join(route.requires)}")
        if route.sticky:
            rules.append(f"sticky {route.sticky}")
        lines.append(f"  {intent:<12} {' -> '.join(parts)}   ({', '.join(rules)})")
    lines += ["", "models:"]
    for alias, m in policy.models.items():
        where = m.region or "-"
        lines.append(f"  {alias:<16} tier {m.tier}  {m.effective_boundary:<6} {where:<6} {m.target}")
    return "\n".join(lines)
