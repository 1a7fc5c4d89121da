"""What a policy change does before it ships: the static difference, and a replay of the route log.

Static: models, routes, budgets and sensitivity classes added, removed or changed; and per intent every change of
the rules a reviewer must sign off, each marked ``relaxed`` or ``tightened``:

* privacy: the route's ``boundary: local``; whether its chain stays on local models; the ``allowed_vendors`` and
  ``allowed_regions`` lists (none = any); the policy's ``sensitivity`` classes: one that may now reach vendors
  relaxes, one that now keeps requests local, or is no longer declared (the Router refuses its requests), tightens;
* floors: ``min_tier``, ``on_exhausted`` (``degrade`` is the relaxed one), the measured floor
  (``baselines.min_score``), and a candidate that moves across the floor because its tier or measured score
  changed (toolkit/eligibility.py's ``below_floor`` decides, as it does for the Router).

Replay (with a route log): every production request of the period (shadow calls left out; baseline and drill calls
are requests too) of an intent either policy routes goes through NEW's decision (toolkit/eligibility.py via
:mod:`.decision`) with its recorded intent, sensitivity and prompt tokens (a label NEW does not declare is refused,
as the Router refuses it: the request would fail). What the record knows about the moment is kept: a model it shows
failing, or skipped for the moment's state (kill switch, open circuit, budget), is passed over (the recorded outcome
of a model both policies use), and a failure no fallback fixes (a bad request) ends the walk as it ends the
Router's; any other candidate is taken to answer. So replaying a policy through itself reroutes nothing it routed (a
baseline's single-model calls, team eval, do show). A request is *rerouted* when the model serving it changes;
``would_fail`` and ``would_degrade`` count requests served as recorded that NEW fails, or serves below its floor
where the record was not degraded. Cost before is what the record says; after, a rerouted request costs its recorded
tokens (those of the attempt that served it, else its prompt) at the new model's rates (the price snapshot, or NEW's
override), a request that keeps its model keeps its recorded cost, and a request NEW cannot serve costs nothing (it
fails).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from ..eligibility import below_floor
from ..errors import KINDS, RETRYABLE
from ..policy import Policy
from ..usage import Usage
from .decision import choose, smallest_window

Direction = Literal["relaxed", "tightened"]
# Skip reasons that say what the moment was like (not what a policy rule decided, which NEW decides again).
RUNTIME_SKIPS = frozenset({"disabled", "circuit_open", "budget", "budget_unavailable", "route_disabled"})
FINAL = frozenset(KINDS) - RETRYABLE    # a recorded failure the Router does not fall back from (a bad request...)


@dataclass(frozen=True)
class Change:
    kind: str          # model | route | budget | sensitivity
    name: str
    change: str        # added | removed | changed
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "change": self.change, "detail": self.detail}


@dataclass(frozen=True)
class RuleChange:
    intent: str        # "*": the whole policy (a sensitivity class)
    change: Direction
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"intent": self.intent, "change": self.change, "detail": self.detail}


@dataclass(frozen=True)
class Replay:
    period: str
    requests: int
    rerouted: int
    cost_before_usd: float
    cost_after_usd: float
    by_intent: tuple[dict[str, Any], ...]   # per intent and team

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "rerouted": self.rerouted,
                "cost_before_usd": round(self.cost_before_usd, 9), "cost_after_usd": round(self.cost_after_usd, 9),
                "by_intent": [dict(r) for r in self.by_intent]}


@dataclass(frozen=True)
class PolicyDiff:
    old: str
    new: str
    changes: tuple[Change, ...]
    privacy: tuple[RuleChange, ...]
    floors: tuple[RuleChange, ...]
    replay: Replay | None

    @property
    def relaxed(self) -> list[RuleChange]:
        return [r for r in (*self.privacy, *self.floors) if r.change == "relaxed"]

    def render(self) -> str:
        lines = [f"policy diff {self.old} -> {self.new}", ""]
        lines += [f"  {c.kind} {c.name}: {c.change}" + (f" ({c.detail})" if c.detail else "") for c in self.changes]
        if not self.changes:
            lines.append("  no model, route, budget or sensitivity class changed")
        for title, items in (("privacy", self.privacy), ("floors", self.floors)):
            lines += ["", f"{title}:"] + ([f"  {r.change.upper() if r.change == 'relaxed' else r.change}: "
                                           f"{r.intent}: {r.detail}" for r in items] or ["  unchanged"])
        r = self.replay
        if r is not None:
            lines += ["", f"replay of {r.period}:",
                      f"  {r.rerouted:,} of {r.requests:,} requests change serving model; cost ${r.cost_before_usd:,.4f} "
                      f"as recorded -> ${r.cost_after_usd:,.4f}", "",
                      f"  {'intent':<14}{'team':<18}{'requests':>9}{'rerouted':>9}{'fail':>6}{'degrade':>8}"
                      f"{'$ before':>12}{'$ after':>12}"]
            changed = [g for g in r.by_intent if g["rerouted"] or g["would_fail"] or g["would_degrade"]]
            if len(changed) < len(r.by_intent):
                lines[-1] += f"     ({len(r.by_intent) - len(changed)} unchanged intent x team rows not shown)"
            for g in changed:
                lines.append(f"  {g['intent']:<14}{str(g['team']):<18}{g['requests']:>9,}{g['rerouted']:>9,}"
                             f"{g['would_fail']:>6,}{g['would_degrade']:>8,}{g['cost_before_usd']:>12.4f}"
                             f"{g['cost_after_usd']:>12.4f}")
        return "\n".join(lines)


    def to_dict(self) -> dict[str, Any]:
        return {"changes": [c.to_dict() for c in self.changes], "privacy": [p.to_dict() for p in self.privacy],
                "floors": [f.to_dict() for f in self.floors],
                "replay": None if self.replay is None else self.replay.to_dict()}


def diff_policies(old: Policy, new: Policy, *, log: str | os.PathLike | None = None, prices: Any = None,
                  since: date | str | None = None, until: date | str | None = None) -> PolicyDiff:
    """The difference OLD -> NEW (module docstring); replayed over ``log`` when given."""
    privacy, floors = list(_sensitivity(old, new)), []
    for intent in (i for i in new.routes if i in old.routes):
        privacy += _privacy(old, new, intent)
        floors += _floors(old, new, intent)
    replay = None
    if log is not None:
        if prices is None:
            from ..costs import PriceBook

            prices = PriceBook.load()
        replay = replay_log(old, new, log, prices, since, until)
    return PolicyDiff(old.path, new.path, tuple(_changes(old, new)), tuple(privacy), tuple(floors), replay)


# --- static ------------------------------------------------------------------------------------------------------

def _fields(a: dict[str, Any], b: dict[str, Any]) -> str:
    return "; ".join(f"{k}: {_show(a.get(k))} -> {_show(b.get(k))}" for k in sorted({*a, *b}) if a.get(k) != b.get(k))


def _show(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(map(str, v)) + "]"
    return "none" if v is None else str(v)


def _changes(old: Policy, new: Policy) -> list[Change]:
    out: list[Change] = []

    def compare(kind: str, a: dict[str, dict], b: dict[str, dict]) -> None:
        out.extend(Change(kind, n, "removed", "") for n in a if n not in b)
        out.extend(Change(kind, n, "added", _fields({}, b[n])) for n in b if n not in a)
        out.extend(Change(kind, n, "changed", _fields(a[n], b[n])) for n in a if n in b and a[n] != b[n])

    models = lambda p: {a: m.model_dump(exclude={"alias", "local_hosts"}, exclude_defaults=True)  # noqa: E731
                        for a, m in p.models.items()}
    routes = lambda p: {i: {**r.model_dump(exclude={"intent"}, exclude_defaults=True),  # noqa: E731
                            "chain": p.chain(i)} for i, r in p.routes.items()}
    budgets = lambda p: {b.name: b.model_dump(exclude={"name"}) for b in p.budgets}  # noqa: E731
    compare("model", models(old), models(new))
    compare("route", routes(old), routes(new))
    compare("budget", budgets(old), budgets(new))
    compare("sensitivity", {k: {"boundary": v} for k, v in old.sensitivity.items()},
            {k: {"boundary": v} for k, v in new.sensitivity.items()})
    return out


def _sensitivity(old: Policy, new: Policy) -> list[RuleChange]:
    out = []
    for cls in sorted({*old.sensitivity, *new.sensitivity}):
        a, b = old.sensitivity.get(cls), new.sensitivity.get(cls)
        if b == "vendor" and a != "vendor":
            change, effect = "relaxed", "may now leave local models" if a else "were refused, may now reach vendors"
        elif b is None and a is not None:
            change, effect = "tightened", "are now refused"
        elif a == "vendor" and b == "local":
            change, effect = "tightened", "now stay on local models"
        else:   # not declared -> local: served where they were refused, never leaving the machine
            continue
        out.append(RuleChange("*", change, f"sensitivity {cls!r}: {a or 'not declared'} -> {b or 'not declared'} "
                                           f"(requests marked {cls} {effect})"))
    return out


def _privacy(old: Policy, new: Policy, intent: str) -> list[RuleChange]:
    ro, rn = old.routes[intent], new.routes[intent]
    out = []
    if (ro.boundary == "local") != (rn.boundary == "local"):
        out.append(RuleChange(intent, "relaxed" if ro.boundary == "local" else "tightened",
                              f"route boundary: {ro.boundary or 'none'} -> {rn.boundary or 'none'}"))
    was, now = ([a for a in p.chain(intent) if p.models[a].effective_boundary != "local"] for p in (old, new))
    if not was and now:
        out.append(RuleChange(intent, "relaxed", f"the chain now reaches non-local models "
                                                 f"({', '.join(now)}); it stayed on local models"))
    elif was and not now:
        out.append(RuleChange(intent, "tightened", "the chain now stays on local models"))
    for attr in ("allowed_vendors", "allowed_regions"):
        a, b = getattr(ro, attr), getattr(rn, attr)
        if a is not None and b is not None and set(a) == set(b) or a == b:
            continue
        if a is None:
            out.append(RuleChange(intent, "tightened", f"{attr}: any -> {_show(sorted(b))}"))
        elif b is None:
            out.append(RuleChange(intent, "relaxed", f"{attr}: {_show(sorted(a))} -> any"))
        else:
            if set(b) - set(a):
                out.append(RuleChange(intent, "relaxed", f"{attr} now also allow {_show(sorted(set(b) - set(a)))}"))
            if set(a) - set(b):
                out.append(RuleChange(intent, "tightened", f"{attr} no longer allow {_show(sorted(set(a) - set(b)))}"))
    return out


def _floors(old: Policy, new: Policy, intent: str) -> list[RuleChange]:
    ro, rn = old.routes[intent], new.routes[intent]
    out = []
    if ro.min_tier != rn.min_tier:
        out.append(RuleChange(intent, "relaxed" if rn.min_tier < ro.min_tier else "tightened",
                              f"min_tier: {ro.min_tier} -> {rn.min_tier}"))
    if ro.on_exhausted != rn.on_exhausted:
        out.append(RuleChange(intent, "relaxed" if rn.on_exhausted == "degrade" else "tightened",
                              f"on_exhausted: {ro.on_exhausted} -> {rn.on_exhausted}"))
    bo, bn = old.baselines.get(intent), new.baselines.get(intent)
    score_o, score_n = (bo.min_score if bo else None), (bn.min_score if bn else None)
    if score_o != score_n:
        relaxed = score_n is None or (score_o is not None and score_n < score_o)
        out.append(RuleChange(intent, "relaxed" if relaxed else "tightened",
                              f"measured floor baselines.{intent}.min_score: {_show(score_o)} -> {_show(score_n)}"))
    if ro.min_tier == rn.min_tier and score_o == score_n:
        for alias in (a for a in new.chain(intent) if a in old.chain(intent)):
            was, now = below_floor(old, alias, ro), below_floor(new, alias, rn)
            if was and not now:
                out.append(RuleChange(intent, "relaxed", f"{alias} now meets the floor (before: {was})"))
            elif now and not was:
                out.append(RuleChange(intent, "tightened", f"{alias} is now below the floor ({now})"))
    return out


# --- replay ------------------------------------------------------------------------------------------------------

def replay_log(old: Policy, new: Policy, log: str | os.PathLike, prices: Any, since: date | str | None = None,
               until: date | str | None = None) -> Replay:
    """Every production request of ``log`` (days ``since``..``until``) through NEW's decision (module docstring)."""
    import polars as pl

    from ..routelog import parse_period, require_log, scan_log

    first, last = parse_period(since, until)
    scan = scan_log(require_log(log), start=first and first.isoformat(), end=last and last.isoformat())
    fields = ["alias", "model", "outcome", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
              "reasoning_tokens"]
    routed = sorted({*old.routes, *new.routes})
    frame = (scan.frame.filter(pl.col("shadow_of").is_null() & pl.col("intent").is_in(routed)).select(
        "timestamp", "intent", "team", "sensitivity", "prompt_tokens", "served_alias", "cost_usd", "degraded",
        # only what the replay reads of the nested lists: converting them to Python is most of its time
        pl.col("attempts").list.eval(pl.struct(pl.element().struct.field(f) for f in fields)),
        pl.col("skipped").list.eval(pl.element().filter(pl.element().struct.field("reason").is_in(sorted(RUNTIME_SKIPS)))
                                    .struct.field("alias")).alias("skipped_now"))
             .collect())
    choices: dict[tuple, Any] = {}
    windows: dict[str, int | None] = {}
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    total = {"requests": 0, "rerouted": 0, "before": 0.0, "after": 0.0}
    for rec in frame.iter_rows(named=True):
        intent, attempts = rec["intent"], rec["attempts"] or []
        served = next((a for a in reversed(attempts) if a["alias"] == rec["served_alias"]), None)
        before = served["model"] if served else None
        unavailable = {a["model"] for a in attempts if a["outcome"] != "ok"}
        fatal = {a["model"] for a in attempts if a["outcome"] in FINAL}
        unavailable |= {old.models[alias].target for alias in rec["skipped_now"] or [] if alias in old.models}
        after_alias, degraded = None, False
        if intent in new.routes:
            if intent not in windows:
                windows[intent] = smallest_window(new, intent, prices)
            # the window check can only matter for a prompt longer than the chain's smallest window
            tokens = rec["prompt_tokens"] if (windows[intent] is not None and rec["prompt_tokens"] is not None
                                              and rec["prompt_tokens"] > windows[intent]) else None
            key = (intent, rec["sensitivity"], tokens)
            if key not in choices:
                choices[key] = choose(new, intent, sensitivity=rec["sensitivity"], prompt_tokens=tokens, prices=prices)
            for alias in choices[key].queue:
                target = new.models[alias].target
                if target == before or target not in unavailable:
                    after_alias = alias
                    degraded = below_floor(new, alias, new.routes[intent]) is not None
                    break
                if target in fatal:   # the Router stops at a failure no other candidate would fix
                    break
        after = new.models[after_alias].target if after_alias else None
        cost_before = rec["cost_usd"] or 0.0
        moved = after != before
        if after is None:
            cost_after: float | None = 0.0
        elif not moved:
            cost_after = cost_before
        else:
            rates = prices.rates_for(new.models[after_alias])
            usage = (Usage(served["input_tokens"], served["output_tokens"], served["cache_read_tokens"],
                           served["cache_write_tokens"], served["reasoning_tokens"]) if served
                     else Usage(rec["prompt_tokens"] or 0))
            cost_after = None if rates is None else rates.cost(usage)[0]
        g = groups.setdefault((intent, rec["team"]), {
            "intent": intent, "team": rec["team"], "requests": 0, "rerouted": 0, "would_fail": 0, "would_degrade": 0,
            "unpriced_after": 0, "cost_before_usd": 0.0, "cost_after_usd": 0.0})
        g["requests"] += 1
        g["rerouted"] += moved
        g["would_fail"] += before is not None and after is None
        g["would_degrade"] += degraded and not rec["degraded"]
        g["unpriced_after"] += cost_after is None
        g["cost_before_usd"] += cost_before
        g["cost_after_usd"] += cost_after or 0.0
        total["requests"] += 1
        total["rerouted"] += moved
        total["before"] += cost_before
        total["after"] += cost_after or 0.0
    rows = tuple({**g, "cost_before_usd": round(g["cost_before_usd"], 9), "cost_after_usd": round(g["cost_after_usd"], 9)}
                 for _, g in sorted(groups.items()))
    if frame.height:
        first, last = frame["timestamp"].min(), frame["timestamp"].max()
        period = f"{log}, {first:%Y-%m-%d} .. {last:%Y-%m-%d}, {frame.height:,} requests"
    else:
        period = f"{log}: no production requests"
    return Replay(period, total["requests"], total["rerouted"], total["before"], total["after"], rows)
