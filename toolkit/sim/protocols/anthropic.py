"""Anthropic Messages: SSE with an ``event:`` line per frame; input tokens reported without the cache."""
from __future__ import annotations

import uuid

from aiohttp import web

from ..answers import Answer, Call
from .base import Frame, WireProtocol, sse, text_of

_ERROR_TYPE = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}


class Anthropic(WireProtocol):
    name = "anthropic"
    paths = ("/v1/messages",)

    def parse(self, request: web.Request, body: dict) -> Call:
        system = body.get("system")
        parts = [text_of(system)] if system else []
        parts += [text_of(m.get("content")) for m in body.get("messages", [])]
        return Call(str(body.get("model", "unknown")), " ".join(parts), bool(body.get("stream")))

    def request(self, model: str, prompt: str, stream: bool = False) -> tuple[str, dict]:
        return self.paths[0], {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": prompt}],
                               "stream": stream}

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
        frames = [(sse(start, "message_start"), False),
                  (sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                       "content_block_start"), False),
                  (sse({"type": "ping"}, "ping"), False)]
        frames += [(sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}},
                        "content_block_delta"), True) for p in a.pieces()]
        frames += [(sse({"type": "content_block_stop", "index": 0}, "content_block_stop"), False),
                   (sse({"type": "message_delta", "delta": {"stop_reason": self.stop(a), "stop_sequence": None},
                         "usage": {"output_tokens": u["output_tokens"]}}, "message_delta"), False),
                   (sse({"type": "message_stop"}, "message_stop"), False)]
        return frames

    def error(self, status: int, kind: str, message: str) -> dict:
        return {"type": "error", "error": {"type": _ERROR_TYPE.get(status, "api_error"), "message": message}}

    def context_window(self, call: Call) -> tuple[int, dict]:
        return 400, {"type": "error", "error": {"type": "invalid_request_error",
                                                "message": "prompt is too long: 250000 tokens > 200000 maximum"}}
