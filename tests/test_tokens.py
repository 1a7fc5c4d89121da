"""Offline token counting for every model of the example policy, honest about approximations."""
from __future__ import annotations

import random
import socket
import subprocess
import sys

import pytest

from toolkit.policy import load_policy
from toolkit.tokens import count_many, count_messages, count_text, tokenizer_for

from .conftest import DATA

EXAMPLE = load_policy(DATA / "policy.example.yaml")
MODELS = sorted({m.model for m in EXAMPLE.models.values() if m.model})
EXACT = {"openai/gpt-4o-mini", "openai/gpt-4.1-mini", "openai/gpt-4.1"}   # OpenAI's own tokenizers


@pytest.fixture
def offline(monkeypatch):
    """Any network connection attempt fails the test."""
    def refuse(self, address):
        raise AssertionError(f"token counting tried to connect to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize("model", MODELS)
def test_every_example_model_counts_offline_and_says_if_approximate(model, offline):
    n = count_messages(model, [{"role": "system", "content": "Be brief."},
                               {"role": "user", "content": "Summarise the attached quarterly report."}])
    assert n.tokens > 10
    assert n.approx == (model not in EXACT)
    assert ("(approx)" in n.tokenizer) == n.approx
    tok = tokenizer_for(model)
    assert ("approximate" in tok.note) == n.approx and tok.model in tok.note


def test_openai_counts_are_tiktoken_exactly():
    count_text("gpt-4o-mini", "warm up")          # litellm sets up its bundled tiktoken files
    import tiktoken

    o200k = tiktoken.get_encoding("o200k_base")
    text = "Ünïcödé ✓ 日本語 and the <|endoftext|> marker, twice: <|endoftext|>"
    content = len(o200k.encode_ordinary(text))
    # OpenAI's chat accounting: 3 per message + role + content, 3 to prime the reply
    expected = 3 + len(o200k.encode_ordinary("user")) + content + 3
    assert count_messages("openai/gpt-4o-mini", [{"role": "user", "content": text}]).tokens == expected
    assert count_text("gpt-4.1", text).tokens == content
    assert tokenizer_for("openai/gpt-4.1-mini").encoding == "o200k_base"


def test_provider_prefix_does_not_change_the_tokenizer():
    msgs = [{"role": "user", "content": "The provider prefix is routing, not tokenisation."}]
    counts = {m: count_messages(m, msgs) for m in ("gpt-4o-mini", "openai/gpt-4o-mini", "azure/gpt-4o-mini")}
    assert len({(c.tokens, c.tokenizer) for c in counts.values()}) == 1
    assert not counts["azure/gpt-4o-mini"].approx
    # a local server behind an OpenAI-compatible prefix is not an OpenAI tokenizer
    assert count_messages("openai/gemma-3-270m", msgs).approx


def test_claude_uses_the_bundled_anthropic_tokenizer_and_says_it_is_approximate():
    tok = tokenizer_for("anthropic/claude-sonnet-4-5")
    assert tok.encoding == "anthropic-claude-2" and not tok.exact and "Claude 2" in tok.note
    text = "antidisestablishmentarianism " * 20
    assert count_text("anthropic/claude-sonnet-4-5", text).tokens != count_text("gpt-4o-mini", text).tokens


def _corpus(seed: int = 7) -> list:
    rng = random.Random(seed)
    words = "the quick brown fox <|endoftext|> Ünïcödé 日本語 ✓ jumps\n\nover  lazy $5.00 1234567".split(" ")
    items: list = []
    for i in range(120):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 700)))   # often > 1024 chars
        if i % 6 == 0:
            items.append(text)
            continue
        msgs = [{"role": "system", "content": "Be brief."}] if i % 2 else []
        msgs.append({"role": "user", "content": text, **({"name": "ana"} if i % 5 == 0 else {})})
        if i % 9 == 0:
            msgs.append({"role": "assistant", "content": None,
                         "tool_calls": [{"id": "c1", "type": "function",
                                         "function": {"name": "f", "arguments": "{\"x\": 1}"}}]})
        if i % 11 == 0:
            msgs.append({"role": "user", "content": [{"type": "text", "text": "a content part"}]})
        items.append(msgs)
    return items


@pytest.mark.parametrize("model", MODELS)
def test_batch_counts_equal_litellm_one_by_one(model):
    items = _corpus()
    fast, tok = count_many(model, items)
    one_by_one = [(count_text(model, x) if isinstance(x, str) else count_messages(model, x)).tokens for x in items]
    assert fast == one_by_one
    assert tok == tokenizer_for(model)


def test_estimate_output_says_when_a_count_is_approximate(tmp_path):
    r = subprocess.run([sys.executable, "-m", "toolkit.cli", "estimate", "--model", "anthropic/claude-haiku-4-5",
                        "--model", "gpt-4o-mini", "--prompt", "How many tokens is this?", "--output-tokens", "10"],
                       capture_output=True, text=True, cwd=tmp_path, env=_env())
    assert r.returncode == 0, r.stderr
    claude = next(line for line in r.stdout.splitlines() if line.startswith("anthropic/claude-haiku-4-5"))
    mini = next(line for line in r.stdout.splitlines() if line.startswith("gpt-4o-mini"))
    assert "(approx)" in claude and "(approx)" not in mini and "o200k_base" in mini
    assert "approximation" in r.stdout


def _env():
    import os

    from .conftest import ROOT

    return {**os.environ, "PYTHONPATH": str(ROOT)}
