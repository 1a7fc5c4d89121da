"""Google Gemini ``generateContent`` / ``streamGenerateContent?alt=sse``: the model and the method in the path."""
from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from ..answers import Answer, Call
from .base import Frame, WireProtocol, sse, text_of

_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


class Gemini(WireProtocol):
    name = "gemini"
    paths = ("/v1beta/models/{target}",)

    def parse(self, request: web.Request, body: dict) -> Call:
        model, _, method = request.match_info["target"].rpartition(":")
        parts = [text_of((body.get("system_instruction") or {}).get("parts"))]
        parts += [text_of(c.get("parts")) for c in body.get("contents", [])]
        return Call(model, " ".join(parts), method == "streamGenerateContent")

    def request(self, model: str, prompt: str, stream: bool = False) -> tuple[str, dict]:
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"/v1beta/models/{model}:{method}", {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}

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
        frames = [(sse({"candidates": [self.candidate(p, None)], "modelVersion": a.model, "responseId": rid}), True)
                  for p in a.pieces()]
        last = self.candidate("" if a.finish == "stop" else None, self.finish(a))
        frames.append((sse({"candidates": [last], "usageMetadata": self.usage(a), "modelVersion": a.model,
                            "responseId": rid}), False))
        return frames

    def error(self, status: int, kind: str, message: str) -> dict:
        return {"error": {"code": status, "message": message, "status": _STATUS.get(status, "INTERNAL")}}

    def context_window(self, call: Call) -> tuple[int, dict]:
        message = "The input token count (1500000) exceeds the maximum number of tokens allowed (1048576)."
        return 400, {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": message}}
