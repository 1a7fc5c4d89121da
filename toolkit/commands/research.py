"""routekit research frontier | pair | train | import"""
from __future__ import annotations

import argparse
import json
import sys

from ..resources import find
from .common import share, whole

ORDER = 60

FRONTIER_EXAMPLES = """examples:
  routekit research frontier data/outcomes/routellm-gsm8k.csv
  routekit research frontier data/outcomes/routerarena.csv --json
  routekit research frontier data/outcomes/routellm-gsm8k.csv --cascade 1.0 --verifier-error 0.1 --chart f.html
  routekit research frontier evals/math/scores.parquet --threshold-column input_tokens

quality = mean score over the prompts answered by every model; cost = mean cost per request; the frontier is
RouterBench's non-decreasing convex hull of the evaluated policies, AIQ its mean over the cost range
(formulas in toolkit/research/replay.py).
"""

TRAIN_EXAMPLES = """examples:
  routekit research train data/outcomes/routellm-gsm8k.csv --router linear
  routekit research train data/outcomes/routellm-gsm8k.csv --router mf --features embed --json
  routekit research train data/outcomes/routerarena.csv --router multi --max-cost-per-request 0.00005
  routekit research train data/outcomes/routellm-gsm8k.csv --router knn --target-strong-share 0.3 \\
      --emit-policy policies/gsm8k.yaml
  routekit policy check policies/gsm8k.yaml
  routekit research frontier data/outcomes/routellm-gsm8k.csv --policy policies/gsm8k.yaml \\
      --only-prompts policies/gsm8k.heldout.txt

routers: linear (ridge regression), knn (25 nearest prompts, cosine) and mf (RouteLLM's matrix factorisation)
predict which of a strong/weak pair does better on a prompt - the strong model when the predicted gain is over a
threshold, swept for APGR / CPT; multi predicts every model's score and picks score - lambda x cost, swept over
lambda for AIQ.  Features: tfidf (word 1-2-grams) or embed (WordLlama vectors shipped in its wheel; cached per
table under $ROUTEKIT_CACHE_DIR or ~/.cache/routekit).  Nothing is downloaded.  Every figure comes from k-fold
cross-validation split by prompt, with 95% bootstrap intervals, beside the random router, the best single model,
the per-intent lookup table and the oracle; a table with several intents also gets leave-one-domain-out figures.
--emit-policy needs an operating point: --target-strong-share (default 0.5 for a pair) or --max-cost-per-request
(default for multi: the best single model's cost).  Needs the optional extra: pip install 'routekit[research]'.
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
    f.add_argument("--verifier-error", type=share, default=0.0, help="the cascade verifier's error rate")
    f.add_argument("--threshold-column", help="add a threshold-router sweep on this per-prompt numeric column")
    f.add_argument("--strong", help="strong model of the threshold router (default: best quality)")
    f.add_argument("--weak", help="weak model of the threshold router (default: cheapest)")
    f.add_argument("--policy", help="replay this routekit policy (routes by intent; a route's router: block runs "
                                    "on the prompt text) and add its point")
    f.add_argument("--prompts", metavar="FILE", help="prompt texts for a policy's trained router (default: a "
                                                     "'prompt' column, or <table stem>.prompts.jsonl)")
    f.add_argument("--only-prompts", metavar="FILE",
                   help="evaluate on these prompt ids only (one per line; --emit-policy writes its held-out ones)")
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
    pr.add_argument("--bins", type=whole, default=10, help="threshold quantile bins (RouteLLM: 10)")
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=pair)

    t = ps.add_parser("train", help="train a router on an outcome table, cross-validated, and emit a policy",
                      description="Train a router on your own outcome table (prompt_id, model, score, cost_usd and "
                                  "the prompt text) and see, with intervals, whether it beats the simple baselines.",
                      epilog=TRAIN_EXAMPLES, formatter_class=fmt)
    t.add_argument("outcomes", help="outcome table: CSV, JSONL or Parquet")
    t.add_argument("--prompts", metavar="FILE", help="prompt texts, JSON Lines with prompt_id and text (default: a "
                                                     "'prompt' column, or <table stem>.prompts.jsonl beside it)")
    t.add_argument("--router", choices=["linear", "knn", "mf", "multi"], default="linear")
    t.add_argument("--features", choices=["tfidf", "embed"], default="tfidf")
    t.add_argument("--cv", type=int, default=5, help="folds of the cross-validation by prompt (default 5)")
    t.add_argument("--strong", help="strong model of the pair (default: the best-quality model)")
    t.add_argument("--weak", help="weak model of the pair (default: the cheapest other model)")
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--target-strong-share", type=float, metavar="S",
                        help="calibrate the operating point to send this share of requests to the strong model")
    budget.add_argument("--max-cost-per-request", type=float, metavar="USD",
                        help="calibrate the operating point to the best quality at this mean cost per request")
    t.add_argument("--emit-policy", metavar="FILE",
                   help="write the result as a routekit policy (a route table, or a router: block and its model "
                        "file when the learned router beats the lookup table on held-out prompts)")
    t.add_argument("--bootstrap", type=whole, default=1000, help="bootstrap resamples for the intervals (default 1000)")
    t.add_argument("--no-lodo", action="store_true", help="skip the leave-one-domain-out split")
    t.add_argument("--cache-dir", metavar="DIR", help="where embedding features are cached (default: "
                                                      "$ROUTEKIT_CACHE_DIR or ~/.cache/routekit)")
    t.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--json", action="store_true", help="print the JSON document")
    t.set_defaults(func=train)

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
    i.add_argument("--prompts", metavar="FILE",
                   help="write the prompt texts here (JSON Lines: prompt_id, text) instead of a 'prompt' column; "
                        "name it <out stem>.prompts.jsonl and 'research train' finds it by itself")
    i.set_defaults(func=import_)


def _load(path: str):
    from ..research import load_outcomes

    return load_outcomes(path)


def _pair_models(o, strong: str | None, weak: str | None) -> tuple[str, str]:
    from ..research.evaluate import default_pair

    return default_pair(o, strong, weak)


def frontier(args: argparse.Namespace) -> int:
    from ..policy import PolicyError
    from ..research import (OutcomeTableError, cascade, frontier_report, threshold_curve)
    from ..research.features import MissingExtra

    replayed = None
    try:
        o = _load(args.outcomes)
        if args.only_prompts:
            from ..research.policy_replay import only_prompts

            o = only_prompts(o, args.only_prompts)
        policies = [cascade(o, threshold=t, error_rate=args.verifier_error, seed=args.seed)
                    for t in dict.fromkeys(args.cascade or [])]   # a threshold given twice is one policy
        if args.threshold_column:
            strong, weak = _pair_models(o, args.strong, args.weak)
            policies += threshold_curve(o, o.per_prompt(args.threshold_column), strong, weak,
                                        name=f"threshold[{args.threshold_column}]")
        if args.policy:
            replayed = _replay(o, args)
            policies.append(replayed)
    except (OutcomeTableError, PolicyError, MissingExtra) as e:
        print(f"routekit research frontier: {e}", file=sys.stderr)
        return 2
    report = frontier_report(o, policies)
    if args.chart:
        from ..charts import frontier_chart

        frontier_chart(report, title=args.outcomes).save(args.chart)
    if args.json:
        doc = {k: report[k] for k in ("models", "policies", "oracle", "frontier", "aiq", "prompts")}
        if replayed is not None:
            doc["policy"] = {"policy": args.policy, "quality": replayed.quality,
                             "cost_per_request_usd": replayed.cost_per_request_usd, "share": replayed.share}
        print(json.dumps(doc, indent=2))
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


def _replay(o, args: argparse.Namespace):
    from ..policy import load_policy
    from ..research.features import read_prompts
    from ..research.policy_replay import replay_policy

    texts = None
    if any(r.router is not None for r in load_policy(args.policy).routes.values()):
        texts = read_prompts(args.outcomes, o.prompt_ids, args.prompts)
    return replay_policy(o, args.policy, texts)


def train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..policy import PolicyError
    from ..research import OutcomeTableError
    from ..research.calibrate import Target
    from ..research.evaluate import Setup, SetupError, default_pair
    from ..research.features import MissingExtra, extra_missing, read_prompts

    missing = extra_missing(args.features)
    if missing:
        print(f"routekit research train: {missing}", file=sys.stderr)
        return 2
    try:
        from ..research.evaluate import train as run

        o = _load(args.outcomes)
        texts = read_prompts(args.outcomes, o.prompt_ids, args.prompts)
        setup = Setup(router=args.router, features=args.features, cv=args.cv, seed=args.seed, strong=args.strong,
                      weak=args.weak, bootstrap=args.bootstrap, lodo=not args.no_lodo)
        target = None
        if args.target_strong_share is not None or args.max_cost_per_request is not None:
            try:
                target = Target(args.target_strong_share, args.max_cost_per_request)
            except ValueError as e:
                raise SetupError(str(e)) from None
        elif args.emit_policy:   # the documented default operating point
            if args.router == "multi":
                best = default_pair(o, args.strong, args.weak)[0] if len(o.models) > 1 else o.models[0]
                target = Target(max_cost_per_request=float(o.cost[:, o.col(best)].mean()))
            else:
                target = Target(strong_share=0.5)
        cache = False if args.no_cache else (Path(args.cache_dir) if args.cache_dir else True)
        trained = run(o, texts, setup, target=target, source=args.outcomes, cache=cache, progress=not args.json)
        report = {k: v for k, v in trained.report.items() if k != "points"}
        if args.emit_policy:
            from ..research.emit import emit_policy

            report["policy"] = emit_policy(trained, args.emit_policy, table=args.outcomes,
                                           command="routekit " + " ".join(sys.argv[1:]))
    except (OutcomeTableError, SetupError, MissingExtra, PolicyError) as e:
        print(f"routekit research train: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    from ..research.report import train_text

    print(train_text(report, args.outcomes))
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

    from ..research import DATASETS, OutcomeTableError

    try:
        table = DATASETS[args.kind](args.src)
    except (OSError, OutcomeTableError) as e:
        print(f"routekit research import: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.prompts:
        import polars as pl

        texts = table.select("prompt_id", pl.col("prompt").alias("text")).unique("prompt_id", keep="first",
                                                                                 maintain_order=True)
        Path(args.prompts).parent.mkdir(parents=True, exist_ok=True)
        texts.write_ndjson(args.prompts)
        table = table.drop("prompt")
        print(f"{len(texts)} prompt texts -> {args.prompts}")
    {".parquet": table.write_parquet, ".jsonl": table.write_ndjson}.get(out.suffix, table.write_csv)(out)
    print(f"{len(table)} rows ({table['prompt_id'].n_unique()} prompts x {table['model'].n_unique()} models) -> {out}")
    return 0
