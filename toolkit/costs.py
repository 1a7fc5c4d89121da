"""Prices and the cost of a usage.

Prices come from a dated snapshot of litellm's bundled price map kept in
``data/prices/`` (never fetched at run time).  Every cost routekit computes
carries the snapshot's version string (file stem + sha256 prefix), so a review
can recompute it: :func:`record_cost` does exactly that for a route record.

What a usage costs (:meth:`Rates.cost`), per token, where the map has the rate:

- **input**: ``input_tokens`` minus cached reads minus cache writes, at the input rate;
- **cached reads** at ``cache_read_input_token_cost``, **cache writes** at
  ``cache_creation_input_token_cost`` (the 5-minute write price; a map without
  them bills those tokens as ordinary input, as the providers do);
- **output**: ``output_tokens`` minus reasoning tokens at the output rate, and
  **reasoning** tokens at ``output_cost_per_reasoning_token`` (else the output rate);
- **tiered** pricing: when the request's input tokens (cached included) exceed a
  threshold (``*_above_200k_tokens`` keys, or a ``tiered_pricing`` table), *every*
  token of the request is billed at that tier's rates — the providers' rule and
  litellm's; a rate the tier does not list keeps the flat rate;
- **batch**: ``batch=True`` uses the ``*_batches`` rates (with their own tiers); a
  model without batch rates is billed at its standard rates, never at a guessed discount.

Priority/flex service tiers, audio/image tokens and 1-hour cache writes are not
modelled: routekit's records do not carry them.

A policy may override a model's price (``price:`` in the policy, USD per million
tokens): negotiated discounts, self-hosted models at their real cost, local
models at zero.  ``per_hour`` (a self-hosted deployment billed by the hour) is a
*fixed* cost: it is not spread over requests here, so a record's cost is always
its tokens times the rates.  Estimates (toolkit/estimate.py) report it as its own
monthly line (``per_hour`` × 24 × 30) and amortise it over that month's requests.

A model with neither a snapshot entry nor an override is *unpriced*: ``Cost.usd``
is ``None`` and ``Cost.unpriced`` is true — never a silent $0.

The snapshot also says when models retire (``deprecation_date``, ~900 entries):
:meth:`PriceBook.deprecation` reads it for a policy model (``routekit policy check``
warns, ``routekit readiness`` and ``routekit blast-radius --deprecated-by`` use it).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field, replace
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from .errors import UnknownModel  # noqa: F401  (raised here; defined with every other error)
from .usage import MAX_TOKENS, Usage  # noqa: F401  (the unit of every cost)

HOURS_PER_DAY = 24


@dataclass(frozen=True)
class Cost:
    usd: float | None           # None when unpriced
    price_version: str
    unpriced: bool = False
    cache_savings_usd: float = 0.0


@dataclass(frozen=True)
class Rates:
    """USD per token for one model; ``None`` rates fall back as described in the module docstring."""

    input: float
    output: float
    cache_read: float | None = None     # None: billed as input
    cache_write: float | None = None    # None: billed as input
    reasoning: float | None = None      # None: billed as output
    # (threshold, rates): a request whose input tokens exceed `threshold` pays `rates` for every token.
    tiers: tuple[tuple[int, "Rates"], ...] = ()
    batch: "Rates | None" = None        # Batch-API rates (with their own tiers), when the map has them
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    supports_reasoning: bool = False    # may bill reasoning ("thinking") tokens as output
    per_hour: float | None = None       # fixed cost of a self-hosted deployment, USD per hour
    source: str = field(default="", compare=False)  # "snapshot:<key>" or "policy override"

    @classmethod
    def from_entry(cls, e: Mapping[str, Any], key: str = "") -> "Rates":
        """Rates from one entry of litellm's price map."""
        base = cls(input=float(e.get("input_cost_per_token") or 0.0), output=float(e.get("output_cost_per_token") or 0.0),
                   cache_read=_num(e, "cache_read_input_token_cost"),
                   cache_write=_num(e, "cache_creation_input_token_cost"),
                   reasoning=_num(e, "output_cost_per_reasoning_token"))
        batch = None
        if _num(e, "input_cost_per_token_batches") is not None:
            batch = cls(input=_num(e, "input_cost_per_token_batches"),
                        output=_num(e, "output_cost_per_token_batches", base.output),
                        cache_read=_num(e, "cache_read_input_token_cost_batches"),
                        cache_write=_num(e, "cache_creation_input_token_cost_batches"))
            batch = replace(batch, tiers=_threshold_tiers(e, batch, "_batches"))
        tiers = _threshold_tiers(e, base, "") or _table_tiers(e.get("tiered_pricing"), base)
        if "input_cost_per_token" not in e and tiers:
            base = tiers[0][1]  # priced by its tier table only
        return replace(base, tiers=tiers, batch=batch, max_input_tokens=e.get("max_input_tokens"),
                       max_output_tokens=e.get("max_output_tokens"), supports_reasoning=bool(e.get("supports_reasoning")),
                       source=f"snapshot:{key}" if key else "snapshot")

    @classmethod
    def from_override(cls, p: Any) -> "Rates":
        """Rates from a policy ``price:`` override (USD per million tokens, optional ``per_hour``)."""
        m = 1e-6
        per = lambda v: None if v is None else v * m  # noqa: E731
        return cls(input=p.input_per_mtok * m, output=p.output_per_mtok * m, cache_read=per(p.cache_read_per_mtok),
                   cache_write=per(p.cache_write_per_mtok), reasoning=per(p.reasoning_per_mtok),
                   per_hour=p.per_hour, source="policy override")

    def effective(self, input_tokens: float, *, batch: bool = False) -> "Rates":
        """The flat rates one request pays: batch rates if asked (and known), then its tier."""
        r = self.batch if batch and self.batch is not None else self
        for threshold, tier in reversed(r.tiers):
            if input_tokens > threshold:
                return tier
        return r

    def cost(self, u: Usage, *, batch: bool = False) -> tuple[float, float]:
        """(cost in USD, savings from cached reads vs. the full input price)."""
        r = self.effective(u.input_tokens, batch=batch)
        rread = r.input if r.cache_read is None else r.cache_read
        rwrite = r.input if r.cache_write is None else r.cache_write
        fresh = max(u.input_tokens - u.cache_read_tokens - u.cache_write_tokens, 0)
        usd = fresh * r.input + u.cache_read_tokens * rread + u.cache_write_tokens * rwrite
        if r.reasoning is None:
            usd += u.output_tokens * r.output
        else:
            reasoning = min(u.reasoning_tokens, u.output_tokens)
            usd += (u.output_tokens - reasoning) * r.output + reasoning * r.reasoning
        return usd, u.cache_read_tokens * (r.input - rread)

    def bulk_cost(self, total: Usage, requests: int) -> float:
        """What ``requests`` requests whose usages sum to ``total`` cost, each billed at the tier of the mean
        request (a rollup keeps sums, not each request's size: tiers apply per request, never to the sum)."""
        if requests <= 0:
            return 0.0
        flat = replace(self.effective(total.input_tokens / requests), tiers=(), batch=None)
        return flat.cost(total)[0]

    def scaled(self, factor: float) -> "Rates":
        """Every rate times ``factor`` (a price change in a what-if scenario)."""
        f = lambda v: None if v is None else v * factor  # noqa: E731
        return replace(self, input=self.input * factor, output=self.output * factor, cache_read=f(self.cache_read),
                       cache_write=f(self.cache_write), reasoning=f(self.reasoning), per_hour=f(self.per_hour),
                       tiers=tuple((t, r.scaled(factor)) for t, r in self.tiers),
                       batch=None if self.batch is None else self.batch.scaled(factor))

    @property
    def is_free(self) -> bool:
        """Costs nothing per token (a local model or a tool); a fixed ``per_hour`` cost aside."""
        rates = (self.input, self.output, self.cache_read or 0.0, self.cache_write or 0.0, self.reasoning or 0.0)
        return not any(rates) and all(r.is_free for _, r in self.tiers)


def _num(e: Mapping[str, Any], key: str, default: float | None = None) -> float | None:
    v = e.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else default


_ABOVE = re.compile(r"^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost|"
                    r"cache_creation_input_token_cost)_above_(\d+(?:\.\d+)?k?)_tokens(_batches)?$")
_FIELD = {"input_cost_per_token": "input", "output_cost_per_token": "output",
          "cache_read_input_token_cost": "cache_read", "cache_creation_input_token_cost": "cache_write"}


def _threshold_tiers(e: Mapping[str, Any], flat: Rates, suffix: str) -> tuple[tuple[int, Rates], ...]:
    """Tiers from ``<rate>_above_<N>k_tokens[suffix]`` keys; a rate a tier does not list keeps ``flat``'s."""
    found: dict[int, dict[str, float]] = {}
    for k, v in e.items():
        m = _ABOVE.match(k)
        if m and (m.group(3) or "") == suffix and isinstance(v, (int, float)):
            n = m.group(2)
            threshold = int(float(n[:-1]) * 1000) if n.endswith("k") else int(n)
            found.setdefault(threshold, {})[_FIELD[m.group(1)]] = float(v)
    return tuple((t, replace(flat, **found[t])) for t in sorted(found))


def _table_tiers(table: Any, flat: Rates) -> tuple[tuple[int, Rates], ...]:
    """Tiers from a ``tiered_pricing`` list ({range: [lo, hi], rates...}): a request with more than ``lo``
    input tokens pays that tier for everything; rates the tier omits are its input rate (output: the model's)."""
    if not isinstance(table, list):
        return ()
    out = []
    for t in table:
        rng = t.get("range") if isinstance(t, dict) else None
        if not (isinstance(rng, list) and len(rng) == 2 and _num(t, "input_cost_per_token") is not None):
            continue
        rin = _num(t, "input_cost_per_token")
        out.append((int(rng[0]), Rates(input=rin, output=_num(t, "output_cost_per_token", flat.output),
                                       cache_read=_num(t, "cache_read_input_token_cost"),
                                       cache_write=_num(t, "cache_creation_input_token_cost"),
                                       reasoning=_num(t, "output_cost_per_reasoning_token"))))
    return tuple(sorted(out, key=lambda x: x[0]))



class PriceBook:
    """A price snapshot plus lookups; cheap to share, load once per process."""

    def __init__(self, entries: dict[str, dict[str, Any]], version: str):
        self.entries = entries
        self.version = version
        self._rates: dict[str, Rates | None] = {}

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> "PriceBook":
        return _load_book(str(path or _latest_snapshot()))

    def key_for(self, model: str | None) -> str | None:
        """The snapshot entry for a litellm model string: as written, then without its provider prefix."""
        if not model:
            return None
        for key in (model, model.split("/", 1)[-1]):
            e = self.entries.get(key)
            if isinstance(e, dict) and ("input_cost_per_token" in e or isinstance(e.get("tiered_pricing"), list)):
                return key
        return None

    def lookup(self, model: str | None) -> Rates | None:
        """Rates for a litellm model string, or None when the snapshot has no token price for it."""
        if model not in self._rates:
            key = self.key_for(model)
            self._rates[model] = None if key is None else Rates.from_entry(self.entries[key], key)
        return self._rates[model]

    def deprecation(self, spec: Any) -> tuple[date, str] | None:
        """When the snapshot says a policy model is retired, and the entry that says so: ``deprecation_date`` of
        its entry as written (``price_key`` first), then of the name without its provider prefix (the same model
        may be listed once per provider, the date on one of them only).  None: no date known, or a tool."""
        if spec.is_tool:
            return None
        for name in dict.fromkeys(n for n in (spec.price_key, spec.model) if n):
            for key in (name, name.split("/", 1)[-1]):
                e = self.entries.get(key)
                when = e.get("deprecation_date") if isinstance(e, dict) else None
                if isinstance(when, str):
                    try:
                        return date.fromisoformat(when[:10]), key
                    except ValueError:
                        continue
        return None

    def rates_for(self, spec: Any) -> Rates | None:
        """Rates for a policy ModelSpec: its override first, then the snapshot; tools are free."""
        if spec.is_tool:
            return Rates(0.0, 0.0, source="tool")
        if spec.price is not None:
            return Rates.from_override(spec.price)
        return self.lookup(spec.price_key or spec.model)

    def cost(self, spec: Any, usage: Usage, *, batch: bool = False) -> Cost:
        rates = self.rates_for(spec)
        if rates is None:
            return Cost(None, self.version, unpriced=True)
        usd, saved = rates.cost(usage, batch=batch)
        return Cost(usd, self.version, cache_savings_usd=saved)

    def rates_of(self, model: str, policy: Any = None) -> Rates | None:
        """``resolve()``'s rates, None for an unknown model too (no error, no search for close names)."""
        if policy is not None and model in policy.models:
            return self.rates_for(policy.models[model])
        return self.lookup(model)

    def resolve(self, model: str, policy: Any = None) -> tuple[str, Rates | None]:
        """A policy alias (when ``policy`` is given) or a litellm model string -> (label, rates or None).

        An alias without a price is *unpriced* (None); a string that is neither an alias nor in the
        snapshot raises :class:`UnknownModel` with the closest snapshot names (most likely a typo).
        """
        rates = self.rates_of(model, policy)
        if rates is None and not (policy is not None and model in policy.models):
            import difflib

            close = difflib.get_close_matches(model, [k for k in self.entries if k != "sample_spec"], n=3, cutoff=0.6)
            where = f"an alias of the policy {policy.path} nor " if policy is not None else ""
            raise UnknownModel(f"{model!r} is {'neither ' + where if where else 'not '}a priced entry of the price "
                               f"snapshot {self.version}"
                               + (f"; did you mean {', '.join(close)}?" if close else "")
                               + ("" if policy is not None else " (give the policy (policy=, or --policy) to use its aliases)"))
        return model, rates


def record_cost(record: Mapping[str, Any], policy: Any, prices: PriceBook) -> float | None:
    """Recompute a route record's ``cost_usd`` from its attempts' raw usage.

    The record's price and policy versions must be the ones given (a review recomputes with the
    table the record names); the sum is taken the way the Router takes it, so the result equals
    the recorded figure exactly.  None when an attempt was unpriced.
    """
    if record.get("price_version") != prices.version:
        raise ValueError(f"record {record.get('request_id')} was priced with {record.get('price_version')}, "
                         f"not {prices.version}: load that snapshot (PriceBook.load(path)) to recompute it")
    if record.get("policy_version") != policy.version:
        raise ValueError(f"record {record.get('request_id')} used policy version {record.get('policy_version')}, "
                         f"not {policy.version} ({policy.path}): price overrides may differ")
    total = 0.0
    for a in record.get("attempts") or ():
        rates = prices.rates_for(policy.models[a["alias"]])
        if rates is None:
            return None
        total += rates.cost(Usage(a["input_tokens"], a["output_tokens"], a["cache_read_tokens"],
                                  a["cache_write_tokens"], a["reasoning_tokens"]))[0]
    return round(total, 12)


def prices_dir() -> Path:
    """Where the dated snapshots are: ``prices/`` of the shipped data (or of ``$ROUTEKIT_DATA``)."""
    from .resources import data_file

    return data_file("prices")


def _latest_snapshot() -> Path:
    env = os.environ.get("ROUTEKIT_PRICES")
    if env:
        return Path(env)
    where = prices_dir()
    snaps = sorted(where.glob("*.json"))
    if not snaps:
        raise FileNotFoundError(f"no price snapshot in {where} (set ROUTEKIT_PRICES to a snapshot file)")
    return snaps[-1]


@lru_cache(maxsize=4)
def _load_book(path: str) -> PriceBook:
    raw = Path(path).read_bytes()
    version = f"{Path(path).stem}@{hashlib.sha256(raw).hexdigest()[:12]}"
    return PriceBook(json.loads(raw), version)
