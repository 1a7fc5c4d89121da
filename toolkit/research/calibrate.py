"""Calibrating a trained router to a budget, and measuring how far off the calibration lands on new prompts.

A target is ``--target-strong-share S`` (the operating point - a threshold, or a lambda - whose share of
requests to the strong model is closest to S) or ``--max-cost-per-request X`` (the best quality at a mean
cost per request <= X; the cheapest point when none is that cheap).  The point is chosen on each *training*
part of the k-fold split, from values cross-fitted inside that part (so neither the choice nor the values
behind it ever saw the held-out prompts), and applied to the held-out part; pooled over the held-out parts
this gives the share, cost and quality a user would get, and the error against the target (RouteLLM's
threshold calibration, which its users ask about, measured instead of assumed).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .replay import Outcomes, choice_point
from .routers import Rule


@dataclass(frozen=True)
class Target:
    strong_share: float | None = None
    max_cost_per_request: float | None = None

    def __post_init__(self) -> None:
        if (self.strong_share is None) == (self.max_cost_per_request is None):
            raise ValueError("give exactly one of a target strong share or a maximum cost per request")
        if self.strong_share is not None and not 0 <= self.strong_share <= 1:
            raise ValueError(f"target strong share {self.strong_share} is not in [0, 1]")
        if self.max_cost_per_request is not None and self.max_cost_per_request < 0:
            raise ValueError(f"maximum cost per request {self.max_cost_per_request} is negative")

    def describe(self) -> str:
        if self.strong_share is not None:
            return f"strong share {self.strong_share:g}"
        return f"cost per request <= ${self.max_cost_per_request:.6g}"

    def to_dict(self) -> dict:
        return {"strong_share": self.strong_share, "max_cost_per_request": self.max_cost_per_request}


def select(o: Outcomes, rule: Rule, values: Any, unit_cost: Any, target: Target, strong: str) -> float:
    """The operating point (threshold or lambda) meeting ``target`` on the prompts of ``o``."""
    best: tuple | None = None
    for param in rule.params(values):
        p = choice_point(o, "", rule.choose(values, unit_cost, param))
        if target.strong_share is not None:
            key = (abs(p.share.get(strong, 0.0) - target.strong_share), p.cost_per_request_usd)
        elif p.cost_per_request_usd <= target.max_cost_per_request:
            key = (0, -p.quality, p.cost_per_request_usd)
        else:
            key = (1, p.cost_per_request_usd, 0)
        if best is None or key < best[0]:
            best = (key, param)
    return best[1]


def reached(point: Any, target: Target, strong: str) -> dict:
    """What a held-out point reached against the target: share, cost, quality and the error."""
    share = point.share.get(strong, 0.0)
    out = {"strong_share": share, "cost_per_request_usd": point.cost_per_request_usd, "quality": point.quality}
    if target.strong_share is not None:
        out["error"] = share - target.strong_share
    else:
        out["error"] = point.cost_per_request_usd - target.max_cost_per_request
    return out
