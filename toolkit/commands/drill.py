"""routekit drill --policy P --scenario FILE [--prompts FILE]"""
from __future__ import annotations

import argparse
import glob
import os
import sys

from ..resources import find
from .common import add_log_arg, add_policy_arg, oserror_line

ORDER = 45

EXAMPLES = """examples:
  routekit drill --policy data/policy.demo.yaml --scenario data/drills/primary-down.yaml --out drills/primary-down
  routekit drill --policy data/policy.demo.yaml --scenario data/drills/brownout.yaml \\
      --prompts data/prompts/triage.jsonl --prompts data/prompts/extraction.jsonl
  routekit drill --policy data/policy.demo.yaml --scenario data/drills/primary-down.yaml \\
      --sim-url http://127.0.0.1:8088 --start-local

Exit status: 0 clean; 1 when any request was silently downgraded (served below the route's min_tier without
the degraded flag) or crossed a privacy boundary; 2 on bad input. Scenario format: see toolkit/drill.py.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("drill", help="fallback drill: break vendors on a schedule, prove no silent downgrade",
                       description="Run prompt sets through the Router while the simulator takes models down, "
                                   "rate-limits them or answers empty on a schedule; report per intent: served, "
                                   "served by fallback, degraded (flagged), failed loudly, silent downgrades and "
                                   "privacy-boundary violations (from the route records and from the simulator's "
                                   "own request counts).", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_policy_arg(p)
    p.add_argument("--scenario", required=True, type=find, help="scenario YAML (e.g. data/drills/primary-down.yaml)")
    p.add_argument("--prompts", action="append", metavar="FILE", type=find,
                   help="prompt set (JSONL), repeatable; default: every data/prompts/*.jsonl whose intents the "
                        "policy routes")
    p.add_argument("--sim-url", help="use a running simulator (default: start one in-process)")
    p.add_argument("--start-local", action="store_true", help="start the real local model if it is not running")
    p.add_argument("--out", default="drills/latest", help="report directory (default drills/latest)")
    add_log_arg(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _default_prompts(policy_path: str) -> list[str]:
    from ..evals import load_prompts
    from ..policy import load_policy
    from ..resources import data_file

    routes = set(load_policy(policy_path).routes)
    return [f for f in sorted(glob.glob(str(data_file("prompts") / "*.jsonl")))
            if {i.intent for i in load_prompts(f)} <= routes]


def run(args: argparse.Namespace) -> int:
    from ..drill import DrillError, run_drill
    from ..evals import PromptSetError, load_prompts
    from ..policy import PolicyError

    try:
        if args.start_local:
            _start_local()
        prompts = load_prompts(args.prompts or _default_prompts(args.policy))
        report = run_drill(args.policy, args.scenario, prompts, sim_url=args.sim_url, out_dir=args.out,
                           log=args.log, progress=not args.no_progress)
    except (PromptSetError, PolicyError, DrillError) as e:
        print(f"routekit drill: bad input:\n{e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"routekit drill: {oserror_line(e)}", file=sys.stderr)
        return 2
    print(render(report))
    return 0 if report.ok else 1


def render(report) -> str:
    s = report.summary
    lines = [f"drill {s['scenario']}: {s['description']}", f"  policy {s['policy']} ({s['policy_version']}), "
             f"{s['requests']} requests, {s['simulator_requests']} simulator requests"]
    lines += [f"  before request {a['before_request']:>3}: {a['step']}" for a in s["steps_applied"]]
    if s["not_controllable"]:
        lines.append(f"  not served by the simulator (not broken): {', '.join(s['not_controllable'])}")
    head = ("intent", "requests", "served", "fallback", "degraded", "failed", "SILENT", "BOUNDARY")
    lines += ["", "  " + "".join(f"{h:>13}" if i else f"{h:<14}" for i, h in enumerate(head))]
    for r in [*s["intents"], {"intent": "total", **s["totals"]}]:
        cells = (r["intent"], r["requests"], r["served"], r["served_by_fallback"], r["degraded"], r["failed_loudly"],
                 r["silent_downgrades"], r["boundary_violations_records"] + r["boundary_violations_sim"])
        lines.append("  " + "".join(f"{c:>13}" if i else f"{c:<14}" for i, c in enumerate(cells)))
    for v in s["violations"][:10]:
        what = "SILENT DOWNGRADE" if v["silent_downgrade"] else "BOUNDARY VIOLATION"
        lines.append(f"  {what}: request {v['request']} ({v['intent']}/{v['prompt_id']}) -> "
                     f"{v['served_alias'] or 'not served'}; models: {v['violating_models'] or v['served_alias']}")
    verdict = "PASS: no silent downgrade, no boundary violation" if s["ok"] else "FAIL"
    lines += ["", f"  {verdict}; report in {report.out_dir}/ (drill_report.json, drill_requests.parquet, "
                  f"drill_intents.parquet)"]
    return "\n".join(lines)


def _start_local() -> None:
    import atexit
    import socket

    from .. import localmodel

    if localmodel.is_up():
        os.environ.setdefault("ROUTEKIT_LOCAL_URL", localmodel.url())
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = localmodel.start(port)
    atexit.register(proc.terminate)
    os.environ["ROUTEKIT_LOCAL_URL"] = f"http://127.0.0.1:{port}"
