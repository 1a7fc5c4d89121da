"""What a model can do: call tools, answer to a JSON schema, read images.

From the price snapshot (litellm's map: ``supports_function_calling``, ``supports_response_schema``,
``supports_vision``), overridden per model in the policy::

    models:
      fast-openai: {model: openai/gpt-4o-mini, tier: 1, supports: {vision: false}}

A value the snapshot does not have (a model it does not list, or a key it leaves out) is *unknown*: the Router
still tries such a candidate (the provider decides), while ``routekit policy check`` flags it for a route that
``requires`` the capability — declare ``supports:`` to settle it.  A ``tool:`` candidate (a Python function)
can do none of them unless its ``supports:`` says so.  The context window (the snapshot's ``max_input_tokens``)
is checked as its own rule (toolkit/eligibility.py, reason ``context_window``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .costs import PriceBook
from .policy import ModelSpec, Policy

# capability -> the snapshot's key for it
SNAPSHOT_KEYS = {"tools": "supports_function_calling", "json_schema": "supports_response_schema",
                 "vision": "supports_vision"}


@dataclass(frozen=True)
class Capabilities:
    """Each capability True, False, or None (unknown); ``source`` says where each known value came from."""

    tools: bool | None = None
    json_schema: bool | None = None
    vision: bool | None = None
    source: str = ""

    def has(self, capability: str) -> bool | None:
        return getattr(self, capability)

    def lacking(self, needed: Any) -> list[str]:
        """The needed capabilities this model is known not to have, in a stable order."""
        return [c for c in SNAPSHOT_KEYS if c in needed and self.has(c) is False]

    def unknown(self, needed: Any) -> list[str]:
        return [c for c in SNAPSHOT_KEYS if c in needed and self.has(c) is None]


def capabilities_of(spec: ModelSpec, prices: PriceBook) -> Capabilities:
    """The policy's ``supports:`` first, then the snapshot entry of the model (its ``price_key`` if set)."""
    values: dict[str, bool | None] = dict.fromkeys(SNAPSHOT_KEYS)
    source = "tool" if spec.is_tool else "unknown"
    if spec.is_tool:
        values = dict.fromkeys(SNAPSHOT_KEYS, False)
    else:
        entry = _entry(prices, spec.price_key or spec.model)
        if entry is not None:
            source = "price snapshot"
            for capability, key in SNAPSHOT_KEYS.items():
                if isinstance(entry.get(key), bool):
                    values[capability] = entry[key]
    declared = spec.supports
    if declared is not None:
        overrides = {c: getattr(declared, c) for c in SNAPSHOT_KEYS if getattr(declared, c) is not None}
        if overrides:
            values.update(overrides)
            source = f"policy supports: {', '.join(sorted(overrides))}" + (f"; {source}" if source else "")
    return Capabilities(**values, source=source)


def _entry(prices: PriceBook, model: str | None) -> dict | None:
    """The snapshot entry of a litellm model string, as written or without its provider prefix."""
    if not model:
        return None
    for key in (model, model.split("/", 1)[-1]):
        entry = prices.entries.get(key)
        if isinstance(entry, dict):
            return entry
    return None


def requirement_problems(policy: Policy, prices: PriceBook) -> list[tuple[tuple, str]]:
    """Every candidate of a route with ``requires:`` that lacks (or is not known to have) a required capability,
    as (key path, message) — what ``routekit policy check`` prints."""
    out = []
    for intent, route in policy.routes.items():
        if not route.requires:
            continue
        for alias in policy.chain(intent):
            spec = policy.models[alias]
            caps = capabilities_of(spec, prices)
            for capability in caps.lacking(route.requires):
                out.append((("routes", intent, "requires"),
                            f"route {intent!r} requires {capability} but candidate {alias!r} ({spec.target}) does not "
                            f"support it ({caps.source})"))
            for capability in caps.unknown(route.requires):
                out.append((("routes", intent, "requires"),
                            f"route {intent!r} requires {capability} but whether candidate {alias!r} "
                            f"({spec.target}) supports it is unknown (not in the price snapshot {prices.version}); "
                            f"declare supports: {{{capability}: true}} on the model if it does"))
    return out
