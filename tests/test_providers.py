"""Every provider for real through the Router and the demo policy's real prefixes: recorded tokens equal
what the simulator reported (in each vendor's own field names), recorded cost equals the price snapshot's
arithmetic, fallback across protocols, and deterministic tools as route candidates."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from toolkit.router import NoEligibleRoute, Router

from .conftest import DATA, DEMO_POLICY, read_records

# Demo alias -> (simulator protocol, litellm provider name it must be recorded under)
ALIASES = {
    "fast-openai": ("openai", "openai"), "mid-openai": ("azure", "azure"), "open-llama": ("openrouter", "openrouter"),
    "strong-anthropic": ("anthropic", "anthropic"), "strong-google": ("gemini", "gemini"),
    "mid-bedrock": ("bedrock", "bedrock"), "ollama-llama": ("ollama", "ollama_chat"),
}

# 1200 prompt tokens: 400 read from a cache, 150 written to one; 60 text tokens + 25 thinking tokens.
USAGE = {"input_tokens": 1200, "cached_tokens": 400, "cache_write_tokens": 150, "output_tokens": 60,
         "reasoning_tokens": 25}


def policy_with(tmp_path: Path, routes: dict[str, dict], models: dict | None = None) -> Path:
    """The demo policy's models (real prefixes, pointed at the simulator) with the given routes."""
    data = yaml.safe_load(DEMO_POLICY.read_text())
    data["models"].update(models or {})
    data["routes"] = routes
    p = tmp_path / "policy.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def expected_tokens(protocol: str, u: dict) -> tuple[int, int, int, int, int]:
    """(input incl. cached, output incl. reasoning, cache read, cache write, reasoning) from the usage block the
    simulator sent, read the way each vendor documents its fields."""
    if protocol in ("openai", "azure", "openrouter"):
        return (u["prompt_tokens"], u["completion_tokens"], u["prompt_tokens_details"]["cached_tokens"], 0,
                u["completion_tokens_details"]["reasoning_tokens"])
    if protocol == "anthropic":    # input_tokens excludes both cache reads and cache writes
        return (u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"],
                u["output_tokens"], u["cache_read_input_tokens"], u["cache_creation_input_tokens"], 0)
    if protocol == "gemini":       # cached inside promptTokenCount; thoughts billed as output beside candidates
        return (u["promptTokenCount"], u["candidatesTokenCount"] + u["thoughtsTokenCount"],
                u["cachedContentTokenCount"], 0, u["thoughtsTokenCount"])
    if protocol == "bedrock":      # like Anthropic, camelCase
        return (u["inputTokens"] + u["cacheReadInputTokens"] + u["cacheWriteInputTokens"], u["outputTokens"],
                u["cacheReadInputTokens"], u["cacheWriteInputTokens"], 0)
    return u["prompt_eval_count"], u["eval_count"], 0, 0, 0      # ollama


def snapshot_cost(price_key: str, tokens: tuple[int, int, int, int, int]) -> float:
    """The price snapshot's arithmetic, by hand from its JSON."""
    snap = json.loads(sorted((DATA / "prices").glob("*.json"))[-1].read_text())
    e = snap.get(price_key) or snap[price_key.split("/", 1)[1]]
    inp, out, read, write, reasoning = tokens
    r_in, r_out = e["input_cost_per_token"], e["output_cost_per_token"]
    r_read = e.get("cache_read_input_token_cost") or r_in
    r_write = e.get("cache_creation_input_token_cost") or r_in
    r_reason = e.get("output_cost_per_reasoning_token") or r_out
    return (inp - read - write) * r_in + read * r_read + write * r_write + (out - reasoning) * r_out \
        + reasoning * r_reason


@pytest.mark.parametrize("alias", list(ALIASES))
@pytest.mark.parametrize("streamed", [False, True], ids=["call", "stream"])
def test_recorded_tokens_and_cost_match_the_simulator(sim_env, tmp_path, log_dir, alias, streamed):
    protocol, provider = ALIASES[alias]
    router = Router(policy_with(tmp_path, {"work": {"primary": alias}}), log=log_dir)
    spec = router.policy.models[alias]
    wire = spec.model.split("/", 1)[1]
    sim_env.state.set(wire, USAGE)
    if streamed:
        stream = router.stream("work", "Estimate the cost of this request.")
        text = "".join(stream)
        result = stream.result
        assert text == result.text
    else:
        result = router.complete("work", "Estimate the cost of this request.")
    [rec] = read_records(log_dir)
    tokens = expected_tokens(protocol, sim_env.state.usage[(protocol, wire)])
    assert (rec["gen_ai.usage.input_tokens"], rec["gen_ai.usage.output_tokens"], rec["usage.cache_read_tokens"],
            rec["usage.cache_write_tokens"], rec["usage.reasoning_tokens"]) == tokens
    assert rec["gen_ai.provider.name"] == provider and rec["stream"] is streamed
    assert sim_env.state.stats[(protocol, wire)] == 1
    if spec.price is not None:     # not in the price map: the policy's override (USD per Mtok)
        p = spec.price
        expected = ((tokens[0]) * p.input_per_mtok + tokens[1] * p.output_per_mtok) / 1e6
    else:
        expected = snapshot_cost(spec.price_key or spec.model, tokens)
    assert rec["cost_usd"] == pytest.approx(expected, rel=1e-9) and result.cost_usd == rec["cost_usd"]
    assert rec["unpriced"] is False and rec["price_version"] == result.price_version


def test_a_model_missing_from_the_map_without_override_is_flagged_unpriced(sim_env, tmp_path, log_dir):
    odd = {"model": "ollama_chat/no-such-model", "tier": 1, "api_base": "${ROUTEKIT_SIM_URL}"}
    router = Router(policy_with(tmp_path, {"work": {"primary": "odd"}}, {"odd": odd}), log=log_dir)
    result = router.complete("work", "hello")
    [rec] = read_records(log_dir)
    assert result.cost_usd is None and rec["cost_usd"] is None and rec["unpriced"] is True
    assert rec["attempts"][0]["unpriced"] is True and rec["gen_ai.usage.input_tokens"] > 0


def test_anthropic_rate_limited_falls_back_to_gemini(sim_env, tmp_path, log_dir):
    p = policy_with(tmp_path, {"work": {"primary": "strong-anthropic", "fallbacks": ["strong-google"], "min_tier": 3}})
    sim_env.state.set("claude-sonnet-4-6", {"error_rate": 1.0, "error_status": 429, "retry_after_s": 12,
                                            "latency_ms": 15})
    router = Router(p, log=log_dir, sleep=lambda s: pytest.fail("no wait: a fallback was available"))
    result = router.complete("work", "Summarise the incident.")
    assert result.served_model == "strong-google" and result.fallback_used and result.provider == "gemini"
    [rec] = read_records(log_dir)
    first, second = rec["attempts"]
    assert (first["provider"], first["outcome"], first["error_class"], first["status"], first["retry_after_s"],
            first["retryable"]) == ("anthropic", "rate_limited", "RateLimitError", 429, 12, True)
    assert (second["provider"], second["outcome"], second["error_class"]) == ("gemini", "ok", None)
    assert first["latency_ms"] >= 15 and second["latency_ms"] > 0
    assert rec["gen_ai.provider.name"] == "gemini" and rec["gen_ai.response.model"] == "gemini-3.1-pro-preview"
    # Exactly one request per attempt: no SDK retry, no second try at the rate-limited vendor.
    assert dict(sim_env.state.stats) == {("anthropic", "claude-sonnet-4-6"): 1, ("gemini", "gemini-3.1-pro-preview"): 1}
    # The Retry-After keeps the next request away from Anthropic altogether.
    assert router.complete("work", "again").attempts[0].alias == "strong-google"
    assert sim_env.state.stats[("anthropic", "claude-sonnet-4-6")] == 1


def test_response_model_is_the_served_snapshot_never_an_alias(sim_env, tmp_path, log_dir):
    router = Router(policy_with(tmp_path, {"work": {"primary": "mid-openai"}}), log=log_dir)
    sim_env.state.set("gpt-4.1-mini", {"served_model": "gpt-4.1-mini-2025-04-14"})
    router.complete("work", "x")
    "".join(router.stream("work", "x"))
    recs = read_records(log_dir)
    assert [r["gen_ai.response.model"] for r in recs] == ["gpt-4.1-mini-2025-04-14"] * 2
    assert all(r["served_alias"] == "mid-openai" for r in recs)


# --- deterministic tools as route candidates --------------------------------------------------


def boom(messages: list[dict]) -> str:
    raise ValueError("no invoice number in the text")


TOOL_POLICY_MODELS = {"broken-tool": {"tool": "tests.test_providers:boom", "tier": 1}}


def test_tool_as_primary_costs_nothing_and_is_local(sim_env, tmp_path, log_dir):
    p = policy_with(tmp_path, {"extract": {"primary": "regex-extract", "fallbacks": ["fast-openai"]}})
    router = Router(p, log=log_dir)
    r = router.complete("extract", "Invoice from billing@acme.example dated 2026-11-02, total $1,240.50",
                        sensitivity="private")   # a private request: a tool runs in-process, inside the boundary
    assert r.served_model == "regex-extract" and not r.fallback_used
    assert json.loads(r.text) == {"emails": ["billing@acme.example"], "dates": ["2026-11-02"], "amounts": ["$1,240.50"]}
    [rec] = read_records(log_dir)
    [a] = rec["attempts"]
    assert (a["provider"], a["outcome"], a["cost_usd"], a["input_tokens"], a["output_tokens"]) == \
        ("routekit_tool", "ok", 0.0, 0, 0)
    assert a["latency_ms"] > 0 and rec["cost_usd"] == 0.0 and rec["unpriced"] is False
    assert rec["boundary"] == "local" and sum(sim_env.state.stats.values()) == 0


def test_a_failing_tool_falls_back_to_a_model(sim_env, tmp_path, log_dir):
    p = policy_with(tmp_path, {"extract": {"primary": "broken-tool", "fallbacks": ["fast-openai"]}},
                    TOOL_POLICY_MODELS)
    r = Router(p, log=log_dir).complete("extract", "no number here")
    assert [a.outcome for a in r.attempts] == ["tool_error", "ok"] and r.served_model == "fast-openai"
    assert r.attempts[0].error_class == "ValueError" and "no invoice number" in r.attempts[0].message


def test_tool_as_fallback_streams_too(sim_env, tmp_path, log_dir):
    p = policy_with(tmp_path, {"extract": {"primary": "fast-openai", "fallbacks": ["regex-extract"],
                                           "on_exhausted": "degrade", "min_tier": 1}})
    sim_env.state.set("gpt-4o-mini", {"down": True})
    stream = Router(p, log=log_dir).stream("extract", "mail a@b.example")
    assert json.loads("".join(stream))["emails"] == ["a@b.example"]
    assert stream.result.served_model == "regex-extract" and stream.result.cost_usd == 0.0


def test_a_tool_never_leaves_the_boundary_but_a_vendor_fallback_is_refused(sim_env, tmp_path, log_dir):
    p = policy_with(tmp_path, {"extract": {"primary": "broken-tool", "fallbacks": ["fast-openai"]}},
                    TOOL_POLICY_MODELS)
    with pytest.raises(NoEligibleRoute) as e:
        Router(p, log=log_dir).complete("extract", "x", sensitivity="private")
    assert [a.outcome for a in e.value.attempts] == ["tool_error"]
    assert [(s.alias, s.reason) for s in e.value.skipped] == [("fast-openai", "boundary")]
    assert sum(sim_env.state.stats.values()) == 0
