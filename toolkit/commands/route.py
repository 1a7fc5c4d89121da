"""routekit route --policy FILE --intent NAME [--stream] "prompt" """
from __future__ import annotations

import argparse
import json
import os
import sys

ORDER = 10

from .common import add_log_arg, add_policy_arg

EXAMPLES = """examples:
  routekit route --intent triage "Is this invoice overdue?"
  routekit route --intent synthesis --stream "Summarise last week's incidents."
  echo "payroll of employee 7" | routekit route --intent private --sensitivity private -
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("route", help="route one prompt by intent and explain where it went",
                       description="Route one prompt through the policy: prints the answer, then which model "
                                   "served and why (skipped candidates, attempts, cost). With --stream the answer "
                                   "is printed as it arrives; a model that fails before its first token falls "
                                   "back as usual, one that breaks off mid-answer is an error (exit 1) unless the "
                                   "route sets stream_restart. Exit 1 when no candidate could serve, 2 on bad input.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_policy_arg(p)
    p.add_argument("--intent", required=True, help="task intent, a route of the policy (e.g. triage, synthesis)")
    p.add_argument("--team", default=os.environ.get("ROUTEKIT_TEAM", "default"), help="team to charge")
    p.add_argument("--sensitivity", help="request sensitivity (e.g. private: keeps the request on local models)")
    p.add_argument("--max-tokens", type=int, help="cap on output tokens")
    add_log_arg(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--stream", action="store_true", help="stream the answer as it arrives")
    p.add_argument("prompt", help='the prompt text, or "-" to read it from stdin')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..policy import PolicyError
    from ..errors import NoEligibleRoute, StreamInterrupted, UnknownIntent
    from ..router import Router

    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    if not prompt.strip():
        print('routekit route: the prompt is empty (give its text, or "-" to read it from stdin)', file=sys.stderr)
        return 2
    kw = dict(team=args.team, sensitivity=args.sensitivity, max_tokens=args.max_tokens)
    try:
        router = Router(args.policy, log=args.log)
        result = _stream(router, args, prompt, kw) if args.stream else router.complete(args.intent, prompt, **kw)
    except PolicyError as e:
        print(f"bad policy:\n{e}", file=sys.stderr)
        return 2
    except UnknownIntent as e:
        print(e, file=sys.stderr)
        return 2
    except (NoEligibleRoute, StreamInterrupted) as e:
        if isinstance(e, StreamInterrupted) and not args.json:
            print(flush=True)  # end the line of the partial answer
        if args.json:
            print(json.dumps({"error": "stream_cut" if isinstance(e, StreamInterrupted) else "no_eligible_route",
                              "message": str(e), "attempts": e.record["attempts"], "skipped": e.record["skipped"]},
                             indent=2))
        print(f"routekit: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        if not args.stream:
            print(result.text)
        print()
        print(result.explain())
    return 0


def _stream(router, args: argparse.Namespace, prompt: str, kw: dict):
    from ..streams import StreamRestart

    stream = router.stream(args.intent, prompt, **kw)
    for delta in stream:
        if isinstance(delta, StreamRestart):
            print(f"\n[{delta.failed_alias} broke off mid-answer ({delta.reason}); the answer starts over]",
                  file=sys.stderr, flush=True)
            if not args.json:   # the discarded text is already on stdout: say so there, on a line of its own
                print(f"\n[discarded above: the answer starts over on another model after {delta.failed_alias} "
                      f"broke off]", flush=True)
        elif not args.json:
            print(delta, end="", flush=True)
    if not args.json:
        print()
    return stream.result
