"""Everything the readiness dashboard (notebooks/readiness.ipynb) shows, computed once: the checklist, the blast
radius of each provider as an intent x provider grid, the key inventory, and a recommendation for every intent
with measurements.  The notebook only displays these frames."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadInput
from ..policy import Policy
from .blast import BlastRadius, blast_radius, providers, removal
from .keys import KeyInventory, key_inventory
from .measurements import read_scores
from .readiness import Readiness, readiness
from .recommend import Recommendation, recommend
from .traffic import Traffic, load_traffic


@dataclass(frozen=True)
class Board:
    policy: Policy
    traffic: Traffic | None
    readiness: Readiness
    blasts: dict[str, BlastRadius]               # provider -> its blast radius
    keys: KeyInventory
    recommendations: dict[str, Recommendation]   # intent -> recommendation
    unmeasured: dict[str, str]                   # intent -> why there is no recommendation

    def blast_grid(self) -> Any:
        """One row per (intent, provider): effect, who serves, requests/day moved, monthly cost before and after."""
        import polars as pl

        rows = [{"provider": provider, **e.to_dict(), "p95_ms_after": e.p95_ms_after}
                for provider, b in self.blasts.items() for e in b.intents]
        schema = {"provider": pl.String, "intent": pl.String, "effect": pl.String, "served_by": pl.String}
        return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame(schema=schema)

    def recommendation_table(self) -> Any:
        import polars as pl

        rows = [{"intent": i, "recommended": r.recommended, "bar": round(r.bar, 3), "route": str(r.route),
                 "why": r.why} for i, r in self.recommendations.items()]
        return pl.DataFrame(rows, schema={"intent": pl.String, "recommended": pl.String, "bar": pl.Float64,
                                          "route": pl.String, "why": pl.String})


def board(policy: Policy, *, log_dir: str | os.PathLike | None = None, quality_dir: str | os.PathLike | None = None,
          overrides: str | os.PathLike | None = None, max_age_days: float = 90, deprecation_warning_days: int = 30,
          prices: Any = None) -> Board:
    """Compute the dashboard (a log or quality directory that does not exist is simply not used)."""
    if prices is None:
        from ..costs import PriceBook

        prices = PriceBook.load()
    traffic = load_traffic(log_dir) if log_dir and Path(log_dir).is_dir() else None
    quality = [quality_dir] if quality_dir and Path(quality_dir).is_dir() else []
    ready = readiness(policy, quality=quality, traffic=traffic, overrides=overrides or None,
                      max_age_days=max_age_days, deprecation_warning_days=deprecation_warning_days, prices=prices)
    blasts = {p: blast_radius(policy, removal(policy, provider=p), traffic=traffic, prices=prices)
              for p in providers(policy)}
    scores = read_scores(quality) if quality else None
    recs, unmeasured = {}, {}
    for intent in policy.routes:
        if scores is None or scores.is_empty():
            unmeasured[intent] = "no baseline under the quality directory"
            continue
        try:
            recs[intent] = recommend(scores, intent, policy=policy, source=str(quality[0]))
        except BadInput as e:
            unmeasured[intent] = str(e)
    return Board(policy, traffic, ready, blasts, key_inventory(policy, traffic=traffic), recs, unmeasured)
