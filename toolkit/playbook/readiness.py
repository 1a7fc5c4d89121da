"""The launch checklist, per intent, computed from what routekit records.  Each check says what it found
(``detail``) and, when it fails, the command that would make it pass (``fix``).

==============  ==================================================================================================
check           passes when
==============  ==================================================================================================
boundary        the privacy-boundary proof holds: the policy's static checks find nothing on the route or its
                candidates (a local route reaches only local models at local endpoints; allow-lists hold)
drill           a ``routekit drill`` report under the quality directory covers the intent, finished within
                ``max_age``, with zero silent downgrades and zero boundary violations
kill_switch     the kill-switch history (beside the overrides file) shows a disable of the route or its first
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
from ..switch_history import read_history, rehearsals
from .blast import blast_radius, removal
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
        return "\n".join(lines)

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
    p = policy.path
    q = str(quality[0]) if quality else "evals"
    notes: list[str] = []
    static = static_checks(policy)
    drills = _drills(quality, notes)
    events, damage = read_history(_history(policy, overrides))
    if damage:
        notes.append(damage)
    scores = read_scores(quality) if quality else None
    keys = key_inventory(policy, traffic=traffic, today=today)
    retiring = {d.alias: d for d in deprecations(policy, prices, today, deprecation_warning_days)}
    vendors = sorted({m.effective_vendor for m in policy.models.values()
                      if not m.is_tool and (m.effective_boundary == "vendor" or m.vendor)})
    losses = {v: blast_radius(policy, removal(policy, provider=v), prices=prices) for v in vendors}
    max_age_s = max_age_days * 86400
    checks: list[Check] = []
    for intent, route in policy.routes.items():
        chain = policy.chain(intent)
        primary = chain[0]

        def add(check: str, ok: bool, detail: str, fix: str) -> None:
            checks.append(Check(check, intent, ok, detail, None if ok else fix))

        # boundary
        mine = [msg for path, msg in static if path[:2] == ("routes", intent)
                or (path[:1] == ("models",) and len(path) > 1 and path[1] in chain)]
        local = policy.required_boundary(route, None) == "local"
        add("boundary", not mine, "; ".join(mine) if mine else
            ("every candidate is local, at a local endpoint" if local else
             "no candidate breaks the route's boundary or allow-lists") + " (static check)",
            f"routekit policy check {p}")
        # drill
        found = [(when, src, row) for when, src, row in drills if row.get("intent") == intent]
        recent = [d for d in found if now - d[0] <= max_age_s]
        clean = [d for d in recent if _clean(d[2])]
        if clean:
            when, src, row = max(clean, key=lambda d: d[0])
            detail = (f"drilled {_day(when)} ({src}): {row['requests']} requests, {row.get('served_by_fallback', 0)} by "
                      f"a fallback, {row.get('failed_loudly', 0)} failed loudly, 0 silent downgrades")
        elif recent:
            when, src, row = max(recent, key=lambda d: d[0])
            detail = (f"the latest drill ({_day(when)}, {src}) had {row.get('silent_downgrades')} silent downgrade(s) "
                      f"and {row.get('boundary_violations_records', 0) + row.get('boundary_violations_sim', 0)} "
                      f"boundary violation(s)")
        elif found:
            detail = f"last drilled {_day(max(d[0] for d in found))}, more than {max_age_days:g} days ago"
        else:
            detail = ("no drill report covers it" + (f" under {', '.join(map(str, quality))}" if quality else
                                                     " (no --quality directory given)"))
        add("drill", bool(clean), detail, f"routekit drill --policy {p} --scenario data/drills/primary-down.yaml "
                                          f"--prompts PROMPTS_FOR_{intent.upper().replace('-', '_')}.jsonl "
                                          f"--out {q}/drills/primary-down")
        # kill switch
        done = [r for r in rehearsals(events, (intent, primary), now) if now - r.ended_at <= max_age_s]
        if done:
            r = done[-1]
            detail = f"{r.describe()} at {_day(r.disable.at)}"
        else:
            detail = f"no disable/enable of {intent} or {primary} within {max_age_days:g} days in the history"
        add("kill_switch", bool(done), detail,
            f"routekit disable {primary} --policy {p} --reason 'kill-switch rehearsal' --for 10m && "
            f"routekit enable {primary} --policy {p} --reason 'rehearsal done'")
        # baseline
        have = set(policy.baselines[intent].scores) if intent in policy.baselines else set()
        if scores is not None:
            have |= set(measured(scores, intent))
        missing = [a for a in chain if a not in have]
        add("baseline", not missing, f"no measured score for {', '.join(missing)}" if missing else
            f"measured: {', '.join(chain)}",
            f"routekit eval baseline --policy {p} --prompts PROMPTS_FOR_{intent.upper().replace('-', '_')}.jsonl "
            f"--models {','.join(missing or chain)} --out {q}/baseline")
        # budget
        ok, detail, teams = _budget(policy, intent, traffic)
        team = route.owner or (teams[0] if teams else "TEAM")
        add("budget", ok, detail,
            f"add to {p}: budgets: [{{name: {team}-monthly, scope: {{team: {team}}}, limit_usd: LIMIT, "
            f"alerts: [0.5, 0.8, 1.0]}}], then routekit budget status --policy {p}")
        # keys
        named = sorted({policy.models[a].api_key_env for a in chain if policy.models[a].api_key_env})
        unowned = [k for k in named if not keys.owner_of(k)]
        add("keys", not unowned, f"no owner for {', '.join(unowned)}" if unowned else
            (f"owned: {', '.join(f'{k} ({keys.owner_of(k)})' for k in named)}" if named else
             "the chain names no API key (api_key_env)"),
            f"declare them in {p} (keys: {{{unowned[0] if unowned else 'NAME'}: {{owner: TEAM, rotated: YYYY-MM-DD}}}}), "
            f"then routekit keys --policy {p}")
        # blast radius
        chain_vendors = sorted({v for v in vendors if any(a in losses[v].removed.aliases for a in chain)})
        fatal = [v for v in chain_vendors if intent in losses[v].failing]
        on_purpose = ("routes", intent, "on_exhausted") in policy.lines and route.on_exhausted == "fail"
        if not fatal:
            detail = (f"served without any one of {', '.join(chain_vendors)}" if chain_vendors else
                      "no hosted vendor in the chain")
        else:
            detail = f"fails without {', '.join(fatal)}" + (" (the route says on_exhausted: fail)" if on_purpose else "")
        add("blast_radius", not fatal or on_purpose, detail,
            f"add a fallback from another vendor to routes.{intent} in {p} (or write on_exhausted: fail), then "
            f"routekit blast-radius --policy {p} --provider {fatal[0] if fatal else 'VENDOR'}")
        # deprecation
        near = [retiring[a] for a in chain if a in retiring and retiring[a].status != "later"]
        first = near[0] if near else None
        add("deprecation", not near, "; ".join(d.describe() for d in near) if near else
            f"no model of the chain retires within {deprecation_warning_days} days",
            f"move {first.alias} off {first.model} in {p}, then routekit blast-radius --policy {p} "
            f"--deprecated-by {first.retires}" if first else "")
    return Readiness(policy.path, tuple(checks), tuple(notes))


def _history(policy: Policy, overrides: str | os.PathLike | None) -> Path:
    from ..switch_history import history_path

    return history_path(overrides or policy.overrides_path)


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


def _budget(policy: Policy, intent: str, traffic: Traffic | None) -> tuple[bool, str, list[str]]:
    route = policy.routes[intent]
    alerting = [b for b in policy.budgets if b.alerts]
    direct = [b.name for b in alerting if not b.scope or b.scope.get("intent") == intent
              or b.scope.get("route") == intent]
    if direct:
        return True, f"covered by {', '.join(direct)}", []
    if route.owner:
        teams = [route.owner]
    elif traffic is not None:
        rows = traffic.of(intent)
        teams = sorted(t for t in set(rows["team"].to_list()) if t) if rows.height else []
    else:
        teams = []
    if not teams:
        return False, "no budget covers the intent, and no owner or logged team is known", []
    cover = {t: [b.name for b in alerting if set(b.scope) == {"team"} and b.scope["team"] == t] for t in teams}
    bare = [t for t, names in cover.items() if not names]
    if bare:
        return False, f"no budget with alerts covers team(s) {', '.join(bare)}", bare
    return True, "covered by " + ", ".join(f"{n} (team {t})" for t, names in cover.items() for n in names), []
