"""Google Gemini ``generateContent`` / ``streamGenerateContent?alt=sse``: the model and the method in the path."""
from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from ..answers import Answer, Call
from .base import Frame, WireProtocol, call_of, sim_tool, sse, text_of


def _get(d: Any, *names: str) -> Any:
    """A field by its snake_case or camelCase name (litellm writes one, google-genai the other)."""
    if not isinstance(d, dict):
        return None
    return next((d[n] for n in names if n in d), None)

_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


class Gemini(WireProtocol):
    name = "gemini"
    paths = ("/v1beta/models/{target}",)

    def parse(self, request: web.Request, body: dict) -> Call:
        model, _, method = request.match_info["target"].rpartition(":")
        contents = body.get("contents") or []
        parts = [text_of((_get(body, "system_instruction", "systemInstruction") or {}).get("parts"))]
        parts += [text_of(c.get("parts")) for c in contents]
        tools = [sim_tool(f.get("name"), _get(f, "parameters", "parameters_json_schema", "parametersJsonSchema"))
                 for t in body.get("tools") or ()
                 for f in _get(t, "function_declarations", "functionDeclarations") or ()]
        calling = _get(_get(body, "toolConfig", "tool_config"), "functionCallingConfig",
                       "function_calling_config") or {}
        mode, allowed = str(calling.get("mode", "AUTO")).upper(), _get(calling, "allowed_function_names",
                                                                         "allowedFunctionNames") or []
        choice = {"NONE": "none", "ANY": allowed[0] if len(allowed) == 1 else "required"}.get(mode, "auto")
        last = contents[-1].get("parts") if contents else None
        config = _get(body, "generationConfig", "generation_config") or {}
        schema = _get(config, "response_json_schema", "responseJsonSchema", "response_schema", "responseSchema")
        return call_of(model, " ".join(parts), method == "streamGenerateContent", tools=[t for t in tools if t],
                       tool_choice=choice, schema=schema,
                       after_tool_result=isinstance(last, list) and any(
                           _get(p, "function_response", "functionResponse") for p in last),
                       json_mode=_get(config, "response_mime_type", "responseMimeType") == "application/json")

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

    def candidate(self, text: str | None, finish: str | None, a: Answer | None = None) -> dict:
        c: dict[str, Any] = {"index": 0}
        parts = [{"text": text}] if text is not None else []
        if a is not None and a.tool_use is not None:
            parts.append({"functionCall": {"name": a.tool_use.name, "args": a.tool_use.arguments}})
        if parts:
            c["content"] = {"role": "model", "parts": parts}
        if finish:
            c["finishReason"] = finish
        return c

    def finish(self, a: Answer) -> str:
        return "SAFETY" if a.finish == "content_filter" else "STOP"   # a function call ends with STOP too

    def body(self, a: Answer) -> dict:
        text = a.text if a.finish == "stop" or (a.tool_use and a.text) else None
        return {"candidates": [self.candidate(text, self.finish(a), a)],
                "usageMetadata": self.usage(a), "modelVersion": a.model, "responseId": uuid.uuid4().hex[:20]}

    def frames(self, a: Answer, call: Call) -> list[Frame]:
        rid = uuid.uuid4().hex[:20]
        frames = [(sse({"candidates": [self.candidate(p, None)], "modelVersion": a.model, "responseId": rid}), True)
                  for p in a.pieces()]
        if a.tool_use is not None:   # Gemini sends a function call whole, in one chunk
            frames.append((sse({"candidates": [self.candidate(None, None, a)], "modelVersion": a.model,
                                "responseId": rid}), True))
        last = self.candidate("" if a.finish == "stop" else None, self.finish(a))
        frames.append((sse({"candidates": [last], "usageMetadata": self.usage(a), "modelVersion": a.model,
                            "responseId": rid}), False))
        return frames

    def error(self, status: int, kind: str, message: str) -> dict:
        return {"error": {"code": status, "message": message, "status": _STATUS.get(status, "INTERNAL")}}

    def context_window(self, call: Call) -> tuple[int, dict]:
        message = "The input token count (1500000) exceeds the maximum number of tokens allowed (1048576)."
        return 400, {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": message}}
