"""The simulator speaks tools and structured output in all seven protocols, streamed and not, judged through
litellm's real adapters and routekit's transport (tool calls normalized, whatever the vendor)."""
from __future__ import annotations

import json

import jsonschema
import pytest

from toolkit.chat import ToolCallDelta, chat_options
from toolkit.policy import ModelSpec
from toolkit.sim import PROVIDERS
from toolkit.sim.schemas import example_of, violation_of
from toolkit.transport import LiteLLMTransport, Reply, TransportError

WEATHER = {"type": "object", "properties": {"city": {"type": "string", "minLength": 2},
                                            "days": {"type": "integer", "minimum": 1, "maximum": 7}},
           "required": ["city", "days"], "additionalProperties": False}
INVOICE = {"type": "object", "properties": {"invoice_id": {"type": "string", "pattern": "^INV-"}},
           "required": ["invoice_id"]}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                            "parameters": WEATHER}},
         {"type": "function", "function": {"name": "lookup_invoice", "description": "An invoice by id",
                                            "parameters": INVOICE}}]
LABEL = {"type": "object", "properties": {"label": {"type": "string", "enum": ["billing", "bug", "how-to"]},
                                          "confidence": {"type": "number", "minimum": 0, "maximum": 1}},
         "required": ["label", "confidence"], "additionalProperties": False}
SCHEMA = {"type": "json_schema", "json_schema": {"name": "triage", "schema": LABEL, "strict": True}}
ASK = [{"role": "user", "content": "What is the weather in Paris this week?"}]
ANSWERED = ASK + [{"role": "assistant", "content": None, "tool_calls": [
    {"id": "call_abc123", "type": "function", "function": {"name": "get_weather",
                                                           "arguments": '{"city": "Paris", "days": 3}'}}]},
    {"role": "tool", "tool_call_id": "call_abc123", "content": "sunny, 21C"}]
CASES = [(p, m) for p in PROVIDERS for m in ("call", "stream")]


@pytest.fixture(scope="module")
def transport():
    return LiteLLMTransport()


def spec_for(sim, protocol: str) -> ModelSpec:
    model, suffix, extra = PROVIDERS[protocol]
    return ModelSpec(alias=protocol, model=model, tier=1, api_base=sim.url + suffix, timeout_s=5, **extra)


def run(transport, spec, messages, mode, **params) -> tuple[Reply, list]:
    options = chat_options(params)
    if mode == "call":
        return transport.complete(spec, messages, options=options), []
    items = list(transport.stream(spec, messages, options=options))
    assert isinstance(items[-1], Reply)
    return items[-1], items[:-1]


def test_schema_examples_validate_and_violations_do_not():
    for schema in (WEATHER, INVOICE | {"properties": {"invoice_id": {"type": "string"}}}, LABEL,
                   {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/i"},
                                                               "minItems": 2}}, "required": ["items"],
                    "$defs": {"i": {"anyOf": [{"type": "integer", "exclusiveMinimum": 3}, {"type": "null"}]}}}):
        jsonschema.validate(example_of(schema), schema)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(violation_of(schema), schema)


@pytest.mark.parametrize("protocol,mode", CASES)
def test_a_request_offering_tools_gets_a_call_with_valid_arguments(sim_env, transport, protocol, mode):
    reply, deltas = run(transport, spec_for(sim_env, protocol), ASK, mode, tools=TOOLS)
    [call] = reply.tool_calls
    assert call.name == "get_weather" and call.id and reply.finish_reason == "tool_calls"
    jsonschema.validate(json.loads(call.arguments), WEATHER)
    if mode == "stream":   # passed on as it arrived: the pieces add up to the call
        pieces = [d for d in deltas if isinstance(d, ToolCallDelta)]
        assert pieces and pieces[0].name == "get_weather" and pieces[0].id == call.id
        assert "".join(d.arguments for d in pieces) == call.arguments


@pytest.mark.parametrize("protocol,mode", CASES)
def test_tool_choice_names_the_tool_and_a_tool_result_gets_text(sim_env, transport, protocol, mode):
    spec = spec_for(sim_env, protocol)
    reply, _ = run(transport, spec, ASK, mode, tools=TOOLS,
                   tool_choice={"type": "function", "function": {"name": "lookup_invoice"}})
    # Ollama's /api/chat has no tool_choice (litellm drops it): the model picks, here the first tool — the Router
    # then finds the call breaks the request's tool_choice (test_agent_calls.py)
    ollama = protocol == "ollama"
    assert [c.name for c in reply.tool_calls] == ["get_weather" if ollama else "lookup_invoice"]
    before = sum(sim_env.state.stats.values())
    reply, _ = run(transport, spec, ASK, mode, tools=TOOLS, tool_choice="none")
    assert bool(reply.tool_calls) is ollama and (ollama or reply.text.strip())
    assert sum(sim_env.state.stats.values()) == before + 1   # one request, whatever litellm refused first
    if protocol == "bedrock":   # Converse has no "none": the tools were not sent, and the reply says so
        assert any("tool_choice none" in n for n in reply.notes)
        assert "toolConfig" not in sim_env.state.bodies[("bedrock", spec.model.split("/", 1)[1])]
    reply, _ = run(transport, spec, ANSWERED, mode, tools=TOOLS)
    assert reply.tool_calls == () and reply.text.strip() and reply.finish_reason == "stop"


@pytest.mark.parametrize("protocol,mode", CASES)
def test_a_json_schema_request_gets_a_schema_valid_answer_and_bad_json_breaks_it(sim_env, transport, protocol, mode):
    spec = spec_for(sim_env, protocol)
    reply, _ = run(transport, spec, ASK, mode, response_format=SCHEMA)
    jsonschema.validate(json.loads(reply.text), LABEL)
    assert reply.finish_reason == "stop"
    sim_env.state.set(spec.model.split("/", 1)[1], {"fault": "bad_json"})
    reply, _ = run(transport, spec, ASK, mode, response_format=SCHEMA)
    with pytest.raises((ValueError, jsonschema.ValidationError)):
        jsonschema.validate(json.loads(reply.text), LABEL)   # not JSON at all, or not valid for the schema
    reply, _ = run(transport, spec, ASK, mode, tools=TOOLS)
    with pytest.raises((ValueError, jsonschema.ValidationError)):
        jsonschema.validate(json.loads(reply.tool_calls[0].arguments), WEATHER)


@pytest.mark.parametrize("protocol", PROVIDERS)
def test_a_stream_cut_mid_tool_call_fails_with_what_was_shown(sim_env, transport, protocol):
    spec = spec_for(sim_env, protocol)
    sim_env.state.set(spec.model.split("/", 1)[1], {"fault": "cut_stream", "fault_after": 1})
    shown = []
    with pytest.raises(TransportError) as e:
        for item in transport.stream(spec, ASK, options=chat_options({"tools": TOOLS})):
            shown.append(item)
    assert e.value.retryable and e.value.partial   # the caller saw part of the call: never replaced silently
    assert any(isinstance(d, ToolCallDelta) and d.name == "get_weather" for d in shown)
