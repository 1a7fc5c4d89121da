"""Agents' calls through the Router, for real: litellm's adapters, the simulator's seven protocols, the route log.

Tools, tool_choice, response_format (incl. json_schema), sampling parameters, image parts and tool turns go
through the four calls; tool calls come back normalized; capabilities filter candidates; structured answers and
tool arguments are verified and escalate; a fallback in the middle of a tool conversation is flagged.
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import jsonschema
import pytest
import yaml

from toolkit.agentloop import run_agent
from toolkit.chat import ToolCallDelta
from toolkit.errors import RequestError, StreamInterrupted
from toolkit.router import Router
from toolkit.tools import LOOKUP_INVOICE, lookup_invoice

from .conftest import read_records

# An argument value the simulator will put in a call (the only value its enum allows), to look for in the log.
MARKER = "Zanzibar-7731"
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                            "parameters": {"type": "object", "required": ["city"],
                                                           "properties": {"city": {"type": "string",
                                                                                   "enum": [MARKER]}}}}}
LABEL = {"type": "object", "properties": {"label": {"type": "string", "enum": ["billing", "bug", "how-to"]}},
         "required": ["label"], "additionalProperties": False}
SCHEMA = {"type": "json_schema", "json_schema": {"name": "triage", "schema": LABEL}}
ASK = "What is the weather in Zanzibar?"


@pytest.fixture
def router(sim_env, policy_copy, log_dir):
    return Router(policy_copy, log=log_dir)


def edited(policy_path, change) -> str:
    data = yaml.safe_load(policy_path.read_text())
    change(data)
    policy_path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(policy_path)


# --- the request surface ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,field", [
    ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools[0].function.name"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ({"response_format": {"type": "yaml"}}, "response_format.type"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 7}}}},
     "response_format.json_schema.schema"),
    ({"temperature": 3}, "temperature"), ({"top_p": "high"}, "top_p"), ({"seed": 1.5}, "seed"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"), ({"max_tokens": 0}, "max_tokens"),
    ({"logit_bias": {}}, "'logit_bias'"), ({"conversation_id": ""}, "conversation_id"),
    ({"team": ""}, "team"), ({"team": 3}, "team"),   # before: recorded as such (a budget's team never matched)
])
def test_bad_arguments_are_named_before_anything_is_sent(router, sim_env, log_dir, kwargs, field):
    with pytest.raises(RequestError, match=field.replace("[", r"\[").replace("]", r"\]")):
        router.complete("agent", ASK, **kwargs)
    with pytest.raises(RequestError):
        router.stream("agent", ASK, **kwargs)
    assert sum(sim_env.state.stats.values()) == 0 and read_records(log_dir) == []


@pytest.mark.parametrize("messages,field", [
    ([], "messages"), ("", "messages"), (" \n", "messages"),   # before: an empty prompt was sent, and paid for
    ([{"role": "robot", "content": "hi"}], r"messages\[0\].role"),
    ([{"role": "user", "content": [{"type": "audio", "data": "x"}]}], r"messages\[0\].content\[0\].type"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": "http://x"}]}],
     r"messages\[0\].content\[0\].image_url"),
    ([{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "call_9", "content": "x"}],
     r"messages\[1\].tool_call_id"),
    ([{"role": "assistant", "content": None}], r"messages\[0\].content"),
])
def test_bad_messages_are_named(router, messages, field):
    with pytest.raises(RequestError, match=field):
        router.complete("agent", messages)


def test_sampling_parameters_tools_and_images_reach_the_vendor_in_its_own_shape(router, sim_env, log_dir):
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    r = router.complete("triage", [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]}],
                        temperature=0.2, top_p=0.9, stop=["END"], seed=7, max_tokens=33, tools=[WEATHER],
                        tool_choice="none")
    body = sim_env.state.bodies[("openai", "gpt-4o-mini")]
    assert (body["temperature"], body["top_p"], body["stop"], body["seed"], body["max_tokens"]) == \
        (0.2, 0.9, ["END"], 7, 33)
    assert body["tools"][0]["function"]["name"] == "get_weather" and body["tool_choice"] == "none"
    assert body["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/png")
    assert r.tool_calls == () and r.finish_reason == "stop"
    # Anthropic takes no seed: not sent, and the record says so rather than the attempt failing
    router.complete("agent", "hello", seed=7, temperature=0.5)
    body = sim_env.state.bodies[("anthropic", "claude-haiku-4-5")]
    assert "seed" not in body and body["temperature"] == 0.5
    assert "seed not supported" in read_records(log_dir)[-1]["warnings"]


# --- tool calls through the four calls ---------------------------------------------------------------------------


def test_tool_calls_come_back_normalized_in_all_four_calls(router, sim_env, log_dir):
    def check(result):
        [call] = result.tool_calls
        assert call.name == "get_weather" and json.loads(call.arguments) == {"city": MARKER}
        assert result.finish_reason == "tool_calls" and result.served_model == "mid-anthropic"
        assert result.message == {"role": "assistant", "content": None, "tool_calls": [call.to_openai()]}

    check(router.complete("agent", ASK, tools=[WEATHER]))
    check(asyncio.run(router.acomplete("agent", ASK, tools=[WEATHER])))
    s = router.stream("agent", ASK, tools=[WEATHER])
    deltas = list(s)
    check(s.result)
    assert all(isinstance(d, ToolCallDelta) for d in deltas) and deltas[0].name == "get_weather"
    assert "".join(d.arguments for d in deltas) == s.result.tool_calls[0].arguments

    async def astream():
        s = router.astream("agent", ASK, tools=[WEATHER])
        return [d async for d in s], s.result
    deltas, result = asyncio.run(astream())
    check(result)
    records = read_records(log_dir)
    assert [(r["tools_offered"], r["tools_called"], r["finish_reason"]) for r in records] == \
        [("get_weather", "get_weather", "tool_calls")] * 4
    assert [r["stream"] for r in records] == [False, False, True, True]
    assert MARKER not in json.dumps(records)   # no tool arguments in the log: the route does not store prompts


def test_a_route_that_stores_prompts_keeps_the_tool_calls(sim_env, policy_copy, log_dir):
    path = edited(policy_copy, lambda d: d["routes"]["agent"].update(store_prompts=True))
    r = Router(path, log=log_dir).complete("agent", ASK, tools=[WEATHER])
    [rec] = read_records(log_dir)
    assert json.loads(rec["output"]) == r.message and MARKER in rec["output"]


def test_a_stream_cut_mid_tool_call_is_never_switched_silently(router, sim_env, log_dir):
    sim_env.state.set("claude-haiku-4-5", {"fault": "cut_stream", "fault_after": 1})
    shown = []
    with pytest.raises(StreamInterrupted):
        for d in router.stream("agent", ASK, tools=[WEATHER]):
            shown.append(d)
    assert shown and shown[0].name == "get_weather"
    [rec] = read_records(log_dir)
    assert rec["attempts"][0]["outcome"] == "stream_cut" and rec["outcome"] == "failed"
    assert sim_env.state.stats.get(("openai", "gpt-4o-mini"), 0) == 0


# --- capabilities ------------------------------------------------------------------------------------------------


def test_a_model_declared_without_tools_is_skipped_for_tools_and_serves_without(sim_env, policy_copy, log_dir):
    path = edited(policy_copy, lambda d: d["models"]["mid-anthropic"].update(supports={"tools": False}))
    router = Router(path, log=log_dir)
    r = router.complete("triage", ASK, tools=[WEATHER])   # triage: fast-openai, fast-google, mid-anthropic
    sim_env.state.set("gpt-4o-mini", {"down": True})
    sim_env.state.set("gemini-3.5-flash-lite", {"down": True})
    with pytest.raises(Exception, match="capability"):
        router.complete("triage", ASK, tools=[WEATHER])
    rec = read_records(log_dir)[-1]
    [skip] = [s for s in rec["skipped"] if s["alias"] == "mid-anthropic"]
    assert skip["reason"] == "capability" and "needs tools" in skip["detail"] and "policy supports" in skip["detail"]
    assert sim_env.state.stats.get(("anthropic", "claude-haiku-4-5"), 0) == 0   # never called
    r = router.complete("triage", ASK)   # the same request without tools: it serves
    assert r.served_model == "mid-anthropic" and r.fallback_used


def test_policy_check_names_a_candidate_lacking_a_required_capability(policy_copy):
    path = edited(policy_copy, lambda d: d["models"]["fast-openai"].update(supports={"tools": False}))
    out = subprocess.run([sys.executable, "-m", "toolkit.cli", "policy", "check", path], capture_output=True,
                         text=True)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "routes.agent.requires: route 'agent' requires tools but candidate 'fast-openai' " \
           "(openai/gpt-4o-mini) does not support it" in out.stderr


def test_policy_check_flags_an_unknown_capability_and_supports_settles_it(policy_copy):
    def require(d):
        d["routes"]["drafts"]["requires"] = ["tools"]    # ollama-llama: not in the price snapshot
    path = edited(policy_copy, require)
    out = subprocess.run([sys.executable, "-m", "toolkit.cli", "policy", "check", path], capture_output=True,
                         text=True)
    assert out.returncode == 1 and "whether candidate 'ollama-llama'" in out.stderr and "unknown" in out.stderr
    path = edited(policy_copy, lambda d: d["models"]["ollama-llama"].update(supports={"tools": True}))
    out = subprocess.run([sys.executable, "-m", "toolkit.cli", "policy", "check", path], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert "requires tools" in out.stdout


def test_an_image_needs_vision_and_a_tool_candidate_has_no_tools(sim_env, policy_copy, log_dir):
    path = edited(policy_copy, lambda d: d["models"]["mid-openai"].update(supports={"vision": False}))
    router = Router(path, log=log_dir)
    image = [{"role": "user", "content": [{"type": "text", "text": "Extract the invoice"},
                                          {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]
    r = router.complete("extraction", image)   # mid-openai (no vision) -> mid-bedrock (unknown: tried)
    assert r.served_model == "mid-bedrock"
    assert [(s.alias, s.reason) for s in r.skipped] == [("mid-openai", "capability"),
                                                      ("regex-extract", "capability")]
    r = router.complete("extraction", "Invoice from a@b.example", tools=[WEATHER])
    assert ("regex-extract", "capability") in [(s.alias, s.reason) for s in r.skipped]


# --- verification: structured answers and tool arguments --------------------------------------------------------


def test_a_schema_valid_answer_passes_and_bad_json_escalates(router, sim_env, log_dir):
    r = router.complete("triage", "Customer was charged twice", response_format=SCHEMA)
    jsonschema.validate(json.loads(r.text), LABEL)
    assert r.verification == "pass" and r.served_model == "fast-openai"
    sim_env.state.set("gpt-4o-mini", {"fault": "bad_json"})
    r = router.complete("triage", "Customer was charged twice", response_format=SCHEMA)
    assert r.served_model == "fast-google" and r.fallback_used and r.verification == "pass"
    first = r.attempts[0]
    assert (first.outcome, first.error_class) == ("verify_failed", "schema_invalid")
    assert "not valid JSON" in first.message
    rec = read_records(log_dir)[-1]
    assert rec["response_format"] == "json_schema" and rec["attempts"][0]["error_class"] == "schema_invalid"


def test_invalid_tool_arguments_escalate(router, sim_env, log_dir):
    sim_env.state.set("claude-haiku-4-5", {"fault": "bad_json"})
    r = router.complete("agent", ASK, tools=[WEATHER])
    assert [(a.alias, a.outcome, a.error_class) for a in r.attempts] == [
        ("mid-anthropic", "verify_failed", "tool_call_invalid"), ("fast-openai", "ok", None)]
    assert "'city' is a required property" in r.attempts[0].message
    assert json.loads(r.tool_calls[0].arguments) == {"city": MARKER}


def test_a_call_against_tool_choice_is_invalid(router, sim_env):
    # Ollama has no tool_choice on the wire: its model calls a tool although the request said none
    r = router.complete("drafts", ASK, tools=[WEATHER], tool_choice="none")
    assert [(a.alias, a.outcome, a.error_class) for a in r.attempts] == [
        ("ollama-llama", "verify_failed", "tool_call_invalid"), ("fast-openai", "ok", None)]
    assert r.tool_calls == () and r.text


# --- honest fallback in a tool conversation ---------------------------------------------------------------------


def test_agent_loop_primary_down_between_turns_is_finished_by_the_fallback_and_flagged(router, sim_env, log_dir):
    """Must show: Anthropic-protocol primary down between turns, the OpenAI-protocol fallback finishes the loop."""
    def primary_goes_down(turn, result):
        sim_env.state.set("claude-haiku-4-5", {"down": True})

    run = run_agent(router, "agent", "Was invoice INV-2231 charged twice?", [LOOKUP_INVOICE],
                    {"lookup_invoice": lookup_invoice}, between=primary_goes_down, conversation_id="c-1")
    assert run.finished and run.answer
    first, last = run.results
    assert first.served_model == "mid-anthropic" and first.provider == "anthropic"
    assert first.tool_calls[0].name == "lookup_invoice" and json.loads(first.tool_calls[0].arguments) == \
        {"invoice_id": "INV-2231"}
    assert last.served_model == "fast-openai" and last.provider == "openai" and last.fallback_used
    assert [m["role"] for m in run.messages] == ["user", "assistant", "tool", "assistant"]
    assert json.loads(run.messages[2]["content"])["charged"] == 2
    one, two = read_records(log_dir)
    assert one["tools_called"] == "lookup_invoice" and one["conversation_id"] == "c-1"
    assert one["earlier_tool_calls_provider"] is None and not one["conversation_switched"]
    assert (two["earlier_tool_calls_alias"], two["earlier_tool_calls_provider"]) == ("mid-anthropic", "anthropic")
    assert two["gen_ai.provider.name"] == "openai" and two["conversation_switched"] and two["fallback_used"]
    assert "pinned to mid-anthropic" in two["warnings"]
    assert two["attempts"][0]["outcome"] == "connection"


def test_a_sticky_conversation_stays_where_it_was_served_and_flags_leaving(router, sim_env, log_dir):
    sim_env.state.set("claude-haiku-4-5", {"down": True})
    r = router.complete("agent", ASK, tools=[WEATHER], conversation_id="c-2")
    assert r.served_model == "fast-openai"      # the conversation begins on the fallback ...
    sim_env.state.reset()
    messages = [{"role": "user", "content": ASK}, r.message,
                {"role": "tool", "tool_call_id": r.tool_calls[0].id, "content": "sunny"}]
    again = router.complete("agent", messages, tools=[WEATHER], conversation_id="c-2")
    assert again.served_model == "fast-openai" and not again.fallback_used   # ... and stays there
    other = router.complete("agent", ASK, tools=[WEATHER], conversation_id="c-3")
    assert other.served_model == "mid-anthropic"   # another conversation starts at the primary
    sim_env.state.set("gpt-4o-mini", {"error_rate": 1.0, "error_status": 503})
    moved = router.complete("agent", messages, tools=[WEATHER], conversation_id="c-2")
    assert moved.served_model == "mid-anthropic" and moved.fallback_used
    rec = read_records(log_dir)[-1]
    assert rec["requested_alias"] == "fast-openai" and rec["conversation_switched"]
    assert rec["earlier_tool_calls_alias"] == "fast-openai" and "pinned to fast-openai" in rec["warnings"]


def test_tool_calls_made_elsewhere_are_unknown_not_guessed(router, sim_env, log_dir):
    messages = [{"role": "user", "content": ASK},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_from_before", "type": "function",
                     "function": {"name": "get_weather", "arguments": json.dumps({"city": MARKER})}}]},
                {"role": "tool", "tool_call_id": "call_from_before", "content": "sunny"}]
    r = router.complete("agent", messages, tools=[WEATHER])
    assert r.text and not r.tool_calls
    rec = read_records(log_dir)[-1]
    assert (rec["earlier_tool_calls_alias"], rec["earlier_tool_calls_provider"]) == ("unknown", "unknown")
    assert not rec["conversation_switched"]


NO_NETWORK = """
import json, os, sys
from tests.netguard import refuse_non_loopback
from toolkit.router import Router
schema = {"type": "json_schema", "json_schema": {"name": "t", "schema": {"type": "object",
          "properties": {"label": {"type": "string"}}, "required": ["label"]}}}
tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
with refuse_non_loopback() as guard:
    router = Router(sys.argv[1], log=sys.argv[2])
    a = router.complete("agent", "label this", response_format=schema)
    b = router.complete("agent", "call f", tools=tools)
print(json.dumps({"refused": guard.refused, "served": [a.served_model, b.served_model],
                  "calls": [c.name for c in b.tool_calls]}))
"""


def test_agent_calls_reach_nothing_but_the_simulator(sim_env, policy_copy, log_dir):
    """litellm fetches Anthropic's beta-header table from the network on the first call with response_format, and
    imports its MCP gateway (the mcp package) for every call with tools: neither may happen in routekit's calls."""
    from .conftest import ROOT

    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("LITELLM_LOCAL_ANTHROPIC")}
    out = subprocess.run([sys.executable, "-c", NO_NETWORK, str(policy_copy), str(log_dir)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found == {"refused": [], "served": ["mid-anthropic", "mid-anthropic"], "calls": ["f"]}


@pytest.mark.parametrize("schema,value", [
    (LABEL, {"label": "bug"}), (LABEL, {"label": "other"}), (LABEL, {"label": "bug", "extra": 1}), (LABEL, {}),
    ({"type": "object", "properties": {"d": {"type": "string", "format": "date"}}}, {"d": "not a date"}),
    ({"type": "object", "properties": {"n": {"type": "integer", "default": 3}}}, {}),
    ({"type": "object", "properties": {"n": {"type": "integer", "default": 3}}}, {"n": "3"}),
    ({"type": "array", "prefixItems": [{"type": "integer"}]}, ["x"]),                      # 2020-12 only
    ({"$defs": {"i": {"type": "integer"}}, "type": "object", "properties": {"x": {"$ref": "#/$defs/i"}}}, {"x": 1.5}),
])
def test_schema_checks_agree_with_jsonschema_and_change_nothing(schema, value):
    from toolkit.chat import schema_validator

    before = json.dumps(value)
    reference = jsonschema.validators.validator_for(schema)(schema)
    assert schema_validator(schema).is_valid(value) == reference.is_valid(value)
    assert json.dumps(value) == before   # no default filled in


def test_a_remote_ref_is_never_fetched(router, sim_env):
    from .netguard import refuse_non_loopback

    fmt = {"type": "json_schema", "json_schema": {"name": "r", "schema": {"$ref": "https://schemas.example.com/x"}}}
    with refuse_non_loopback() as guard:
        r = router.complete("triage", "label it", response_format=fmt)
    assert guard.refused == []
    assert r.attempts[0].error_class == "schema_invalid" and "cannot be applied" in r.attempts[0].message


def test_a_routes_verify_schema_is_checked_at_load(tmp_path):
    from toolkit.policy import PolicyError, load_policy

    p = tmp_path / "p.yaml"
    p.write_text("models:\n  a: {model: openai/gpt-4o-mini, tier: 1}\n"
                 "routes:\n  r: {primary: a, verify: {json_schema: {type: 7}}}\n")
    with pytest.raises(PolicyError, match=r"p.yaml:4: routes.r.verify: json_schema is not a valid JSON schema"):
        load_policy(p)
