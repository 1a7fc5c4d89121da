"""routekit recommend --intent NAME (--quality DIR | --outcomes FILE)"""
from __future__ import annotations

import argparse
import json
import sys

from .common import positive

ORDER = 47

EXAMPLES = """examples:
  routekit recommend --intent triage --quality demo/quality --policy data/policy.demo.yaml
  routekit recommend --intent AIME --outcomes data/outcomes/routerarena.csv --min-score 0.5
  routekit recommend --intent triage --quality evals --max-p95-ms 1500 --json

The rule: the cheapest model whose 95% lower confidence bound of the mean score is at or above the bar (Wilson
interval when every score is 0 or 1, else a seeded bootstrap; the answer says which), within --max-p95-ms if
given. The bar: --min-score, else the route's baselines.min_score in --policy, else the best mean score - 0.05.
Models are compared on the prompts every model answered; a failed call scores 0. Proposed route: that model,
then the other models that clear the bar by score, min_tier their lowest policy tier.

Exit status: 0 with a recommendation, 1 when no model clears the bar (the shortfall is named), 2 on bad input.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recommend", help="given a task class, recommend a model tier from measured scores, and why",
                       description="Recommend the model (and route block) for an intent from measured scores: a "
                                   "baseline under a quality directory (routekit eval baseline) or a long outcome "
                                   "table (prompt_id, model, score, cost_usd[, latency_ms, intent]).",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--intent", required=True, help="the task class (an intent of the table / a route)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--quality", metavar="DIR", help="directory holding baseline score tables (searched recursively)")
    src.add_argument("--outcomes", metavar="FILE", help="long outcome table (.csv, .jsonl or .parquet)")
    p.add_argument("--policy", help="policy YAML: the route's baselines.min_score as the bar, tiers for min_tier")
    p.add_argument("--min-score", type=float, help="the bar (default: see below)")
    p.add_argument("--max-p95-ms", type=positive, help="latency bound: p95 of the measured calls, in ms")
    p.add_argument("--json", action="store_true", help="print JSON: {intent, bar, recommended, why, route, candidates}")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import BadInput
    from ..playbook import recommend
    from ..playbook.measurements import read_scores
    from ..policy import load_policy
    from ..research.replay import read_table

    try:
        policy = load_policy(args.policy) if args.policy else None
        if args.quality:
            table, source = read_scores([args.quality]), args.quality
            if table.is_empty():
                raise BadInput(f"{args.quality}: no baseline score table (scores.parquet/.csv/.jsonl) under it; "
                               f"run routekit eval baseline --out {args.quality}/baseline")
        else:
            table, source = read_table(args.outcomes), args.outcomes
        rec = recommend(table, args.intent, policy=policy, min_score=args.min_score, max_p95_ms=args.max_p95_ms,
                        source=source)
    except BadInput as e:
        print(f"routekit recommend: {e}", file=sys.stderr)
        return 2
    print(json.dumps(rec.to_dict(), indent=2) if args.json else rec.render())
    if rec.recommended is None:
        print(f"routekit recommend: no candidate clears the bar {rec.bar:.3f} for {rec.intent}", file=sys.stderr)
        return 1
    return 0
