"""Compile a routekit policy into a LiteLLM proxy config (``routekit export litellm-proxy``).

What the config holds
=====================
- ``model_list``: one model group per intent, named after it (clients send ``model: "triage"``), whose one
  deployment is the route's first candidate; each fallback candidate is a group of its own, ``INTENT@ALIAS``.
  A deployment carries the model's ``api_base``, ``api_version``, ``params``, ``timeout`` and output cap, its key
  as ``os.environ/NAME`` (never a value), ``max_retries: 0`` (no hidden SDK retries), and ``model_info`` naming
  the routekit intent, alias and tier (the callback reads them).
- ``router_settings``: the route chains as ``fallbacks``; ``num_retries: 0``; a deployment cools down after
  ``circuit.failures`` failures (``allowed_fails`` = failures - 1) for ``circuit.cooldown_s``; with
  ``state: {backend: redis}``, ``redis_url: os.environ/<state.url_env>`` so proxy instances share their state.
- ``litellm_settings``: ``num_retries: 0`` and the routekit callback (:mod:`toolkit.proxy.callback`);
  ``general_settings.master_key``: ``os.environ/LITELLM_MASTER_KEY``.
- ``environment_variables``: ``ROUTEKIT_POLICY`` (the policy's absolute path; the callback prices and explains
  with it) and, when given, ``ROUTEKIT_LOG_DIR``.

What it cannot hold
===================
Listed by :func:`export_litellm_proxy` (``ProxyConfig.unheld``), printed by the command and written at the top
of the file, never silently dropped: tools as candidates, a quality floor with ``on_exhausted: degrade``,
measured baselines, verification, shadow trials, trained routers, ``stream_restart``, request sensitivity,
routekit's budgets and kill switch, the cap on a provider's Retry-After.  Candidates below a ``fail`` route's
floor are left out of its chain (routekit would skip them), which the proxy does hold.

A policy whose chain would let a ``local`` intent reach a vendor does not load; a Policy built in code is
checked again here with the same checks (:func:`toolkit.policy.static_checks`), so the refusal reads exactly as
``routekit policy check`` prints it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..eligibility import below_floor
from ..errors import PolicyError
from ..policy import Policy, static_checks

CALLBACK = "toolkit.proxy.callback.handler"
NO_KEY = "routekit-no-key"   # what routekit's transport sends to an endpoint that needs no key


def group_name(intent: str, alias: str, first: bool) -> str:
    """The proxy model group of one candidate of a route: the intent itself for the first."""
    return intent if first else f"{intent}@{alias}"


def proxy_chain(policy: Policy, intent: str) -> list[str]:
    """The candidates of a route the proxy holds, in order: no tools; below the floor only for ``degrade``
    (last, as routekit tries them)."""
    route = policy.routes[intent]
    models = [a for a in policy.chain(intent) if not policy.models[a].is_tool]
    eligible = [a for a in models if not below_floor(policy, a, route)]
    return eligible + [a for a in models if a not in eligible] if route.on_exhausted == "degrade" else eligible


def served_alias(policy: Policy, group: str) -> tuple[str, str] | None:
    """(intent, alias) of a model group the export made, or None for a name it did not make."""
    intent, _, alias = group.partition("@")
    if intent not in policy.routes:
        return None
    chain = proxy_chain(policy, intent)
    if not alias:
        return (intent, chain[0]) if chain else None
    return (intent, alias) if alias in chain else None


@dataclass(frozen=True)
class ProxyConfig:
    config: dict[str, Any]
    unheld: list[str] = field(default_factory=list)   # rules the proxy cannot hold, one sentence each
    groups: dict[str, list[str]] = field(default_factory=dict)   # intent -> its candidates' aliases, in order


def _deployment(policy: Policy, intent: str, alias: str, first: bool) -> dict[str, Any]:
    spec = policy.models[alias]
    params: dict[str, Any] = {**spec.params, "model": spec.model, "timeout": spec.timeout_s, "max_retries": 0}
    if spec.api_base:
        params["api_base"] = spec.api_base
    if spec.api_version:
        params["api_version"] = spec.api_version
    if spec.api_key_env:
        params["api_key"] = f"os.environ/{spec.api_key_env}"
    elif spec.api_base:
        params["api_key"] = NO_KEY
    if spec.max_output_tokens:
        params["max_tokens"] = spec.max_output_tokens
    name = group_name(intent, alias, first)
    return {"model_name": name, "litellm_params": params,
            "model_info": {"id": name, "routekit_intent": intent, "routekit_alias": alias,
                           "routekit_tier": spec.tier}}


def export_litellm_proxy(policy: Policy, *, log_dir: str | os.PathLike | None = None) -> ProxyConfig:
    """The proxy config of ``policy`` and the rules it cannot hold (module docstring); PolicyError as ``policy
    check`` words it when a chain is unsafe."""
    problems = static_checks(policy)
    if problems:
        raise PolicyError([policy.problem(path, message) for path, message in problems])
    unheld: list[str] = []
    model_list: list[dict[str, Any]] = []
    fallbacks: list[dict[str, list[str]]] = []
    groups: dict[str, list[str]] = {}
    for intent, route in policy.routes.items():
        tools = [a for a in policy.chain(intent) if policy.models[a].is_tool]
        if tools:
            unheld.append(f"route {intent}: {', '.join(tools)} "
                          f"({', '.join(policy.models[a].target for a in tools)}) run as Python inside routekit; "
                          f"the proxy cannot call them: left out of its chain")
        order = proxy_chain(policy, intent)
        below = [a for a in order if below_floor(policy, a, route)]
        if route.on_exhausted == "degrade" and route.min_tier > 0:
            what = (f"the proxy falls back to {', '.join(below)} like any other candidate (the callback marks "
                    f"such records degraded)" if below else "the candidates below it are not in the proxy")
            unheld.append(f"route {intent}: quality floor min_tier {route.min_tier} with on_exhausted: degrade: "
                          f"{what}")
        if not order:
            unheld.append(f"route {intent}: no candidate the proxy can call: no model group")
            continue
        groups[intent] = order
        model_list += [_deployment(policy, intent, a, i == 0) for i, a in enumerate(order)]
        if len(order) > 1:
            fallbacks.append({intent: [group_name(intent, a, False) for a in order[1:]]})
        if route.verify is not None:
            unheld.append(f"route {intent}: verify (non_empty={route.verify.non_empty}"
                          + (", regex" if route.verify.regex else "") + (", json_schema" if route.verify.json_schema
                                                                          else "")
                          + (", callable" if route.verify.callable else "")
                          + "): the proxy does not check answers, so a failed check does not move on")
        if intent in policy.baselines:
            unheld.append(f"route {intent}: measured baseline min_score {policy.baselines[intent].min_score}: "
                          f"not enforced by the proxy (only tiers are)")
        if route.shadow:
            unheld.append(f"route {intent}: shadow trials on {route.shadow}: not run by the proxy")
        if route.router is not None:
            unheld.append(f"route {intent}: trained router {route.router.name}: the proxy always starts at "
                          f"{order[0]}")
        if route.stream_restart:
            unheld.append(f"route {intent}: stream_restart: the proxy does not restart a broken stream")
        if route.store_prompts:
            unheld.append(f"route {intent}: store_prompts: the routekit callback never stores prompts (hashed only)")
    for b in policy.budgets:
        unheld.append(f"budget {b.name} ({b.period} ${b.limit_usd:g}, on_limit {b.on_limit}): enforced by "
                      f"routekit's ledger, not by the proxy (give the proxy's keys or teams budgets of their own)")
    if any(v == "local" for v in policy.sensitivity.values()):
        local = [i for i, r in policy.routes.items() if r.boundary == "local"]
        unheld.append("sensitivity: the proxy cannot see a request's sensitivity; send private requests to a "
                      "route with boundary: local" + (f" ({', '.join(local)})" if local else ""))
    unheld.append("kill switch: routekit disable/enable does not reach the proxy (its model list is fixed when it "
                  "starts); take a deployment out through the proxy itself")
    unheld.append(f"circuit.max_cooldown_s {policy.circuit.max_cooldown_s:g}: the proxy's cooldown is "
                  f"cooldown_time ({policy.circuit.cooldown_s:g} s) whatever a provider's Retry-After says")

    router_settings: dict[str, Any] = {"num_retries": 0, "fallbacks": fallbacks,
                                       "allowed_fails": policy.circuit.failures - 1,
                                       "cooldown_time": policy.circuit.cooldown_s}
    if policy.state.backend == "redis" and policy.state.url_env:
        router_settings["redis_url"] = f"os.environ/{policy.state.url_env}"
    env = {"ROUTEKIT_POLICY": str(Path(policy.path).absolute())}
    if log_dir is not None:
        env["ROUTEKIT_LOG_DIR"] = str(Path(log_dir).absolute())
    config = {"model_list": model_list, "router_settings": router_settings,
              "litellm_settings": {"num_retries": 0, "callbacks": [CALLBACK]},
              # the proxy refuses to start without a master key; the key itself only by its variable's name
              "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
              "environment_variables": env}
    return ProxyConfig(config, unheld, groups)


def config_text(export: ProxyConfig, policy: Policy) -> str:
    """The config as YAML, headed by what the proxy cannot hold (as comments)."""
    import yaml

    head = [f"# LiteLLM proxy config compiled by `routekit export litellm-proxy` from {policy.path} "
            f"(version {policy.version}).", "# Clients send model: \"<intent>\"; fallbacks follow the route chains.",
            "# Not held by the proxy:"] + [f"#   - {line}" for line in export.unheld]
    return "\n".join(head) + "\n" + yaml.safe_dump(export.config, sort_keys=False, width=120)
