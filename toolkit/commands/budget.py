"""routekit budget status: spend vs limit of every budget of a policy, in its current period."""
from __future__ import annotations

import argparse
import json
import sys

from .common import add_policy_arg

ORDER = 45

EXAMPLES = """examples:
  routekit budget status --policy data/policy.example.yaml
  routekit budget status --policy data/policy.example.yaml --ledger redis://cache:6379/0 --json

Budgets live in the policy (budgets: name, scope, period, limit_usd, alerts, on_limit), and so does their
ledger (state: in the policy): by default the SQLite file <policy>.budgets.sqlite beside the policy, shared by
every process using that policy whatever its log directory; or Redis (state: {backend: redis, url_env: NAME}).
--ledger reads another file or a redis:// URL. Periods are UTC days and months. 'in flight' is held by
requests not settled yet.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("budget", help="budgets: spend vs limit per budget and period")
    ps = p.add_subparsers(dest="budget_command", metavar="ACTION", required=True)
    s = ps.add_parser("status", help="spend vs limit of every budget in its current period",
                      description="Show each budget of the policy in its current UTC period: limit, settled spend, "
                                  "amount held by requests in flight, share used, alerts fired, and what happens at "
                                  "the limit (block or downgrade). Exit 2 on a bad policy or ledger.",
                      epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_policy_arg(s)
    s.add_argument("--ledger", help="SQLite ledger file or redis:// URL (default: the policy's own ledger)")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=status)


def status(args: argparse.Namespace) -> int:
    from dataclasses import asdict
    from pathlib import Path

    from ..budgets import BudgetLedger, open_store
    from ..state import open_state
    from ..policy import PolicyError, load_policy

    try:
        policy = load_policy(args.policy)
    except PolicyError as e:
        print(f"bad policy:\n{e}", file=sys.stderr)
        return 2
    from ..errors import LedgerUnavailable

    store = open_store(args.ledger) if args.ledger else open_state(policy).ledger_store()
    target = store.name       # a path, or "redis at host:port": never a URL's password
    note = None
    if isinstance(getattr(store, "path", None), Path) and not store.path.exists():
        note = f"no ledger at {target} yet: nothing spent through a budgeted Router"
        store = open_store(":memory:")
    try:
        ledger = BudgetLedger(policy.budgets, store, alerts=())
        rows = ledger.status()
        ledger.close()
    except LedgerUnavailable as e:   # an unreachable Redis or a damaged file is reported, not raised
        print(f"routekit: cannot read {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"policy": policy.path, "ledger": target, "note": note,
                          "budgets": [{**asdict(r), "used": r.used} for r in rows]}, indent=2))
        return 0
    if not rows:
        print(f"{policy.path} defines no budgets")
        return 0
    print(f"ledger: {target}" + (f"  ({note})" if note else "") + "\n")
    table = [["budget", "scope", "period", "limit $", "spent $", "in flight $", "used", "alerts fired", "at limit",
              "unpriced"]]
    table += [[r.budget, r.scope, f"{r.period} {r.period_key}", f"{r.limit_usd:,.2f}", f"{r.spent_usd:,.4f}",
               f"{r.reserved_usd:,.4f}", f"{r.used:.0%}", ", ".join(f"{x:.0%}" for x in r.alerts_fired) or "-",
               r.on_limit, str(r.unpriced)] for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for n, r in enumerate(table):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    return 0
