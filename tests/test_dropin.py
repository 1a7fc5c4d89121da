"""Drop-in for agent frameworks: routekit as a litellm custom provider, and RoutedClient returning the OpenAI SDK's
own types — through the real Router, litellm and the simulator."""
from __future__ import annotations

import asyncio
import json

import pytest

import toolkit
from toolkit.agentloop import run_agent
from toolkit.errors import RequestError
from toolkit.tools import LOOKUP_INVOICE, lookup_invoice

from .conftest import read_records

ASK = [{"role": "user", "content": "Was invoice INV-2231 charged twice?"}]


@pytest.fixture
def routed(sim_env, policy_copy, log_dir):
    from toolkit.transport import litellm_module

    lit = litellm_module()
    before = list(lit.custom_provider_map)
    router = toolkit.register_litellm_provider(policy_copy, log=log_dir)
    yield lit, router
    lit.custom_provider_map = before


def test_litellm_completion_with_tools_routes_through_the_policy(routed, log_dir):
    pytest.importorskip("mcp", reason="litellm imports its MCP gateway for any call with tools: routekit[agents]")
    lit, _ = routed
    r = lit.completion(model="routekit/agent", messages=ASK, tools=[LOOKUP_INVOICE],
                       metadata={"team": "support", "conversation_id": "c-7"})
    [call] = r.choices[0].message.tool_calls
    assert call.function.name == "lookup_invoice" and json.loads(call.function.arguments) == {"invoice_id": "INV-2231"}
    assert r.choices[0].finish_reason == "tool_calls" and r.routekit["served_model"] == "mid-anthropic"
    [rec] = read_records(log_dir)
    assert (rec["team"], rec["conversation_id"], rec["tools_called"]) == ("support", "c-7", "lookup_invoice")

    chunks = list(lit.completion(model="routekit/agent", messages=ASK, tools=[LOOKUP_INVOICE], stream=True))
    pieces = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert pieces[0].function.name == "lookup_invoice" and pieces[0].id
    assert json.loads("".join(p.function.arguments or "" for p in pieces)) == {"invoice_id": "INV-2231"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_litellm_async_and_errors(routed, sim_env):
    lit, _ = routed
    r = asyncio.run(lit.acompletion(model="routekit/triage", messages=[{"role": "user", "content": "hi"}],
                                    temperature=0.3, max_completion_tokens=20))
    assert r.choices[0].message.content.startswith("[gpt-4o-mini]")
    assert sim_env.state.bodies[("openai", "gpt-4o-mini")]["max_tokens"] == 20
    with pytest.raises(lit.NotFoundError, match="unknown intent 'poetry'"):
        lit.completion(model="routekit/poetry", messages=ASK)
    with pytest.raises(lit.BadRequestError, match="temperature must be"):
        lit.completion(model="routekit/triage", messages=ASK, temperature=9)
    for model in ("gpt-4o-mini", "gemini-3.5-flash-lite", "claude-haiku-4-5"):
        sim_env.state.set(model, {"down": True})
    with pytest.raises(lit.ServiceUnavailableError, match="no eligible candidate"):
        lit.completion(model="routekit/triage", messages=ASK)


def test_routed_client_returns_the_openai_sdks_types_and_runs_an_agent_loop(sim_env, policy_copy, log_dir):
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    client = toolkit.RoutedClient(policy_copy, log=log_dir)
    r = client.chat.completions.create(model="agent", messages=ASK, tools=[LOOKUP_INVOICE])
    assert isinstance(r, ChatCompletion)
    [call] = r.choices[0].message.tool_calls
    follow = ASK + [r.choices[0].message.model_dump(exclude_none=True),
                    {"role": "tool", "tool_call_id": call.id,
                     "content": json.dumps(lookup_invoice(**json.loads(call.function.arguments)))}]
    final = client.chat.completions.create(model="agent", messages=follow, tools=[LOOKUP_INVOICE],
                                           conversation_id="c-9")
    assert isinstance(final, ChatCompletion) and final.choices[0].finish_reason == "stop"
    assert "charged" in final.choices[0].message.content
    assert read_records(log_dir)[-1]["earlier_tool_calls_alias"] == "mid-anthropic"

    chunks = list(client.chat.completions.create(model="agent", messages=ASK, tools=[LOOKUP_INVOICE], stream=True))
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert chunks[0].choices[0].delta.tool_calls[0].function.name == "lookup_invoice"
    assert chunks[-1].choices[0].finish_reason == "tool_calls" and chunks[-1].usage.completion_tokens > 0

    with pytest.raises(RequestError, match="'n'"):
        client.chat.completions.create(model="agent", messages=ASK, n=2)


def test_the_agent_loop_helper_feeds_tool_errors_back(sim_env, policy_copy, log_dir):
    router = toolkit.Router(policy_copy, log=log_dir)

    def broken(invoice_id: str) -> dict:
        raise ConnectionError("billing system unreachable")

    run = run_agent(router, "agent", ASK, [LOOKUP_INVOICE], {"lookup_invoice": broken})
    assert run.finished and run.messages[2]["content"].startswith("error: ConnectionError")
    run = run_agent(router, "agent", ASK, [LOOKUP_INVOICE], {}, max_turns=1)
    assert not run.finished and run.answer is None and run.messages[-1]["content"].startswith("error: there is no")
