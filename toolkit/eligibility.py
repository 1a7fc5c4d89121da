"""Which candidates of a route may serve a request, by the policy's rules alone.

These rules need no runtime state: the privacy boundary (never relaxed by a fallback), the vendor and region
allow-lists, what the request needs of a model (tools, a JSON-schema answer, images: toolkit/capabilities.py),
the context window, and the quality floor — a declared tier below the route's ``min_tier``, or a
measured score below its ``baselines`` bar.  The Router applies them (then the runtime filters: kill switch,
open circuit, budget); anything that reasons about a policy without routing — what fails when a provider is
gone, what a policy change does — applies the same functions, not a copy of the rules.

Each returns ``(reason, detail)`` — the reason codes of a record's ``skipped`` list — or None when the
candidate passes.  :func:`candidate_queue` puts them together the way the Router orders a request's candidates
(below-floor ones last, and only where the route may degrade).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from .capabilities import Capabilities
from .policy import ModelSpec, Policy, RouteSpec


def rule_rejection(spec: ModelSpec, route: RouteSpec, boundary: str | None) -> tuple[str, str] | None:
    """The privacy boundary and the allow-lists (a tool runs in-process: local, and no vendor or region)."""
    if boundary == "local" and spec.effective_boundary != "local":
        return "boundary", f"request needs a local model; {spec.target} is {spec.effective_boundary}"
    if not spec.is_tool:
        if route.allowed_vendors is not None and spec.effective_vendor not in route.allowed_vendors:
            return "vendor", f"{spec.effective_vendor} not in {list(route.allowed_vendors)}"
        if route.allowed_regions is not None and spec.region not in route.allowed_regions:
            return "region", f"{spec.region} not in {list(route.allowed_regions)}"
    return None


def capability_rejection(needed: Iterable[str], capabilities: Capabilities, target: str) -> tuple[str, str] | None:
    """A candidate known not to do what the request needs (an unknown capability is left to the provider)."""
    needed = frozenset(needed)
    if not needed:
        return None
    lacking = capabilities.lacking(needed)
    if lacking:
        return "capability", (f"request needs {', '.join(lacking)}; {target} does not support "
                              f"{' or '.join(lacking)} ({capabilities.source})")
    return None


def window_rejection(prompt_tokens: int, window: int | None) -> tuple[str, str] | None:
    if window is not None and prompt_tokens > window:
        return "context_window", f"{prompt_tokens} prompt tokens > window {window}"
    return None


def below_floor(policy: Policy, alias: str, route: RouteSpec) -> str | None:
    """Why ``alias`` is below the route's quality floor (declared tier, or a measured score from the policy's
    ``baselines``), or None when it meets it."""
    spec = policy.models[alias]
    if spec.tier < route.min_tier:
        return f"tier {spec.tier} < min_tier {route.min_tier}"
    baseline = policy.baselines.get(route.intent)
    measured = baseline.scores.get(alias) if baseline else None
    if measured is not None and measured.score < baseline.min_score:
        return f"measured score {measured.score:.3f} < min_score {baseline.min_score} (n={measured.n})"
    return None


def context_window(spec: ModelSpec, prices: Any) -> int | None:
    """A model's context window: the policy's ``context_window``, else the price snapshot's ``max_input_tokens``."""
    rates = None if spec.is_tool else prices.lookup(spec.price_key or spec.model)
    return spec.context_window or (rates.max_input_tokens if rates else None)


def candidate_queue(policy: Policy, route: RouteSpec, chain: list[str],
                    rejection: Callable[[str], tuple[str, str] | None]) -> tuple[list[str], list[tuple[str, str, str]]]:
    """The candidates of ``chain`` in the order they are tried, and those skipped as (alias, reason, detail).

    ``rejection(alias)`` gives why a candidate may not serve (the rules above, plus whatever the caller knows:
    the Router's kill switch and circuits).  A candidate below the quality floor comes after every one that meets
    it, and only where the route says ``on_exhausted: degrade``; otherwise it is skipped as ``below_floor``.
    """
    queue: list[str] = []
    below: list[str] = []
    skipped: list[tuple[str, str, str]] = []
    for alias in chain:
        reason = rejection(alias)
        if reason is not None:
            skipped.append((alias, *reason))
        elif below_floor(policy, alias, route):
            below.append(alias)
        else:
            queue.append(alias)
    if route.on_exhausted == "degrade":
        queue += below
    else:
        skipped += [(a, "below_floor", below_floor(policy, a, route)) for a in below]
    return queue, skipped
