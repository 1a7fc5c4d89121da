"""Anthropic Messages: SSE with an ``event:`` line per frame; input tokens reported without the cache."""
from __future__ import annotations

import uuid

from aiohttp import web

from ..answers import Answer, Call
from .base import Frame, WireProtocol, call_of, sim_tool, sse, text_of

_CHOICE = {"auto": "auto", "any": "required", "none": "none"}

_ERROR_TYPE = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}


class Anthropic(WireProtocol):
    name = "anthropic"
    paths = ("/v1/messages",)

    def parse(self, request: web.Request, body: dict) -> Call:
        system = body.get("system")
        parts = [text_of(system)] if system else []
        messages = body.get("messages") or []
        parts += [text_of(m.get("content")) for m in messages]
        choice = body.get("tool_choice") or {}
        last = messages[-1].get("content") if messages else None
        fmt = body.get("output_format") or {}
        return call_of(str(body.get("model", "unknown")), " ".join(parts), bool(body.get("stream")),
                       tools=[t for t in (sim_tool(t.get("name"), t.get("input_schema"))
                                          for t in body.get("tools") or () if isinstance(t, dict)) if t],
                       tool_choice=(choice.get("name") if choice.get("type") == "tool"
                                    else _CHOICE.get(choice.get("type"))),
                       after_tool_result=isinstance(last, list) and any(
                           isinstance(b, dict) and b.get("type") == "tool_result" for b in last),
                       schema=fmt.get("schema") if fmt.get("type") == "json_schema" else None)

    def request(self, model: str, prompt: str, stream: bool = False) -> tuple[str, dict]:
        return self.paths[0], {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": prompt}],
                               "stream": stream}

    def usage(self, a: Answer) -> dict:
        # Anthropic's input_tokens excludes cache reads and writes; thinking is billed inside output_tokens.
        return {"input_tokens": a.prompt_tokens - a.cache_read - a.cache_write,
                "cache_creation_input_tokens": a.cache_write, "cache_read_input_tokens": a.cache_read,
                "output_tokens": a.output_tokens + a.reasoning}

    def stop(self, a: Answer) -> str:
        return {"content_filter": "refusal", "tool_calls": "tool_use"}.get(a.finish, "end_turn")

    def blocks(self, a: Answer) -> list[dict]:
        out = [{"type": "text", "text": a.text}] if a.text else []
        if a.tool_use is not None:
            out.append({"type": "tool_use", "id": "toolu_" + a.tool_use.id, "name": a.tool_use.name,
                        "input": a.tool_use.arguments})
        return out

    def body(self, a: Answer) -> dict:
        return {"id": "msg_" + uuid.uuid4().hex[:24], "type": "message", "role": "assistant", "model": a.model,
                "content": self.blocks(a), "stop_reason": self.stop(a), "stop_sequence": None, "usage": self.usage(a)}

    def frames(self, a: Answer, call: Call) -> list[Frame]:
        u = self.usage(a)
        start = {"type": "message_start", "message": {
            "id": "msg_" + uuid.uuid4().hex[:24], "type": "message", "role": "assistant", "model": a.model,
            "content": [], "stop_reason": None, "stop_sequence": None, "usage": {**u, "output_tokens": 1}}}
        frames = [(sse(start, "message_start"), False), (sse({"type": "ping"}, "ping"), False)]
        index = 0
        if a.text or a.tool_use is None:
            frames.append((sse({"type": "content_block_start", "index": 0,
                                "content_block": {"type": "text", "text": ""}}, "content_block_start"), False))
            frames += [(sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}},
                            "content_block_delta"), True) for p in a.pieces()]
            frames.append((sse({"type": "content_block_stop", "index": 0}, "content_block_stop"), False))
            index = 1
        use = a.tool_use
        if use is not None:
            frames.append((sse({"type": "content_block_start", "index": index, "content_block": {
                "type": "tool_use", "id": "toolu_" + use.id, "name": use.name, "input": {}}}, "content_block_start"),
                           False))
            frames += [(sse({"type": "content_block_delta", "index": index,
                             "delta": {"type": "input_json_delta", "partial_json": p}}, "content_block_delta"), True)
                       for p in use.pieces(as_object=True)]
            frames.append((sse({"type": "content_block_stop", "index": index}, "content_block_stop"), False))
        frames += [(sse({"type": "message_delta", "delta": {"stop_reason": self.stop(a), "stop_sequence": None},
                         "usage": {"output_tokens": u["output_tokens"]}}, "message_delta"), False),
                   (sse({"type": "message_stop"}, "message_stop"), False)]
        return frames

    def error(self, status: int, kind: str, message: str) -> dict:
        return {"type": "error", "error": {"type": _ERROR_TYPE.get(status, "api_error"), "message": message}}

    def context_window(self, call: Call) -> tuple[int, dict]:
        return 400, {"type": "error", "error": {"type": "invalid_request_error",
                                                "message": "prompt is too long: 250000 tokens > 200000 maximum"}}

