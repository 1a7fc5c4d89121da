"""Real traffic per intent and serving model, read from the route log's rollups (toolkit/rollups.py), never from
raw records: requests, recorded tokens and cost per (intent, served alias, team), latency percentiles from the
summed histograms, and the last hour each model served."""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from ..rollups import load_rollups, percentiles, total
from ..usage import Usage

DAYS = 30
DAYS_PER_MONTH = 30
TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


@dataclass(frozen=True)
class Traffic:
    log: str
    since: date | None        # None: the log has no production traffic
    until: date | None
    days: int                 # days the figures are spread over (the window, or less of it when the log is younger)
    rows: Any                 # pl.DataFrame: intent, served_alias, team, requests, cost_usd, prompt_tokens, TOKENS
    p95_ms: dict[str, float]  # served alias -> p95 latency (ms) of its served requests in the window
    last_served: dict[str, Any]  # served alias -> last hour (UTC) it served, over the whole log

    def describe(self) -> str:
        if self.since is None:
            return f"route log {self.log}: no production traffic"
        return f"route log {self.log}, {self.since} .. {self.until} ({self.days} days)"

    def per_day(self, value: float) -> float:
        return value / self.days if self.days else 0.0

    def monthly(self, value: float) -> float:
        return self.per_day(value) * DAYS_PER_MONTH

    def of(self, intent: str | None = None, aliases: set[str] | None = None) -> Any:
        """The rows of ``intent`` (all intents: None), served by ``aliases`` (any: None)."""
        import polars as pl

        rows = self.rows
        if intent is not None:
            rows = rows.filter(pl.col("intent") == intent)
        if aliases is not None:
            rows = rows.filter(pl.col("served_alias").is_in(sorted(aliases)))
        return rows

    def mean_prompt_tokens(self, intent: str) -> int | None:
        rows = self.of(intent)
        n = int(rows["requests"].sum()) if rows.height else 0
        return round(rows["prompt_tokens"].sum() / n) if n else None


def usage_of(rows: Any) -> tuple[Usage, int]:
    """The summed recorded tokens of some rows, and how many requests they are."""
    if rows.height == 0:
        return Usage(), 0
    return Usage(*(int(rows[c].sum()) for c in TOKENS)), int(rows["requests"].sum())


def load_traffic(log: str | os.PathLike, days: int = DAYS, until: date | None = None) -> Traffic:
    """Production traffic (shadow calls left out) over the ``days`` days ending ``until`` (default: the log's last
    day); the rollups are brought up to date first."""
    import polars as pl

    hours = load_rollups(log).filter(~pl.col("is_shadow"))
    # the day grain for sums and percentiles (the same numbers, far fewer rows); the hour for when last served
    frame = load_rollups(log, build=False, grain="day").filter(~pl.col("is_shadow"))
    span = frame.select(pl.col("date").min().alias("first"), pl.col("date").max().alias("last")).collect().row(0)
    last_served = dict(hours.filter(pl.col("served_alias").is_not_null()).group_by("served_alias")
                       .agg(pl.col("hour").max()).collect().iter_rows())
    empty = pl.DataFrame(schema={"intent": pl.String, "served_alias": pl.String, "team": pl.String,
                                 "requests": pl.Int64, "cost_usd": pl.Float64, "prompt_tokens": pl.Int64,
                                 **{c: pl.Int64 for c in TOKENS}})
    if span[1] is None:
        return Traffic(str(log), None, None, 0, empty, {}, last_served)
    until = until or span[1]
    since = until - timedelta(days=days - 1)
    window = frame.filter(pl.col("date").is_between(since, until))
    rows = (window.group_by("intent", "served_alias", "team")
            .agg(pl.col("requests").sum(), total("cost_usd"), pl.col("prompt_tokens").sum(),   # exact in any order
                 *(pl.col(c).sum() for c in TOKENS))
            .sort("intent", "served_alias", "team", nulls_last=True).collect())
    served = window.filter(pl.col("outcome") == "served")
    p95 = {a: v for a, v in percentiles(served, ["served_alias"], (0.95,)).select("served_alias", "p95_ms").iter_rows()
           if a is not None and v is not None}
    covered = (until - max(since, span[0])).days + 1
    return Traffic(str(log), max(since, span[0]), until, covered, rows.select(empty.columns), p95, last_served)
