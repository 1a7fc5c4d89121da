"""Property-based tests over generated policies and failure patterns.

The transport here is a unit-test seam (a dict of scripted outcomes); the same
Router code runs against real litellm calls in test_router.py.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.costs import PriceBook, Usage
from toolkit.policy import ModelSpec, Policy, RouteSpec, CircuitSpec
from toolkit.router import NoEligibleRoute, RequestError, Router
from toolkit.transport import KINDS, Reply, TransportError

OUTCOMES = st.sampled_from(["ok", "ok", "ok", "empty_text", *KINDS])


class ScriptedTransport:
    def __init__(self, script: dict[str, str]):
        self.script = script
        self.calls: list[str] = []

    def complete(self, spec: ModelSpec, messages, *, max_tokens=None, options=None) -> Reply:
        self.calls.append(spec.alias)
        outcome = self.script[spec.alias]
        if outcome == "ok":
            return Reply(f"answer from {spec.alias}", Usage(10, 5), "sim", spec.alias, 1.0)
        raise TransportError("empty" if outcome == "empty_text" else outcome, "scripted", provider="sim")


@st.composite
def policies(draw):
    n = draw(st.integers(2, 6))
    models = {}
    for i in range(n):
        alias = f"m{i}"
        models[alias] = ModelSpec(alias=alias, model=f"openai/model-{i}", tier=draw(st.integers(0, 3)),
                                  boundary=draw(st.sampled_from(["local", "vendor"])),
                                  price={"input_per_mtok": 1, "output_per_mtok": 2})
    chain = draw(st.lists(st.sampled_from(sorted(models)), min_size=1, max_size=n, unique=True))
    route = RouteSpec(intent="work", primary=chain[0], fallbacks=tuple(chain[1:]),
                      min_tier=draw(st.integers(0, 3)), on_exhausted=draw(st.sampled_from(["fail", "degrade"])),
                      boundary=draw(st.sampled_from([None, "local"])))
    policy = Policy(path="generated.yaml", models=models, routes={"work": route}, budgets=(),
                    circuit=CircuitSpec(failures=100), sensitivity={"private": "local", "public": "vendor"},
                    version="gen")
    script = {a: draw(OUTCOMES) for a in models}
    sensitivity = draw(st.sampled_from([None, "private", "public", "Private"]))   # the last one: not declared
    return policy, script, sensitivity


@settings(max_examples=300, deadline=None)
@given(policies())
def test_boundary_and_floor_invariants(case):
    policy, script, sensitivity = case
    transport = ScriptedTransport(script)
    router = Router(policy, transport=transport, log=None, prices=PriceBook.load(), sleep=lambda s: None)
    route = policy.routes["work"]
    needs_local = route.boundary == "local" or sensitivity == "private"
    if sensitivity == "Private":   # a label the policy does not declare is refused before any call
        with pytest.raises(RequestError, match="unknown sensitivity 'Private'"):
            router.complete("work", "hello", sensitivity=sensitivity)
        assert transport.calls == []
        return
    try:
        r = router.complete("work", "hello", sensitivity=sensitivity)
    except NoEligibleRoute as e:
        r = None
        assert all(a.outcome != "ok" for a in e.attempts)
    # A local-boundary request never reaches a non-local model.
    if needs_local:
        assert all(policy.models[a].boundary == "local" for a in transport.calls)
    # Every call is a candidate of the route's chain, each at most twice (one short Retry-After wait).
    assert set(transport.calls) <= set(policy.chain("work"))
    if r is not None:
        served = policy.models[r.served_model]
        # Below the floor only when flagged degraded, and only where the route allows it.
        assert (served.tier < route.min_tier) == r.degraded
        if r.degraded:
            assert route.on_exhausted == "degrade"
        assert script[r.served_model] == "ok"
        assert r.fallback_used == (r.served_model != policy.chain("work")[0])
        # A degraded serve happens only after every eligible candidate at the floor failed or was rejected.
        if r.degraded:
            at_floor = [a for a in policy.chain("work") if policy.models[a].tier >= route.min_tier
                        and (not needs_local or policy.models[a].boundary == "local")]
            assert all(script[a] != "ok" or a not in transport.calls for a in at_floor)
