"""Replay a routekit policy file over an outcome table: the point its routes (and trained routers) reach.

Each prompt goes to the route of its intent (a table without intents: the route ``default``); the route's
first candidate answers it - the primary, or the alias its ``router:`` block picks for the prompt's text, run
by the very code the Router runs (:func:`.learned.choose_texts`).  Fallbacks are not replayed: every call
in an outcome table succeeded.  A policy alias stands for the table's model ``m`` when the alias is ``m``,
its ``model`` is ``m``, or its ``model`` ends with ``/m`` (a provider prefix).
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from .replay import OutcomeTableError, Outcomes, Point, choice_point


def only_prompts(o: Outcomes, path: str | os.PathLike) -> Outcomes:
    """The table restricted to the prompt ids listed in ``path`` (one per line; ``--emit-policy`` writes one)."""
    from .evaluate import subset

    try:
        wanted = {line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()}
    except OSError as e:
        raise OutcomeTableError(f"{path}: cannot read prompt ids: {e.strerror}") from None
    rows = [i for i, p in enumerate(o.prompt_ids) if p in wanted]
    if len(rows) != len(wanted):
        missing = sorted(wanted - set(o.prompt_ids))
        raise OutcomeTableError(f"{path}: {len(missing)} prompt id(s) are not in {o.source} "
                                f"(first: {', '.join(map(repr, missing[:3]))})")
    return replace(subset(o, rows), source=o.source)


def table_columns(o: Outcomes, policy: Any) -> dict[str, int]:
    """Policy alias -> the outcome table's model column, for the aliases that name one of its models."""
    out = {}
    for alias, spec in policy.models.items():
        target = spec.model or ""
        hits = [j for j, m in enumerate(o.models) if m in (alias, target) or target.endswith("/" + m)]
        if len(hits) == 1:
            out[alias] = hits[0]
    return out


def replay_policy(o: Outcomes, path: str | os.PathLike, texts: list[str] | None = None) -> Point:
    """The quality, cost and shares of policy ``path`` on the table ``o`` (``texts``: the prompts' text, needed
    when a route has a ``router:`` block).  Raises PolicyError for a bad policy, OutcomeTableError for a
    policy that does not fit the table."""
    import numpy as np

    from ..policy import load_policy
    from .learned import choose_texts

    policy = load_policy(path)
    cols = table_columns(o, policy)
    chosen = np.full(o.n, -1)
    by_route: dict[str, list[int]] = {}
    for i, intent in enumerate(o.intents):
        by_route.setdefault(intent or "default", []).append(i)
    unknown = sorted(r for r in by_route if r not in policy.routes)
    if unknown:
        raise OutcomeTableError(f"{path}: no route for intent(s) {', '.join(map(repr, unknown[:5]))} of "
                                f"{o.source} ({sum(len(by_route[r]) for r in unknown)} prompts)")
    for name, rows in by_route.items():
        route = policy.routes[name]
        if route.router is not None:
            if texts is None:
                raise OutcomeTableError(f"{path}: route {name!r} has a trained router: give the prompts' text "
                                        f"(--prompts)")
            aliases = [c.alias for c in choose_texts(route.router, policy.path, [texts[i] for i in rows])]
        else:
            aliases = [policy.chain(name)[0]] * len(rows)
        for i, alias in zip(rows, aliases):
            if alias not in cols:
                raise OutcomeTableError(f"{path}: model alias {alias!r} (route {name!r}) is none of the table's "
                                        f"models ({', '.join(o.models)})")
            chosen[i] = cols[alias]
    return choice_point(o, f"policy {Path(path).name}", chosen, "policy")
