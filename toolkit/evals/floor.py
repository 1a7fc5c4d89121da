"""The quality floor from measured scores: each route's lowest tier whose candidates all reach a mean score."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .score_table import effective_score


@dataclass(frozen=True)
class FloorSuggestion:
    intent: str
    current_min_tier: int
    suggested_min_tier: int | None   # None: no tier of the chain meets min_score
    measured: dict[str, dict]         # alias -> {"score", "n", "tier", "in_chain"}
    min_score: float

    def describe(self) -> str:
        change = ("no tier of the route meets the score" if self.suggested_min_tier is None else
                  "keep" if self.suggested_min_tier == self.current_min_tier else
                  f"change to {self.suggested_min_tier}")
        return f"routes.{self.intent}.min_tier: {self.current_min_tier} -> {change}"


def suggest_floor(scores: Any, policy: Any, min_score: float = 0.8) -> list[FloorSuggestion]:
    """For each routed intent, the lowest tier t such that every measured candidate of the route at tier
    >= t scores at least ``min_score`` on average (errors count as 0)."""
    import polars as pl

    from ..policy import Policy, load_policy

    policy = policy if isinstance(policy, Policy) else load_policy(policy)
    scored = (scores.filter(pl.col("model").is_in(list(policy.models)))
              .with_columns(score=effective_score()).drop_nulls("score")
              .group_by("intent", "model").agg(pl.col("score").mean().alias("score"), pl.len().alias("n")))
    out = []
    for intent in sorted(set(scored["intent"].to_list()) & set(policy.routes)):
        route, chain = policy.routes[intent], policy.chain(intent)
        measured = {r["model"]: {"score": round(r["score"], 4), "n": r["n"], "tier": policy.models[r["model"]].tier,
                                 "in_chain": r["model"] in chain}
                    for r in scored.filter(pl.col("intent") == intent).sort("model").iter_rows(named=True)}
        in_chain = {a: m for a, m in measured.items() if m["in_chain"]}
        suggested = None
        for t in sorted({m["tier"] for m in in_chain.values()}):
            if all(m["score"] >= min_score for m in in_chain.values() if m["tier"] >= t):
                suggested = t
                break
        out.append(FloorSuggestion(intent, route.min_tier, suggested, measured, min_score))
    return out


def baselines_yaml(suggestions: list[FloorSuggestion], source: str = "") -> str:
    """A ``baselines:`` block: measured score per intent and candidate, for a measured-score floor."""
    import yaml

    block = {"baselines": {s.intent: {"min_score": s.min_score, "suggested_min_tier": s.suggested_min_tier,
                                      "scores": {a: {"score": m["score"], "n": m["n"]} for a, m in s.measured.items()}}
                           for s in suggestions}}
    head = f"# measured by `routekit eval baseline`{f' ({source})' if source else ''}\n"
    return head + yaml.safe_dump(block, sort_keys=False)
