"""The kill switch: routekit disable / enable / status.

They must work during an incident, when something else is already broken: a damaged overrides or circuit file
is reported and repaired, and a policy that no longer loads still has its overrides file found (its place
depends only on the policy's path), so the on-call person can still disable a route.  They act on the policy's
state backend (toolkit/state): its files, or Redis (``state: {backend: redis}``) — and when Redis cannot be
reached, on this host's files, copied into Redis when it answers again.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict

from .common import add_policy_arg

ORDER = 30


def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("disable", help="take a model or a route out of service now",
                       description="Disable a model alias or a route (intent). A running Router sees it within "
                                   "a second. Stored in the overrides file with the policy's state; works even "
                                   "when the policy file or the overrides file is damaged (and repairs the latter).")
    d.add_argument("target", help="model alias or route name")
    d.add_argument("--reason", required=True, help="why (shown in status, errors and records)")
    d.add_argument("--for", dest="duration",
                   help="expire after e.g. 30m, 2h, 1d (at most 366d; default: until enabled)")
    d.add_argument("--by", help="who (default: $ROUTEKIT_USER or the login name)")
    add_policy_arg(d)
    d.set_defaults(func=disable)

    e = sub.add_parser("enable", help="put a disabled model or route back in service",
                       description="Enable a disabled model alias or route. Disables and enables are kept with who, "
                                   "why and when in a history beside the overrides file (routekit readiness reads "
                                   "it to see that the kill switch was rehearsed).")
    e.add_argument("target", help="model alias or route name")
    e.add_argument("--reason", default="", help="why (kept in the history)")
    e.add_argument("--by", help="who (default: $ROUTEKIT_USER or the login name)")
    add_policy_arg(e)
    e.set_defaults(func=enable)

    s = sub.add_parser("status", help="the on-call page: what is disabled, open circuits, budgets, spooled records",
                       description="One page for the on-call person: whether the policy loads, what is disabled "
                                   "(who, why, until), which circuits running routers have open (and which process "
                                   "holds each), each budget's use this period, records spooled because the route "
                                   "log could not take them, the last changes of the audit history, where the state "
                                   "lives (files, or Redis and whether it answers) and any damaged state file. Works "
                                   "with a broken policy.")
    add_policy_arg(s)
    s.add_argument("--history", type=int, default=5, metavar="N",
                   help="show the last N changes of the audit history (default 5; 0: none)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=status)


class _Target:
    """The policy (if it loads) and its state backend (the embedded files when it does not load)."""

    def __init__(self, policy_path: str):
        from ..policy import PolicyError, StateFiles, load_policy
        from ..state import EmbeddedState, open_state

        self.policy, self.problems = None, []
        try:
            self.policy = load_policy(policy_path)
            self.state = open_state(self.policy)
        except PolicyError as e:
            self.problems = [str(p) for p in e.problems]
            # a broken file cannot say state.dir or its backend: the default places
            self.state = EmbeddedState(StateFiles.of(policy_path))
        self.path = policy_path
        self.overrides = getattr(self.state, "local", self.state).overrides   # this host's overrides file

    def unknown(self, target: str) -> str | None:
        """Why ``target`` is not one of the policy's (None: it is, or the policy does not load to say)."""
        if self.policy is None or target in self.policy.models or target in self.policy.routes:
            return None
        return f"unknown target {target!r}: not a model alias or route of {self.policy.path}"

    def warn_broken(self) -> None:
        if self.problems:
            print(f"routekit: the policy {self.path} does not load ({len(self.problems)} problem(s), first: "
                  f"{self.problems[0]}); the kill switch still works on its overrides file "
                  f"{self.overrides.path}", file=sys.stderr)

    def warn_local(self) -> None:
        """Say so when a change could only be written on this host (Redis unreachable)."""
        if getattr(self.state, "mode", "") == "degraded-local":
            print(f"routekit: {self.state.where} cannot be reached: written on this host only "
                  f"({self.overrides.path}); this host's Routers obey a disable at once, and the change is copied "
                  f"into Redis when it answers (an enable takes effect then)", file=sys.stderr)


def disable(args: argparse.Namespace) -> int:
    from ..overrides import parse_duration

    t = _Target(args.policy)
    t.warn_broken()
    if t.policy is None:
        print(f"routekit: {args.target!r} cannot be checked against the broken policy; disabling it as given",
              file=sys.stderr)
    elif t.unknown(args.target):
        print(t.unknown(args.target), file=sys.stderr)
        return 2
    try:
        seconds = parse_duration(args.duration) if args.duration else None
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    o = t.state.disable(args.target, args.reason, seconds, by=args.by)
    t.warn_local()
    _say_repaired(t)
    print(f"{args.target}: {o.describe()}")
    return 0


def enable(args: argparse.Namespace) -> int:
    t = _Target(args.policy)
    t.warn_broken()
    found = t.state.enable(args.target, by=args.by, reason=args.reason)
    t.warn_local()
    _say_repaired(t)
    if found:
        print(f"{args.target}: enabled")
        return 0
    # an on-call typo must not read as done: say what is disabled, and whether the name means anything here
    disabled = ", ".join(sorted(t.state.active())) or None
    unknown = t.unknown(args.target)
    print(f"{args.target} was not disabled ({f'disabled now: {disabled}' if disabled else 'nothing is disabled'})"
          + (f"; {unknown}" if unknown else ""), file=sys.stderr)
    return 1


def _say_repaired(t: _Target) -> None:
    if t.overrides.history_problem:
        print(f"routekit: {t.overrides.history_problem}", file=sys.stderr)
    if t.overrides.repaired is not None:
        print(f"routekit: {t.overrides.path} was damaged; rewritten (the damaged copy is kept as "
              f"{t.overrides.repaired})", file=sys.stderr)


def status(args: argparse.Namespace) -> int:
    t = _Target(args.policy)
    t.warn_broken()
    active = t.state.active()
    view = t.state.circuits()
    history = t.state.history(args.history) if args.history > 0 else []
    damage = list(dict.fromkeys(d for d in (t.state.overrides.damage, view.damage) if d))
    now = time.time()
    live = view.entries
    open_now = {k: c for k, c in live.items() if c.get("open_until") and c["open_until"] > now}
    routes = t.policy.routes if t.policy else {}
    where = t.overrides.path if t.state.kind == "embedded" else t.state.where
    budgets, budget_problem = _budgets(t)
    spooled = _spooled()
    if args.json:
        print(json.dumps({"policy": str(t.path), "policy_problems": t.problems, "state": t.state.kind,
                          "mode": t.state.mode, "overrides_file": str(t.overrides.path), "state_where": where,
                          "damaged": damage, "disabled": [asdict(o) for o in active.values()],
                          "circuits": live, "open_circuits": sorted(open_now),
                          "history": [asdict(h) for h in history],
                          "budgets": [{**asdict(b), "used": b.used} for b in budgets],
                          "budget_ledger_problem": budget_problem, "spooled_records": spooled}, indent=2,
                         default=str))
        return 0
    version = f"version {t.policy.version}" if t.policy else "DOES NOT LOAD"
    print(f"policy {t.path} ({version}); overrides in {where} (state: {t.state.mode})")
    for d in damage:
        print(f"  DAMAGED: {d}")
    if not active:
        print("nothing disabled")
    for target, o in active.items():
        kind = "route" if target in routes else ("model" if t.policy else "target")
        print(f"  {kind} {target}: {o.describe()}")
    if not live:
        print("circuits: none opened (as published by running routers)")
    for alias, c in sorted(live.items()):
        if alias in open_now:
            state = f"OPEN for {c['open_until'] - now:.0f}s more"
        else:
            state = "closed" if c.get("open_until") is None else "half-open (cooldown over, next request probes)"
        print(f"  circuit {alias}: {state}; opened {c['openings']}x (held by pid {c['pid']} on "
              f"{c.get('host', '?')})")
    if view.gone:
        print(f"  ({view.gone} circuit(s) of exited processes not shown)")
    if history:
        print("recent changes:")
        for h in history:
            print(f"  {h.describe()}" + (f"  [{h.where}]" if h.where and h.where != "embedded" else ""))
    for b in budgets:
        print(f"  budget {b.budget}: {b.used:.0%} of ${b.limit_usd:,.2f} ({b.period} {b.period_key}; "
              f"${b.reserved_usd:,.4f} in flight; at the limit: {b.on_limit})")
    if budget_problem:
        print(f"  budgets: {budget_problem}")
    if spooled:
        print(f"spooled: {spooled} record(s) wait in the spool; routekit log recover moves them into the log")
    return 0


def _budgets(t: _Target) -> tuple[list, str | None]:
    """The policy's budgets in their current period, or why they cannot be read now."""
    if t.policy is None or not t.policy.budgets:
        return [], None
    from ..budgets import BudgetLedger
    from ..errors import LedgerUnavailable

    try:
        ledger = BudgetLedger.from_policy(t.policy, alerts=(), store=t.state.ledger_store())
        try:
            return ledger.status(), None
        finally:
            ledger.close()
    except LedgerUnavailable as e:
        return [], str(e)


def _spooled() -> int:
    from ..spool import spool_dir

    return sum(1 for f in spool_dir().rglob("*.jsonl") for line in f.read_bytes().splitlines() if line.strip())
