"""routekit research frontier | pair | import"""
from __future__ import annotations

import argparse
import json
import sys

from ..resources import find

ORDER = 60

FRONTIER_EXAMPLES = """examples:
  routekit research frontier data/outcomes/routellm-gsm8k.csv
  routekit research frontier data/outcomes/routerarena.csv --json
  routekit research frontier data/outcomes/routellm-gsm8k.csv --cascade 1.0 --verifier-error 0.1 --chart f.html
  routekit research frontier evals/math/outcomes.parquet --threshold-column input_tokens

quality = mean score over the prompts answered by every model; cost = mean cost per request; the frontier is
RouterBench's non-decreasing convex hull of the evaluated policies, AIQ its mean over the cost range
(formulas in toolkit/research.py).
"""

PAIR_EXAMPLES = """examples:
  routekit research pair data/outcomes/routellm-gsm8k.csv
  routekit research pair data/outcomes/routellm-gsm8k.csv --router-column input_tokens --json

RouteLLM's metrics for a strong/weak pair: PGR = (q - q_weak) / (q_strong - q_weak), APGR = mean PGR over the
share of strong calls, CPT(x%) = the share of strong calls needed to recover x% of the gap.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("research", help="replay routing policies over outcome tables: frontier, AIQ, APGR, CPT")
    ps = p.add_subparsers(dest="research_command", metavar="ACTION", required=True)
    fmt = argparse.RawDescriptionHelpFormatter

    f = ps.add_parser("frontier", help="cost-quality frontier of single models, cascades and routers",
                      description="Evaluate every single model (and optional cascades and threshold routers) on "
                                  "an outcome table, print the oracle, the non-decreasing convex hull and AIQ.",
                      epilog=FRONTIER_EXAMPLES, formatter_class=fmt)
    f.add_argument("outcomes", type=find, help="outcome table: CSV, JSONL or Parquet (prompt_id, model, score, cost_usd, ...)")
    f.add_argument("--json", action="store_true", help="print the JSON document")
    f.add_argument("--cascade", type=float, action="append", metavar="SCORE",
                   help="add a cheapest-first cascade accepting answers scoring >= SCORE (repeatable)")
    f.add_argument("--verifier-error", type=float, default=0.0, help="the cascade verifier's error rate")
    f.add_argument("--threshold-column", help="add a threshold-router sweep on this per-prompt numeric column")
    f.add_argument("--strong", help="strong model of the threshold router (default: best quality)")
    f.add_argument("--weak", help="weak model of the threshold router (default: cheapest)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--chart", help="write the altair chart (.html, .png, .svg or .json)")
    f.set_defaults(func=frontier)

    pr = ps.add_parser("pair", help="RouteLLM's PGR / APGR / CPT for a strong/weak pair",
                       description="APGR and CPT(20/50/80%) of RouteLLM's random router (seeded) and, with "
                                   "--router-column, of a threshold router on that column.",
                       epilog=PAIR_EXAMPLES, formatter_class=fmt)
    pr.add_argument("outcomes", type=find)
    pr.add_argument("--strong", help="default: the best-quality model")
    pr.add_argument("--weak", help="default: the cheapest other model")
    pr.add_argument("--router-column", help="per-prompt score: higher sends to the strong model")
    pr.add_argument("--bins", type=int, default=10, help="threshold quantile bins (RouteLLM: 10)")
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=pair)

    i = ps.add_parser("import", help="turn real outcome data into a long outcome table",
                      description="routellm-gsm8k: RouteLLM's GSM8K responses (decontaminated, tokens counted "
                                  "and priced); routerarena: RouterArena's per-model results with their recorded "
                                  "tokens and cost.", formatter_class=fmt,
                      epilog="examples:\n  routekit research import routellm-gsm8k data/outcomes/routellm-gsm8k "
                             "--out data/outcomes/routellm-gsm8k.csv\n  routekit research import routerarena "
                             "data/outcomes/routerarena --out data/outcomes/routerarena.csv\n")
    i.add_argument("kind", choices=["routellm-gsm8k", "routerarena"])
    i.add_argument("src", help="directory of the source files")
    i.add_argument("--out", required=True, help="output table (.csv, .parquet or .jsonl)")
    i.set_defaults(func=import_)


def _load(path: str):
    from ..research import load_outcomes

    return load_outcomes(path)


def _pair_models(o, strong: str | None, weak: str | None) -> tuple[str, str]:
    from ..research import single

    points = {m: single(o, m) for m in o.models}
    strong = strong or max(points, key=lambda m: (points[m].quality, -points[m].cost_per_request_usd))
    weak = weak or min((m for m in points if m != strong), key=lambda m: points[m].cost_per_request_usd)
    return strong, weak


def frontier(args: argparse.Namespace) -> int:
    from ..research import (OutcomeTableError, cascade, frontier_chart, frontier_report, threshold_curve)

    try:
        o = _load(args.outcomes)
        policies = [cascade(o, threshold=t, error_rate=args.verifier_error, seed=args.seed)
                    for t in args.cascade or []]
        if args.threshold_column:
            strong, weak = _pair_models(o, args.strong, args.weak)
            policies += threshold_curve(o, o.per_prompt(args.threshold_column), strong, weak,
                                        name=f"threshold[{args.threshold_column}]")
    except OutcomeTableError as e:
        print(f"routekit research frontier: {e}", file=sys.stderr)
        return 2
    report = frontier_report(o, policies)
    if args.chart:
        frontier_chart(report, title=args.outcomes).save(args.chart)
    if args.json:
        print(json.dumps({k: report[k] for k in ("models", "oracle", "frontier", "aiq", "prompts")}, indent=2))
        return 0
    print(f"{args.outcomes}: {report['prompts']} prompts answered by every model"
          + (f" ({report['dropped_prompts']} others left out)" if report["dropped_prompts"] else ""))
    print(f"\n  {'policy':<58} {'quality':>8} {'cost/request':>14}")
    for p in sorted(report["policies"], key=lambda p: p["cost_per_request_usd"]):
        print(f"  {p['policy'][:58]:<58} {p['quality']:>8.4f} {p['cost_per_request_usd']:>14.8f}")
    best = report["oracle"]
    print(f"  {'oracle (cheapest best model per prompt)':<58} {best['quality']:>8.4f} "
          f"{best['cost_per_request_usd']:>14.8f}")
    print("\n  frontier (non-decreasing convex hull): "
          + " -> ".join(f"{p['policy']} ({p['quality']:.3f}, ${p['cost_per_request_usd']:.6f})"
                        for p in report["frontier"]))
    print(f"  AIQ {report['aiq']:.4f}")
    return 0


def pair(args: argparse.Namespace) -> int:
    from ..research import OutcomeTableError, pair_metrics, random_router_curve, threshold_curve

    try:
        o = _load(args.outcomes)
        strong, weak = _pair_models(o, args.strong, args.weak)
        rows = {"random": pair_metrics(o, strong, weak, random_router_curve(o, strong, weak, args.seed, args.bins))}
        if args.router_column:
            curve = threshold_curve(o, o.per_prompt(args.router_column), strong, weak, args.bins)
            rows[f"threshold[{args.router_column}]"] = pair_metrics(o, strong, weak, curve)
    except OutcomeTableError as e:
        print(f"routekit research pair: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    first = next(iter(rows.values()))
    print(f"strong {strong} ({first['q_strong']:.4f}), weak {weak} ({first['q_weak']:.4f}), {o.n} prompts")
    fmt = lambda v: "never" if v is None else f"{v * 100:.1f}%"  # noqa: E731
    for name, m in rows.items():
        print(f"  {name:<28} APGR {m['apgr']:.4f}   CPT(20%) {fmt(m['cpt_20'])}   CPT(50%) {fmt(m['cpt_50'])}   "
              f"CPT(80%) {fmt(m['cpt_80'])}")
    return 0


def import_(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..research import IMPORTERS, OutcomeTableError

    try:
        table = IMPORTERS[args.kind](args.src)
    except (OSError, OutcomeTableError) as e:
        print(f"routekit research import: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    {".parquet": table.write_parquet, ".jsonl": table.write_ndjson}.get(out.suffix, table.write_csv)(out)
    print(f"{len(table)} rows ({table['prompt_id'].n_unique()} prompts x {table['model'].n_unique()} models) -> {out}")
    return 0
