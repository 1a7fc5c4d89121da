"""A local provider simulator: a real HTTP server on 127.0.0.1 for tests, demos and drills.

It answers any model name in each vendor's own protocol — request shape, answer
shape, usage field names, error bodies and streaming framing:

=========== ================================================================ ==========================
protocol    paths                                                            streaming
=========== ================================================================ ==========================
openai      POST /v1/chat/completions                                        SSE ``data:`` chunks
azure       POST /openai/deployments/{name}/chat/completions?api-version=…   SSE ``data:`` chunks
openrouter  POST /api/v1/chat/completions (reports ``usage.cost``)           SSE ``data:`` chunks
anthropic   POST /v1/messages                                                SSE ``event:`` + ``data:``
gemini      POST /v1beta/models/{model}:generateContent                      ``:streamGenerateContent?alt=sse``
bedrock     POST /model/{id}/converse                                        ``/converse-stream``, AWS event-stream
ollama      POST /api/chat                                                   NDJSON lines
=========== ================================================================ ==========================

Every model obeys one fault model (:class:`Behaviour`), whatever the protocol:
latency (log-normal), an error rate with a status (429 with Retry-After, 500,
503, 529 overloaded, or any 4xx), ``down`` (the connection closes with no
answer), ``timeout`` (no answer at all), ``empty`` (200 with no text) and one
``fault``: ``reset`` (TCP reset), ``html`` (200 with an HTML page),
``malformed`` (200 with broken JSON), ``cut_stream`` (the connection drops
after ``fault_after`` text pieces; a body not streamed stops half-way),
``stall_stream`` (the same, but the connection stays open and silent),
``context_window`` and ``content_policy`` (the vendor's own rejection).  Behaviour is set per model from a scenario file,
or at run time::

    POST /_sim/models/{name}   {"down": true}          change one model
    POST /_sim/reset                                    back to the scenario, counters cleared
    GET  /_sim/stats                                    request counts per protocol and model
    GET  /_sim/usage                                    the last usage block sent, per protocol and model

Scenario file (YAML)::

    default: {latency_ms: 20}
    models:
      claude-sonnet-4-5: {down: true}
      gpt-4o-mini: {error_rate: 0.2, error_status: 429, retry_after_s: 1}
      gemini-2.5-pro: {cached_tokens: 40, reasoning_tokens: 12, skill: 0.9}
    answers:                  # an answer key: models with a skill answer a share of these prompts right
      "How do I add a second admin to our workspace?": how-to

:func:`fault_matrix` drives every fault through every protocol with litellm's real adapters and
routekit's transport (``routekit sim matrix``, docs/errors.md).

Model names are what the client puts on the wire: litellm strips its provider
prefix, so ``anthropic/claude-sonnet-4-5`` arrives as ``claude-sonnet-4-5``
(Azure: the deployment name; Bedrock: the model id, percent-decoded).
"""
from __future__ import annotations

import asyncio
import binascii
import hashlib
import json
import random
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Literal, get_args

from aiohttp import web

PROTOCOLS = ("openai", "azure", "openrouter", "anthropic", "gemini", "bedrock", "ollama")
Fault = Literal["html", "malformed", "reset", "cut_stream", "stall_stream", "context_window", "content_policy"]
FAULTS: tuple[str, ...] = get_args(Fault)


@dataclass(frozen=True)
class Behaviour:
    """How one model behaves, whatever protocol it is asked through (see the module docstring)."""

    latency_ms: float = 5.0          # median added latency
    latency_sigma: float = 0.0       # log-normal spread (0 = fixed)
    error_rate: float = 0.0          # share of requests answered with error_status
    error_status: int = 500          # 429, 500, 503, 529, or a 4xx such as 400/401
    retry_after_s: float | None = None
    down: bool = False               # connection dropped without an answer
    timeout: bool = False            # never answers (the client times out)
    empty: bool = False              # 200 with empty text
    answer: str | None = None        # fixed answer text; default: a deterministic echo
    skill: float | None = None       # share of the answer key's prompts answered right (None: never)
    output_tokens: int | None = None
    cached_tokens: int = 0           # cached input tokens read (inside the prompt count)
    cache_write_tokens: int = 0      # input tokens written to a cache (Anthropic, Bedrock)
    reasoning_tokens: int = 0        # thinking tokens (billed as output; reported where the vendor does)
    input_tokens: int | None = None  # prompt token count to report; default: counted from the prompt
    served_model: str | None = None  # the name the vendor says it served (e.g. a dated snapshot)
    echo_key: bool = False           # error bodies quote the credential the request carried (some vendors do)
    fault: Fault | None = None
    fault_after: int = 1             # text pieces sent before a cut or stalled stream

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; known: {', '.join(FAULTS)}")
        if self.skill is not None and not 0 <= self.skill <= 1:
            raise ValueError(f"skill {self.skill} is not a share between 0 and 1")

    @classmethod
    def from_dict(cls, d: dict[str, Any], base: "Behaviour | None" = None) -> "Behaviour":
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"unknown behaviour keys {bad}; known: {sorted(known)}")
        return replace(base or cls(), **d)


class SimState:
    def __init__(self, scenario: dict[str, Any] | None = None, seed: int = 0):
        self.scenario = scenario or {}
        self.rng = random.Random(seed)
        self.stats: Counter[tuple[str, str]] = Counter()
        self.usage: dict[tuple[str, str], dict[str, Any]] = {}   # last usage block sent, vendor's field names
        self.reset()

    def reset(self) -> None:
        self.default = Behaviour.from_dict(self.scenario.get("default", {}))
        # prompt text -> right answer: a request whose prompt contains the text is answered right by a model
        # with skill s for a fixed share s of such prompts (a hash of model and prompt decides which)
        self.answers: dict[str, str] = {str(k): str(v) for k, v in (self.scenario.get("answers") or {}).items()}
        self.models = {name: Behaviour.from_dict(b, self.default)
                       for name, b in (self.scenario.get("models") or {}).items()}

    def behaviour(self, model: str) -> Behaviour:
        return self.models.get(model, self.default)

    def set(self, model: str, changes: dict[str, Any]) -> Behaviour:
        self.models[model] = Behaviour.from_dict(changes, self.behaviour(model))
        return self.models[model]


def load_scenario(path: str | Path) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a scenario is a mapping with 'default', 'models' and/or 'answers'")
    stray = sorted(set(data) - {"default", "models", "answers"})
    if stray:
        raise ValueError(f"{path}: unknown scenario keys {stray}; known: default, models, answers")
    if not isinstance(data.get("answers") or {}, dict):
        raise ValueError(f"{path}: answers: expected a mapping of prompt text to its right answer")
    for where, b in [("default", data.get("default") or {}), *((f"models.{n}", b) for n, b in
                                                               (data.get("models") or {}).items())]:
        try:
            Behaviour.from_dict(b)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: {where}: {e}") from None
    return data


# --- what a request asks and what the simulated model answers --------------------------------


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


def _tokens(text: str) -> int:
    return max(1, round(len(text.split()) * 1.3))


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def _known_answer(b: Behaviour, call: Call, answers: dict[str, str]) -> str | None:
    if not b.skill:
        return None
    for question, right in answers.items():
        if question in call.prompt:
            draw = int.from_bytes(hashlib.sha256(f"{call.model}\0{question}".encode()).digest()[:8], "big") / 2**64
            return right if draw < b.skill else None
    return None


def _answer(b: Behaviour, call: Call, answers: dict[str, str] | None = None) -> Answer:
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
    prompt = b.input_tokens if b.input_tokens is not None else _tokens(call.prompt)
    cache_read = min(b.cached_tokens, prompt)
    cache_write = min(b.cache_write_tokens, prompt - cache_read)
    out = b.output_tokens if b.output_tokens is not None else (_tokens(text) if text else 0)
    return Answer(b.served_model or call.model, text, prompt, cache_read, cache_write, out, b.reasoning_tokens,
                  "content_filter" if b.fault == "content_policy" else "stop")


def _pieces(text: str) -> list[str]:
    words = text.split(" ") if text else []
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


# --- protocols: parse a request, render an answer, an error and a stream ---------------------

# A stream is a list of frames, each marked if it carries answer text: a cut or a stall is placed
# by counting those.
Frame = tuple[bytes, bool]


def _sse(obj: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(obj)}\n\n".encode()


class _Protocol:
    """One vendor's wire format: how a request names its model and prompt, and how an answer (whole
    or as stream frames), its usage block and an error look in that vendor's own shapes."""

    name = ""
    stream_type = "text/event-stream"

    def parse(self, request: web.Request, body: dict) -> Call:
        raise NotImplementedError

    def usage(self, a: Answer) -> dict:
        raise NotImplementedError

    def body(self, a: Answer) -> dict:
        raise NotImplementedError

    def frames(self, a: Answer, call: Call) -> list[Frame]:
        raise NotImplementedError

    def error(self, status: int, kind: str, message: str) -> dict:
        raise NotImplementedError

    def context_window(self, call: Call) -> tuple[int, dict]:
        """The vendor's own answer to a prompt longer than the model's window."""
        raise NotImplementedError

    def error_headers(self, status: int) -> dict[str, str]:
        return {}


class OpenAI(_Protocol):
    name = "openai"

    def parse(self, request: web.Request, body: dict) -> Call:
        return Call(self.model(request, body), " ".join(_text_of(m.get("content")) for m in body.get("messages", [])),
                    bool(body.get("stream")), bool((body.get("stream_options") or {}).get("include_usage")))

    def model(self, request: web.Request, body: dict) -> str:
        return str(body.get("model", "unknown"))

    def usage(self, a: Answer) -> dict:
        out = a.output_tokens + a.reasoning
        return {"prompt_tokens": a.prompt_tokens, "completion_tokens": out, "total_tokens": a.prompt_tokens + out,
                "prompt_tokens_details": {"cached_tokens": a.cache_read},
                "completion_tokens_details": {"reasoning_tokens": a.reasoning}}

    def body(self, a: Answer) -> dict:
        return {"id": "chatcmpl-" + uuid.uuid4().hex[:12], "object": "chat.completion", "created": int(time.time()),
                "model": a.model, "choices": [{"index": 0, "message": {"role": "assistant", "content": a.text},
                                               "finish_reason": a.finish}],
                "usage": self.usage(a)}

    def frames(self, a: Answer, call: Call) -> list[Frame]:
        rid, now = "chatcmpl-" + uuid.uuid4().hex[:12], int(time.time())

        def chunk(delta: dict, finish: str | None = None, **extra: Any) -> bytes:
            return _sse({"id": rid, "object": "chat.completion.chunk", "created": now, "model": a.model,
                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra})

        frames = [(chunk({"role": "assistant", "content": ""}), False)]
        frames += [(chunk({"content": p}), True) for p in _pieces(a.text)]
        frames.append((chunk({}, a.finish), False))
        if call.include_usage:
            frames.append((_sse({"id": rid, "object": "chat.completion.chunk", "created": now, "model": a.model,
                                 "choices": [], "usage": self.usage(a)}), False))
        frames.append((b"data: [DONE]\n\n", False))
        return frames

    def error(self, status: int, kind: str, message: str) -> dict:
        return {"error": {"message": message, "type": _OPENAI_ERROR_TYPE.get(status, "server_error"),
                          "param": None, "code": kind}}

    def context_window(self, call: Call) -> tuple[int, dict]:
        message = ("This model's maximum context length is 128000 tokens. However, your messages resulted in "
                   "200000 tokens. Please reduce the length of the messages.")
        return 400, {"error": {"message": message, "type": "invalid_request_error", "param": "messages",
                               "code": "context_length_exceeded"}}


_OPENAI_ERROR_TYPE = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                      404: "not_found_error", 429: "rate_limit_error"}


class Azure(OpenAI):
    name = "azure"

    def model(self, request: web.Request, body: dict) -> str:
        return request.match_info["deployment"]   # Azure routes by deployment name, not by a body field


class OpenRouter(OpenAI):
    name = "openrouter"
    # OpenRouter reports what the call cost in usage.cost; the simulator bills a nominal
    # $1 per million input tokens and $2 per million output tokens.
    IN_PER_TOKEN, OUT_PER_TOKEN = 1e-6, 2e-6

    def usage(self, a: Answer) -> dict:
        u = super().usage(a)
        u["cost"] = round(a.prompt_tokens * self.IN_PER_TOKEN + u["completion_tokens"] * self.OUT_PER_TOKEN, 12)
        return u


class Anthropic(_Protocol):
    name = "anthropic"

    def parse(self, request: web.Request, body: dict) -> Call:
        system = body.get("system")
        parts = [_text_of(system)] if system else []
        parts += [_text_of(m.get("content")) for m in body.get("messages", [])]
        return Call(str(body.get("model", "unknown")), " ".join(parts), bool(body.get("stream")))

    def usage(self, a: Answer) -> dict:
        # Anthropic's input_tokens excludes cache reads and writes; thinking is billed inside output_tokens.
        return {"input_tokens": a.prompt_tokens - a.cache_read - a.cache_write,
                "cache_creation_input_tokens": a.cache_write, "cache_read_input_tokens": a.cache_read,
                "output_tokens": a.output_tokens + a.reasoning}

    def stop(self, a: Answer) -> str:
        return "refusal" if a.finish == "content_filter" else "end_turn"

    def body(self, a: Answer) -> dict:
        return {"id": "msg_" + uuid.uuid4().hex[:24], "type": "message", "role": "assistant", "model": a.model,
                "content": [{"type": "text", "text": a.text}] if a.text else [],
                "stop_reason": self.stop(a), "stop_sequence": None, "usage": self.usage(a)}

    def frames(self, a: Answer, call: Call) -> list[Frame]:
        u = self.usage(a)
        start = {"type": "message_start", "message": {
            "id": "msg_" + uuid.uuid4().hex[:24], "type": "message", "role": "assistant", "model": a.model,
            "content": [], "stop_reason": None, "stop_sequence": None, "usage": {**u, "output_tokens": 1}}}
        frames = [(_sse(start, "message_start"), False),
                  (_sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                        "content_block_start"), False),
                  (_sse({"type": "ping"}, "ping"), False)]
        frames += [(_sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}},
                         "content_block_delta"), True) for p in _pieces(a.text)]
        frames += [(_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"), False),
                   (_sse({"type": "message_delta", "delta": {"stop_reason": self.stop(a), "stop_sequence": None},
                          "usage": {"output_tokens": u["output_tokens"]}}, "message_delta"), False),
                   (_sse({"type": "message_stop"}, "message_stop"), False)]
        return frames

    def error(self, status: int, kind: str, message: str) -> dict:
        return {"type": "error", "error": {"type": _ANTHROPIC_ERROR_TYPE.get(status, "api_error"), "message": message}}

    def context_window(self, call: Call) -> tuple[int, dict]:
        return 400, {"type": "error", "error": {"type": "invalid_request_error",
                                                "message": "prompt is too long: 250000 tokens > 200000 maximum"}}


_ANTHROPIC_ERROR_TYPE = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                         404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                         529: "overloaded_error"}


class Gemini(_Protocol):
    name = "gemini"

    def parse(self, request: web.Request, body: dict) -> Call:
        model, _, method = request.match_info["target"].rpartition(":")
        parts = [_text_of((body.get("system_instruction") or {}).get("parts"))]
        parts += [_text_of(c.get("parts")) for c in body.get("contents", [])]
        return Call(model, " ".join(parts), method == "streamGenerateContent")

    def usage(self, a: Answer) -> dict:
        # Gemini counts cached tokens inside promptTokenCount and thoughts beside the candidates.
        u = {"promptTokenCount": a.prompt_tokens, "candidatesTokenCount": a.output_tokens,
             "totalTokenCount": a.prompt_tokens + a.output_tokens + a.reasoning}
        if a.cache_read:
            u["cachedContentTokenCount"] = a.cache_read
        if a.reasoning:
            u["thoughtsTokenCount"] = a.reasoning
        return u

    def candidate(self, text: str | None, finish: str | None) -> dict:
        c: dict[str, Any] = {"index": 0}
        if text is not None:
            c["content"] = {"role": "model", "parts": [{"text": text}]}
        if finish:
            c["finishReason"] = finish
        return c

    def finish(self, a: Answer) -> str:
        return "SAFETY" if a.finish == "content_filter" else "STOP"

    def body(self, a: Answer) -> dict:
        return {"candidates": [self.candidate(a.text if a.finish == "stop" else None, self.finish(a))],
                "usageMetadata": self.usage(a), "modelVersion": a.model, "responseId": uuid.uuid4().hex[:20]}

    def frames(self, a: Answer, call: Call) -> list[Frame]:
        rid = uuid.uuid4().hex[:20]
        frames = [(_sse({"candidates": [self.candidate(p, None)], "modelVersion": a.model, "responseId": rid}), True)
                  for p in _pieces(a.text)]
        last = self.candidate("" if a.finish == "stop" else None, self.finish(a))
        frames.append((_sse({"candidates": [last], "usageMetadata": self.usage(a), "modelVersion": a.model,
                             "responseId": rid}), False))
        return frames

    def error(self, status: int, kind: str, message: str) -> dict:
        return {"error": {"code": status, "message": message, "status": _GOOGLE_STATUS.get(status, "INTERNAL")}}

    def context_window(self, call: Call) -> tuple[int, dict]:
        message = "The input token count (1500000) exceeds the maximum number of tokens allowed (1048576)."
        return 400, {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": message}}


_GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                  429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


class Bedrock(_Protocol):
    name = "bedrock"
    stream_type = "application/vnd.amazon.eventstream"

    def parse(self, request: web.Request, body: dict) -> Call:
        parts = [_text_of(body.get("system"))]
        parts += [_text_of(m.get("content")) for m in body.get("messages", [])]
        return Call(request.match_info["model_id"], " ".join(parts), request.path.endswith("/converse-stream"))

    def usage(self, a: Answer) -> dict:
        # Converse, like Anthropic, reports input tokens without the cached reads and writes.
        fresh = a.prompt_tokens - a.cache_read - a.cache_write
        out = a.output_tokens + a.reasoning
        return {"inputTokens": fresh, "outputTokens": out, "totalTokens": a.prompt_tokens + out,
                "cacheReadInputTokens": a.cache_read, "cacheWriteInputTokens": a.cache_write}

    def stop(self, a: Answer) -> str:
        return "content_filtered" if a.finish == "content_filter" else "end_turn"

    def body(self, a: Answer) -> dict:
        return {"output": {"message": {"role": "assistant", "content": [{"text": a.text}] if a.text else []}},
                "stopReason": self.stop(a), "usage": self.usage(a), "metrics": {"latencyMs": 1}}

    def frames(self, a: Answer, call: Call) -> list[Frame]:
        frames = [(event_frame("messageStart", {"role": "assistant"}), False)]
        frames += [(event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": p}}), True)
                   for p in _pieces(a.text)]
        frames += [(event_frame("contentBlockStop", {"contentBlockIndex": 0}), False),
                   (event_frame("messageStop", {"stopReason": self.stop(a)}), False),
                   (event_frame("metadata", {"usage": self.usage(a), "metrics": {"latencyMs": 1}}), False)]
        return frames

    def error(self, status: int, kind: str, message: str) -> dict:
        return {"message": message}

    def error_headers(self, status: int) -> dict[str, str]:
        kind = _AWS_ERROR_TYPE.get(status, "InternalServerException")
        return {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"}

    def context_window(self, call: Call) -> tuple[int, dict]:
        return 400, {"message": "Input is too long for requested model."}


_AWS_ERROR_TYPE = {400: "ValidationException", 401: "UnrecognizedClientException", 403: "AccessDeniedException",
                   404: "ResourceNotFoundException", 408: "ModelTimeoutException", 429: "ThrottlingException",
                   500: "InternalServerException", 503: "ServiceUnavailableException",
                   529: "ServiceUnavailableException"}


class Ollama(_Protocol):
    name = "ollama"
    stream_type = "application/x-ndjson"

    def parse(self, request: web.Request, body: dict) -> Call:
        return Call(str(body.get("model", "unknown")),
                    " ".join(_text_of(m.get("content")) for m in body.get("messages", [])),
                    body.get("stream") is not False)

    def usage(self, a: Answer) -> dict:
        return {"prompt_eval_count": a.prompt_tokens, "eval_count": a.output_tokens + a.reasoning}

    def head(self, a: Answer) -> dict:
        return {"model": a.model, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def body(self, a: Answer) -> dict:
        return {**self.head(a), "message": {"role": "assistant", "content": a.text}, "done": True,
                "done_reason": "stop", **self.usage(a), "total_duration": 1_000_000}

    def frames(self, a: Answer, call: Call) -> list[Frame]:
        line = lambda obj: (json.dumps(obj) + "\n").encode()  # noqa: E731
        frames = [(line({**self.head(a), "message": {"role": "assistant", "content": p}, "done": False}), True)
                  for p in _pieces(a.text)]
        frames.append((line({**self.head(a), "message": {"role": "assistant", "content": ""}, "done": True,
                             "done_reason": "stop", **self.usage(a)}), False))
        return frames

    def error(self, status: int, kind: str, message: str) -> dict:
        return {"error": message}

    def context_window(self, call: Call) -> tuple[int, dict]:
        return 400, {"error": "the input length exceeds the context length"}


# --- AWS event-stream framing (application/vnd.amazon.eventstream) ----------------------------


def event_frame(event_type: str, payload: dict) -> bytes:
    """One AWS event-stream message: prelude (total length, headers length, CRC32 of both),
    headers (1-byte name length, name, type 7 = string, 2-byte value length, value), payload,
    then a CRC32 of everything before it."""
    headers = b""
    for name, value in ((":event-type", event_type), (":content-type", "application/json"),
                        (":message-type", "event")):
        n, v = name.encode(), value.encode()
        headers += struct.pack(">B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    message = prelude + headers + body
    return message + struct.pack(">I", binascii.crc32(message))


def wire_request(protocol: str, model: str, prompt: str, stream: bool = False) -> tuple[str, dict]:
    """(path, JSON body) of the smallest request each vendor accepts — for curl, load tests and checks."""
    from urllib.parse import quote

    msgs = [{"role": "user", "content": prompt}]
    chat = {"model": model, "messages": msgs, "stream": stream,
            **({"stream_options": {"include_usage": True}} if stream else {})}
    return {
        "openai": ("/v1/chat/completions", chat),
        "azure": (f"/openai/deployments/{model}/chat/completions?api-version=2024-10-21", chat),
        "openrouter": ("/api/v1/chat/completions", chat),
        "anthropic": ("/v1/messages", {"model": model, "max_tokens": 64, "messages": msgs, "stream": stream}),
        "gemini": (f"/v1beta/models/{model}:{'streamGenerateContent?alt=sse' if stream else 'generateContent'}",
                   {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}),
        "bedrock": (f"/model/{quote(model, safe='')}/{'converse-stream' if stream else 'converse'}",
                    {"messages": [{"role": "user", "content": [{"text": prompt}]}]}),
        "ollama": ("/api/chat", {"model": model, "messages": msgs, "stream": stream}),
    }[protocol]


PROTOCOL_HANDLERS = {p.name: p for p in (OpenAI(), Azure(), OpenRouter(), Anthropic(), Gemini(), Bedrock(), Ollama())}


# --- the fault model, shared by every protocol ------------------------------------------------


class _Drop(Exception):
    """Close the connection without an answer."""


async def _hang(request: web.Request) -> None:
    """Send nothing more until the client gives up (the handler is cancelled when it disconnects)."""
    while request.transport is not None and not request.transport.is_closing():
        await asyncio.sleep(0.05)
    raise _Drop()


def _reset(request: web.Request) -> None:
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is not None:
        # SO_LINGER 0: close() sends a TCP RST instead of a FIN — "connection reset by peer".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if request.transport is not None:
        request.transport.abort()
    raise _Drop()


HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
             b"<body><h1>502 Bad Gateway</h1><p>The upstream server did not answer.</p></body></html>\n")


async def handle(request: web.Request, state: SimState, proto: _Protocol) -> web.StreamResponse:
    try:
        body = await request.json()
    except json.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        return web.json_response({"error": {"message": "request body is not a JSON object"}}, status=400)
    call = proto.parse(request, body)
    state.stats[(proto.name, call.model)] += 1
    b = state.behaviour(call.model)
    if b.down:
        if request.transport is not None:
            request.transport.close()   # a vendor that is down: the connection closes with no answer
        raise _Drop()
    delay = b.latency_ms * (state.rng.lognormvariate(0, b.latency_sigma) if b.latency_sigma else 1.0)
    await asyncio.sleep(delay / 1000)
    if b.timeout:
        await _hang(request)
    if b.fault == "reset":
        _reset(request)
    if b.error_rate and state.rng.random() < b.error_rate:
        return _error(proto, b, call, _credential(request) if b.echo_key else None)
    if b.fault == "context_window":
        status, payload = proto.context_window(call)
        return web.json_response(payload, status=status, headers=proto.error_headers(status))
    if b.fault == "html":
        return web.Response(body=HTML_PAGE, content_type="text/html")
    answer = _answer(b, call, state.answers)
    state.usage[(proto.name, call.model)] = proto.usage(answer)
    if not call.stream:
        data = json.dumps(proto.body(answer)).encode()
        if b.fault == "malformed":
            return web.Response(body=data[: len(data) // 2], content_type="application/json")
        if b.fault in ("cut_stream", "stall_stream"):
            # Not streamed: the body stops half-way (declared length never reached).
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            resp.content_length = len(data)
            await resp.prepare(request)
            await resp.write(data[: len(data) // 2])
            if b.fault == "stall_stream":
                await _hang(request)
            _cut(request)
        return web.Response(body=data, content_type="application/json")
    return await _stream(request, proto, b, answer, call)


def _error(proto: _Protocol, b: Behaviour, call: Call, credential: str | None = None) -> web.Response:
    status = b.error_status
    headers = {"Retry-After": f"{b.retry_after_s:g}"} if b.retry_after_s is not None else {}
    headers.update(proto.error_headers(status))
    message = {429: f"Rate limit exceeded for {call.model}; please retry later.",
               503: "The service is temporarily unavailable.",
               529: "Overloaded"}.get(status, f"simulated {status} for {call.model}")
    if credential is not None:
        message += f" (credential provided: {credential})"
    kind = {429: "rate_limit_exceeded", 529: "overloaded_error"}.get(status, f"sim_{status}")
    return web.json_response(proto.error(status, kind, message), status=status, headers=headers)


def _credential(request: web.Request) -> str:
    """The key a request carried, whichever header or parameter its protocol puts it in."""
    for name in ("x-api-key", "api-key", "x-goog-api-key", "authorization"):
        value = request.headers.get(name)
        if value:
            return value.removeprefix("Bearer ").strip()
    return request.query.get("key", "")


def _cut(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()   # the connection drops mid-answer, no clean end
    raise _Drop()


async def _stream(request: web.Request, proto: _Protocol, b: Behaviour, answer: Answer,
                  call: Call) -> web.StreamResponse:
    frames = proto.frames(answer, call)
    if b.fault == "malformed":
        # The first frame that carries text (or the first frame) arrives as broken JSON; nothing follows.
        i = next((i for i, (_, has_text) in enumerate(frames) if has_text), 0)
        data = frames[i][0]
        frames = frames[:i] + [(data[: len(data) // 2] + b"\n\n", False)]
    cut_at = None
    if b.fault in ("cut_stream", "stall_stream"):
        text_idx = [i for i, (_, has_text) in enumerate(frames) if has_text]
        # Cut before the (fault_after+1)-th text piece, or before the end marker if the text runs out.
        cut_at = text_idx[b.fault_after] if b.fault_after < len(text_idx) else (text_idx[-1] + 1 if text_idx else 0)
    resp = web.StreamResponse(headers={"Content-Type": proto.stream_type})
    await resp.prepare(request)
    for i, (data, _) in enumerate(frames):
        if i == cut_at:
            if b.fault == "stall_stream":
                await _hang(request)
            _cut(request)
        await resp.write(data)
    await resp.write_eof()
    return resp


# --- the fault matrix: every protocol x every fault, through litellm and the transport ----------

# How litellm reaches each protocol of the simulator: model string, api_base suffix after the
# simulator's URL, and any other ModelSpec setting the provider needs.
PROVIDERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "openai": ("openai/gpt-4o-mini", "/v1", {}),
    "azure": ("azure/gpt-4.1-mini", "", {"api_version": "2024-10-21"}),
    "openrouter": ("openrouter/meta-llama/llama-3.3-70b-instruct", "/api/v1", {}),
    "anthropic": ("anthropic/claude-haiku-4-5", "", {}),
    "gemini": ("gemini/gemini-2.5-flash-lite", "/v1beta", {}),
    "bedrock": ("bedrock/anthropic.claude-3-5-haiku-20241022-v1:0", "",
                {"params": {"aws_region_name": "eu-central-1"}}),
    "ollama": ("ollama_chat/llama3.2", "", {}),
}

# Each simulated fault and the taxonomy kind it must become, whatever the protocol.
FAULT_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "down": ({"down": True}, "connection"),
    "429 + Retry-After": ({"error_rate": 1.0, "error_status": 429, "retry_after_s": 7}, "rate_limited"),
    "500": ({"error_rate": 1.0, "error_status": 500}, "server_error"),
    "503": ({"error_rate": 1.0, "error_status": 503}, "server_error"),
    "529 overloaded": ({"error_rate": 1.0, "error_status": 529}, "overloaded"),
    "timeout": ({"timeout": True}, "timeout"),
    "connection reset": ({"fault": "reset"}, "connection"),
    "empty answer": ({"empty": True}, "empty"),
    "HTML body": ({"fault": "html"}, "malformed"),
    "malformed JSON": ({"fault": "malformed"}, "malformed"),
    "stream cut": ({"fault": "cut_stream"}, "connection"),
    "stalled stream": ({"fault": "stall_stream"}, "timeout"),
    "400": ({"error_rate": 1.0, "error_status": 400}, "bad_request"),
    "401": ({"error_rate": 1.0, "error_status": 401}, "auth"),
    "context window": ({"fault": "context_window"}, "context_window"),
    "content filter": ({"fault": "content_policy"}, "content_policy"),
}
# Faults a vendor's protocol has no way to express (Ollama has no content filter).
NOT_APPLICABLE = {("ollama", "content filter")}


@dataclass(frozen=True)
class Cell:
    fault: str
    mode: str                    # "call" or "stream"
    protocol: str
    expected: str
    kind: str | None             # None: the call succeeded
    error_class: str | None      # what litellm raised (or how the answer failed)
    retryable: bool | None
    status: int | None
    retry_after_s: float | None
    after_first_token: bool      # a stream failed after delivering text
    requests: int                # requests the simulator received for this call

    @property
    def ok(self) -> bool:
        return self.kind == self.expected and self.requests == 1


def fault_matrix(sim: "SimServer | None" = None, timeout_s: float = 0.5, progress: bool = False) -> list[Cell]:
    """Every protocol x every fault x (call, stream), through the real litellm path and the transport.

    Uses ``sim`` (reset before and after) or starts a simulator of its own.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    from .policy import ModelSpec
    from .transport import LiteLLMTransport, TransportError

    own = sim is None
    sim = sim or SimServer().start()
    transport = LiteLLMTransport()
    specs = {p: ModelSpec(alias=p, model=model, tier=1, api_base=sim.url + suffix, timeout_s=timeout_s, **extra)
             for p, (model, suffix, extra) in PROVIDERS.items()}
    wire = {p: spec.model.split("/", 1)[1] for p, spec in specs.items()}

    messages = [{"role": "user", "content": "Say hello to the matrix."}]

    def one(protocol: str, mode: str) -> tuple[Any, bool]:
        """(the TransportError or None, whether the stream had delivered text before it)"""
        try:
            if mode == "call":
                transport.complete(specs[protocol], messages)
            else:
                list(transport.stream(specs[protocol], messages))
            return None, False
        except TransportError as e:
            return e, bool(e.partial)

    cells: list[Cell] = []
    rows = [(f, m) for f in FAULT_CASES for m in ("call", "stream")]
    try:
        with ThreadPoolExecutor(max_workers=len(PROVIDERS)) as pool:
            for fault, mode in tqdm(rows, desc="fault matrix", unit="row", disable=not progress):
                behaviour, expected = FAULT_CASES[fault]
                sim.state.reset()
                sim.state.stats.clear()
                for p in PROVIDERS:
                    sim.state.set(wire[p], behaviour)
                todo = [p for p in PROVIDERS if (p, fault) not in NOT_APPLICABLE]
                for p, (err, partial) in zip(todo, pool.map(lambda p: one(p, mode), todo)):
                    cells.append(Cell(fault, mode, p, expected, *(
                        (err.kind, err.error_class, err.retryable, err.status, err.retry_after_s) if err
                        else (None, None, None, None, None)), partial, sim.state.stats[(p, wire[p])]))
    finally:
        sim.state.reset()
        sim.state.stats.clear()
        if own:
            sim.stop()
    return cells


def matrix_table(cells: list[Cell]) -> str:
    """The matrix as a Markdown table: one row per fault and mode, one column per protocol; each cell
    names what litellm raised there (bold with the kind if it is not the row's kind)."""
    protocols = list(PROVIDERS)
    by = {(c.fault, c.mode, c.protocol): c for c in cells}
    head = ["fault", "mode", "kind", "retryable", *protocols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for fault, (_, expected) in FAULT_CASES.items():
        for mode in ("call", "stream"):
            row = [fault, mode, expected, "yes" if _retryable(expected) else "no"]
            for p in protocols:
                c = by.get((fault, mode, p))
                if c is None:
                    row.append("n/a")
                    continue
                what = {"empty": "no text", "content_filter": "filter stop"}.get(c.error_class or "", c.error_class)
                text = what if c.kind == expected else f"**{c.kind or 'served'}** ({what})"
                if c.after_first_token:
                    text += " †"
                if c.retry_after_s is not None:
                    text += f" ({c.retry_after_s:g} s)"
                if c.requests != 1:
                    text += f" [{c.requests} requests]"
                row.append(text)
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _retryable(kind: str) -> bool:
    from .transport import RETRYABLE

    return kind in RETRYABLE


# --- the app -----------------------------------------------------------------------------------


def create_app(state: SimState) -> web.Application:
    @web.middleware
    async def drops(request: web.Request, handler):
        try:
            return await handler(request)
        except _Drop:
            raise asyncio.CancelledError() from None   # aiohttp then closes without writing anything

    app = web.Application(middlewares=[drops])

    def bound(proto: _Protocol) -> Callable:
        async def h(request: web.Request) -> web.StreamResponse:
            return await handle(request, state, proto)
        return h

    p = PROTOCOL_HANDLERS
    app.router.add_post("/v1/chat/completions", bound(p["openai"]))
    app.router.add_post("/chat/completions", bound(p["openai"]))
    app.router.add_post("/openai/deployments/{deployment}/chat/completions", bound(p["azure"]))
    app.router.add_post("/api/v1/chat/completions", bound(p["openrouter"]))
    app.router.add_post("/v1/messages", bound(p["anthropic"]))
    app.router.add_post("/v1beta/models/{target}", bound(p["gemini"]))
    app.router.add_post("/model/{model_id}/converse", bound(p["bedrock"]))
    app.router.add_post("/model/{model_id}/converse-stream", bound(p["bedrock"]))
    app.router.add_post("/api/chat", bound(p["ollama"]))

    async def set_model(request: web.Request) -> web.Response:
        try:
            b = state.set(request.match_info["name"], await request.json())
        except (TypeError, ValueError) as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response(asdict(b))

    async def reset(request: web.Request) -> web.Response:
        state.reset()
        state.stats.clear()
        state.usage.clear()
        return web.json_response({"ok": True})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(stats_of(state))

    async def usage(request: web.Request) -> web.Response:
        out: dict[str, dict[str, Any]] = {}
        for (protocol, model), u in state.usage.items():
            out.setdefault(protocol, {})[model] = u
        return web.json_response(out)

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "protocols": list(PROTOCOLS)})

    app.router.add_post("/_sim/models/{name}", set_model)
    app.router.add_post("/_sim/reset", reset)
    app.router.add_get("/_sim/stats", stats)
    app.router.add_get("/_sim/usage", usage)
    app.router.add_get("/_sim/health", health)
    return app


def stats_of(state: SimState) -> dict[str, Any]:
    per_model: Counter[str] = Counter()
    per_protocol: dict[str, dict[str, int]] = {}
    for (protocol, model), n in state.stats.items():
        per_model[model] += n
        per_protocol.setdefault(protocol, {})[model] = n
    return {"total": sum(per_model.values()), "models": dict(per_model), "protocols": per_protocol}


def _runner(state: SimState) -> web.AppRunner:
    # handler_cancellation: a client that gives up (timeout, stalled stream) frees its handler at once.
    return web.AppRunner(create_app(state), access_log=None, handler_cancellation=True, shutdown_timeout=1)


class SimServer:
    """Run the simulator in a background thread (for tests and notebooks).

    >>> with SimServer() as sim:
    ...     sim.url          # http://127.0.0.1:PORT
    """

    def __init__(self, port: int = 0, scenario: dict[str, Any] | None = None, seed: int = 0):
        self.state = SimState(scenario, seed)
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "SimServer":
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._runner = _runner(self.state)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="routekit-sim", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the simulator did not start within 10 s")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    def __enter__(self) -> "SimServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve(port: int, scenario: dict[str, Any] | None = None, seed: int = 0) -> None:
    """Serve in the foreground until interrupted (``routekit sim serve``)."""

    async def main() -> None:
        runner = _runner(SimState(scenario, seed))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass

