"""Streaming through the Router: fall back before the first token, never silently after it."""
from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from toolkit.router import NoEligibleRoute, Router, StreamInterrupted, StreamRestart

from .conftest import read_records
from .test_providers import policy_with

PROMPT = "Summarise the week in one line."


@pytest.fixture
def router(sim_env, policy_copy, log_dir):
    return Router(policy_copy, log=log_dir)


def test_stream_serves_and_records_like_complete(router, sim_env, log_dir):
    stream = router.stream("synthesis", PROMPT, team="research")
    deltas = list(stream)
    assert len(deltas) > 3 and all(isinstance(d, str) for d in deltas)
    r = stream.result
    assert "".join(deltas) == r.text == "[claude-sonnet-4-6] " + PROMPT
    assert r.served_model == "strong-anthropic" and not r.restarted and r.cost_usd > 0
    called = router.complete("synthesis", PROMPT, team="research")
    streamed_rec, called_rec = read_records(log_dir)
    assert streamed_rec["stream"] is True and called_rec["stream"] is False
    for field in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "cost_usd", "gen_ai.response.model",
                  "gen_ai.provider.name", "output_hash", "served_alias"):
        assert streamed_rec[field] == called_rec[field], field
    assert called.text == r.text


def test_cut_after_first_token_is_a_clear_error_not_a_silent_switch(router, sim_env, log_dir):
    sim_env.state.set("claude-sonnet-4-6", {"fault": "cut_stream", "fault_after": 2})
    stream = router.stream("synthesis", PROMPT)
    got = []
    with pytest.raises(StreamInterrupted) as e:
        for d in stream:
            got.append(d)
    assert got == ["[claude-sonnet-4-6]", " Summarise"] and e.value.partial == "".join(got)
    assert "not switched to another model" in str(e.value) and "strong-anthropic" in str(e.value)
    [rec] = read_records(log_dir)
    assert rec["outcome"] == "failed" and rec["error_kind"] == "stream_cut" and rec["served_alias"] is None
    [a] = rec["attempts"]
    assert a["outcome"] == "stream_cut" and a["error_class"] == "APIConnectionError"
    assert a["message"].startswith("connection after 29 characters")
    assert dict(sim_env.state.stats) == {("anthropic", "claude-sonnet-4-6"): 1}   # the fallback was never asked


def test_stalled_stream_after_first_token_is_a_clear_error(sim_env, tmp_path, log_dir):
    p = policy_with(tmp_path, {"work": {"primary": "strong-google", "fallbacks": ["strong-openai"]}})
    text = p.read_text().replace("timeout_s: 20", "timeout_s: 0.5")
    p.write_text(text)
    sim_env.state.set("gemini-3.1-pro-preview", {"fault": "stall_stream"})
    with pytest.raises(StreamInterrupted) as e:
        list(Router(p, log=log_dir).stream("work", PROMPT))
    assert e.value.cause.kind == "timeout" and e.value.partial == "[gemini-3.1-pro-preview]"
    assert read_records(log_dir)[0]["attempts"][0]["outcome"] == "stream_cut"


@pytest.mark.parametrize("fault, outcome", [({"fault": "cut_stream", "fault_after": 0}, "connection"),
                                            ({"error_rate": 1.0, "error_status": 503}, "server_error"),
                                            ({"empty": True}, "empty")],
                         ids=["cut-before-first-token", "503", "empty"])
def test_failure_before_first_token_falls_back(router, sim_env, log_dir, fault, outcome):
    sim_env.state.set("claude-sonnet-4-6", fault)
    stream = router.stream("synthesis", PROMPT)
    deltas = list(stream)
    assert all(isinstance(d, str) for d in deltas)            # no restart event: nothing had been shown
    assert "".join(deltas) == "[gpt-4.1] " + PROMPT
    r = stream.result
    assert r.served_model == "strong-openai" and r.fallback_used and not r.restarted
    assert [a.outcome for a in r.attempts] == [outcome, "ok"]
    assert read_records(log_dir)[0]["attempt_count"] == 2


def test_restart_only_where_the_route_opts_in_and_flagged(sim_env, tmp_path, log_dir):
    p = policy_with(tmp_path, {"work": {"primary": "strong-anthropic", "fallbacks": ["strong-openai"],
                                        "stream_restart": True}})
    sim_env.state.set("claude-sonnet-4-6", {"fault": "cut_stream"})
    stream = Router(p, log=log_dir).stream("work", PROMPT)
    events = list(stream)
    restart = [i for i, e in enumerate(events) if isinstance(e, StreamRestart)]
    assert restart == [1] and events[0] == "[claude-sonnet-4-6]"
    assert events[1] == StreamRestart("strong-anthropic", "connection", len("[claude-sonnet-4-6]"))
    assert "".join(events[2:]) == stream.result.text == "[gpt-4.1] " + PROMPT
    assert stream.result.restarted and "RESTARTED" in stream.result.explain()
    [rec] = read_records(log_dir)
    assert rec["outcome"] == "served" and [a["outcome"] for a in rec["attempts"]] == ["stream_cut", "ok"]


def test_async_stream_falls_back_and_refuses_silent_switch(router, sim_env, log_dir):
    async def collect(intent):
        s = router.astream(intent, PROMPT)
        return [d async for d in s], s.result

    sim_env.state.set("gpt-4.1", {"down": True})
    deltas, result = asyncio.run(collect("code"))
    assert result.served_model == "strong-anthropic" and "".join(deltas) == result.text
    sim_env.state.set("claude-sonnet-4-6", {"fault": "cut_stream"})
    with pytest.raises(StreamInterrupted):
        asyncio.run(collect("synthesis"))
    assert [r["outcome"] for r in read_records(log_dir)] == ["served", "failed"]


def test_a_stream_the_caller_abandons_is_recorded_and_its_budget_settled(sim_env, policy_copy, log_dir):
    settled = []

    class Budget:
        def reserve(self, *, alias, **kw):
            return alias

        def settle(self, hold, cost_usd):
            settled.append((hold, cost_usd))

    router = Router(policy_copy, log=log_dir, budgets=Budget())
    with router.stream("synthesis", PROMPT) as stream:
        assert next(stream) == "[claude-sonnet-4-6]"
    [rec] = read_records(log_dir)
    assert rec["outcome"] == "failed" and rec["error_kind"] == "abandoned"
    assert [a["outcome"] for a in rec["attempts"]] == ["abandoned"]
    assert settled == [("strong-anthropic", 0.0)]
    assert router.circuit.snapshot().get("strong-anthropic", {}).get("consecutive_failures", 0) == 0


def test_stream_never_escalates_after_showing_a_failed_verification(sim_env, tmp_path, log_dir):
    p = policy_with(tmp_path, {"work": {"primary": "fast-openai", "fallbacks": ["strong-openai"],
                                        "verify": {"regex": "^never"}}})
    stream = Router(p, log=log_dir).stream("work", PROMPT)
    list(stream)
    assert stream.result.served_model == "fast-openai" and stream.result.verification == "fail"
    assert sim_env.state.stats.get(("openai", "gpt-4.1"), 0) == 0


def test_every_candidate_failing_before_a_token_is_no_eligible_route(router, sim_env):
    for m in ("claude-sonnet-4-6", "gpt-4.1"):
        sim_env.state.set(m, {"down": True})
    with pytest.raises(NoEligibleRoute, match="below_floor"):
        list(router.stream("synthesis", PROMPT))


def cli(policy, log, *args):
    return subprocess.run([sys.executable, "-m", "toolkit.cli", "route", "--policy", str(policy), "--log", str(log),
                           *args], capture_output=True, text=True)


def test_cli_route_stream(sim_env, policy_copy, tmp_path):
    r = cli(policy_copy, tmp_path / "log", "--intent", "review", "--stream", "check this diff")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("[gemini-3.1-pro-preview] check this diff\n") and "strong-google" in r.stdout
    sim_env.state.set("gemini-3.1-pro-preview", {"fault": "cut_stream"})
    r = cli(policy_copy, tmp_path / "log", "--intent", "review", "--stream", "check this diff")
    assert r.returncode == 1 and r.stdout == "[gemini-3.1-pro-preview]\n"
    assert "broke after 24 characters" in r.stderr and "Traceback" not in r.stderr
