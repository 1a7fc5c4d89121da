"""What a request asks (:class:`Call`) and what the simulated model answers (:class:`Answer`), in vendor-neutral
counts; each protocol renders an answer in its own field names."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .faults import Behaviour


@dataclass(frozen=True)
class Call:
    model: str
    prompt: str
    stream: bool
    include_usage: bool = True


@dataclass(frozen=True)
class Answer:
    """One answer, in vendor-neutral counts; each protocol renders it in its own field names."""

    model: str              # the name the vendor says it served
    text: str
    prompt_tokens: int      # all input tokens, cached reads and writes included
    cache_read: int
    cache_write: int
    output_tokens: int      # visible text tokens
    reasoning: int          # thinking tokens, billed as output
    finish: str = "stop"    # stop | content_filter

    def pieces(self) -> list[str]:
        """The text as the pieces a stream sends, one word each (with its leading space)."""
        words = self.text.split(" ") if self.text else []
        return [w if i == 0 else " " + w for i, w in enumerate(words)]


def count_tokens(text: str) -> int:
    """The simulator's token count: about 1.3 tokens a word, at least 1."""
    return max(1, round(len(text.split()) * 1.3))


def _known_answer(b: Behaviour, call: Call, answers: dict[str, str]) -> str | None:
    if not b.skill:
        return None
    for question, right in answers.items():
        if question in call.prompt:
            draw = int.from_bytes(hashlib.sha256(f"{call.model}\0{question}".encode()).digest()[:8], "big") / 2**64
            return right if draw < b.skill else None
    return None


def answer_for(b: Behaviour, call: Call, answers: dict[str, str] | None = None) -> Answer:
    """What a model with behaviour ``b`` answers to ``call``: a fixed answer, the answer key's right answer
    (for a skilled model, a fixed share of keyed prompts), or a deterministic echo of the prompt."""
    known = _known_answer(b, call, answers or {})
    if b.empty or b.fault == "content_policy":
        text = ""
    elif b.answer is not None:
        text = b.answer
    elif known is not None:
        text = known
    else:
        words = call.prompt.split()
        text = f"[{call.model}] " + " ".join(words[:12]) + (" ..." if len(words) > 12 else "")
    prompt = b.input_tokens if b.input_tokens is not None else count_tokens(call.prompt)
    cache_read = min(b.cached_tokens, prompt)
    cache_write = min(b.cache_write_tokens, prompt - cache_read)
    out = b.output_tokens if b.output_tokens is not None else (count_tokens(text) if text else 0)
    return Answer(b.served_model or call.model, text, prompt, cache_read, cache_write, out, b.reasoning_tokens,
                  "content_filter" if b.fault == "content_policy" else "stop")
