"""routekit demo: the main job on the embedded defaults."""
from __future__ import annotations

import argparse

ORDER = 90


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run routed traffic for every intent against the simulator and local model",
                       description="Starts the simulator and the local model, routes a request per intent, shows "
                                   "fallbacks, floors and the kill switch, and writes a route log.")
    p.add_argument("--policy", default="data/policy.demo.yaml")
    p.add_argument("--out", default="demo", help="output directory (route log, overrides)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import run as demo

    summary = demo(args.policy, args.out)
    return 0 if summary["served"] else 1
