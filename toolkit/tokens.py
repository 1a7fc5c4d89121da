"""Offline token counting with litellm's bundled tokenizers.

Which tokenizer counts a model (:func:`tokenizer_for`), by the model's own name
(the provider prefix removed, so ``openai/gpt-4o-mini`` and ``azure/gpt-4o-mini``
count alike):

- OpenAI models litellm knows, whose tiktoken encoding is known: that encoding,
  **exact** (OpenAI publishes it; litellm bundles o200k_base and cl100k_base);
- Claude models litellm counts with its bundled Anthropic tokenizer: that one,
  an **approximation** — it is Claude 2's; Anthropic publishes none for later models;
- everything else (Gemini, Llama, Gemma, ...): litellm's fallback tiktoken
  encoding, an **approximation** (their tokenizers are not bundled, and Hugging
  Face downloads are switched off: nothing is ever downloaded).

Every count says which it is (:class:`TokenCount` ``approx`` / ``tokenizer``), so no
estimate passes an approximation off as exact.  Message counts follow litellm's
``token_counter`` (3 tokens per message, 1 per ``name``, 3 to prime the reply).

:func:`count_many` counts a batch in one tokenizer call and returns exactly what
``litellm.token_counter`` would return for each item, many times faster.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

from .transport import litellm_module

_PER_MESSAGE, _PER_NAME, _REPLY_PRIMER = 3, 1, 3  # litellm's (OpenAI's) chat accounting


@dataclass(frozen=True)
class TokenCount:
    tokens: int
    approx: bool
    tokenizer: str          # e.g. "o200k_base", "anthropic-claude-2 (approx)"


@dataclass(frozen=True)
class Tokenizer:
    """How routekit counts tokens for one model."""

    model: str              # the name litellm is asked about: the model's own name, no provider prefix
    encoding: str           # "o200k_base", "cl100k_base" or "anthropic-claude-2"
    exact: bool

    @property
    def label(self) -> str:
        return self.encoding if self.exact else f"{self.encoding} (approx)"

    @property
    def note(self) -> str:
        if self.exact:
            return f"{self.model}: exact ({self.encoding}, the model's own tokenizer)"
        if self.encoding.startswith("anthropic"):
            return (f"{self.model}: approximate (litellm's bundled Claude 2 tokenizer; Anthropic publishes no "
                    f"tokenizer for later Claude models)")
        return f"{self.model}: approximate ({self.encoding}; the model's own tokenizer is not bundled with litellm)"


@lru_cache(maxsize=256)
def tokenizer_for(model: str | None) -> Tokenizer:
    lit = litellm_module()  # first: it keeps litellm from fetching its price map on import
    from litellm.litellm_core_utils.token_counter import openai_tokenizer_encoding_name
    from litellm.utils import huggingface_tokenizer_kind

    name = (model or "gpt-4o").split("/", 1)[-1]
    if huggingface_tokenizer_kind(name) == "anthropic":
        return Tokenizer(name, "anthropic-claude-2", exact=False)
    encoding = openai_tokenizer_encoding_name(name)
    return Tokenizer(name, encoding, exact=name in lit.open_ai_chat_completion_models and _tiktoken_knows(name))


def _tiktoken_knows(name: str) -> bool:
    import tiktoken

    try:
        tiktoken.encoding_name_for_model(name)
        return True
    except KeyError:
        return "gpt-4o" in name  # litellm maps these itself


def is_exact(model: str) -> bool:
    return tokenizer_for(model).exact


def _custom(tok: Tokenizer) -> dict | None:
    return _anthropic() if tok.encoding.startswith("anthropic") else None


@lru_cache(maxsize=1)
def _anthropic() -> dict:
    lit = litellm_module()
    from litellm.utils import claude_json_str

    return lit.create_tokenizer(claude_json_str)


def count_messages(model: str | None, messages: list[dict]) -> TokenCount:
    tok = tokenizer_for(model)
    n = litellm_module().token_counter(model=tok.model, messages=messages, custom_tokenizer=_custom(tok))
    return TokenCount(int(n), not tok.exact, tok.label)


def count_text(model: str | None, text: str) -> TokenCount:
    tok = tokenizer_for(model)
    n = litellm_module().token_counter(model=tok.model, text=text, custom_tokenizer=_custom(tok))
    return TokenCount(int(n), not tok.exact, tok.label)


def count_many(model: str | None, items: Sequence[str | list[dict]]) -> tuple[list[int], Tokenizer]:
    """Token counts of many prompts (each a text or a list of chat messages) for one model.

    Equal, item by item, to :func:`count_text` / :func:`count_messages`: each distinct string is
    tokenized once, then summed with litellm's message accounting.  Items the fast path does not
    model (content parts, tool calls) are counted by litellm one by one.
    """
    tok = tokenizer_for(model)
    strings: list[str] = []
    index: dict[str, int] = {}
    plan: list[tuple[list[int], int] | None] = []   # per item: (string ids, fixed tokens), or None: ask litellm
    for item in items:
        if isinstance(item, str):
            ids, extra = [item], 0
        else:
            ids, extra = [], _REPLY_PRIMER
            for m in item:
                extra += _PER_MESSAGE
                for key, value in m.items():
                    if value.__class__ is str and key not in ("tool_calls", "function_call"):
                        ids.append(value)
                        extra += _PER_NAME if key == "name" else 0
                    elif value is not None:
                        ids = None
                        break
                if ids is None:
                    break
        if ids is None:
            plan.append(None)
            continue
        for n, value in enumerate(ids):
            i = index.get(value)
            if i is None:
                i = index[value] = len(strings)
                strings.append(value)
            ids[n] = i
        plan.append((ids, extra))
    lengths = _lengths(tok, strings)
    return [count_messages(model, item).tokens if p is None else sum([lengths[i] for i in p[0]]) + p[1]
            for item, p in zip(items, plan)], tok


def _lengths(tok: Tokenizer, strings: list[str]) -> list[int]:
    """What litellm's count function returns for each string."""
    litellm_module()
    from litellm.litellm_core_utils import token_counter as tc

    limit = tc.TOKEN_COUNTER_MAX_EXACT_CHARS
    slow = lambda s: tc._get_count_function(tok.model, _custom(tok))(s)  # noqa: E731 — litellm samples huge texts
    if tok.encoding.startswith("anthropic"):
        encoded = iter(_anthropic()["tokenizer"].encode_batch_fast([s for s in strings if len(s) <= limit]))
        return [len(next(encoded)) if len(s) <= limit else slow(s) for s in strings]
    encode = getattr(tc.openai_tokenizer_encoding(tok.model), "encode_ordinary", None)
    if encode is None:  # a native backend without the tiktoken API
        return [slow(s) for s in strings]
    step = tc.TIKTOKEN_ENCODE_CHUNK_SIZE_CHARS
    # litellm counts tiktoken text in fixed-size character chunks; chunk identically.
    return [len(encode(s)) if len(s) <= step else
            sum(len(encode(s[i:i + step])) for i in range(0, len(s), step)) if len(s) <= limit else slow(s)
            for s in strings]
