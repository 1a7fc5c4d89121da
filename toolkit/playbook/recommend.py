"""Recommend a model (and tier) for a task class from measured scores, and say why.

Input: a long outcome table — one row per (prompt, model): ``prompt_id``, ``model``, ``score``, ``cost_usd``,
optional ``latency_ms`` and ``intent`` — as ``routekit eval baseline`` writes it (read from a quality directory by
:mod:`.measurements`) or any table in that shape (toolkit/research/replay.py validates it).  Rows of the asked
intent are kept when the table has an ``intent`` column; every model is compared on the prompts answered by
every model; a failed call scores 0, a call never made (a boundary refusal) is no measurement.

The rule: the **cheapest** model whose **95% lower confidence bound** of the mean score is at or above the bar
(and whose p95 latency is within ``max_p95_ms`` when given).  Intervals: the Wilson score interval when every
score is 0 or 1, else a seeded percentile bootstrap of the mean (2,000 resamples); the answer says which.  The
bar: ``min_score`` if given, else the route's ``baselines.min_score`` in the policy, else the best model's mean
score minus 0.05.  The proposed route block: that model first, then the other models that clear the bar by score
(then cost), ``min_tier`` the lowest policy tier among them (when the models are policy aliases).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import BadInput

Z95 = 1.959963984540054
MARGIN = 0.05               # default bar: the best mean score minus this
REQUESTS_PER_DAY = 10_000   # the volume the "per month" cost is quoted at
DAYS_PER_MONTH = 30


@dataclass(frozen=True)
class Candidate:
    model: str
    score: float
    ci_low: float
    ci_high: float
    n: int
    cost_per_request_usd: float
    p95_ms: float | None
    meets_bar: bool
    tier: int | None = None
    misses: str | None = None        # why it does not meet the bar

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "score": round(self.score, 6), "ci_low": round(self.ci_low, 6),
                "ci_high": round(self.ci_high, 6), "n": self.n,
                "cost_per_request_usd": round(self.cost_per_request_usd, 9),
                "p95_ms": None if self.p95_ms is None else round(self.p95_ms, 1), "meets_bar": self.meets_bar}


@dataclass(frozen=True)
class Recommendation:
    intent: str
    bar: float
    bar_source: str
    method: str                       # "wilson" | "bootstrap"
    recommended: str | None
    why: str
    route: dict[str, Any] | None
    candidates: tuple[Candidate, ...]  # cheapest first
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"intent": self.intent, "bar": round(self.bar, 6), "recommended": self.recommended, "why": self.why,
                "route": self.route, "candidates": [c.to_dict() for c in self.candidates]}

    def render(self) -> str:
        import textwrap

        w = max(len("model"), *(len(c.model) for c in self.candidates)) + 2
        lines = [f"recommend for {self.intent} (bar {self.bar:.3f}; {self.source})", "",
                 f"  {'model':<{w}}{'score':>6}  {'95% interval':<16}{'n':>6}{'$/request':>12}{'p95 ms':>9}  verdict"]
        for c in self.candidates:
            p95 = "-" if c.p95_ms is None else f"{c.p95_ms:,.0f}"
            verdict = ("RECOMMENDED" if c.model == self.recommended else "clears the bar" if c.meets_bar else c.misses)
            lines.append(f"  {c.model:<{w}}{c.score:>6.3f}  [{c.ci_low:.3f}, {c.ci_high:.3f}]  {c.n:>6}"
                         f"{c.cost_per_request_usd:>12.6f}{p95:>9}  {verdict}")
        lines += ["", *textwrap.wrap(self.why, 110)]
        if self.route:
            route = self.route
            lines += ["", "proposed route:",
                      f"  {self.intent}: {{primary: {route['primary']}, fallbacks: [{', '.join(route['fallbacks'])}]"
                      + (f", min_tier: {route['min_tier']}" if route["min_tier"] is not None else "") + "}"]
        return "\n".join(lines)

    def frame(self) -> Any:
        import polars as pl

        return pl.DataFrame([{**c.to_dict(), "misses": c.misses} for c in self.candidates], infer_schema_length=None)


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def intent_rows(table: Any, intent: str, source: str) -> Any:
    """The rows of ``intent`` (all rows when the table has no intent column); measurements only."""
    import polars as pl

    if "intent" in table.columns:
        intents = sorted(x for x in table["intent"].cast(pl.String).unique().to_list() if x is not None)
        if intent not in intents:
            raise BadInput(f"{source}: no measurements for intent {intent!r} (intents: {', '.join(intents) or 'none'})")
        table = table.filter(pl.col("intent").cast(pl.String) == intent)
    if "score" in table.columns:   # an answer that could not be scored is not a measurement
        unscored = pl.col("score").is_null()
        table = table.filter(~(unscored & pl.col("error").is_null()) if "error" in table.columns else ~unscored)
    return table


def recommend(table: Any, intent: str, *, policy: Any = None, min_score: float | None = None,
              max_p95_ms: float | None = None, source: str = "outcome table", seed: int = 0) -> Recommendation:
    """The recommendation for ``intent`` from a long outcome table (module docstring)."""
    import numpy as np

    from ..evals import bootstrap_ci
    from ..research.replay import load_outcomes

    keep = [c for c in ("prompt_id", "model", "score", "cost_usd", "latency_ms", "intent", "error", "attempts")
            if c in table.columns]
    o = load_outcomes(intent_rows(table, intent, source).select(keep), source)
    binary = bool(np.isin(o.score, (0.0, 1.0)).all())
    method = "wilson" if binary else "bootstrap"
    latency = o.columns.get("latency_ms")
    models = policy.models if policy is not None else {}
    stats = []
    for j, model in enumerate(o.models):
        s = o.score[:, j]
        lo, hi = wilson(float(s.sum()), len(s)) if binary else bootstrap_ci(s, seed=seed)
        lat = latency[:, j] if latency is not None else None
        p95 = float(np.nanpercentile(lat, 95)) if lat is not None and np.isfinite(lat).any() else None
        stats.append((model, float(s.mean()), lo, hi, len(s), float(o.cost[:, j].mean()), p95))
    baseline = policy.baselines.get(intent) if policy is not None else None
    if min_score is not None:
        bar, bar_source = min_score, "--min-score"
    elif baseline is not None:
        bar, bar_source = baseline.min_score, f"routes' baselines.{intent}.min_score in {policy.path}"
    else:
        best = max(stats, key=lambda x: x[1])
        bar, bar_source = best[1] - MARGIN, f"the best mean score ({best[0]}, {best[1]:.3f}) minus {MARGIN}"
    candidates = []
    for model, score, lo, hi, n, cost, p95 in sorted(stats, key=lambda x: (x[5], -x[1], x[0])):
        misses = None
        if lo < bar:
            misses = f"lower bound {lo:.3f} < bar {bar:.3f} (short by {bar - lo:.3f})"
        elif max_p95_ms is not None and (p95 is None or p95 > max_p95_ms):
            misses = (f"p95 unknown (no latency_ms), bound {max_p95_ms:,.0f} ms" if p95 is None else
                      f"p95 {p95:,.0f} ms > {max_p95_ms:,.0f} ms")
        tier = models[model].tier if model in models else None
        candidates.append(Candidate(model, score, lo, hi, n, cost, p95, misses is None, tier, misses))
    passing = [c for c in candidates if c.meets_bar]
    how = ("Wilson score interval: every score is 0 or 1" if binary else
           "seeded percentile bootstrap of the mean, 2,000 resamples")
    if not passing:
        best = max(candidates, key=lambda c: c.ci_low)
        why = (f"No measured model clears the bar of {bar:.3f} for {intent} ({bar_source}; 95% intervals: {how}). "
               f"The best lower bound is {best.model}'s {best.ci_low:.3f}"
               + (f", short by {bar - best.ci_low:.3f}" if best.ci_low < bar else f", but {best.misses}") + ".")
        return Recommendation(intent, bar, bar_source, method, None, why, None, tuple(candidates), o.source)
    rec = passing[0]
    fallbacks = sorted((c for c in passing if c is not rec), key=lambda c: (-c.score, c.cost_per_request_usd))
    chosen = [rec, *fallbacks]
    tiers = [c.tier for c in chosen]
    route = {"primary": rec.model, "fallbacks": [c.model for c in fallbacks],
             "min_tier": min(tiers) if tiers and None not in tiers else None}
    monthly = rec.cost_per_request_usd * REQUESTS_PER_DAY * DAYS_PER_MONTH
    cheaper = candidates[:candidates.index(rec)]   # cheapest first: every one before it misses the bar
    parts = [f"For {intent}, {rec.model} is the cheapest of {len(candidates)} measured models whose 95% lower bound "
             f"clears the bar of {bar:.3f} ({bar_source}; intervals: {how}): mean score {rec.score:.3f} "
             f"[{rec.ci_low:.3f}, {rec.ci_high:.3f}] over {rec.n} prompts, ${rec.cost_per_request_usd:.6f} per "
             f"request (${monthly:,.2f} a month at {REQUESTS_PER_DAY:,} requests/day)"
             + (f", p95 {rec.p95_ms:,.0f} ms." if rec.p95_ms is not None else ", p95 not measured.")]
    if cheaper:
        nxt = cheaper[-1]
        parts.append(f"The next cheaper model, {nxt.model} (${nxt.cost_per_request_usd:.6f} per request, score "
                     f"{nxt.score:.3f} [{nxt.ci_low:.3f}, {nxt.ci_high:.3f}]), misses: {nxt.misses}.")
    else:
        parts.append("No measured model is cheaper.")
    parts.append(f"Fallbacks that also clear the bar, by score: {', '.join(c.model for c in fallbacks)}." if fallbacks
                 else "No other model clears the bar, so the proposed route has no fallback.")
    return Recommendation(intent, bar, bar_source, method, rec.model, " ".join(parts), route, tuple(candidates),
                          o.source)
