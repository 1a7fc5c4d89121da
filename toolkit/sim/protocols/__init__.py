"""The vendor protocols the simulator speaks, one module per vendor with the same shape (:class:`WireProtocol`):
parse a request, build the smallest one, render an answer, its usage, an error, stream frames and a
context-window rejection in that vendor's own field names."""
from __future__ import annotations

from .anthropic import Anthropic
from .base import Frame, WireProtocol
from .bedrock import Bedrock, event_frame
from .gemini import Gemini
from .ollama import Ollama
from .openai import Azure, OpenAI, OpenRouter

PROTOCOL_HANDLERS: dict[str, WireProtocol] = {
    p.name: p for p in (OpenAI(), Azure(), OpenRouter(), Anthropic(), Gemini(), Bedrock(), Ollama())}
PROTOCOLS: tuple[str, ...] = tuple(PROTOCOL_HANDLERS)


def wire_request(protocol: str, model: str, prompt: str, stream: bool = False) -> tuple[str, dict]:
    """(path, JSON body) of the smallest request each vendor accepts — for curl, load tests and checks."""
    return PROTOCOL_HANDLERS[protocol].request(model, prompt, stream)


__all__ = ["PROTOCOLS", "PROTOCOL_HANDLERS", "Anthropic", "Azure", "Bedrock", "Frame", "Gemini", "Ollama", "OpenAI",
           "OpenRouter", "WireProtocol", "event_frame", "wire_request"]
