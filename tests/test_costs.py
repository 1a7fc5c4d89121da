"""Prices: the snapshot, every rate kind, overrides, unpriced models, and recomputing a record's cost."""
from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest

from toolkit.costs import PriceBook, Rates, UnknownModel, Usage, prices_dir, record_cost
from toolkit.policy import ModelSpec, Price, load_policy
from toolkit.router import Router

from .conftest import DATA, read_records

SNAPSHOT = sorted(prices_dir().glob("*.json"))[-1]
RAW = json.loads(SNAPSHOT.read_bytes())      # the map itself: hand arithmetic reads rates from here


@pytest.fixture(scope="module")
def book():
    return PriceBook.load(SNAPSHOT)


def cost(book, model, usage, **kw):
    return book.lookup(model).cost(usage, **kw)[0]


def test_version_names_the_snapshot_and_its_bytes(book):
    digest = hashlib.sha256(SNAPSHOT.read_bytes()).hexdigest()[:12]
    assert book.version == f"{SNAPSHOT.stem}@{digest}"
    assert book.version.startswith("litellm-1.106.2-2026-11-23@")


def test_input_and_output(book):
    e = RAW["gpt-4o-mini"]
    assert cost(book, "gpt-4o-mini", Usage(500, 200)) == 500 * e["input_cost_per_token"] + 200 * e["output_cost_per_token"]
    assert cost(book, "openai/gpt-4o-mini", Usage(500, 200)) == pytest.approx(0.000195, rel=1e-12)  # $0.15/M, $0.60/M


def test_cached_reads_and_cache_writes(book):
    e = RAW["claude-sonnet-4-5"]
    # 100 fresh input tokens, 1000 written to the cache, 2000 read from it; 20 output tokens
    u = Usage(input_tokens=3100, output_tokens=20, cache_read_tokens=2000, cache_write_tokens=1000)
    usd, saved = book.lookup("anthropic/claude-sonnet-4-5").cost(u)
    assert usd == pytest.approx(100 * e["input_cost_per_token"] + 2000 * e["cache_read_input_token_cost"]
                                + 1000 * e["cache_creation_input_token_cost"] + 20 * e["output_cost_per_token"], rel=1e-12)
    assert usd == pytest.approx(0.00495, rel=1e-12)  # 0.0003 + 0.0006 + 0.00375 + 0.0003
    assert saved == pytest.approx(2000 * (3e-6 - 3e-7), rel=1e-12)
    # a map without cache rates bills cached tokens as ordinary input (what the providers do)
    flat = Rates(input=1e-6, output=2e-6)
    assert flat.cost(Usage(1000, 0, cache_read_tokens=400, cache_write_tokens=100))[0] == pytest.approx(1000e-6)


def test_reasoning_tokens_at_their_own_rate(book):
    e = RAW["dashscope/qwen-plus-2025-04-28"]
    assert e["output_cost_per_reasoning_token"] != e["output_cost_per_token"]
    got = cost(book, "dashscope/qwen-plus-2025-04-28", Usage(1000, 500, reasoning_tokens=300))
    assert got == pytest.approx(1000 * e["input_cost_per_token"] + 200 * e["output_cost_per_token"]
                                + 300 * e["output_cost_per_reasoning_token"], rel=1e-12)
    # no reasoning rate: reasoning tokens are output tokens
    assert cost(book, "gpt-4o-mini", Usage(0, 500, reasoning_tokens=300)) == 500 * RAW["gpt-4o-mini"]["output_cost_per_token"]


def test_tiered_above_a_context_threshold(book):
    e = RAW["gemini/gemini-2.5-pro"]
    at = Usage(200_000, 1000, cache_read_tokens=50_000)
    above = Usage(200_001, 1000, cache_read_tokens=50_000)
    assert cost(book, "gemini/gemini-2.5-pro", at) == pytest.approx(
        150_000 * e["input_cost_per_token"] + 50_000 * e["cache_read_input_token_cost"]
        + 1000 * e["output_cost_per_token"], rel=1e-12)
    # past 200k input tokens every token of the request is billed at the higher tier
    assert cost(book, "gemini/gemini-2.5-pro", above) == pytest.approx(
        150_001 * e["input_cost_per_token_above_200k_tokens"] + 50_000 * e["cache_read_input_token_cost_above_200k_tokens"]
        + 1000 * e["output_cost_per_token_above_200k_tokens"], rel=1e-12)
    assert cost(book, "gemini/gemini-2.5-pro", above) == pytest.approx(150_001 * 2.5e-6 + 50_000 * 2.5e-7 + 1000 * 1.5e-5)


def test_tiered_pricing_table(book):
    e = RAW["dashscope/qwen-plus-latest"]
    assert "input_cost_per_token" not in e            # priced only by its tier table
    low, high = e["tiered_pricing"]
    small = Usage(1000, 100, reasoning_tokens=40)
    big = Usage(300_000, 100, reasoning_tokens=40)
    assert cost(book, "dashscope/qwen-plus-latest", small) == pytest.approx(
        1000 * low["input_cost_per_token"] + 60 * low["output_cost_per_token"] + 40 * low["output_cost_per_reasoning_token"])
    assert cost(book, "dashscope/qwen-plus-latest", big) == pytest.approx(
        300_000 * high["input_cost_per_token"] + 60 * high["output_cost_per_token"]
        + 40 * high["output_cost_per_reasoning_token"])


def test_batch_rates_where_the_map_has_them(book):
    e = RAW["gpt-4o-mini"]
    assert cost(book, "gpt-4o-mini", Usage(500, 200), batch=True) == (500 * e["input_cost_per_token_batches"]
                                                                     + 200 * e["output_cost_per_token_batches"])
    h = RAW["claude-haiku-4-5"]
    assert cost(book, "claude-haiku-4-5", Usage(1000, 10, cache_read_tokens=600), batch=True) == pytest.approx(
        400 * h["input_cost_per_token_batches"] + 600 * h["cache_read_input_token_cost_batches"]
        + 10 * h["output_cost_per_token_batches"], rel=1e-12)
    # no batch rates: standard rates, not a guessed discount
    bedrock = "anthropic.claude-3-5-haiku-20241022-v1:0"
    assert cost(book, bedrock, Usage(1000, 10), batch=True) == cost(book, bedrock, Usage(1000, 10))
    azure = RAW["azure/us/gpt-4o-mini"]
    assert "output_cost_per_token_batches" not in azure
    assert cost(book, "azure/us/gpt-4o-mini", Usage(100, 10), batch=True) == pytest.approx(
        100 * azure["input_cost_per_token_batches"] + 10 * azure["output_cost_per_token"], rel=1e-12)


def test_agrees_with_litellm_for_every_example_model(book):
    """litellm's own calculator, on the models of the example policy (an independent implementation)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    policy = load_policy(DATA / "policy.example.yaml")
    checked = 0
    for alias, spec in policy.models.items():
        if spec.is_tool or spec.price is not None:
            continue
        key = book.key_for(spec.price_key or spec.model)
        provider = RAW[key]["litellm_provider"]
        for u in (Usage(1234, 567), Usage(5000, 80, cache_read_tokens=3000)):
            a, b = litellm.cost_per_token(model=key, custom_llm_provider=provider, prompt_tokens=u.input_tokens,
                                          completion_tokens=u.output_tokens,
                                          cache_read_input_tokens=u.cache_read_tokens)
            assert book.cost(spec, u).usd == pytest.approx(a + b, rel=1e-12), alias
        checked += 1
    assert checked == 8


def test_policy_overrides_and_per_hour(book):
    policy = load_policy(DATA / "policy.example.yaml")
    llama = book.rates_for(policy.models["open-llama"])
    assert (llama.input, llama.output, llama.source) == (0.13e-6, 0.40e-6, "policy override")
    assert book.cost(policy.models["open-llama"], Usage(1_000_000, 1_000_000)).usd == pytest.approx(0.53)
    discounted = ModelSpec(alias="d", model="openai/gpt-4o-mini", tier=1,
                           price=Price(input_per_mtok=0.10, output_per_mtok=0.50, cache_read_per_mtok=0.02))
    assert book.cost(discounted, Usage(1000, 100, cache_read_tokens=500)).usd == pytest.approx(
        500 * 0.10e-6 + 500 * 0.02e-6 + 100 * 0.50e-6)
    gpu = ModelSpec(alias="gpu", model="openai/llama-70b", tier=2, boundary="local",
                    price=Price(input_per_mtok=0, output_per_mtok=0, per_hour=2.5))
    rates = book.rates_for(gpu)
    # $/hour is a fixed cost, reported by estimates; a request's own cost is its tokens (here $0)
    assert rates.per_hour == 2.5 and book.cost(gpu, Usage(1000, 1000)).usd == 0.0 and rates.is_free
    assert not book.rates_for(policy.models["fast-openai"]).is_free
    assert book.rates_for(policy.models["regex-extract"]).is_free      # tools are free


def test_unpriced_is_explicit_never_zero(book):
    spec = ModelSpec(alias="x", model="openai/not-in-any-price-map", tier=1)
    c = book.cost(spec, Usage(1000, 1000))
    assert c.usd is None and c.unpriced and c.price_version == book.version
    with pytest.raises(UnknownModel, match="did you mean gpt-4o-mini") as e:
        book.resolve("gpt-4o-mnii")
    # a library caller is told the argument, not only the command's flag (it said "pass --policy")
    assert "give the policy (policy=, or --policy) to use its aliases" in str(e.value)


def test_unpriced_model_in_a_routed_record(sim_env, tmp_path, log_dir):
    p = tmp_path / "policy.yaml"
    p.write_text(f"""
models:
  mystery: {{model: openai/house-model-7b, tier: 1, api_base: "{sim_env.url}/v1"}}
routes:
  triage: {{primary: mystery}}
""")
    r = Router(p, log=log_dir).complete("triage", "hello")
    assert r.cost_usd is None and r.unpriced and "unpriced" in r.explain()
    [rec] = read_records(log_dir)
    assert rec["cost_usd"] is None and rec["unpriced"] is True and rec["attempts"][0]["unpriced"] is True
    assert rec["gen_ai.usage.input_tokens"] > 0      # the tokens are still there to price later


def test_recorded_cost_recomputes_exactly(sim_env, policy_copy, log_dir, book):
    sim_env.state.set("gpt-4o-mini", {"cached_tokens": 3, "output_tokens": 17})
    sim_env.state.set("claude-sonnet-4-6", {"error_rate": 1.0, "error_status": 503})
    router = Router(policy_copy, log=log_dir, prices=book)
    router.complete("triage", "Is this invoice overdue? It was due on the 3rd of March.", team="support")
    router.complete("synthesis", "Summarise the week in three bullet points.")      # primary fails, fallback serves
    router.complete("code", "Write a function that deduplicates a list while keeping order.")
    records = read_records(log_dir)
    assert len(records) == 3 and records[1]["attempt_count"] == 2
    policy = load_policy(policy_copy)
    for rec in records:
        assert rec["price_version"] == book.version
        assert record_cost(rec, policy, book) == rec["cost_usd"]            # exactly, not approximately
    # and by hand, from the raw map: gpt-4o-mini with 3 cached tokens
    [a] = records[0]["attempts"]
    e = RAW["gpt-4o-mini"]
    assert a["cache_read_tokens"] == 3 and a["output_tokens"] == 17
    assert records[0]["cost_usd"] == pytest.approx((a["input_tokens"] - 3) * e["input_cost_per_token"]
                                                   + 3 * e["cache_read_input_token_cost"]
                                                   + 17 * e["output_cost_per_token"], rel=1e-12)
    served = records[2]["attempts"][0]
    g = RAW["gpt-4.1"]
    assert records[2]["cost_usd"] == pytest.approx(served["input_tokens"] * g["input_cost_per_token"]
                                                   + served["output_tokens"] * g["output_cost_per_token"], rel=1e-12)


def test_recompute_refuses_another_price_version(sim_env, policy_copy, log_dir, book, tmp_path):
    Router(policy_copy, log=log_dir, prices=book).complete("triage", "hello")
    [rec] = read_records(log_dir)
    other = tmp_path / "litellm-9.9.9-2027-01-01.json"
    shutil.copy(SNAPSHOT, other)
    with open(other, "a") as f:
        f.write("\n")                 # same prices, different bytes: a different version
    with pytest.raises(ValueError, match="load that snapshot"):
        record_cost(rec, load_policy(policy_copy), PriceBook.load(other))
