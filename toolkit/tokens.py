"""Offline token counting with litellm's bundled tokenizers.

OpenAI-family models are counted with their own tiktoken encoding, exactly.  For
every other vendor litellm falls back to an OpenAI encoding: the count is an
*approximation*, and :class:`TokenCount` says so (``approx=True``) so that no
estimate passes one off as exact.  Nothing is downloaded: Hugging Face tokenizer
downloads are switched off.
"""
from __future__ import annotations

from dataclasses import dataclass

from .transport import _litellm

# Providers whose models litellm counts with their own tokenizer.
_EXACT_PROVIDERS = {"openai", "azure", "text-completion-openai"}


@dataclass(frozen=True)
class TokenCount:
    tokens: int
    approx: bool
    tokenizer: str


def _lit():
    lit = _litellm()
    lit.disable_hf_tokenizer_download = True
    return lit


def is_exact(model: str) -> bool:
    lit = _lit()
    try:
        provider = lit.get_llm_provider(model)[1]
    except Exception:  # noqa: BLE001 — unknown prefix: certainly not an exact count
        return False
    name = model.split("/", 1)[-1]
    # openai/ with a non-OpenAI model name (a local server) is not exact either.
    return provider in _EXACT_PROVIDERS and name.startswith(("gpt-", "o1", "o3", "o4", "chatgpt", "text-embedding"))


def count_messages(model: str | None, messages: list[dict]) -> TokenCount:
    lit = _lit()
    m = model or "gpt-4o"
    n = lit.token_counter(model=m, messages=messages)
    exact = is_exact(m)
    return TokenCount(int(n), not exact, m if exact else f"approx:{_encoding_name(m)}")


def count_text(model: str | None, text: str) -> TokenCount:
    lit = _lit()
    m = model or "gpt-4o"
    n = lit.token_counter(model=m, text=text, count_response_tokens=True)
    exact = is_exact(m)
    return TokenCount(int(n), not exact, m if exact else f"approx:{_encoding_name(m)}")


def _encoding_name(model: str) -> str:
    return "o200k_base" if "gpt-4o" in model or "gpt-4.1" in model or "gpt-5" in model else "cl100k_base"
