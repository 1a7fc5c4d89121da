"""routekit sim serve"""
from __future__ import annotations

import argparse
import sys

ORDER = 80


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="the local provider simulator (for tests, demos and drills)")
    ps = p.add_subparsers(dest="sim_command", metavar="ACTION", required=True)
    s = ps.add_parser("serve", help="serve vendor protocols on 127.0.0.1 with a configurable fault model",
                      description="A real HTTP server that answers any model name in each vendor's protocol. "
                                  "Change a model's behaviour at run time with POST /_sim/models/NAME "
                                  '(e.g. {"down": true}); GET /_sim/stats counts requests.')
    s.add_argument("--port", type=int, default=8088)
    s.add_argument("--scenario", help="YAML with 'default' and per-model behaviour")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=serve)


def serve(args: argparse.Namespace) -> int:
    from ..sim import load_scenario, serve

    try:
        scenario = load_scenario(args.scenario) if args.scenario else None
    except (OSError, ValueError) as e:
        print(f"bad scenario: {e}", file=sys.stderr)
        return 2
    print(f"routekit simulator on http://127.0.0.1:{args.port}", flush=True)
    serve(args.port, scenario, args.seed)
    return 0
