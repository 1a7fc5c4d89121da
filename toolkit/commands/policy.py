"""routekit policy check FILE"""
from __future__ import annotations

import argparse
import sys

ORDER = 20


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("policy", help="check a policy table")
    ps = p.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    c = ps.add_parser("check", help="validate a policy file and print a one-screen summary",
                      description="Validate a policy: schema, unknown aliases, route cycles, privacy boundaries "
                                  "across each route's whole chain, literal secrets, prices. Exit 0 when clean, "
                                  "1 naming each problem.")
    c.add_argument("file", help="policy YAML file")
    c.add_argument("--no-prices", action="store_true", help="skip the price-snapshot check")
    c.set_defaults(func=check)


def check(args: argparse.Namespace) -> int:
    from ..policy import PolicyError, load_policy

    try:
        policy = load_policy(args.file, check_prices=not args.no_prices)
        if any(r.router is not None for r in policy.routes.values()):
            from ..research.learned import policy_problems   # a trained router's model file and aliases

            found = policy_problems(policy)
            if found:
                raise PolicyError(found)
    except PolicyError as e:
        print_problems(args.file, e)
        return 1
    print(summary(policy))
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
        lines.append(f"  {intent:<12} {' -> '.join(parts)}   ({', '.join(rules)})")
    lines += ["", "models:"]
    for alias, m in policy.models.items():
        where = m.region or "-"
        lines.append(f"  {alias:<16} tier {m.tier}  {m.effective_boundary:<6} {where:<6} {m.target}")
    return "\n".join(lines)
