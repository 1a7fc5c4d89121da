"""Prices and the cost of a usage.

Prices come from a dated snapshot of litellm's bundled price map kept in
``data/prices/`` (never fetched at run time).  Every cost routekit computes
carries the snapshot's version string, so a review can recompute it.  A policy
may override a model's price; a model with neither an entry nor an override is
*unpriced* — reported as such, never silently $0.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

DATA_DIR = Path(os.environ.get("ROUTEKIT_DATA", Path(__file__).resolve().parent.parent / "data"))
PRICES_DIR = DATA_DIR / "prices"


@dataclass(frozen=True)
class Usage:
    """Tokens of one call. ``input_tokens`` includes cached reads and cache writes;
    ``output_tokens`` includes reasoning tokens (as the providers bill them)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True)
class Cost:
    usd: float | None           # None when unpriced
    price_version: str
    unpriced: bool = False
    cache_savings_usd: float = 0.0


@dataclass(frozen=True)
class Rates:
    """USD per token."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None
    input_above: float | None = None    # tiered pricing above `threshold` input tokens
    output_above: float | None = None
    cache_read_above: float | None = None
    threshold: int | None = None
    input_batch: float | None = None
    output_batch: float | None = None
    max_input_tokens: int | None = None

    @classmethod
    def from_entry(cls, e: dict[str, Any]) -> "Rates":
        above = {k: v for k, v in e.items() if "_above_" in k and k.endswith("_tokens") and "priority" not in k}
        threshold = None
        for k in above:
            digits = k.rsplit("_above_", 1)[1].removesuffix("_tokens").lower()
            threshold = int(float(digits.removesuffix("k")) * 1000) if digits.endswith("k") else int(digits)
            break
        pick = lambda prefix: next((v for k, v in above.items() if k.startswith(prefix)), None)  # noqa: E731
        return cls(
            input=float(e.get("input_cost_per_token") or 0.0),
            output=float(e.get("output_cost_per_token") or 0.0),
            cache_read=e.get("cache_read_input_token_cost"),
            cache_write=e.get("cache_creation_input_token_cost"),
            reasoning=e.get("output_cost_per_reasoning_token"),
            input_above=pick("input_cost_per_token_above_"),
            output_above=pick("output_cost_per_token_above_"),
            cache_read_above=pick("cache_read_input_token_cost_above_"),
            threshold=threshold,
            input_batch=e.get("input_cost_per_token_batches"),
            output_batch=e.get("output_cost_per_token_batches"),
            max_input_tokens=e.get("max_input_tokens"),
        )

    @classmethod
    def from_override(cls, p: Any) -> "Rates":
        m = 1e-6
        return cls(
            input=p.input_per_mtok * m,
            output=p.output_per_mtok * m,
            cache_read=None if p.cache_read_per_mtok is None else p.cache_read_per_mtok * m,
            cache_write=None if p.cache_write_per_mtok is None else p.cache_write_per_mtok * m,
            reasoning=None if p.reasoning_per_mtok is None else p.reasoning_per_mtok * m,
        )

    def cost(self, u: Usage, *, batch: bool = False) -> tuple[float, float]:
        """(cost in USD, savings from cached reads vs. full input price)."""
        tiered = self.threshold is not None and u.input_tokens > self.threshold
        rin = (self.input_above if tiered and self.input_above is not None else
               self.input_batch if batch and self.input_batch is not None else self.input)
        rout = (self.output_above if tiered and self.output_above is not None else
                self.output_batch if batch and self.output_batch is not None else self.output)
        rread = self.cache_read_above if tiered and self.cache_read_above is not None else self.cache_read
        rread = rin if rread is None else rread
        rwrite = rin if self.cache_write is None else self.cache_write
        fresh = max(u.input_tokens - u.cache_read_tokens - u.cache_write_tokens, 0)
        reasoning = min(u.reasoning_tokens, u.output_tokens) if self.reasoning is not None else 0
        usd = (fresh * rin + u.cache_read_tokens * rread + u.cache_write_tokens * rwrite
               + (u.output_tokens - reasoning) * rout + reasoning * (self.reasoning or 0.0))
        return usd, u.cache_read_tokens * (rin - rread)


class PriceBook:
    """A price snapshot plus lookups; cheap to share, load once per process."""

    def __init__(self, entries: dict[str, dict[str, Any]], version: str):
        self.entries = entries
        self.version = version

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> "PriceBook":
        return _load_book(str(path or _latest_snapshot()))

    def lookup(self, model: str | None) -> Rates | None:
        """Rates for a litellm model string: tried as written, then without its provider prefix."""
        if not model:
            return None
        for key in (model, model.split("/", 1)[-1]):
            e = self.entries.get(key)
            if isinstance(e, dict) and "input_cost_per_token" in e:
                return Rates.from_entry(e)
        return None

    def rates_for(self, spec: Any) -> Rates | None:
        """Rates for a policy ModelSpec: its override first, then the snapshot; tools are free."""
        if spec.is_tool:
            return Rates(0.0, 0.0)
        if spec.price is not None:
            return Rates.from_override(spec.price)
        return self.lookup(spec.price_key or spec.model)

    def cost(self, spec: Any, usage: Usage, *, batch: bool = False) -> Cost:
        rates = self.rates_for(spec)
        if rates is None:
            return Cost(None, self.version, unpriced=True)
        usd, saved = rates.cost(usage, batch=batch)
        return Cost(usd, self.version, cache_savings_usd=saved)


def _latest_snapshot() -> Path:
    env = os.environ.get("ROUTEKIT_PRICES")
    if env:
        return Path(env)
    snaps = sorted(PRICES_DIR.glob("*.json"))
    if not snaps:
        raise FileNotFoundError(f"no price snapshot in {PRICES_DIR} (set ROUTEKIT_PRICES to a snapshot file)")
    return snaps[-1]


@lru_cache(maxsize=4)
def _load_book(path: str) -> PriceBook:
    raw = Path(path).read_bytes()
    version = f"{Path(path).stem}@{hashlib.sha256(raw).hexdigest()[:12]}"
    return PriceBook(json.loads(raw), version)
