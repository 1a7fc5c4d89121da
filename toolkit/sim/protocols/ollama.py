"""Ollama ``/api/chat``: NDJSON lines when streamed (the default), token counts as eval counts."""
from __future__ import annotations

import json
import time

from aiohttp import web

from ..answers import Answer, Call
from .base import Frame, WireProtocol, text_of


class Ollama(WireProtocol):
    name = "ollama"
    paths = ("/api/chat",)
    stream_type = "application/x-ndjson"

    def parse(self, request: web.Request, body: dict) -> Call:
        return Call(str(body.get("model", "unknown")),
                    " ".join(text_of(m.get("content")) for m in body.get("messages", [])),
                    body.get("stream") is not False)

    def request(self, model: str, prompt: str, stream: bool = False) -> tuple[str, dict]:
        return self.paths[0], {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": stream}

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
                  for p in a.pieces()]
        frames.append((line({**self.head(a), "message": {"role": "assistant", "content": ""}, "done": True,
                             "done_reason": "stop", **self.usage(a)}), False))
        return frames

    def error(self, status: int, kind: str, message: str) -> dict:
        return {"error": message}

    def context_window(self, call: Call) -> tuple[int, dict]:
        return 400, {"error": "the input length exceeds the context length"}
