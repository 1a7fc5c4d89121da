"""OpenAI chat completions, and the two vendors that speak it: Azure OpenAI (by deployment) and OpenRouter
(which reports what a call cost)."""
from __future__ import annotations

import time
import uuid
from typing import Any

from aiohttp import web

from ..answers import Answer, Call
from .base import Frame, WireProtocol, call_of, sim_tool, sse, text_of

_ERROR_TYPE = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 429: "rate_limit_error"}


class OpenAI(WireProtocol):
    name = "openai"
    paths = ("/v1/chat/completions", "/chat/completions")

    def parse(self, request: web.Request, body: dict) -> Call:
        messages = body.get("messages") or []
        tools = [sim_tool(t.get("function", {}).get("name"), t.get("function", {}).get("parameters"))
                 for t in body.get("tools") or () if isinstance(t, dict) and isinstance(t.get("function"), dict)]
        choice = body.get("tool_choice")
        if isinstance(choice, dict):
            choice = (choice.get("function") or {}).get("name")
        fmt = body.get("response_format") or {}
        return call_of(self.model(request, body), " ".join(text_of(m.get("content")) for m in messages),
                       bool(body.get("stream")),
                       include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
                       tools=[t for t in tools if t], tool_choice=choice,
                       after_tool_result=bool(messages) and messages[-1].get("role") == "tool",
                       schema=((fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema"
                               else None),
                       json_mode=fmt.get("type") == "json_object")

    def model(self, request: web.Request, body: dict) -> str:
        return str(body.get("model", "unknown"))

    def request(self, model: str, prompt: str, stream: bool = False) -> tuple[str, dict]:
        return self.paths[0], {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": stream,
                               **({"stream_options": {"include_usage": True}} if stream else {})}

    def usage(self, a: Answer) -> dict:
        out = a.output_tokens + a.reasoning
        return {"prompt_tokens": a.prompt_tokens, "completion_tokens": out, "total_tokens": a.prompt_tokens + out,
                "prompt_tokens_details": {"cached_tokens": a.cache_read},
                "completion_tokens_details": {"reasoning_tokens": a.reasoning}}

    def message(self, a: Answer) -> dict:
        if a.tool_use is None:
            return {"role": "assistant", "content": a.text}
        u = a.tool_use
        return {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_" + u.id, "type": "function", "function": {"name": u.name, "arguments": u.text}}]}

    def body(self, a: Answer) -> dict:
        return {"id": "chatcmpl-" + uuid.uuid4().hex[:12], "object": "chat.completion", "created": int(time.time()),
                "model": a.model, "choices": [{"index": 0, "message": self.message(a), "finish_reason": a.finish}],
                "usage": self.usage(a)}

    def frames(self, a: Answer, call: Call) -> list[Frame]:
        rid, now = "chatcmpl-" + uuid.uuid4().hex[:12], int(time.time())

        def chunk(delta: dict, finish: str | None = None, **extra: Any) -> bytes:
            return sse({"id": rid, "object": "chat.completion.chunk", "created": now, "model": a.model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra})

        frames = [(chunk({"role": "assistant", "content": ""}), False)]
        frames += [(chunk({"content": p}), True) for p in a.pieces()]
        u = a.tool_use
        if u is not None:
            frames.append((chunk({"tool_calls": [{"index": 0, "id": "call_" + u.id, "type": "function",
                                                  "function": {"name": u.name, "arguments": ""}}]}), False))
            frames += [(chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}), True)
                       for p in u.pieces()]
        frames.append((chunk({}, a.finish), False))
        if call.include_usage:
            frames.append((sse({"id": rid, "object": "chat.completion.chunk", "created": now, "model": a.model,
                                "choices": [], "usage": self.usage(a)}), False))
        frames.append((b"data: [DONE]\n\n", False))
        return frames

    def error(self, status: int, kind: str, message: str) -> dict:
        return {"error": {"message": message, "type": _ERROR_TYPE.get(status, "server_error"),
                          "param": None, "code": kind}}

    def context_window(self, call: Call) -> tuple[int, dict]:
        message = ("This model's maximum context length is 128000 tokens. However, your messages resulted in "
                   "200000 tokens. Please reduce the length of the messages.")
        return 400, {"error": {"message": message, "type": "invalid_request_error", "param": "messages",
                               "code": "context_length_exceeded"}}


class Azure(OpenAI):
    name = "azure"
    paths = ("/openai/deployments/{deployment}/chat/completions",)

    def model(self, request: web.Request, body: dict) -> str:
        return request.match_info["deployment"]   # Azure routes by deployment name, not by a body field

    def request(self, model: str, prompt: str, stream: bool = False) -> tuple[str, dict]:
        _, body = super().request(model, prompt, stream)
        return f"/openai/deployments/{model}/chat/completions?api-version=2024-10-21", body


class OpenRouter(OpenAI):
    name = "openrouter"
    paths = ("/api/v1/chat/completions",)
    # OpenRouter reports what the call cost in usage.cost; the simulator bills a nominal
    # $1 per million input tokens and $2 per million output tokens.
    IN_PER_TOKEN, OUT_PER_TOKEN = 1e-6, 2e-6

    def usage(self, a: Answer) -> dict:
        u = super().usage(a)
        u["cost"] = round(a.prompt_tokens * self.IN_PER_TOKEN + u["completion_tokens"] * self.OUT_PER_TOKEN, 12)
        return u
