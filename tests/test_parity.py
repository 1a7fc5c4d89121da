"""The four ways of calling the Router — complete, acomplete, stream, astream — drive one decision.

For the same fault pattern (through litellm's real adapters and the simulator) each must reach the same decision
and leave the same record: which candidates were skipped and why, which were tried and how each attempt ended,
who served, whether it was a fallback or degraded, what it cost.  Only what is about the call itself may differ
(ids, times, the ``stream`` flag).
"""
from __future__ import annotations

import asyncio

import pytest

from toolkit.errors import RoutingError
from toolkit.router import Router

from .conftest import read_records

# (intent, simulator changes per model, disabled aliases)
PATTERNS = {
    "primary down": ("synthesis", {"claude-sonnet-4-6": {"down": True}}, ()),
    "429 then 500 then served": ("triage", {"gpt-4o-mini": {"error_rate": 1.0, "error_status": 429,
                                                            "retry_after_s": 60},
                                            "gemini-3.5-flash-lite": {"error_rate": 1.0, "error_status": 500}}, ()),
    "below the floor: fails loudly": ("synthesis", {"claude-sonnet-4-6": {"down": True},
                                                    "gpt-4.1": {"error_rate": 1.0, "error_status": 503}}, ()),
    "degraded where allowed": ("extraction", {"gpt-4.1-mini": {"error_rate": 1.0, "error_status": 429},
                                              "anthropic.claude-3-5-haiku-20241022-v1:0": {"error_rate": 1.0,
                                                                                         "error_status": 500}}, ()),
    "kill switch": ("code", {}, ("strong-openai",)),
    "non-retryable stops": ("review", {"gemini-3.1-pro-preview": {"error_rate": 1.0, "error_status": 401}}, ()),
}
DRIVERS = ("complete", "acomplete", "stream", "astream")
# what may differ between the ways of calling: the call itself, not the decision
VOLATILE = {"request_id", "timestamp", "latency_ms", "stream", "prompt_hash", "prompt_tokens",
            "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "cost_usd", "failed_cost_usd",
            "gen_ai.response.model"}


def call(router: Router, how: str, intent: str):
    prompt = "Summarise the incident: the invoice service was down for 4 minutes at 2026-11-02 09:00."
    try:
        if how == "complete":
            return router.complete(intent, prompt)
        if how == "acomplete":
            return asyncio.run(router.acomplete(intent, prompt))
        if how == "stream":
            s = router.stream(intent, prompt)
            "".join(d for d in s if isinstance(d, str))
            return s.result

        async def astream():
            s = router.astream(intent, prompt)
            async for _ in s:
                pass
            return s.result

        return asyncio.run(astream())
    except RoutingError as e:
        return e


def decision(record: dict) -> dict:
    """A record without what is about the call itself; attempts by how they ended, not how long they took."""
    out = {k: v for k, v in record.items() if k not in VOLATILE}
    out["attempts"] = [(a["alias"], a["outcome"], a["status"], a["retryable"]) for a in record["attempts"]]
    out["skipped"] = [(s["alias"], s["reason"]) for s in record["skipped"]]
    return out


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_every_way_of_calling_makes_the_same_decision(pattern, sim_env, policy_copy, tmp_path):
    intent, behaviours, disabled = PATTERNS[pattern]
    seen = {}
    for how in DRIVERS:
        sim_env.state.reset()
        for model, b in behaviours.items():
            sim_env.state.set(model, b)
        log = tmp_path / how
        router = Router(policy_copy, log=log, sleep=lambda s: None)
        for alias in disabled:
            router.overrides.disable(alias, "parity test", 60, by="test")
        outcome = call(router, how, intent)
        for alias in disabled:
            router.overrides.enable(alias)
        [record] = read_records(log)
        assert record["stream"] is how.endswith("stream")
        if isinstance(outcome, Exception):
            assert outcome.record["request_id"] == record["request_id"]
        else:
            assert outcome.record == record and outcome.served_model == record["served_alias"]
        seen[how] = decision(record)
    baseline = seen["complete"]
    assert baseline["attempts"] or baseline["skipped"]
    for how in DRIVERS[1:]:
        assert seen[how] == baseline, f"{how} decided differently from complete ({pattern})"
