"""What every vendor protocol of the simulator implements: :class:`WireProtocol`, and the pieces they share."""
from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ..answers import JSON_MODE, Answer, Call, SimTool

# A stream is a list of frames, each marked if it carries answer text: a cut or a stall is placed
# by counting those.
Frame = tuple[bytes, bool]


def sse(obj: Any, event: str | None = None) -> bytes:
    """One server-sent event: an optional ``event:`` line and a ``data:`` line of JSON."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(obj)}\n\n".encode()


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or a list of parts with ``text``."""
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def call_of(request_model: str, prompt: str, stream: bool, *, include_usage: bool = True,
            tools: list[SimTool] | None = None, tool_choice: str | None = None, after_tool_result: bool = False,
            schema: Any = None, json_mode: bool = False) -> Call:
    """A :class:`Call` from what a protocol's parser found (``json_mode``: JSON asked for without a schema)."""
    shape = schema if isinstance(schema, dict) else (JSON_MODE if json_mode else None)
    return Call(request_model, prompt, stream, include_usage, tuple(tools or ()), tool_choice, after_tool_result,
                shape)


def sim_tool(name: Any, schema: Any) -> SimTool | None:
    return SimTool(name, schema if isinstance(schema, dict) else {}) if isinstance(name, str) else None


class WireProtocol:
    """One vendor's wire format, both sides: the paths it serves, how a request names its model and prompt
    (``parse``; ``request`` builds the smallest one a client may send), and how an answer (whole or as
    stream frames), its usage block, an error and a context-window rejection look in that vendor's own
    shapes.  Each vendor lives in its own module of this package with the same methods."""

    name = ""
    paths: tuple[str, ...] = ()              # aiohttp routes (POST) this protocol answers
    stream_type = "text/event-stream"

    def parse(self, request: web.Request, body: dict) -> Call:
        raise NotImplementedError

    def request(self, model: str, prompt: str, stream: bool = False) -> tuple[str, dict]:
        """(path, JSON body) of the smallest request the vendor accepts — for curl, load tests and checks."""
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
