"""routekit: route LLM calls by task intent through a policy table, fall back honestly, see the cost.

Importing ``toolkit`` is cheap: litellm and polars load only when a routed call or
a log read needs them.

    >>> from toolkit import Router
    >>> Router("data/policy.demo.yaml").complete("triage", "Is this spam?", team="support")
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Router": "router", "Result": "result",
    "RoutekitError": "errors", "NoEligibleRoute": "errors", "UnknownIntent": "errors", "PolicyError": "errors",
    "StreamInterrupted": "errors", "BudgetDenied": "errors", "TransportError": "errors",
    "load_policy": "policy", "Policy": "policy",
    "scan_log": "routelog", "RouteLogWriter": "routelog",
    "PriceBook": "costs", "Usage": "usage",
    "SimServer": "sim",
    "StreamRestart": "streams",
    "BudgetLedger": "budgets",
    "Scenario": "estimate", "estimate_scenarios": "estimate",
    "synthesize": "synth", "compact": "routelog",
    "register_litellm_provider": "dropin", "RoutedClient": "dropin", "run_agent": "agentloop",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'toolkit' has no attribute {name!r}")
    return getattr(import_module(f"toolkit.{module}"), name)
