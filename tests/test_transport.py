"""The transport against the simulator, per protocol: served-model honesty, usage streamed or not,
async stream deadlines, provider-reported cost, and what an error keeps (class, status, scrubbed text)."""
from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import litellm
import pytest

from toolkit.policy import ModelSpec
from toolkit.sim import PROVIDERS
from toolkit.transport import LiteLLMTransport, Reply, TransportError, _reply, classify

MSG = [{"role": "user", "content": "Name three rivers in Europe."}]


@pytest.fixture(scope="module")
def transport():
    return LiteLLMTransport()


@pytest.fixture
def specs(sim_env):
    return {p: ModelSpec(alias=p, model=m, tier=1, api_base=sim_env.url + suffix, timeout_s=2, **extra)
            for p, (m, suffix, extra) in PROVIDERS.items()}


def wire(spec: ModelSpec) -> str:
    return spec.model.split("/", 1)[1]


def streamed(transport, spec) -> tuple[list[str], Reply]:
    items = list(transport.stream(spec, MSG))
    return items[:-1], items[-1]


@pytest.mark.parametrize("protocol", list(PROVIDERS))
def test_response_model_is_the_providers_word_streamed_or_not(transport, specs, sim_env, protocol):
    spec = specs[protocol]
    sim_env.state.set(wire(spec), {"served_model": "snapshot-2025-06-01"})
    called = transport.complete(spec, MSG).response_model
    deltas, reply = streamed(transport, spec)
    # Bedrock Converse names no model; litellm drops Ollama's name from a non-streamed answer:
    # then the requested model it is, without litellm's prefix and never a policy alias.
    says_in_call = protocol not in ("bedrock", "ollama")
    assert called == ("snapshot-2025-06-01" if says_in_call else wire(spec))
    assert reply.response_model == ("snapshot-2025-06-01" if protocol != "bedrock" else wire(spec))
    assert "".join(deltas) == reply.text and reply.text.startswith(f"[{wire(spec)}]")


@pytest.mark.parametrize("protocol", list(PROVIDERS))
def test_streamed_usage_equals_the_called_usage(transport, specs, sim_env, protocol):
    spec = specs[protocol]
    sim_env.state.set(wire(spec), {"input_tokens": 900, "cached_tokens": 100, "cache_write_tokens": 50,
                                   "output_tokens": 40, "reasoning_tokens": 8})
    called = transport.complete(spec, MSG)
    _, reply = streamed(transport, spec)
    assert reply.usage == called.usage
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (900, 48)
    assert sim_env.state.stats[(protocol, wire(spec))] == 2   # one request each, no hidden retry


def test_openrouter_reports_its_own_cost(transport, specs, sim_env):
    spec = specs["openrouter"]
    sim_env.state.set(wire(spec), {"input_tokens": 1000, "output_tokens": 100})
    reply = transport.complete(spec, MSG)
    assert reply.provider_cost_usd == pytest.approx(sim_env.state.usage[("openrouter", wire(spec))]["cost"])
    assert reply.provider_cost_usd == pytest.approx(1000 * 1e-6 + 100 * 2e-6)
    # litellm also puts a usage.cost of its own on other providers' streams: never taken for the provider's.
    _, openai_reply = streamed(transport, specs["openai"])
    assert openai_reply.provider_cost_usd is None


def test_async_streams_keep_a_deadline_on_every_protocol(transport, specs, sim_env):
    """A stream that stalls after its first token fails as a timeout within the model's timeout_s
    (litellm's own gemini/ stream ignores the timeout), keeping the text delivered so far."""
    short = {p: s.model_copy(update={"timeout_s": 0.5}) for p, s in specs.items()}
    for s in short.values():
        sim_env.state.set(wire(s), {"fault": "stall_stream"})

    async def one(spec):
        t0 = time.perf_counter()
        with pytest.raises(TransportError) as e:
            async for _ in transport.astream(spec, MSG):
                pass
        return e.value, time.perf_counter() - t0

    async def all_protocols():
        return await asyncio.gather(*(one(s) for s in short.values()))

    for (err, took), spec in zip(asyncio.run(all_protocols()), short.values()):
        assert err.kind == "timeout" and err.partial == f"[{wire(spec)}]", spec.model
        assert took < 5


def test_async_stream_serves_like_the_sync_one(transport, specs, sim_env):
    async def collect(spec):
        return [x async for x in transport.astream(spec, MSG)]

    for spec in specs.values():
        items = asyncio.run(collect(spec))
        assert isinstance(items[-1], Reply) and "".join(items[:-1]) == items[-1].text


def test_missing_key_variable_fails_before_any_request(transport, specs, sim_env, monkeypatch):
    monkeypatch.delenv("ROUTEKIT_TEST_NO_SUCH_KEY", raising=False)
    spec = specs["anthropic"].model_copy(update={"api_key_env": "ROUTEKIT_TEST_NO_SUCH_KEY"})
    with pytest.raises(TransportError) as e:
        transport.complete(spec, MSG)
    assert e.value.kind == "auth" and "ROUTEKIT_TEST_NO_SUCH_KEY" in e.value.message
    assert sum(sim_env.state.stats.values()) == 0


def test_errors_keep_class_status_and_a_scrubbed_message():
    key = "sk-proj-" + "a1B2c3D4e5F6g7H8i9J0" * 2
    e = litellm.AuthenticationError(message=f"Incorrect API key provided: {key}\nTraceback (most recent call last):"
                                            "\n  File x.py, line 3, in timeout()", llm_provider="openai", model="m")
    err = classify(e, "openai", 12.5)
    assert (err.kind, err.retryable, err.status, err.error_class) == ("auth", False, 401, "AuthenticationError")
    assert key not in err.message and "[REDACTED]" in err.message and "Traceback" not in err.message
    assert err.latency_ms == 12.5


def test_choices_empty_is_malformed_not_an_index_error():
    spec = ModelSpec(alias="a", model="openai/gpt-4o-mini", tier=1)
    with pytest.raises(TransportError) as e:
        _reply(SimpleNamespace(choices=[], usage=None, model="m"), spec, "openai", 1.0)
    assert e.value.kind == "malformed" and e.value.retryable
