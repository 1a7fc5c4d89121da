"""The model-strategy playbook as functions: the questions a team brings to its routing, answered from what routekit
already records (the policy, the route log's rollups, baselines, drills, the kill switch's history, the price
snapshot).  Deterministic: no model writes the answers.

- ``blast`` (``routekit blast-radius``): what fails if a provider, model or region is unavailable, or when the
  models in use retire;
- ``recommend`` (``routekit recommend``): given this task class, which model tier, and why;
- ``policy_diff`` (``routekit policy diff``): what a policy change does before it ships (its rules, and a replay
  of the route log through it);
- ``keys`` (``routekit keys``): the API-key inventory, against key sprawl;
- ``readiness`` (``routekit readiness``): the launch checklist per intent.

Shared parts: ``decision`` (what the policy alone lets serve an intent: toolkit/eligibility.py's rules, never a
copy), ``traffic`` (per intent and model, from the rollups), ``deprecation`` (retirement dates from the price
snapshot), ``measurements`` (baseline score tables under a quality directory).  ``notebooks/readiness.ipynb`` shows
all of it; its tables come from the ``frame()`` methods here.
"""
from __future__ import annotations

from .blast import BlastRadius, IntentEffect, Removal, blast_radius, removal
from .decision import Choice, choose
from .deprecation import Deprecation, deprecations
from .keys import KeyInventory, KeyProblem, KeyUse, key_inventory
from .policy_diff import PolicyDiff, Replay, RuleChange, diff_policies
from .readiness import Check, Readiness, readiness
from .recommend import Candidate, Recommendation, recommend

__all__ = ["BlastRadius", "Candidate", "Check", "Choice", "Deprecation", "IntentEffect", "KeyInventory",
           "KeyProblem", "KeyUse", "PolicyDiff", "Readiness", "Recommendation", "Removal", "Replay", "RuleChange",
           "blast_radius", "choose", "deprecations", "diff_policies", "key_inventory", "readiness", "recommend",
           "removal"]
