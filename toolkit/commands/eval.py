"""routekit eval baseline | floor | shadow"""
from __future__ import annotations

import argparse
import json
import sys

from ..resources import find
from .common import share, whole

ORDER = 40

BASELINE_EXAMPLES = """examples:
  routekit eval baseline --policy data/policy.demo.yaml --prompts data/prompts/triage.jsonl \\
      --models fast-openai,fast-google,mid-anthropic --out evals/triage
  routekit eval baseline --policy data/policy.demo.yaml --prompts data/prompts/gsm8k.jsonl \\
      --models strong-openai,local --concurrency 2 --out evals/math     # Ctrl-C, then run again: it resumes

Each (prompt, model) call is scored and appended to OUT/scores.jsonl as soon as it ends; a new run sends only
what is missing, so no prompt is paid twice. Tables: OUT/scores.parquet, OUT/scores.csv, OUT/summary.csv.
Prompt-set format and scorers: see toolkit/evals/__init__.py.
"""

FLOOR_EXAMPLES = """examples:
  routekit eval floor --scores evals/triage --policy data/policy.demo.yaml --min-score 0.8
  routekit eval floor --scores evals/triage/scores.parquet --policy data/policy.demo.yaml --yaml
"""

SHADOW_EXAMPLES = """examples:
  routekit eval shadow --log routelog
  routekit eval shadow --log routelog --intent triage --json
  routekit eval shadow --log routelog --scores evals/triage/scores.parquet        # win rate from scores
  routekit eval shadow --log routelog --judge --policy data/policy.demo.yaml      # routes with store_prompts

verdict rule: fewer than --min-pairs pairs -> "not enough data"; 95% bootstrap CI of the metric (agreement,
or win rate with ties as half; a failed candidate call counts as a loss) entirely below the bar -> "do not
switch"; straddling it (or a cost unknown) -> "not enough data"; at or above it -> "switch" when the
candidate is not dearer (or, dearer, clearly better: win-rate CI above 0.5), else "do not switch".
Bar: --min-agreement, or 0.5 - --margin for a win rate.
"""


def register(sub: argparse._SubParsersAction) -> None:
    from .common import add_log_arg, add_policy_arg

    p = sub.add_parser("eval", help="measure models on prompt sets: baselines, quality floors, shadow comparisons")
    ps = p.add_subparsers(dest="eval_command", metavar="ACTION", required=True)
    fmt = argparse.RawDescriptionHelpFormatter

    b = ps.add_parser("baseline", help="run every prompt on every model; resumable, no prompt paid twice",
                      description="Send every prompt of the prompt set(s) to every listed model alias alone (no "
                                  "fallback; the policy's privacy boundaries still apply), score each answer, and "
                                  "write a score table and a summary per model x intent. Each call also leaves "
                                  "a route-log record (team 'eval').", epilog=BASELINE_EXAMPLES, formatter_class=fmt)
    add_policy_arg(b)
    b.add_argument("--prompts", required=True, action="append", metavar="FILE", type=find,
                   help="prompt set (JSONL); repeat for several")
    b.add_argument("--models", required=True, help="comma-separated model aliases of the policy")
    b.add_argument("--out", default="evals/baseline", help="output directory (default evals/baseline)")
    b.add_argument("--concurrency", type=whole, default=4, help="calls in flight at once (default 4)")
    add_log_arg(b)
    b.add_argument("--judge-intent", default="review", help="intent that routes LLM-judge calls (default review)")
    b.add_argument("--retry-errors", action="store_true", help="call again the (prompt, model) pairs that failed")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(func=baseline)

    f = ps.add_parser("floor", help="suggest each route's min_tier (and a baselines: block) from measured scores",
                      description="Read a baseline's scores and, for each routed intent, find the lowest tier at "
                                  "which every measured candidate of the route reaches --min-score (errors count "
                                  "as 0).", epilog=FLOOR_EXAMPLES, formatter_class=fmt)
    f.add_argument("--scores", "--outcomes", dest="scores", required=True, metavar="PATH",
                   help="a baseline output directory or its score table (--outcomes: the old spelling)")
    add_policy_arg(f)
    f.add_argument("--min-score", type=float, default=0.8, help="quality floor as a mean score (default 0.8)")
    f.add_argument("--yaml", action="store_true", help="print only the baselines: YAML block")
    f.set_defaults(func=floor)

    s = ps.add_parser("shadow", help="compare shadow candidates with production from the route log",
                      description="Pair every shadow record with its production request (shadow_of) and report, "
                                  "per intent and (production, candidate): agreement or win rate with a seeded "
                                  "bootstrap 95% CI, cost and latency deltas, and a verdict.",
                      epilog=SHADOW_EXAMPLES, formatter_class=fmt)
    add_log_arg(s)
    s.add_argument("--intent", help="only this intent")
    s.add_argument("--scores", "--outcomes", dest="scores", metavar="PATH",
                   help="a table with request_id+score, or prompt_hash+model+score (--outcomes: the old spelling)")
    s.add_argument("--judge", action="store_true", help="ask an LLM judge (routed through --policy) which answer "
                                                         "is better; needs routes that store prompts")
    add_policy_arg(s)
    s.add_argument("--judge-intent", default="review")
    s.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    s.add_argument("--min-pairs", type=whole, default=30, help="fewer pairs: 'not enough data' (default 30)")
    s.add_argument("--margin", type=share, default=0.05, help="win-rate non-inferiority margin (default 0.05)")
    s.add_argument("--min-agreement", type=share, default=0.9, help="agreement bar (default 0.9)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=shadow)


def _table(df) -> str:
    import polars as pl

    with pl.Config(tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=48, tbl_hide_dataframe_shape=True,
                   tbl_hide_column_data_types=True, float_precision=4, tbl_width_chars=200):
        return str(df)


def baseline(args: argparse.Namespace) -> int:
    from ..evals import PromptSetError, load_prompts, run_baseline
    from ..policy import PolicyError

    try:
        prompts = load_prompts(args.prompts)
        run = run_baseline(args.policy, prompts, [m.strip() for m in args.models.split(",") if m.strip()], args.out,
                           concurrency=args.concurrency, log=args.log, judge_intent=args.judge_intent,
                           retry_errors=args.retry_errors, progress=not args.no_progress)
    except PromptSetError as e:
        print(f"bad prompt set ({len(e.problems)} problem(s)):\n{e}", file=sys.stderr)
        return 2
    except PolicyError as e:
        print(f"bad policy:\n{e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"routekit eval baseline: {e}", file=sys.stderr)
        return 2
    for w in run.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if run.interrupted:
        print(f"interrupted: {run.called} calls made and recorded in {run.out_dir}/scores.jsonl; "
              f"run the same command again to resume", file=sys.stderr)
        return 130
    print(_table(run.summary))
    print(f"\n{run.called} calls made, {run.reused} scored answers reused from an earlier run; "
          f"tables in {run.out_dir}/ (scores.parquet, scores.csv, summary.csv)")
    return 0


def _scores_table(path: str):
    from pathlib import Path

    from ..research import read_table

    p = Path(path)
    if p.is_dir():
        from ..evals import SCORE_TABLE_FILES, ScoreStore, scores_frame

        for name in SCORE_TABLE_FILES:
            if (p / name).exists():
                return read_table(p / name)
        return scores_frame(list(ScoreStore(p).load().values()))
    return read_table(p)


def floor(args: argparse.Namespace) -> int:
    from ..evals import baselines_yaml, suggest_floor
    from ..policy import PolicyError
    from ..research import OutcomeTableError

    try:
        table = _scores_table(args.scores)
        suggestions = suggest_floor(table, args.policy, args.min_score)
    except (PolicyError, OutcomeTableError) as e:
        print(f"routekit eval floor: {e}", file=sys.stderr)
        return 2
    if not suggestions:
        print("no measured intent is a route of the policy", file=sys.stderr)
        return 1
    block = baselines_yaml(suggestions, source=args.scores)
    if args.yaml:
        print(block, end="")
        return 0
    for s in suggestions:
        print(s.describe())
        for alias, m in s.measured.items():
            mark = "" if m["in_chain"] else "  (not in the route)"
            ok = "meets" if m["score"] >= s.min_score else "BELOW"
            print(f"    {alias:<18} tier {m['tier']}  score {m['score']:.3f} (n={m['n']})  {ok} {s.min_score}{mark}")
    print("\n# a measured-score floor needs policy/router support for this block (see toolkit/evals/floor.py):")
    print(block, end="")
    return 0


def shadow(args: argparse.Namespace) -> int:
    from ..evals import LLMJudge, compare_shadow
    from ..research import OutcomeTableError

    judge = None
    if args.judge:
        from ..router import Router

        judge = LLMJudge(Router(args.policy, log=args.log), args.judge_intent)
    try:
        scores = _scores_table(args.scores) if args.scores else None
        rows = compare_shadow(args.log, intent=args.intent, scores=scores, judge=judge, seed=args.seed,
                              min_pairs=args.min_pairs, margin=args.margin, min_agreement=args.min_agreement)
    except OutcomeTableError as e:
        print(f"routekit eval shadow: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2, default=str))
        return 0
    if not rows:
        print(f"no shadow records in {args.log}" + (f" for intent {args.intent!r}" if args.intent else ""))
        return 0
    for r in rows:
        cost = "unknown" if r.cost_delta_pct is None else f"{r.cost_delta_pct:+.1f}%"
        print(f"{r.intent}: {r.production} -> candidate {r.candidate}: {r.verdict.upper()} ({r.reason})\n"
              f"    {r.pairs} pairs, {r.candidate_failures} candidate failures; {r.metric} {r.value:.3f} "
              f"[{r.ci_low:.3f}, {r.ci_high:.3f}]; agreement {r.agreement:.3f}; cost/request {cost}; "
              f"p50 latency {r.latency_delta_ms:+.0f} ms")
    return 0
