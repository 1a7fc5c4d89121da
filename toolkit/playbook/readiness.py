"""The launch checklist, per intent, computed from what routekit records.  Each check says what it found
(``detail``) and, when it fails, the command that would make it pass (``fix``).

==============  ==================================================================================================
check           passes when
==============  ==================================================================================================
boundary        the privacy-boundary proof holds: the policy's static checks find nothing on the route or its
                candidates (a local route reaches only local models at local endpoints; allow-lists hold)
drill           a ``routekit drill`` report under the quality directory covers the intent, finished within
                ``max_age``, with zero silent downgrades and zero boundary violations
kill_switch     the kill-switch history (beside the overrides file, or in Redis) shows a disable of the route or its first
                candidate ended by an enable (or by its own expiry) within ``max_age``, with who, why and when
baseline        every candidate of the chain has measured scores for the intent (the policy's ``baselines:``
                block, or a baseline score table under the quality directory)
budget          a budget with alerts covers the intent (scope intent/route, or none), or its owner team (the
                route's ``owner``; without one, every team the log shows using it)
keys            every API key the chain names has an owner under ``keys:``
blast_radius    losing any one vendor of the chain leaves the intent served, at least degraded — or the route
                writes ``on_exhausted: fail`` itself (failing is then the route's stated choice)
deprecation     no model of the chain is past, or within ``deprecation_warning_days`` of, its retirement date
==============  ==================================================================================================

The intent is ready when every check passes; the policy when every intent is.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from ..policy import Policy, static_checks
from ..switch_history import history_path, read_history, rehearsals
from .blast import blast_radius, providers, removal
from .deprecation import WARNING_DAYS, deprecations
from .keys import key_inventory
from .measurements import measured, read_scores
from .traffic import Traffic

CHECKS = ("boundary", "drill", "kill_switch", "baseline", "budget", "keys", "blast_radius", "deprecation")
MAX_AGE_DAYS = 90


@dataclass(frozen=True)
class Check:
    check: str
    intent: str
    ok: bool
    detail: str
    fix: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "intent": self.intent, "ok": self.ok, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class Readiness:
    policy: str
    checks: tuple[Check, ...]
    notes: tuple[str, ...] = ()       # inputs that could not be read (a damaged drill report, history lines)

    @property
    def ready(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"ready": self.ready, "checks": [c.to_dict() for c in self.checks]}

    def render(self) -> str:
        grid = {}
        for c in self.checks:
            grid.setdefault(c.intent, {})[c.check] = c
        lines = [f"readiness of {self.policy}: {'READY' if self.ready else 'NOT READY'}", "",
                 "  " + f"{'intent':<14}" + "".join(f"{name:<13}" for name in CHECKS)]
        for intent, row in grid.items():
            lines.append("  " + f"{intent:<14}" + "".join(f"{'ok' if row[n].ok else 'FAIL':<13}" for n in CHECKS))
        failing = [c for c in self.checks if not c.ok]
        if failing:
            lines += ["", "to fix:"]
            for c in failing:
                lines += [f"  {c.intent} / {c.check}: {c.detail}", f"      fix: {c.fix}"]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(line.rstrip() for line in lines)

    def frame(self) -> Any:
        import polars as pl

        return pl.DataFrame([c.to_dict() for c in self.checks], infer_schema_length=None)


def readiness(policy: Policy, *, quality: Iterable[str | os.PathLike] = (), traffic: Traffic | None = None,
              overrides: str | os.PathLike | None = None, max_age_days: float = MAX_AGE_DAYS,
              deprecation_warning_days: int = WARNING_DAYS, prices: Any = None,
              now: float | None = None) -> Readiness:
    """Every check for every intent of ``policy`` (module docstring)."""
    if prices is None:
        from ..costs import PriceBook

        prices = PriceBook.load()
    now = time.time() if now is None else now
    today = datetime.fromtimestamp(now, timezone.utc).date()
    quality = [Path(q) for q in quality]
    notes: list[str] = []
    drills = _drills(quality, notes)
    events, damage = _history(policy, overrides)
    if damage:
        notes.append(damage)
    scores = read_scores(quality) if quality else None
    keys = key_inventory(policy, traffic=traffic, today=today)
    retiring = {d.alias: d for d in deprecations(policy, prices, today, deprecation_warning_days)}
    ctx = _Evidence(policy, policy.path, str(quality[0]) if quality else "evals", quality, now, max_age_days,
                    deprecation_warning_days, static_checks(policy), drills, events, scores, keys, retiring,
                    {v: blast_radius(policy, removal(policy, provider=v), prices=prices) for v in providers(policy)},
                    traffic)
    checks: list[Check] = []
    for intent in policy.routes:
        for name in CHECKS:
            ok, detail, fix = CHECK_FUNCTIONS[name](ctx, intent)
            checks.append(Check(name, intent, ok, detail, None if ok else fix))
    return Readiness(policy.path, tuple(checks), tuple(notes))


def _history(policy: Policy, overrides: str | os.PathLike | None) -> tuple[list, str | None]:
    """The kill switch's audit history: the one beside ``overrides`` when given, else where the policy keeps its
    state (the file beside its overrides file, or Redis's list when ``state: {backend: redis}``)."""
    if overrides is not None or policy.state.backend == "embedded":
        return read_history(history_path(overrides or policy.overrides_path))
    from ..state import open_state

    state = open_state(policy)
    try:
        return state.history(), None
    finally:
        state.close()


def _day(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%MZ")


def _clean(row: dict) -> bool:
    return (row.get("requests", 0) > 0 and row.get("silent_downgrades") == 0
            and not row.get("boundary_violations_records") and not row.get("boundary_violations_sim"))


def _drills(quality: list[Path], notes: list[str]) -> list[tuple[float, str, dict]]:
    """(when it finished, the report, one of its intent rows) of every drill report under the directories."""
    out = []
    for root in quality:
        for path in sorted(root.rglob("drill_report.json")) if root.is_dir() else []:
            try:
                summary = json.loads(path.read_text())
                finished = summary.get("finished_at")
                when = (datetime.strptime(finished, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
                        if finished else path.stat().st_mtime)   # reports written before finished_at existed
                out += [(when, str(path), row) for row in summary.get("intents") or [] if isinstance(row, dict)]
            except (OSError, ValueError, TypeError, AttributeError) as e:
                notes.append(f"{path}: not a readable drill report ({type(e).__name__}: {str(e)[:80]})")
    return out


@dataclass(frozen=True)
class _Evidence:
    """What the checks read, gathered once for every intent."""

    policy: Policy
    p: str                      # the policy's path, for the fix commands
    q: str                      # the first quality directory (or the usual one), for the fix commands
    quality: list[Path]
    now: float
    max_age_days: float
    warning_days: int
    static: list[tuple[tuple, str]]
    drills: list[tuple[float, str, dict]]
    events: list[Any]
    scores: Any
    keys: Any
    retiring: dict[str, Any]
    losses: dict[str, Any]      # vendor -> its blast radius
    traffic: Traffic | None

    def chain(self, intent: str) -> list[str]:
        return self.policy.chain(intent)

    def recent(self, t: float) -> bool:
        return self.now - t <= self.max_age_days * 86400

    @staticmethod
    def prompts(intent: str) -> str:
        return f"PROMPTS_FOR_{intent.upper().replace('-', '_')}.jsonl"


Result = tuple[bool, str, str]


def _boundary(e: _Evidence, intent: str) -> Result:
    chain = e.chain(intent)
    mine = [msg for path, msg in e.static if path[:2] == ("routes", intent)
            or (path[:1] == ("models",) and len(path) > 1 and path[1] in chain)]
    local = e.policy.required_boundary(e.policy.routes[intent], None) == "local"
    proof = "every candidate is local, at a local endpoint" if local else \
        "no candidate breaks the route's boundary or allow-lists"
    return not mine, "; ".join(mine) if mine else f"{proof} (static check)", f"routekit policy check {e.p}"


def _drill(e: _Evidence, intent: str) -> Result:
    found = [(when, src, row) for when, src, row in e.drills if row.get("intent") == intent]
    recent = [d for d in found if e.recent(d[0])]
    clean = [d for d in recent if _clean(d[2])]
    if clean:
        when, src, row = max(clean, key=lambda d: d[0])
        detail = (f"drilled {_day(when)} ({src}): {row['requests']} requests, {row.get('served_by_fallback', 0)} "
                  f"by a fallback, {row.get('failed_loudly', 0)} failed loudly, 0 silent downgrades")
    elif recent:
        when, src, row = max(recent, key=lambda d: d[0])
        detail = (f"the latest drill ({_day(when)}, {src}) had {row.get('silent_downgrades')} silent downgrade(s) "
                  f"and {row.get('boundary_violations_records', 0) + row.get('boundary_violations_sim', 0)} "
                  f"boundary violation(s)")
    elif found:
        detail = f"last drilled {_day(max(d[0] for d in found))}, more than {e.max_age_days:g} days ago"
    else:
        where = f" under {', '.join(map(str, e.quality))}" if e.quality else " (no --quality directory given)"
        detail = f"no drill report covers it{where}"
    return bool(clean), detail, (f"routekit drill --policy {e.p} --scenario data/drills/primary-down.yaml "
                                 f"--prompts {e.prompts(intent)} --out {e.q}/drills/primary-down")


def _kill_switch(e: _Evidence, intent: str) -> Result:
    primary = e.chain(intent)[0]
    done = [r for r in rehearsals(e.events, (intent, primary), e.now) if e.recent(r.ended_at)]
    detail = (f"{done[-1].describe()} at {_day(done[-1].disable.at)}" if done else
              f"no disable/enable of {intent} or {primary} within {e.max_age_days:g} days in the history")
    return bool(done), detail, (f"routekit disable {primary} --policy {e.p} --reason 'kill-switch rehearsal' "
                                f"--for 10m && routekit enable {primary} --policy {e.p} --reason 'rehearsal done'")


def _baseline(e: _Evidence, intent: str) -> Result:
    chain = e.chain(intent)
    have = set(e.policy.baselines[intent].scores) if intent in e.policy.baselines else set()
    if e.scores is not None:
        have |= set(measured(e.scores, intent))
    missing = [a for a in chain if a not in have]
    detail = f"no measured score for {', '.join(missing)}" if missing else f"measured: {', '.join(chain)}"
    return not missing, detail, (f"routekit eval baseline --policy {e.p} --prompts {e.prompts(intent)} "
                                 f"--models {','.join(missing or chain)} --out {e.q}/baseline")


def _budget(e: _Evidence, intent: str) -> Result:
    route = e.policy.routes[intent]
    alerting = [b for b in e.policy.budgets if b.alerts]
    direct = [b.name for b in alerting if not b.scope or b.scope.get("intent") == intent
              or b.scope.get("route") == intent]
    teams: list[str] = []
    if route.owner:
        teams = [route.owner]
    elif e.traffic is not None:
        rows = e.traffic.of(intent)
        teams = sorted(t for t in set(rows["team"].to_list()) if t) if rows.height else []
    cover = {t: [b.name for b in alerting if set(b.scope) == {"team"} and b.scope["team"] == t] for t in teams}
    bare = [t for t, names in cover.items() if not names]
    if direct:
        ok, detail = True, f"covered by {', '.join(direct)}"
    elif not teams:
        ok, detail = False, "no budget covers the intent, and no owner or logged team is known"
    elif bare:
        ok, detail = False, f"no budget with alerts covers team(s) {', '.join(bare)}"
    else:
        ok, detail = True, "covered by " + ", ".join(f"{n} (team {t})" for t, names in cover.items() for n in names)
    team = (bare or teams or ["TEAM"])[0]
    return ok, detail, (f"add to {e.p}: budgets: [{{name: {team}-monthly, scope: {{team: {team}}}, limit_usd: LIMIT, "
                        f"alerts: [0.5, 0.8, 1.0]}}], then routekit budget status --policy {e.p}")


def _keys(e: _Evidence, intent: str) -> Result:
    models = e.policy.models
    named = sorted({models[a].api_key_env for a in e.chain(intent) if models[a].api_key_env})
    unowned = [k for k in named if not e.keys.owner_of(k)]
    if unowned:
        detail = f"no owner for {', '.join(unowned)}"
    elif named:
        detail = "owned: " + ", ".join(f"{k} ({e.keys.owner_of(k)})" for k in named)
    else:
        detail = "the chain names no API key (api_key_env)"
    name = unowned[0] if unowned else "NAME"
    return not unowned, detail, (f"declare it in {e.p} (keys: {{{name}: {{owner: TEAM, rotated: YYYY-MM-DD}}}}), "
                                 f"then routekit keys --policy {e.p}")


def _blast_radius(e: _Evidence, intent: str) -> Result:
    chain = e.chain(intent)
    vendors = sorted(v for v, loss in e.losses.items() if any(a in loss.removed.aliases for a in chain))
    fatal = [v for v in vendors if intent in e.losses[v].failing]
    # failing is the route's stated choice only where the file says so (on_exhausted defaults to fail)
    on_purpose = ("routes", intent, "on_exhausted") in e.policy.lines and e.policy.routes[intent].on_exhausted == "fail"
    if fatal:
        detail = f"fails without {', '.join(fatal)}" + (" (the route says on_exhausted: fail)" if on_purpose else "")
    else:
        detail = f"served without any one of {', '.join(vendors)}" if vendors else "no hosted vendor in the chain"
    return not fatal or on_purpose, detail, (
        f"add a fallback from another vendor to routes.{intent} in {e.p} (or write on_exhausted: fail), then "
        f"routekit blast-radius --policy {e.p} --provider {fatal[0] if fatal else 'VENDOR'}")


def _deprecation(e: _Evidence, intent: str) -> Result:
    near = [e.retiring[a] for a in e.chain(intent) if a in e.retiring and e.retiring[a].status != "later"]
    if not near:
        return True, f"no model of the chain retires within {e.warning_days} days", ""
    first = near[0]
    return False, "; ".join(d.describe() for d in near), (
        f"move {first.alias} off {first.model} in {e.p}, then routekit blast-radius --policy {e.p} "
        f"--deprecated-by {first.retires}")


CHECK_FUNCTIONS = {"boundary": _boundary, "drill": _drill, "kill_switch": _kill_switch, "baseline": _baseline,
                   "budget": _budget, "keys": _keys, "blast_radius": _blast_radius, "deprecation": _deprecation}
