"""The kill switch: routekit disable / enable / status."""
from __future__ import annotations

import argparse
import json
import sys
import time

from .route import add_policy_arg

ORDER = 30


def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("disable", help="take a model or a route out of service now",
                       description="Disable a model alias or a route (intent). A running Router sees it within "
                                   "a second. Stored in the overrides file beside the policy.")
    d.add_argument("target", help="model alias or route name")
    d.add_argument("--reason", required=True, help="why (shown in status, errors and records)")
    d.add_argument("--for", dest="duration", help="expire after e.g. 30m, 2h, 1d (default: until enabled)")
    d.add_argument("--by", help="who (default: $ROUTEKIT_USER or the login name)")
    add_policy_arg(d)
    d.set_defaults(func=disable)

    e = sub.add_parser("enable", help="put a disabled model or route back in service")
    e.add_argument("target", help="model alias or route name")
    add_policy_arg(e)
    e.set_defaults(func=enable)

    s = sub.add_parser("status", help="disabled models/routes (who, why, until) and circuit state")
    add_policy_arg(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=status)


def _load(args):
    from ..overrides import Overrides
    from ..policy import load_policy

    policy = load_policy(args.policy)
    return policy, Overrides(policy.overrides_path)


def disable(args: argparse.Namespace) -> int:
    from ..overrides import parse_duration

    policy, overrides = _load(args)
    if args.target not in policy.models and args.target not in policy.routes:
        print(f"unknown target {args.target!r}: not a model alias or route of {policy.path}", file=sys.stderr)
        return 2
    try:
        seconds = parse_duration(args.duration) if args.duration else None
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    o = overrides.disable(args.target, args.reason, seconds, by=args.by)
    print(f"{args.target}: {o.describe()}")
    return 0


def enable(args: argparse.Namespace) -> int:
    _, overrides = _load(args)
    if overrides.enable(args.target):
        print(f"{args.target}: enabled")
        return 0
    print(f"{args.target} was not disabled", file=sys.stderr)
    return 1


def status(args: argparse.Namespace) -> int:
    policy, overrides = _load(args)
    active = overrides.active()
    from ..circuit import read_published

    now = time.time()
    circuits = read_published(policy.circuits_path)
    open_now = {k: c for k, c in circuits.items() if c.get("open_until") and c["open_until"] > now}
    if args.json:
        from dataclasses import asdict
        print(json.dumps({"policy": policy.path, "overrides_file": str(policy.overrides_path),
                          "disabled": [asdict(o) for o in active.values()],
                          "circuits": circuits, "open_circuits": sorted(open_now)}, indent=2))
        return 0
    print(f"policy {policy.path} (version {policy.version}); overrides in {policy.overrides_path}")
    if not active:
        print("nothing disabled")
    for target, o in active.items():
        kind = "route" if target in policy.routes else "model"
        print(f"  {kind} {target}: {o.describe()}")
    if not circuits:
        print("circuits: none opened (as published by running routers)")
    for alias, c in sorted(circuits.items()):
        if alias in open_now:
            state = f"OPEN for {c['open_until'] - now:.0f}s more"
        else:
            state = "closed" if c.get("open_until") is None else "half-open (cooldown over, next request probes)"
        print(f"  circuit {alias}: {state}; opened {c['openings']}x (pid {c['pid']})")
    return 0
