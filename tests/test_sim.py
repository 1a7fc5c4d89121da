"""The simulator on the wire: each vendor's protocol, usage field names, framing and fault model,
checked with plain HTTP (no litellm), so its protocol is tested independently of the adapters."""
from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from toolkit.sim import PROTOCOLS, Behaviour, SimServer, event_frame, load_behaviours, wire_request

PROMPT = "one two three four five six"


def request_for(protocol: str, model: str, stream: bool = False) -> tuple[str, dict]:
    return wire_request(protocol, model, PROMPT, stream)


@pytest.fixture
def fresh(sim):
    sim.state.scenario = {}
    sim.state.reset()
    sim.state.stats.clear()
    sim.state.usage.clear()
    yield sim
    sim.state.reset()


_client = httpx.Client()   # one client: a new one per call costs ~0.1 s (TLS context set-up)


def post(sim, protocol: str, model: str, stream: bool = False, timeout: float = 10) -> httpx.Response:
    path, body = request_for(protocol, model, stream)
    return _client.post(sim.url + path, json=body, timeout=timeout)


def test_usage_in_each_vendors_field_names(fresh):
    """1000 prompt tokens of which 300 read from and 200 written to a cache; 50 text + 20 thinking tokens."""
    fresh.state.default = Behaviour(input_tokens=1000, cached_tokens=300, cache_write_tokens=200, output_tokens=50,
                                    reasoning_tokens=20, latency_ms=0)
    got = {p: post(fresh, p, "m-" + p).json() for p in PROTOCOLS}
    o = got["openai"]["usage"]
    assert (o["prompt_tokens"], o["completion_tokens"], o["prompt_tokens_details"]["cached_tokens"],
            o["completion_tokens_details"]["reasoning_tokens"]) == (1000, 70, 300, 20)
    assert got["azure"]["usage"] == o
    assert got["openrouter"]["usage"]["cost"] == pytest.approx(1000 * 1e-6 + 70 * 2e-6)  # its nominal $1/$2 per Mtok
    a = got["anthropic"]["usage"]   # Anthropic: input_tokens excludes cache reads and writes
    assert (a["input_tokens"], a["cache_read_input_tokens"], a["cache_creation_input_tokens"], a["output_tokens"]) \
        == (500, 300, 200, 70)
    g = got["gemini"]["usageMetadata"]  # Gemini: cached inside the prompt count, thoughts beside the candidates
    assert (g["promptTokenCount"], g["cachedContentTokenCount"], g["candidatesTokenCount"], g["thoughtsTokenCount"],
            g["totalTokenCount"]) == (1000, 300, 50, 20, 1070)
    b = got["bedrock"]["usage"]
    assert (b["inputTokens"], b["cacheReadInputTokens"], b["cacheWriteInputTokens"], b["outputTokens"]) \
        == (500, 300, 200, 70)
    assert (got["ollama"]["prompt_eval_count"], got["ollama"]["eval_count"]) == (1000, 70)
    # The simulator remembers the last usage block it sent, as sent.
    assert fresh.state.usage[("gemini", "m-gemini")] == g
    assert httpx.get(fresh.url + "/_sim/usage").json()["anthropic"]["m-anthropic"] == a


def test_answers_carry_the_text_and_the_served_name(fresh):
    fresh.state.set("m", {"served_model": "m-2025-01-01"})
    texts = {
        "openai": lambda j: (j["choices"][0]["message"]["content"], j["model"]),
        "anthropic": lambda j: (j["content"][0]["text"], j["model"]),
        "gemini": lambda j: (j["candidates"][0]["content"]["parts"][0]["text"], j["modelVersion"]),
        "bedrock": lambda j: (j["output"]["message"]["content"][0]["text"], None),
        "ollama": lambda j: (j["message"]["content"], j["model"]),
    }
    for protocol, pick in texts.items():
        text, name = pick(post(fresh, protocol, "m").json())
        assert text == "[m] " + PROMPT
        assert name in ("m-2025-01-01", None)  # Bedrock Converse names no model in its answer


def test_stats_count_per_protocol_and_model(fresh):
    for p in PROTOCOLS:
        post(fresh, p, "shared")
    post(fresh, "anthropic", "shared")
    assert fresh.state.stats[("anthropic", "shared")] == 2 and fresh.state.stats[("bedrock", "shared")] == 1
    stats = httpx.get(fresh.url + "/_sim/stats").json()
    assert stats["total"] == 8 and stats["models"] == {"shared": 8}
    assert set(stats["protocols"]) == set(PROTOCOLS) and stats["protocols"]["anthropic"] == {"shared": 2}


def test_bedrock_model_id_is_percent_decoded(fresh):
    post(fresh, "bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0")
    assert fresh.state.stats[("bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0")] == 1


def test_event_stream_framing_decodes_with_botocore(fresh):
    """The converse-stream body is AWS event-stream; botocore's own decoder checks both CRCs."""
    from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

    fresh.state.default = Behaviour(input_tokens=40, output_tokens=9, latency_ms=0)
    r = post(fresh, "bedrock", "m", stream=True)
    assert r.headers["content-type"] == "application/vnd.amazon.eventstream"
    buf = EventStreamBuffer()
    buf.add_data(r.content)
    events = [(e.headers[":event-type"], json.loads(e.payload)) for e in buf]
    assert [t for t, _ in events] == ["messageStart", *["contentBlockDelta"] * 7, "contentBlockStop", "messageStop",
                                      "metadata"]
    assert "".join(p["delta"]["text"] for t, p in events if t == "contentBlockDelta") == "[m] " + PROMPT
    assert events[-1][1]["usage"]["outputTokens"] == 9 and events[-2][1]["stopReason"] == "end_turn"
    tampered = bytearray(event_frame("messageStop", {"stopReason": "end_turn"}))
    tampered[-6] ^= 1   # one payload bit
    bad = EventStreamBuffer()
    bad.add_data(bytes(tampered))
    with pytest.raises(ChecksumMismatch):
        list(bad)


def _sse_data(body: str) -> list[dict]:
    return [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ") and line != "data: [DONE]"]


def test_every_protocol_streams_the_same_text(fresh):
    fresh.state.default = Behaviour(latency_ms=0)
    joined = {
        "openai": lambda b: "".join(c["choices"][0]["delta"].get("content") or ""
                                    for c in _sse_data(b) if c["choices"]),
        "anthropic": lambda b: "".join(c["delta"]["text"] for c in _sse_data(b) if c["type"] == "content_block_delta"),
        "gemini": lambda b: "".join(c["candidates"][0].get("content", {}).get("parts", [{}])[0].get("text", "")
                                    for c in _sse_data(b)),
        "ollama": lambda b: "".join(json.loads(line)["message"]["content"] for line in b.splitlines()),
    }
    for protocol, join in joined.items():
        assert join(post(fresh, protocol, "m", stream=True).text) == "[m] " + PROMPT, protocol
    # OpenAI sends usage in a last chunk only when asked (stream_options.include_usage).
    usage_chunks = [c for c in _sse_data(post(fresh, "openai", "m", stream=True).text) if c.get("usage")]
    assert len(usage_chunks) == 1 and usage_chunks[0]["choices"] == []


def test_errors_in_each_vendors_shape_with_retry_after(fresh):
    fresh.state.default = Behaviour(error_rate=1.0, error_status=429, retry_after_s=3, latency_ms=0)
    shapes = {"openai": lambda j: j["error"]["message"], "anthropic": lambda j: j["error"]["type"],
              "gemini": lambda j: j["error"]["status"], "bedrock": lambda j: j["message"],
              "ollama": lambda j: j["error"]}
    for protocol, pick in shapes.items():
        r = post(fresh, protocol, "m")
        assert r.status_code == 429 and r.headers["retry-after"] == "3"
        assert pick(r.json())
    assert post(fresh, "anthropic", "m").json()["error"]["type"] == "rate_limit_error"
    assert post(fresh, "bedrock", "m").headers["x-amzn-errortype"].startswith("ThrottlingException")
    fresh.state.default = Behaviour(error_rate=1.0, error_status=529, latency_ms=0)
    assert post(fresh, "anthropic", "m").json()["error"]["type"] == "overloaded_error"


def test_faults_on_the_wire(fresh):
    fresh.state.default = Behaviour(latency_ms=0)
    fresh.state.set("html", {"fault": "html"})
    r = post(fresh, "openai", "html")
    assert r.status_code == 200 and r.text.startswith("<!DOCTYPE html>")
    fresh.state.set("broken", {"fault": "malformed"})
    with pytest.raises(json.JSONDecodeError):
        json.loads(post(fresh, "gemini", "broken").text)
    fresh.state.set("down", {"down": True})
    with pytest.raises(httpx.RemoteProtocolError):
        post(fresh, "anthropic", "down")
    fresh.state.set("reset", {"fault": "reset"})
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        post(fresh, "ollama", "reset")
    fresh.state.set("slow", {"timeout": True})
    with pytest.raises(httpx.ReadTimeout):
        post(fresh, "openai", "slow", timeout=0.3)
    fresh.state.set("empty", {"empty": True})
    assert post(fresh, "anthropic", "empty").json()["content"] == []


def test_cut_and_stalled_streams_deliver_the_first_token_then_break(fresh):
    fresh.state.default = Behaviour(latency_ms=0)
    fresh.state.set("cut", {"fault": "cut_stream", "fault_after": 2})
    seen = []
    with pytest.raises(httpx.RemoteProtocolError):
        path, body = request_for("anthropic", "cut", stream=True)
        with httpx.stream("POST", fresh.url + path, json=body, timeout=5) as r:
            for line in r.iter_lines():
                if line.startswith("data: ") and '"content_block_delta"' in line:
                    seen.append(json.loads(line[6:])["delta"]["text"])
    assert seen == ["[cut]", " one"]
    fresh.state.set("stall", {"fault": "stall_stream"})
    seen = []
    t0 = time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        path, body = request_for("openai", "stall", stream=True)
        with httpx.stream("POST", fresh.url + path, json=body, timeout=0.4) as r:
            for c in _sse_data_iter(r.iter_lines()):
                seen.append(c["choices"][0]["delta"].get("content"))
    assert [s for s in seen if s] == ["[stall]"] and time.perf_counter() - t0 >= 0.4


def _sse_data_iter(lines):
    for line in lines:
        if line.startswith("data: ") and line != "data: [DONE]":
            yield json.loads(line[6:])


def test_latency_follows_the_seeded_lognormal(fresh, monkeypatch):
    """Each request waits latency_ms times the next draw of the simulator's seeded generator: the waits the
    simulator asks for are read at its sleep (wall-clock spreads flaked on a loaded machine), and each answer took at
    least its wait."""
    import asyncio
    import random

    from toolkit.sim import handling

    waits: list[float] = []

    class Recorded:   # handling's asyncio, with its sleeps written down
        def __getattr__(self, name):
            return getattr(asyncio, name)

        async def sleep(self, seconds):
            waits.append(seconds * 1000)
            await asyncio.sleep(seconds)

    monkeypatch.setattr(handling, "asyncio", Recorded())
    fresh.state.rng = random.Random(7)
    fresh.state.set("slow", {"latency_ms": 60, "latency_sigma": 0.8})
    expected = [60 * d for d in (lambda r: [r.lognormvariate(0, 0.8) for _ in range(8)])(random.Random(7))]
    took = []
    for _ in expected:
        t0 = time.perf_counter()
        post(fresh, "gemini", "slow")
        took.append((time.perf_counter() - t0) * 1000)
    assert waits == pytest.approx(expected) and max(expected) > 3 * min(expected)   # a spread, not a constant
    assert all(t >= e * 0.95 for t, e in zip(took, expected))


def test_behaviour_and_scenario_errors_are_clear(tmp_path, fresh):
    with pytest.raises(ValueError, match="unknown behaviour keys \\['latncy_ms'\\]"):
        Behaviour.from_dict({"latncy_ms": 3})
    with pytest.raises(ValueError, match="unknown fault 'explode'"):
        Behaviour.from_dict({"fault": "explode"})
    p = tmp_path / "s.yaml"
    p.write_text("models:\n  gpt-4.1: {fault: cut_strem}\n")
    with pytest.raises(ValueError, match=r"s\.yaml:2: models\.gpt-4\.1: unknown fault 'cut_strem'"):
        load_behaviours(p)
    r = httpx.post(fresh.url + "/_sim/models/x", json={"fault": "nope"})
    assert r.status_code == 400 and "unknown fault" in r.json()["error"]
    # Old field names keep working.
    b = Behaviour.from_dict({"latency_ms": 1, "error_rate": 0.5, "error_status": 503, "retry_after_s": 2,
                             "down": False, "timeout": False, "empty": False, "answer": "x", "output_tokens": 3,
                             "cached_tokens": 1, "latency_sigma": 0.1})
    assert b.error_status == 503 and b.fault is None


def test_200_concurrent_streams_without_an_error(fresh):
    """200 streaming requests at once, spread over the seven protocols, all complete with their full text."""
    fresh.state.default = Behaviour(latency_ms=20, latency_sigma=0.5)

    async def one(client: httpx.AsyncClient, i: int) -> tuple[int, bytes]:
        protocol = PROTOCOLS[i % len(PROTOCOLS)]
        path, body = request_for(protocol, f"load-{i}", stream=True)
        async with client.stream("POST", fresh.url + path, json=body) as r:
            data = b"".join([c async for c in r.aiter_bytes()])
            return r.status_code, data

    async def all_at_once():
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            return await asyncio.gather(*(one(client, i) for i in range(200)))

    results = asyncio.run(all_at_once())
    assert [s for s, _ in results] == [200] * 200
    end = {"openai": b"data: [DONE]", "azure": b"data: [DONE]", "openrouter": b"data: [DONE]",
           "anthropic": b"message_stop", "gemini": b'"finishReason": "STOP"', "bedrock": b"messageStop",
           "ollama": b'"done": true'}
    for i, (_, data) in enumerate(results):
        assert f"load-{i}".encode() in data and end[PROTOCOLS[i % len(PROTOCOLS)]] in data  # whole, end marker too
    assert sum(fresh.state.stats.values()) == 200


def test_server_in_a_thread_starts_and_stops():
    with SimServer() as s:
        assert httpx.get(s.url + "/_sim/health").json()["ok"]
    with pytest.raises(httpx.ConnectError):
        httpx.get(s.url + "/_sim/health", timeout=1)


def test_cli_serve_in_its_own_process_with_a_scenario(tmp_path):
    import subprocess
    import sys

    from .conftest import free_port

    scenario = tmp_path / "s.yaml"
    scenario.write_text("default: {latency_ms: 0}\nmodels:\n  flaky: {error_rate: 1.0, error_status: 503}\n")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "toolkit.cli", "sim", "serve", "--port", str(port),
                             "--scenario", str(scenario)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(url + "/_sim/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        path, body = request_for("gemini", "flaky")
        assert httpx.post(url + path, json=body).status_code == 503
        path, body = request_for("gemini", "steady")
        assert httpx.post(url + path, json=body).status_code == 200
        assert httpx.get(url + "/_sim/stats").json()["protocols"] == {"gemini": {"flaky": 1, "steady": 1}}
    finally:
        proc.terminate()
        proc.wait(10)
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  x: {latency: 3}\n")
    r = subprocess.run([sys.executable, "-m", "toolkit.cli", "sim", "serve", "--behaviours", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "bad.yaml:2: models.x: unknown behaviour keys ['latency']" in r.stderr


def test_cli_serve_on_a_taken_port_says_so_and_never_announces_a_url(capsys):
    # before: "routekit simulator on http://..." was printed first, then the bind failed
    import socket

    from toolkit.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["sim", "serve", "--port", str(taken.getsockname()[1])]) == 2
    out, err = capsys.readouterr()
    assert "simulator on" not in out and "address already in use" in err.lower() and "Traceback" not in err


def test_skilled_models_answer_a_fixed_share_of_the_answer_key(fresh, tmp_path):
    """A model with skill s answers right a share ~s of the keyed prompts, the same ones on every call and
    through every protocol; without a skill it echoes; a prompt not in the key is echoed whatever the skill."""
    questions = {f"What is {i} plus {i}?": str(2 * i) for i in range(200)}
    fresh.state.answers = questions
    fresh.state.set("sharp", {"skill": 0.75, "latency_ms": 0})
    fresh.state.set("dull", {"latency_ms": 0})

    def ask(model: str, prompt: str, protocol: str = "openai") -> str:
        path, body = wire_request(protocol, model, "Answer briefly. " + prompt, False)
        r = _client.post(fresh.url + path, json=body, timeout=10).json()
        return r["choices"][0]["message"]["content"] if protocol == "openai" else r["content"][0]["text"]

    right = {q for q, a in questions.items() if ask("sharp", q) == a}
    assert 0.65 < len(right) / len(questions) < 0.85
    assert {q for q, a in list(questions.items())[:40] if ask("sharp", q, "anthropic") == a} \
        == right & set(list(questions)[:40])                          # same prompts right on another protocol
    assert not any(ask("dull", q) == a for q, a in list(questions.items())[:20])
    assert ask("sharp", "Something nobody keyed").startswith("[sharp]")

    with pytest.raises(ValueError, match="skill 1.5 is not a share"):
        Behaviour(skill=1.5)
    bad = tmp_path / "s.yaml"
    bad.write_text("answer: {x: y}\n")
    with pytest.raises(ValueError, match=r"s.yaml:1: answer: unknown behaviour file keys \['answer'\]"):
        load_behaviours(bad)
    good = tmp_path / "g.yaml"
    good.write_text("answers: {'What is 2 plus 2?': '4'}\nmodels: {m: {skill: 1.0}}\n")
    assert load_behaviours(good)["answers"] == {"What is 2 plus 2?": "4"}
