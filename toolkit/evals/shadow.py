"""Shadow comparisons: candidate vs production from a route log's shadow records, with a verdict.

:func:`compare_shadow` pairs each shadow record with its production record (``shadow_of``) and
measures, per intent and (production, candidate) pair: agreement (same ``output_hash``), or a win
rate when scores are given (a score table, or the pairwise judge); a failed shadow call counts as
a disagreement / loss.  Confidence intervals: seeded percentile bootstrap (95%).  The verdict rule:

* fewer than ``min_pairs`` pairs                                       -> **not enough data**
* metric CI upper bound below the bar                                  -> **do not switch**
* CI lower bound below the bar (the interval straddles it)             -> **not enough data**
* CI at or above the bar but a cost unknown (unpriced)                 -> **not enough data**
* CI lower bound at or above the bar: candidate not dearer             -> **switch**;
  dearer but better (win-rate CI lower bound above 0.5)                -> **switch**; otherwise
  (as good, dearer)                                                    -> **do not switch**

The bar is ``min_agreement`` (0.9) for agreement, ``0.5 - margin`` (0.45) for a win rate (ties count
half): "not worse than production by more than the margin".
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .judge import LLMJudge


def bootstrap_ci(values: Any, *, seed: int = 0, n_boot: int = 2000, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (seeded: the same data gives the same interval)."""
    import numpy as np

    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


@dataclass(frozen=True)
class ShadowComparison:
    intent: str
    production: str
    candidate: str
    pairs: int
    candidate_failures: int
    metric: str                       # "agreement" or "win_rate"
    value: float
    ci_low: float
    ci_high: float
    agreement: float
    production_cost_usd: float | None  # mean per request
    candidate_cost_usd: float | None
    cost_delta_pct: float | None
    production_p50_ms: float
    candidate_p50_ms: float
    latency_delta_ms: float
    verdict: str
    reason: str
    unjudged: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def compare_shadow(log_dir: str | os.PathLike, *, intent: str | None = None, scores: Any = None,
                   judge: LLMJudge | None = None, seed: int = 0, n_boot: int = 2000, min_pairs: int = 30,
                   margin: float = 0.05, min_agreement: float = 0.9) -> list[ShadowComparison]:
    """Candidate vs production from the shadow records of a route log (rule in the module docstring).

    ``scores``: a table with ``score`` and either ``request_id`` (one score per logged request) or
    ``prompt_hash`` + ``model`` (a baseline on the same prompts).  ``judge``: pairwise judgement of the
    stored answers (routes with ``store_prompts``)."""
    import polars as pl

    from ..routelog import require_log, scan_log

    frame = scan_log(require_log(log_dir)).frame
    keep = ["request_id", "intent", "outcome", "served_alias", "requested_alias", "output_hash", "cost_usd",
            "latency_ms", "prompt_hash", "prompt", "output", "shadow_of"]
    frame = frame.select(keep).collect()
    shadows = frame.filter(pl.col("shadow_of").is_not_null())
    prod = frame.filter(pl.col("shadow_of").is_null())
    pairs = shadows.join(prod, left_on="shadow_of", right_on="request_id", suffix="_prod", how="inner")
    if intent is not None:
        pairs = pairs.filter(pl.col("intent_prod") == intent)
    pairs = pairs.with_columns(candidate=pl.col("requested_alias"), production=pl.col("served_alias_prod"),
                               ok=pl.col("outcome") == "served")
    wins = _pair_scores(pairs, scores, judge, seed)
    out = []
    for key, group in sorted(pairs.with_columns(wins).group_by("intent_prod", "production", "candidate"),
                             key=lambda kv: tuple(str(k) for k in kv[0])):
        out.append(_compare_group(key, group, seed, n_boot, min_pairs, margin, min_agreement))
    return out


def _pair_scores(pairs: Any, scores: Any, judge: LLMJudge | None, seed: int) -> list:
    """Columns ``win`` (1 candidate better, 0.5 tie, 0 worse; null: unknown) for each pair."""
    import random

    import polars as pl

    if scores is None and judge is None:
        return [pl.lit(None, dtype=pl.Float64).alias("win")]
    if judge is not None:
        rng = random.Random(seed)
        wins = []
        for r in pairs.iter_rows(named=True):
            if not r["ok"]:
                wins.append(0.0)
                continue
            if not (r["prompt_prod"] and r["output_prod"] and r["output"]):
                wins.append(None)  # the route does not store prompts: nothing to show the judge
                continue
            question = "\n".join(str(m.get("content", "")) for m in json.loads(r["prompt_prod"]))
            flip = rng.random() < 0.5  # random order: no position bias
            a, b = (r["output"], r["output_prod"]) if flip else (r["output_prod"], r["output"])
            winner, _ = judge.compare(question, a, b)
            cand = "a" if flip else "b"
            wins.append(None if winner is None else 0.5 if winner == "tie" else float(winner == cand))
        return [pl.Series("win", wins, dtype=pl.Float64)]
    table = scores if not isinstance(scores, (str, Path)) else _read_table(scores)
    if "request_id" in table.columns:
        s = table.select("request_id", pl.col("score").cast(pl.Float64))
        joined = (pairs.select("request_id", "shadow_of", "ok")
                  .join(s.rename({"score": "s_cand"}), on="request_id", how="left")
                  .join(s.rename({"request_id": "shadow_of", "score": "s_prod"}), on="shadow_of", how="left"))
    else:
        s = table.select("prompt_hash", "model", pl.col("score").cast(pl.Float64)).unique(["prompt_hash", "model"])
        joined = (pairs.select("prompt_hash", "candidate", "production", "ok")
                  .join(s.rename({"model": "candidate", "score": "s_cand"}), on=["prompt_hash", "candidate"],
                        how="left")
                  .join(s.rename({"model": "production", "score": "s_prod"}), on=["prompt_hash", "production"],
                        how="left"))
    win = (pl.when(~pl.col("ok")).then(0.0)
           .when(pl.col("s_cand").is_null() | pl.col("s_prod").is_null()).then(None)
           .when(pl.col("s_cand") > pl.col("s_prod")).then(1.0)
           .when(pl.col("s_cand") == pl.col("s_prod")).then(0.5).otherwise(0.0))
    return [joined.select(win.alias("win")).to_series()]


def _compare_group(key: tuple, g: Any, seed: int, n_boot: int, min_pairs: int, margin: float,
                   min_agreement: float) -> ShadowComparison:
    import polars as pl

    intent, production, candidate = key
    agree = (g["ok"] & (g["output_hash"] == g["output_hash_prod"]).fill_null(False)).cast(pl.Float64)
    wins = g["win"].drop_nulls()
    use_wins = len(wins) > 0
    values = wins if use_wins else agree
    lo, hi = bootstrap_ci(values.to_numpy(), seed=seed, n_boot=n_boot)
    served = g.filter(pl.col("ok"))
    cost_p = _mean_priced(g["cost_usd_prod"])
    cost_c = _mean_priced(served["cost_usd"])
    delta_pct = None if cost_p is None or cost_c is None or cost_p == 0 else (cost_c - cost_p) / cost_p * 100
    if cost_p == 0 and cost_c is not None:
        delta_pct = 0.0 if cost_c == 0 else math.inf
    p50_p = float(g["latency_ms_prod"].median())
    p50_c = float(served["latency_ms"].median()) if len(served) else math.nan
    bar = (0.5 - margin) if use_wins else min_agreement
    verdict, reason = _verdict(len(values), min_pairs, lo, hi, bar, delta_pct, use_wins)
    return ShadowComparison(
        intent=intent, production=production, candidate=candidate, pairs=len(g),
        candidate_failures=int((~g["ok"]).sum()), metric="win_rate" if use_wins else "agreement",
        value=float(values.mean()) if len(values) else math.nan, ci_low=lo, ci_high=hi,
        agreement=float(agree.mean()), production_cost_usd=cost_p, candidate_cost_usd=cost_c,
        cost_delta_pct=delta_pct, production_p50_ms=p50_p, candidate_p50_ms=p50_c, latency_delta_ms=p50_c - p50_p,
        verdict=verdict, reason=reason, unjudged=len(g) - len(wins) if use_wins else 0)


def _mean_priced(costs: Any) -> float | None:
    return None if costs.null_count() or not len(costs) else float(costs.mean())


def _verdict(n: int, min_pairs: int, lo: float, hi: float, bar: float, cost_delta_pct: float | None,
             win_rate: bool) -> tuple[str, str]:
    what = "win rate" if win_rate else "agreement"
    if n < min_pairs:
        return "not enough data", f"{n} scored pairs < {min_pairs}"
    ci = f"{what} 95% CI [{lo:.2f}, {hi:.2f}]"
    if hi < bar:
        return "do not switch", f"{ci} is below {bar:.2f}"
    if lo < bar:
        return "not enough data", f"{ci} straddles {bar:.2f}"
    if cost_delta_pct is None:
        return "not enough data", f"{ci} is fine but the cost is unknown (an unpriced model)"
    if cost_delta_pct <= 0:
        return "switch", f"{ci} >= {bar:.2f} and cost {cost_delta_pct:+.0f}%"
    if win_rate and lo > 0.5:
        return "switch", f"better: {ci} > 0.50, at cost {cost_delta_pct:+.0f}%"
    return "do not switch", f"as good ({ci}) but cost {cost_delta_pct:+.0f}%"


def _read_table(path: str | os.PathLike) -> Any:
    from ..research import read_table

    return read_table(path)
