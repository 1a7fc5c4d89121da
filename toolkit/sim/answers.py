"""What a request asks (:class:`Call`) and what the simulated model answers (:class:`Answer`), in vendor-neutral
counts; each protocol renders an answer in its own field names.

Tools: a request that offers tools (and does not switch them off) is answered with a call to the tool it names,
else the first one, with arguments valid for that tool's schema — unless its last message is a tool's result,
which gets a text answer.  A request with a response schema (or JSON mode) gets a JSON answer valid for it.  The
``bad_json`` fault breaks both: the answer's JSON is cut short, a tool call's arguments miss what the schema
requires (or, where a protocol carries them as text, are cut short).
"""
from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass

from .faults import Behaviour
from .schemas import example_of, violation_of

JSON_MODE = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


@dataclass(frozen=True)
class SimTool:
    name: str
    schema: dict


@dataclass(frozen=True)
class Call:
    model: str
    prompt: str
    stream: bool
    include_usage: bool = True
    tools: tuple[SimTool, ...] = ()
    tool_choice: str | None = None      # none | auto | required | the name of a tool
    after_tool_result: bool = False     # the last message is a tool's result
    schema: dict | None = None          # what the answer's JSON must follow (JSON_MODE for plain JSON mode)

    def tool_to_call(self) -> SimTool | None:
        if not self.tools or self.tool_choice == "none":
            return None
        named = next((t for t in self.tools if t.name == self.tool_choice), None)
        if named is not None:
            return named
        if self.after_tool_result and self.tool_choice != "required":
            return None
        return self.tools[0]


@dataclass(frozen=True)
class ToolUse:
    """A tool call in vendor-neutral terms: protocols carry ``arguments`` as an object or ``text`` as JSON text."""

    id: str             # hex; each protocol adds its vendor's prefix (call_, toolu_, tooluse_)
    name: str
    arguments: dict | list
    text: str

    def pieces(self, as_object: bool = False, n: int = 3) -> list[str]:
        """The arguments' JSON text as a stream sends it, in ``n`` pieces (``as_object``: the text of
        ``arguments``, for protocols that carry an object but stream it as text)."""
        text = json.dumps(self.arguments) if as_object else self.text
        step = max(1, -(-len(text) // n))
        return [text[i:i + step] for i in range(0, len(text), step)] or [""]


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
    finish: str = "stop"    # stop | content_filter | tool_calls
    tool_use: ToolUse | None = None

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
    tool = call.tool_to_call() if not (b.empty or b.fault == "content_policy") else None
    use = None
    if tool is not None:
        text = ""
        good = example_of(tool.schema)
        args = violation_of(tool.schema) if b.fault == "bad_json" else (good if isinstance(good, dict) else {})
        full = json.dumps(good if isinstance(good, dict) else {})
        use = ToolUse(uuid.uuid4().hex[:24], tool.name, args,
                      full[: len(full) // 2] if b.fault == "bad_json" else json.dumps(args))
    elif b.empty or b.fault == "content_policy":
        text = ""
    elif call.schema is not None:
        shaped = example_of(call.schema)
        if call.schema is JSON_MODE:
            shaped = {"answer": f"[{call.model}] " + " ".join(call.prompt.split()[:12])}
        text = json.dumps(shaped)
        text = text[: len(text) // 2] if b.fault == "bad_json" else text
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
    said = text or (use.text if use else "")
    out = b.output_tokens if b.output_tokens is not None else (count_tokens(said) if said else 0)
    finish = "content_filter" if b.fault == "content_policy" else ("tool_calls" if use else "stop")
    return Answer(b.served_model or call.model, text, prompt, cache_read, cache_write, out, b.reasoning_tokens,
                  finish, use)
