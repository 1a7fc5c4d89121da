"""AWS Bedrock Converse: the model id in the path, streams in AWS event-stream framing
(``application/vnd.amazon.eventstream``), the error kind in an ``x-amzn-ErrorType`` header."""
from __future__ import annotations

import binascii
import json
import struct

from aiohttp import web

from ..answers import Answer, Call
from .base import Frame, WireProtocol, call_of, sim_tool, text_of

_ERROR_TYPE = {400: "ValidationException", 401: "UnrecognizedClientException", 403: "AccessDeniedException",
               404: "ResourceNotFoundException", 408: "ModelTimeoutException", 429: "ThrottlingException",
               500: "InternalServerException", 503: "ServiceUnavailableException",
               529: "ServiceUnavailableException"}


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


class Bedrock(WireProtocol):
    name = "bedrock"
    paths = ("/model/{model_id}/converse", "/model/{model_id}/converse-stream")
    stream_type = "application/vnd.amazon.eventstream"

    def parse(self, request: web.Request, body: dict) -> Call:
        messages = body.get("messages") or []
        parts = [text_of(body.get("system"))]
        parts += [text_of(m.get("content")) for m in messages]
        config = body.get("toolConfig") or {}
        specs = [t.get("toolSpec") or {} for t in config.get("tools") or () if isinstance(t, dict)]
        choice = config.get("toolChoice") or {}
        named = (choice.get("tool") or {}).get("name")
        last = messages[-1].get("content") if messages else None
        return call_of(request.match_info["model_id"], " ".join(parts), request.path.endswith("/converse-stream"),
                       tools=[t for t in (sim_tool(s.get("name"), (s.get("inputSchema") or {}).get("json"))
                                          for s in specs) if t],
                       tool_choice=named or ("required" if "any" in choice else "auto"),
                       after_tool_result=isinstance(last, list) and any(
                           isinstance(b, dict) and "toolResult" in b for b in last))

    def request(self, model: str, prompt: str, stream: bool = False) -> tuple[str, dict]:
        from urllib.parse import quote

        return (f"/model/{quote(model, safe='')}/{'converse-stream' if stream else 'converse'}",
                {"messages": [{"role": "user", "content": [{"text": prompt}]}]})

    def usage(self, a: Answer) -> dict:
        # Converse, like Anthropic, reports input tokens without the cached reads and writes.
        fresh = a.prompt_tokens - a.cache_read - a.cache_write
        out = a.output_tokens + a.reasoning
        return {"inputTokens": fresh, "outputTokens": out, "totalTokens": a.prompt_tokens + out,
                "cacheReadInputTokens": a.cache_read, "cacheWriteInputTokens": a.cache_write}

    def stop(self, a: Answer) -> str:
        return {"content_filter": "content_filtered", "tool_calls": "tool_use"}.get(a.finish, "end_turn")

    def body(self, a: Answer) -> dict:
        content = [{"text": a.text}] if a.text else []
        if a.tool_use is not None:
            u = a.tool_use
            content.append({"toolUse": {"toolUseId": "tooluse_" + u.id, "name": u.name, "input": u.arguments}})
        return {"output": {"message": {"role": "assistant", "content": content}},
                "stopReason": self.stop(a), "usage": self.usage(a), "metrics": {"latencyMs": 1}}

    def frames(self, a: Answer, call: Call) -> list[Frame]:
        frames = [(event_frame("messageStart", {"role": "assistant"}), False)]
        index = 0
        if a.text or a.tool_use is None:
            frames += [(event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": p}}), True)
                       for p in a.pieces()]
            frames.append((event_frame("contentBlockStop", {"contentBlockIndex": 0}), False))
            index = 1
        u = a.tool_use
        if u is not None:
            frames.append((event_frame("contentBlockStart", {"contentBlockIndex": index, "start": {
                "toolUse": {"toolUseId": "tooluse_" + u.id, "name": u.name}}}), False))
            frames += [(event_frame("contentBlockDelta", {"contentBlockIndex": index,
                                                          "delta": {"toolUse": {"input": p}}}), True)
                       for p in u.pieces(as_object=True)]
            frames.append((event_frame("contentBlockStop", {"contentBlockIndex": index}), False))
        frames += [(event_frame("messageStop", {"stopReason": self.stop(a)}), False),
                   (event_frame("metadata", {"usage": self.usage(a), "metrics": {"latencyMs": 1}}), False)]
        return frames

    def error(self, status: int, kind: str, message: str) -> dict:
        return {"message": message}

    def error_headers(self, status: int) -> dict[str, str]:
        kind = _ERROR_TYPE.get(status, "InternalServerException")
        return {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"}

    def context_window(self, call: Call) -> tuple[int, dict]:
        return 400, {"message": "Input is too long for requested model."}
