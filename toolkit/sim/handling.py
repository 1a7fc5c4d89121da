"""One request through the fault model: the same faults, whatever the protocol; the protocol only renders."""
from __future__ import annotations

import asyncio
import json
import socket
import struct

from aiohttp import web

from .answers import Answer, Call, answer_for
from .faults import Behaviour, SimState
from .protocols import WireProtocol


class Drop(Exception):
    """Close the connection without an answer (the app's middleware turns it into a silent close)."""


HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
             b"<body><h1>502 Bad Gateway</h1><p>The upstream server did not answer.</p></body></html>\n")


async def handle(request: web.Request, state: SimState, proto: WireProtocol) -> web.StreamResponse:
    """Answer one request in ``proto``'s wire format as its model's :class:`Behaviour` says."""
    try:
        body = await request.json()
    except json.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        return web.json_response({"error": {"message": "request body is not a JSON object"}}, status=400)
    call = proto.parse(request, body)
    state.stats[(proto.name, call.model)] += 1
    state.bodies[(proto.name, call.model)] = body
    b = state.behaviour(call.model)
    if b.down:
        if request.transport is not None:
            request.transport.close()   # a vendor that is down: the connection closes with no answer
        raise Drop()
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
    answer = answer_for(b, call, state.answers)
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


async def _hang(request: web.Request) -> None:
    """Send nothing more until the client gives up (the handler is cancelled when it disconnects)."""
    while request.transport is not None and not request.transport.is_closing():
        await asyncio.sleep(0.05)
    raise Drop()


def _reset(request: web.Request) -> None:
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is not None:
        # SO_LINGER 0: close() sends a TCP RST instead of a FIN — "connection reset by peer".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if request.transport is not None:
        request.transport.abort()
    raise Drop()


def _cut(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()   # the connection drops mid-answer, no clean end
    raise Drop()


def _error(proto: WireProtocol, b: Behaviour, call: Call, credential: str | None = None) -> web.Response:
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


async def _stream(request: web.Request, proto: WireProtocol, b: Behaviour, answer: Answer,
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
