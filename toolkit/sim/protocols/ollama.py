"""Ollama ``/api/chat``: NDJSON lines when streamed (the default), token counts as eval counts.  Tools as OpenAI
writes them, calls sent whole with arguments as an object and no id; there is no ``tool_choice`` on the wire
(litellm drops it), so the model always chooses."""
from __future__ import annotations

import json
import time

from aiohttp import web

from ..answers import Answer, Call
from .base import Frame, WireProtocol, call_of, sim_tool, text_of


class Ollama(WireProtocol):
    name = "ollama"
    paths = ("/api/chat",)
    stream_type = "application/x-ndjson"

    def parse(self, request: web.Request, body: dict) -> Call:
        messages = body.get("messages") or []
        fmt = body.get("format")
        tools = [sim_tool(t.get("function", {}).get("name"), t.get("function", {}).get("parameters"))
                 for t in body.get("tools") or () if isinstance(t, dict) and isinstance(t.get("function"), dict)]
        return call_of(str(body.get("model", "unknown")), " ".join(text_of(m.get("content")) for m in messages),
                       body.get("stream") is not False, tools=[t for t in tools if t], tool_choice="auto",
                       after_tool_result=bool(messages) and messages[-1].get("role") == "tool",
                       schema=fmt if isinstance(fmt, dict) else None, json_mode=fmt == "json")

    def request(self, model: str, prompt: str, stream: bool = False) -> tuple[str, dict]:
        return self.paths[0], {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": stream}

    def usage(self, a: Answer) -> dict:
        return {"prompt_eval_count": a.prompt_tokens, "eval_count": a.output_tokens + a.reasoning}

    def head(self, a: Answer) -> dict:
        return {"model": a.model, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def message(self, a: Answer, content: str) -> dict:
        message = {"role": "assistant", "content": content}
        if a.tool_use is not None:   # Ollama sends calls whole, arguments as an object, no id
            message["tool_calls"] = [{"function": {"name": a.tool_use.name, "arguments": a.tool_use.arguments}}]
        return message

    def body(self, a: Answer) -> dict:
        return {**self.head(a), "message": self.message(a, a.text), "done": True,
                "done_reason": "stop", **self.usage(a), "total_duration": 1_000_000}

    def frames(self, a: Answer, call: Call) -> list[Frame]:
        line = lambda obj: (json.dumps(obj) + "\n").encode()  # noqa: E731
        frames = [(line({**self.head(a), "message": {"role": "assistant", "content": p}, "done": False}), True)
                  for p in a.pieces()]
        if a.tool_use is not None:
            frames.append((line({**self.head(a), "message": self.message(a, ""), "done": False}), True))
        frames.append((line({**self.head(a), "message": {"role": "assistant", "content": ""}, "done": True,
                             "done_reason": "stop", **self.usage(a)}), False))
        return frames

    def error(self, status: int, kind: str, message: str) -> dict:
        return {"error": message}

    def context_window(self, call: Call) -> tuple[int, dict]:
        return 400, {"error": "the input length exceeds the context length"}
