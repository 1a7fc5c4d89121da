"""The API-key inventory, against key sprawl (too many accounts, no owner).

Keys are known by environment-variable NAME only: those the policy's ``keys:`` block declares (owner, purpose,
rotation date) and those it references (a model's ``api_key_env``, a budget's ``alert_webhook_env``, the state's
``url_env``).  Per key: owner, the models, vendors, routes and teams that use it (teams from the log's rollups),
whether it is set in the environment (its value is never read out, let alone printed), and the last hour the log
shows one of its models serving.  Problems, each naming the key:

* no owner (declared without ``owner``, or referenced but not declared);
* declared but used by nothing in the policy;
* one key shared across vendors, or across boundary classes (a local model and a hosted one);
* rotated more than ``max_age_days`` ago, or no rotation date;
* referenced but not set in the environment.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from typing import Any, Mapping

from ..policy import Policy
from .traffic import Traffic

MAX_AGE_DAYS = 90


@dataclass(frozen=True)
class KeyUse:
    name: str
    declared: bool
    owner: str | None
    purpose: str | None
    rotated: date | None
    models: tuple[str, ...]
    vendors: tuple[str, ...]
    boundaries: tuple[str, ...]
    routes: tuple[str, ...]
    teams: tuple[str, ...]
    other_uses: tuple[str, ...]      # budget webhooks, the state URL
    is_set: bool
    last_used: str | None            # the last hour (UTC) one of its models served, per the log

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.name, "declared": self.declared, "owner": self.owner, "purpose": self.purpose,
                "rotated": self.rotated.isoformat() if self.rotated else None, "models": list(self.models),
                "vendors": list(self.vendors), "boundaries": list(self.boundaries), "routes": list(self.routes),
                "teams": list(self.teams), "other_uses": list(self.other_uses), "set": self.is_set,
                "last_used": self.last_used}


@dataclass(frozen=True)
class KeyProblem:
    key: str
    problem: str

    def __str__(self) -> str:
        return f"{self.key}: {self.problem}"

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "problem": self.problem}


@dataclass(frozen=True)
class KeyInventory:
    policy: str
    keys: tuple[KeyUse, ...]
    problems: tuple[KeyProblem, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "keys": [k.to_dict() for k in self.keys],
                "problems": [p.to_dict() for p in self.problems]}

    def render(self) -> str:
        lines = [f"keys of {self.policy}: {len(self.keys)} key(s), {len(self.problems)} problem(s)", ""]
        if not self.keys:
            lines.append("  no key declared (keys:) or referenced (api_key_env): the provider SDKs' default variables "
                         "are used, unowned and uninventoried")
        for k in self.keys:
            lines.append(f"  {k.name}  owner {k.owner or '-'}, rotated {k.rotated or '-'}, "
                         f"{'set' if k.is_set else 'NOT SET'} in the environment, last used {k.last_used or '-'}")
            uses = [f"models {', '.join(k.models)}" if k.models else "", f"vendors {', '.join(k.vendors)}" if k.vendors
                    else "", f"routes {', '.join(k.routes)}" if k.routes else "", f"teams {', '.join(k.teams)}" if k.teams
                    else "", *k.other_uses]
            lines.append("      " + ("; ".join(u for u in uses if u) or "used by nothing"))
        if self.problems:
            lines += ["", "problems:", *(f"  {p}" for p in self.problems)]
        return "\n".join(lines)

    def frame(self) -> Any:
        import polars as pl

        return pl.DataFrame([k.to_dict() for k in self.keys], infer_schema_length=None)

    def owner_of(self, name: str) -> str | None:
        return next((k.owner for k in self.keys if k.name == name), None)


def key_inventory(policy: Policy, *, traffic: Traffic | None = None, env: Mapping[str, str] | None = None,
                  max_age_days: int = MAX_AGE_DAYS, today: date | None = None) -> KeyInventory:
    """The inventory and its problems (module docstring)."""
    env = os.environ if env is None else env
    today = today or date.today()
    by_key: dict[str, list[str]] = {}
    for alias, m in policy.models.items():
        if m.api_key_env:
            by_key.setdefault(m.api_key_env, []).append(alias)
    other: dict[str, list[str]] = {}
    for b in policy.budgets:
        if b.alert_webhook_env:
            other.setdefault(b.alert_webhook_env, []).append(f"budget {b.name} (alert webhook)")
    if policy.state.url_env:
        other.setdefault(policy.state.url_env, []).append("state (ledger URL)")
    chains = {intent: set(policy.chain(intent)) for intent in policy.routes}
    keys, problems = [], []
    for name in [*policy.keys, *(n for n in [*by_key, *other] if n not in policy.keys)]:
        if any(k.name == name for k in keys):
            continue
        spec = policy.keys.get(name)
        aliases = by_key.get(name, [])
        specs = [policy.models[a] for a in aliases]
        vendors = sorted({m.effective_vendor for m in specs})
        boundaries = sorted({m.effective_boundary for m in specs})
        teams, last = _seen(traffic, set(aliases))
        use = KeyUse(name, spec is not None, spec.owner if spec else None, spec.purpose if spec else None,
                     spec.rotated if spec else None, tuple(aliases), tuple(vendors), tuple(boundaries),
                     tuple(i for i, chain in chains.items() if chain & set(aliases)), teams,
                     tuple(other.get(name, [])), bool(env.get(name)), last)
        keys.append(use)
        problems += _problems(use, max_age_days, today)
    return KeyInventory(policy.path, tuple(keys), tuple(problems))


def _seen(traffic: Traffic | None, aliases: set[str]) -> tuple[tuple[str, ...], str | None]:
    if traffic is None or not aliases:
        return (), None
    rows = traffic.of(None, aliases)
    teams = tuple(sorted(t for t in set(rows["team"].to_list()) if t is not None)) if rows.height else ()
    hours = [traffic.last_served[a] for a in aliases if a in traffic.last_served]
    return teams, (f"{max(hours):%Y-%m-%d %H:00Z}" if hours else None)


def _problems(k: KeyUse, max_age_days: int, today: date) -> list[KeyProblem]:
    out = []
    if not k.declared:
        out.append(KeyProblem(k.name, "no owner: referenced by the policy but not declared under keys:"))
    elif not k.owner:
        out.append(KeyProblem(k.name, "no owner: declared under keys: without an owner"))
    if k.declared and not (k.models or k.other_uses):
        out.append(KeyProblem(k.name, "declared but used by nothing in the policy (no model names it)"))
    if len(k.vendors) > 1:
        out.append(KeyProblem(k.name, f"one key shared across vendors: {', '.join(k.vendors)} "
                                      f"(models {', '.join(k.models)})"))
    if len(k.boundaries) > 1:
        out.append(KeyProblem(k.name, f"one key shared across boundary classes: {', '.join(k.boundaries)}"))
    if k.declared and k.rotated is None:
        out.append(KeyProblem(k.name, "no rotation date (rotated: YYYY-MM-DD under keys:)"))
    elif k.rotated is not None and (today - k.rotated).days > max_age_days:
        out.append(KeyProblem(k.name, f"rotated {k.rotated}, {(today - k.rotated).days} days ago "
                                      f"(more than {max_age_days})"))
    if (k.models or k.other_uses) and not k.is_set:
        out.append(KeyProblem(k.name, "referenced but not set in the environment"))
    return out
