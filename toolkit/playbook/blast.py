"""Blast radius: what fails if a provider, a model or a region is unavailable, or when the models in use retire.

For every intent the whole candidate chain (``route:`` references expanded) is walked with the named models
removed, through the Router's own rules (toolkit/eligibility.py via :mod:`.decision`: privacy boundary,
allow-lists, quality floor with measured baselines, context window for the intent's mean prompt when the log
gives it).  The intent is

* ``unaffected``: its first candidate still serves;
* ``fallback``: another candidate that meets the route's floor serves instead (``tier_after`` says how far down);
* ``degraded``: only a candidate below the floor is left, and the route allows it (``on_exhausted: degrade``);
* ``fails``: nothing is left.

Removing a provider removes every hosted model whose vendor or provider prefix is that name; a model on this
machine's own network (``boundary: local``) is not the vendor's outage, unless the policy gives it that
``vendor:`` explicitly.  With a route log, each intent is weighted by its production traffic over the last 30
days of the log (rollups): ``requests_per_day`` are the requests the removed models served (they move to the new
first candidate, or fail); the monthly cost *before* is what the log recorded, *after* prices the moved
requests' recorded tokens at the new candidate's rates from the price snapshot (or its policy override), each
request at the tier of the mean request.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from ..errors import BadInput
from ..policy import Policy
from ..routelog import parse_day
from .decision import REMOVED, choose
from .deprecation import deprecations
from .traffic import Traffic, usage_of

Effect = Literal["unaffected", "fallback", "degraded", "fails"]
SELECTORS = ("provider", "model", "region", "deprecated_by")


@dataclass(frozen=True)
class Removal:
    """What is taken away, and the policy aliases that makes unavailable."""

    kind: str                          # one of SELECTORS
    value: str
    aliases: tuple[str, ...]
    models: dict[str, str] = field(default_factory=dict)   # alias -> model string
    why: dict[str, str] = field(default_factory=dict)      # alias -> why it is removed (retirement date)

    def describe(self) -> str:
        what = {"deprecated_by": "models retired by"}.get(self.kind, self.kind)
        gone = ", ".join(f"{a} ({self.why.get(a) or self.models[a]})" for a in self.aliases) or "no model of the policy"
        return f"{what} {self.value}: {gone}"

    def to_dict(self) -> dict[str, Any]:
        return {self.kind: self.value, "aliases": list(self.aliases), "models": dict(self.models),
                **({"why": dict(self.why)} if self.why else {})}


def providers(policy: Policy) -> list[str]:
    """The providers ``--provider`` can remove: vendors of hosted models, and any vendor a local model names."""
    return sorted({m.effective_vendor for m in policy.models.values()
                   if not m.is_tool and (m.effective_boundary == "vendor" or m.vendor)})


def removal(policy: Policy, *, provider: str | None = None, model: str | None = None, region: str | None = None,
            deprecated_by: date | str | None = None, prices: Any = None) -> Removal:
    """The aliases one selector takes away (give exactly one); :class:`BadInput` names an unknown value."""
    given = {k: v for k, v in (("provider", provider), ("model", model), ("region", region),
                               ("deprecated_by", deprecated_by)) if v is not None}
    if len(given) != 1:
        raise BadInput("give exactly one of --provider, --model, --region, --deprecated-by")
    kind, value = next(iter(given.items()))
    models = policy.models
    why: dict[str, str] = {}
    if kind == "provider":
        found = [a for a, m in models.items() if not m.is_tool and (
            (m.effective_boundary == "vendor" and value in (m.effective_vendor, m.provider_prefix))
            or m.vendor == value)]
        if not found:
            raise BadInput(f"--provider {value}: no hosted model of that provider in {policy.path} "
                           f"(providers: {', '.join(providers(policy))})")
    elif kind == "model":
        found = [a for a, m in models.items() if value in (a, m.model)]
        if not found:
            raise BadInput(f"--model {value}: neither an alias nor a model string of {policy.path} "
                           f"(aliases: {', '.join(models)})")
    elif kind == "region":
        found = [a for a, m in models.items() if not m.is_tool and m.region == value]
        if not found:
            regions = sorted({m.region for m in models.values() if m.region})
            raise BadInput(f"--region {value}: no model of {policy.path} is in that region "
                           f"(regions: {', '.join(regions)})")
    else:
        by = parse_day(value, "--deprecated-by")
        if prices is None:
            from ..costs import PriceBook

            prices = PriceBook.load()
        retiring = [d for d in deprecations(policy, prices, today=by) if d.retires <= by]
        found = [d.alias for d in retiring]
        why = {d.alias: f"{d.model} retires {d.retires}" for d in retiring}
        value = by.isoformat()
    found = [a for a in models if a in set(found)]   # in the policy's order
    return Removal(kind, str(value), tuple(found), {a: models[a].target for a in found}, why)


@dataclass(frozen=True)
class IntentEffect:
    intent: str
    effect: Effect
    served_by: str | None            # who serves with the models removed
    served_before: str | None
    tier_before: int | None
    tier_after: int | None
    requests_per_day: float | None   # production requests/day the removed models served (None: no log)
    monthly_cost_before_usd: float | None
    monthly_cost_after_usd: float | None
    p95_ms_after: float | None       # the new first candidate's p95 in the log, where it has one
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"intent": self.intent, "effect": self.effect, "served_by": self.served_by,
                "tier_before": self.tier_before, "tier_after": self.tier_after,
                "requests_per_day": _round(self.requests_per_day, 3),
                "monthly_cost_before_usd": _round(self.monthly_cost_before_usd, 6),
                "monthly_cost_after_usd": _round(self.monthly_cost_after_usd, 6)}


def _round(x: float | None, digits: int) -> float | None:
    return None if x is None else round(x, digits)


@dataclass(frozen=True)
class BlastRadius:
    policy: str
    removed: Removal
    intents: tuple[IntentEffect, ...]
    traffic: str | None              # the log and period the weights come from

    @property
    def failing(self) -> list[str]:
        return [e.intent for e in self.intents if e.effect == "fails"]

    def to_dict(self) -> dict[str, Any]:
        return {"removed": self.removed.to_dict(), "intents": [e.to_dict() for e in self.intents]}

    def render(self) -> str:
        lines = [f"blast radius in {self.policy}: {self.removed.describe()}"]
        if self.traffic:
            lines.append(f"traffic: {self.traffic}")
        weighted = self.traffic is not None
        head = f"  {'intent':<14}{'effect':<12}{'served by (tier, before)':<42}"
        if weighted:
            head += f"{'req/day':>9}{'$/month before':>16}{'$/month after':>15}{'p95 after':>11}"
        lines += ["", head]
        for e in self.intents:
            who = (f"{e.served_by} (t{e.tier_after}" + ("" if e.served_by == e.served_before else
                                                        f", was {e.served_before} t{e.tier_before}") + ")"
                   if e.served_by else f"nobody (was {e.served_before})")
            row = f"  {e.intent:<14}{e.effect:<12}{who:<42}"
            if weighted:
                p95 = "-" if e.p95_ms_after is None else f"{e.p95_ms_after:,.0f} ms"
                row += (f"{e.requests_per_day:>9.1f}{money(e.monthly_cost_before_usd):>16}"
                        f"{money(e.monthly_cost_after_usd):>15}{p95:>11}")
            lines.append(row)
        failing = [e for e in self.intents if e.effect == "fails"]
        lines.append("")
        lines += [f"  FAILS: {e.intent}: {e.detail}" for e in failing]
        lines.append(f"{len(failing)} intent(s) fail" if failing else "no intent fails")
        return "\n".join(line.rstrip() for line in lines)

    def frame(self) -> Any:
        import polars as pl

        return pl.DataFrame([{**e.to_dict(), "p95_ms_after": e.p95_ms_after, "detail": e.detail}
                             for e in self.intents], infer_schema_length=None)


def blast_radius(policy: Policy, removed: Removal, *, traffic: Traffic | None = None,
                 prices: Any = None) -> BlastRadius:
    """Each intent's fate with ``removed`` gone (module docstring); weighted by ``traffic`` when given."""
    if prices is None:
        from ..costs import PriceBook

        prices = PriceBook.load()
    gone = set(removed.aliases)
    out = []
    for intent in policy.routes:
        tokens = traffic.mean_prompt_tokens(intent) if traffic is not None else None
        before = choose(policy, intent, prompt_tokens=tokens, prices=prices)
        after = choose(policy, intent, removed=gone, prompt_tokens=tokens, prices=prices)
        if after.served is None:
            effect: Effect = "fails"
            left = [f"{a}: {reason}" for a, reason, _ in after.skipped if reason != REMOVED]
            detail = "no candidate left" + (f" ({'; '.join(left)})" if left else "")
        elif after.served == before.served:
            effect, detail = "unaffected", f"{after.served} still serves first"
        elif after.degraded:
            effect, detail = "degraded", f"only {after.served}, below the floor, is left (on_exhausted: degrade)"
        else:
            effect, detail = "fallback", f"{after.served} serves instead of {before.served}"
        tier = lambda a: policy.models[a].tier if a else None  # noqa: E731
        per_day = before_usd = after_usd = p95 = None
        if traffic is not None:
            per_day, before_usd, after_usd = _weigh(traffic, intent, gone, after.served, policy, prices)
            p95 = traffic.p95_ms.get(after.served) if after.served else None
        out.append(IntentEffect(intent, effect, after.served, before.served, tier(before.served), tier(after.served),
                                per_day, before_usd, after_usd, p95, detail))
    return BlastRadius(policy.path, removed, tuple(out), traffic.describe() if traffic is not None else None)


def _weigh(traffic: Traffic, intent: str, gone: set[str], new: str | None, policy: Policy,
           prices: Any) -> tuple[float, float, float | None]:
    """(requests/day moved, monthly cost as recorded, monthly cost with the moved requests at ``new``'s prices)."""
    rows = traffic.of(intent)
    moved = traffic.of(intent, gone)
    recorded = float(rows["cost_usd"].sum()) if rows.height else 0.0
    kept = recorded - (float(moved["cost_usd"].sum()) if moved.height else 0.0)
    usage, n = usage_of(moved)
    if new is None or n == 0:
        repriced: float | None = 0.0
    else:
        rates = prices.rates_for(policy.models[new])
        repriced = None if rates is None else rates.bulk_cost(usage, n)
    after = None if repriced is None else traffic.monthly(kept + repriced)
    return traffic.per_day(n), traffic.monthly(recorded), after


def money(x: float | None) -> str:
    return "-" if x is None else f"${x:,.2f}" if abs(x) >= 1 or x == 0 else f"${x:.4f}"
