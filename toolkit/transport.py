"""The one narrow seam between routekit and providers.

Everything above this module sees a :class:`Reply` (or, streamed, text deltas
then a Reply) or a :class:`TransportError` with a ``kind`` from one small
taxonomy; nothing above it knows a vendor's name.  litellm is imported lazily
(it takes seconds), and its providers' differences are folded in here:

- the same HTTP answer becomes a different exception class per provider (a
  refused connection is ``InternalServerError`` for openai/ and anthropic/,
  ``APIConnectionError`` elsewhere; an HTML page is ``BadRequestError(422)`` for
  gemini/ and bedrock/; Anthropic's ``overloaded_error`` arrives as a 500), and a
  failure inside a stream is wrapped in ``MidStreamFallbackError``;
- an empty answer is ``""`` or ``None``; ``choices: []`` escapes as a bare
  ``IndexError``; a stream cut short ends *quietly* on some providers (litellm
  adds a ``stop`` of its own), so the provider's own end-of-answer marker is checked;
- the OpenAI SDK retries 3 times unless told not to (``max_retries=0`` here:
  every request that reaches a vendor is one attempt in the record);
- gemini/ streams ignore ``timeout``, so they get an HTTP client that honours it,
  and async streams carry their own deadline per chunk;
- ``response.model`` is the provider's word when not streaming; streamed, litellm
  reports the requested name, so the provider's own is read from the stream.
  Bedrock Converse names no model, and litellm drops Ollama's name from an answer
  not streamed: those report the requested model (never a policy alias).
- the chat parameters of a request (toolkit/chat.py: tools, tool_choice, response_format,
  sampling) are handed to litellm, which translates them per vendor; tool calls come back
  normalized (:class:`~toolkit.chat.ToolCall`: id, name, JSON arguments), streamed ones as
  :class:`~toolkit.chat.ToolCallDelta` pieces.  A sampling parameter a provider does not take
  (``seed`` on Anthropic or Bedrock) is not sent, and the reply's ``notes`` say so, rather than
  failing the attempt; likewise ``tool_choice: none`` where the vendor has no such choice
  (Bedrock): the tools are not sent, which has the same effect (litellm refuses it before
  sending anything); litellm's MCP gateway is skipped (routekit's calls never use it, and
  litellm would import the ``mcp`` package for every call with tools).

Error kinds (``retryable``: another candidate, or the same one later, may succeed,
so the Router moves on; ``status`` is the provider's HTTP status when it answered
with one, as litellm reports it — None for connection failures and timeouts):

============== ========= ===========================================================
kind           retryable typical cause
============== ========= ===========================================================
rate_limited   yes       429, with ``retry_after_s`` from Retry-After when given
overloaded     yes       529 / Anthropic ``overloaded_error``
server_error   yes       500, 502, 503, 504
timeout        yes       no answer (or no next chunk) within the model's ``timeout_s``
connection     yes       closed without an answer, reset, refused, cut mid-body
empty          yes       200 with no text
malformed      yes       200 with HTML, broken JSON, ``choices: []``, a stream without its end
tool_error     yes       a deterministic tool candidate raised (a model may still serve)
context_window no        prompt longer than the model's window
content_policy no        refused by the provider's filter (error or ``content_filter`` stop)
auth           no        401/403, missing key variable
bad_request    no        400/404/422 the provider rejects as such
boundary       no        a ``boundary: local`` model whose endpoint is not local: refused, nothing sent
============== ========= ===========================================================

The privacy boundary is checked here a second time (the policy checked it at load):
a local model is only ever called at its own explicit, local ``api_base`` — never at
a provider's default endpoint, whatever the spec handed in.

Usage is sanity-checked: a negative count is ``malformed`` (a provider must not lower
recorded spend); a count above ``costs.MAX_TOKENS`` is capped, and the reply's
``notes`` say so (the record's ``warnings``).  Every key sent is remembered by
toolkit.redact, so an error body that echoes it is scrubbed by value.

A streamed failure after text was delivered keeps that text in ``partial``; the
Router then never switches silently (see ``Router.stream``).  ``routekit sim
matrix`` prints what every simulated fault becomes, per protocol (docs/errors.md).
"""
from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterator, Protocol

from . import redact
from .chat import NO_OPTIONS, ChatOptions, ToolCall, ToolCallDelta
from .errors import KINDS, RETRYABLE, TransportError  # noqa: F401  (the taxonomy this module produces)
from .policy import ModelSpec
from .tools import load_function
from .usage import MAX_TOKENS, Usage

MAX_RETRY_AFTER_S = 86400.0 * 365   # a Retry-After beyond a year is recorded as a year

# A placeholder key for endpoints that need none (the simulator, a local server).
NO_KEY = "routekit-no-key"

# Providers whose answers carry what the call cost (usage.cost); others' costs come from the price snapshot.
_BILLS_IN_BAND = {"openrouter"}


@dataclass(frozen=True)
class Reply:
    text: str
    usage: Usage
    provider: str
    response_model: str          # what the provider said it served, else the requested model
    latency_ms: float
    provider_cost_usd: float | None = None
    notes: tuple[str, ...] = ()  # what was off about the answer but did not fail it (e.g. usage capped)
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None   # OpenAI's names, as litellm maps each vendor's: stop, length, tool_calls...


Delta = str | ToolCallDelta   # what a stream passes on as it arrives: text, or a piece of a tool call


class Transport(Protocol):
    def complete(self, spec: ModelSpec, messages: list[dict], *, max_tokens: int | None = None,
                 options: ChatOptions = NO_OPTIONS) -> Reply: ...

    async def acomplete(self, spec: ModelSpec, messages: list[dict], *, max_tokens: int | None = None,
                        options: ChatOptions = NO_OPTIONS) -> Reply: ...

    def stream(self, spec: ModelSpec, messages: list[dict], *, max_tokens: int | None = None,
               options: ChatOptions = NO_OPTIONS) -> Iterator[Delta | Reply]:
        """Text and tool-call deltas as they arrive, then one :class:`Reply` (full text, tool calls, usage)."""

    def astream(self, spec: ModelSpec, messages: list[dict], *, max_tokens: int | None = None,
                options: ChatOptions = NO_OPTIONS) -> AsyncIterator[Delta | Reply]: ...


@functools.cache
def litellm_module() -> Any:
    """litellm, imported once and set up for routekit: offline prices, no telemetry, no Hub downloads, and no
    cost calculation inside routekit's own calls (routekit prices every attempt from its snapshot; litellm's
    calculator costs ~0.3 ms a call)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch prices from the network
    # nor Anthropic's beta-header table (fetched on the first call with response_format, else)
    os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
    import litellm
    from litellm._internal_context import is_internal_call
    from litellm.litellm_core_utils.litellm_logging import Logging

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    litellm.disable_hf_tokenizer_download = True  # a streamed llama-3 answer would otherwise try the Hub
    priced = Logging.response_cost_calculator

    def response_cost_calculator(self: Any, *args: Any, **kw: Any) -> float | None:
        return None if is_internal_call.get() else priced(self, *args, **kw)

    Logging.response_cost_calculator = response_cost_calculator   # only routekit's calls set is_internal_call
    return litellm


class LiteLLMTransport:
    """Calls models through litellm, one request per call (no hidden SDK retries)."""

    def __init__(self) -> None:
        self._lit = litellm_module()
        self._providers: dict[str, str] = {}
        self._supported: dict[str, frozenset[str] | None] = {}
        self._clients: dict[float, Any] = {}
        # routekit writes its own record and computes its own cost: inside its calls litellm's background
        # success logging (callbacks routekit does not use) and cost calculation are off.
        from litellm._internal_context import is_internal_call

        self._internal = is_internal_call

    @contextmanager
    def _quiet(self):
        token = self._internal.set(True)
        try:
            yield
        finally:
            self._internal.reset(token)

    def _kwargs(self, spec: ModelSpec, messages: list[dict], max_tokens: int | None, options: ChatOptions,
                notes: list[str], stream: bool = False) -> dict[str, Any]:
        kw: dict[str, Any] = dict(spec.params)
        if options is not NO_OPTIONS:
            kw.update(self._sendable(spec, options.kwargs(), notes))
        # max_retries=0 turns off the OpenAI SDK's hidden retries; num_retries stays unset (its wrapper costs ~0.7 ms)
        kw.update(model=spec.model, messages=messages, timeout=spec.timeout_s, max_retries=0)
        if spec.api_base:
            kw["api_base"] = spec.api_base
        if spec.api_version:
            kw["api_version"] = spec.api_version
        if spec.api_key_env:
            key = os.environ.get(spec.api_key_env)
            if not key:
                raise TransportError("auth", f"environment variable {spec.api_key_env} is not set",
                                     provider=self.provider(spec))
            redact.remember(key)
            kw["api_key"] = key
        elif spec.api_base:
            kw["api_key"] = NO_KEY
        limit = max_tokens or spec.max_output_tokens
        if limit:
            kw["max_tokens"] = limit
        if stream:
            kw.update(stream=True, stream_options={"include_usage": True})
        if "tools" in kw:
            kw["_skip_mcp_handler"] = True   # litellm's MCP gateway would import the mcp package on every call
        return kw

    # Sampling parameters a provider may not take: dropped with a note rather than failing the attempt.  Tools
    # and response formats are never dropped: a candidate that cannot take them is skipped before the call.
    _DROPPABLE = ("seed", "top_p", "stop", "temperature")

    def _sendable(self, spec: ModelSpec, params: dict[str, Any], notes: list[str]) -> dict[str, Any]:
        supported = self._supported_params(spec)
        if supported is None:
            return params
        dropped = [k for k in self._DROPPABLE if k in params and k not in supported]
        if dropped:
            notes.append(f"{', '.join(dropped)} not supported by {self.provider(spec)} for {spec.model}: not sent")
        return {k: v for k, v in params.items() if k not in dropped}

    def _supported_params(self, spec: ModelSpec) -> frozenset[str] | None:
        if spec.target not in self._supported:
            try:
                found = self._lit.get_supported_openai_params(model=spec.model, custom_llm_provider=self.provider(spec))
            except Exception:  # noqa: BLE001 — unknown to litellm: send everything, the provider decides
                found = None
            self._supported[spec.target] = frozenset(found) if found else None
        return self._supported[spec.target]

    def _send(self, kw: dict[str, Any], notes: list[str]) -> Any:
        try:
            return self._lit.completion(**kw)
        except Exception as e:  # noqa: BLE001 — one refusal is handled, the rest classified by the caller
            return self._lit.completion(**_without_tools(e, kw, notes))

    async def _asend(self, kw: dict[str, Any], notes: list[str]) -> Any:
        try:
            return await self._lit.acompletion(**kw)
        except Exception as e:  # noqa: BLE001
            return await self._lit.acompletion(**_without_tools(e, kw, notes))

    def _guard(self, spec: ModelSpec) -> None:
        """Refuse to send a local-boundary model anywhere but its own local endpoint."""
        if spec.effective_boundary == "local" and not spec.endpoint_is_local:
            raise TransportError("boundary", f"{spec.alias or spec.target} is boundary 'local' but its endpoint "
                                 f"{spec.api_base!r} is not local: refused, nothing was sent",
                                 provider=spec.provider_prefix, error_class="BoundaryViolation")

    def provider(self, spec: ModelSpec) -> str:
        name = self._providers.get(spec.target)
        if name is None:
            try:
                name = self._lit.get_llm_provider(spec.model)[1]
            except Exception:  # noqa: BLE001 — an unknown prefix is still a provider name to record
                name = spec.provider_prefix
            self._providers[spec.target] = name
        return name

    # --- one answer ----------------------------------------------------------------------------

    def complete(self, spec: ModelSpec, messages: list[dict], *, max_tokens: int | None = None,
                 options: ChatOptions = NO_OPTIONS) -> Reply:
        if spec.is_tool:
            return call_tool(spec, messages)
        self._guard(spec)
        provider = self.provider(spec)
        notes: list[str] = []
        t0 = time.perf_counter()
        try:
            with self._quiet():
                resp = self._send(self._kwargs(spec, messages, max_tokens, options, notes), notes)
        except TransportError:
            raise
        except Exception as e:  # noqa: BLE001 — every provider failure is classified below
            raise classify(e, provider, (time.perf_counter() - t0) * 1000) from None
        return _reply(resp, spec, provider, (time.perf_counter() - t0) * 1000, notes)

    async def acomplete(self, spec: ModelSpec, messages: list[dict], *, max_tokens: int | None = None,
                        options: ChatOptions = NO_OPTIONS) -> Reply:
        if spec.is_tool:
            return await asyncio.to_thread(call_tool, spec, messages)
        self._guard(spec)
        provider = self.provider(spec)
        notes: list[str] = []
        t0 = time.perf_counter()
        try:
            with self._quiet():
                resp = await self._asend(self._kwargs(spec, messages, max_tokens, options, notes), notes)
        except TransportError:
            raise
        except Exception as e:  # noqa: BLE001
            raise classify(e, provider, (time.perf_counter() - t0) * 1000) from None
        return _reply(resp, spec, provider, (time.perf_counter() - t0) * 1000, notes)

    # --- streamed ------------------------------------------------------------------------------

    def stream(self, spec: ModelSpec, messages: list[dict], *, max_tokens: int | None = None,
               options: ChatOptions = NO_OPTIONS) -> Iterator[Delta | Reply]:
        """Yield text and tool-call deltas as the provider sends them, then one :class:`Reply`.

        Raises :class:`TransportError`; once something was yielded its ``partial`` holds what was delivered (the
        text, and the tool calls' names and argument pieces).
        """
        if spec.is_tool:
            reply = call_tool(spec, messages)
            yield reply.text
            yield reply
            return
        self._guard(spec)
        acc = _Stream(spec, self.provider(spec))
        resp = None
        try:
            kw = self._kwargs(spec, messages, max_tokens, options, acc.notes, stream=True)
            if acc.provider == "gemini":
                kw["client"] = self._sync_client(spec.timeout_s)
            with self._quiet():
                resp = self._send(kw, acc.notes)
            chunks = iter(resp)
            while True:
                with self._quiet():
                    chunk = next(chunks, None)
                if chunk is None:
                    break
                yield from acc.add(chunk)
        except TransportError:
            raise
        except Exception as e:  # noqa: BLE001 — classified like any other failure, keeping the text so far
            raise acc.failed(e) from None
        finally:
            _close(resp)
        yield acc.reply(resp)

    async def astream(self, spec: ModelSpec, messages: list[dict], *, max_tokens: int | None = None,
                      options: ChatOptions = NO_OPTIONS) -> AsyncIterator[Delta | Reply]:
        """Async :meth:`stream`; every wait (the call, each chunk) has the model's ``timeout_s`` as deadline."""
        if spec.is_tool:
            reply = await asyncio.to_thread(call_tool, spec, messages)
            yield reply.text
            yield reply
            return
        self._guard(spec)
        acc = _Stream(spec, self.provider(spec))
        resp = None
        try:
            with self._quiet():
                async with asyncio.timeout(spec.timeout_s):
                    resp = await self._asend(self._kwargs(spec, messages, max_tokens, options, acc.notes,
                                                          stream=True), acc.notes)
            chunks = aiter(resp)
            while True:
                with self._quiet():
                    async with asyncio.timeout(spec.timeout_s):
                        chunk = await anext(chunks, None)
                if chunk is None:
                    break
                for item in acc.add(chunk):
                    yield item
        except TransportError:
            raise
        except Exception as e:  # noqa: BLE001
            raise acc.failed(e) from None
        finally:
            if resp is not None and hasattr(resp, "aclose"):
                await resp.aclose()
        yield acc.reply(resp)

    def _sync_client(self, timeout_s: float) -> Any:
        client = self._clients.get(timeout_s)
        if client is None:
            from litellm.llms.custom_httpx.http_handler import HTTPHandler

            client = self._clients[timeout_s] = HTTPHandler(timeout=timeout_s)
        return client


def _without_tools(e: Exception, kw: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """The arguments again without tools, when litellm refused ``tool_choice: none`` for a vendor that has no such
    choice (it refuses before sending anything); any other exception is raised again."""
    if type(e).__name__ != "UnsupportedParamsError" or kw.get("tool_choice") != "none":
        raise e
    notes.append(f"tool_choice none is not supported for {kw['model']}: the tools were not sent instead")
    return {k: v for k, v in kw.items() if k not in ("tools", "tool_choice", "_skip_mcp_handler")}


def _close(resp: Any) -> None:
    """Release a sync stream's connection when the caller stopped early or it failed."""
    inner = getattr(resp, "completion_stream", None)
    close = getattr(inner, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # noqa: BLE001 — best effort: the stream is already finished or broken
            pass


class _Stream:
    """What one streamed answer has delivered so far, and how it ends."""

    def __init__(self, spec: ModelSpec, provider: str):
        self.spec, self.provider = spec, provider
        self.t0 = time.perf_counter()
        self.parts: list[str] = []
        self.calls: dict[int, list] = {}   # index -> [id, name, argument pieces]
        self.usage: Any = None
        self.notes: list[str] = []

    def ms(self) -> float:
        return (time.perf_counter() - self.t0) * 1000

    def add(self, chunk: Any) -> list[Delta]:
        """The deltas a chunk carries: its text, then pieces of tool calls."""
        if getattr(chunk, "usage", None) is not None:
            self.usage = chunk.usage
        choices = getattr(chunk, "choices", None) or ()
        delta = getattr(choices[0], "delta", None) if choices else None
        out: list[Delta] = []
        text = getattr(delta, "content", None)
        if isinstance(text, str) and text:
            self.parts.append(text)
            out.append(text)
        for position, call in enumerate(getattr(delta, "tool_calls", None) or ()):
            index = getattr(call, "index", None)
            index = index if isinstance(index, int) else position
            fn = getattr(call, "function", None)
            call_id, name = getattr(call, "id", None), getattr(fn, "name", None)
            pieces = getattr(fn, "arguments", None)
            pieces = pieces if isinstance(pieces, str) else ""
            known = self.calls.setdefault(index, [None, None, []])
            new_id = call_id if call_id and not known[0] else None
            new_name = name if name and not known[1] else None
            known[0], known[1] = known[0] or call_id, known[1] or name
            known[2].append(pieces)
            if new_id or new_name or pieces:
                out.append(ToolCallDelta(index, new_id, new_name, pieces))
        return out

    def delivered(self) -> str:
        """What the caller has seen: the text, then each tool call's name and argument pieces."""
        return "".join(self.parts) + "".join((name or "") + "".join(args) for _, name, args in self.calls.values())

    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(ToolCall(call_id or f"call_{index}", name or "", "".join(args))
                     for index, (call_id, name, args) in sorted(self.calls.items()))

    def failed(self, e: Exception) -> TransportError:
        err = classify(e, self.provider, self.ms())
        err.partial = self.delivered()
        err.usage = _usage(self.usage)[0]
        return err

    def reply(self, resp: Any) -> Reply:
        text = "".join(self.parts)
        shown = self.delivered()
        usage, notes = _checked_usage(self.usage, self.provider, self.ms(), shown)
        # litellm adds a "stop" of its own when a stream ends without the provider's end marker.
        finish = getattr(resp, "received_finish_reason", None) or getattr(resp, "intermittent_finish_reason", None)
        if finish is None:
            raise TransportError("malformed", "stream ended before the provider's end-of-answer marker",
                                 provider=self.provider, error_class="IncompleteStream", latency_ms=self.ms(),
                                 usage=usage, partial=shown)
        _refuse_filtered(finish, self.provider, self.ms(), usage, shown)
        calls = self.tool_calls()
        if not text.strip() and not calls:
            raise TransportError("empty", "provider streamed no text", provider=self.provider, status=200,
                                 latency_ms=self.ms(), usage=usage)
        said = getattr(resp, "_provider_response_model", None)  # litellm's copy of the stream's own "model"
        return Reply(text=text, usage=usage, provider=self.provider, response_model=_served_name(said, self.spec),
                     latency_ms=self.ms(), provider_cost_usd=_provider_cost(self.usage, self.provider),
                     notes=(*self.notes, *notes), tool_calls=calls, finish_reason=_finish_reason(finish, calls))


def _refuse_filtered(finish: Any, provider: str, latency_ms: float, usage: Usage, partial: str = "") -> None:
    if finish == "content_filter":
        raise TransportError("content_policy", "the provider's content filter stopped the answer",
                             provider=provider, status=200, error_class="content_filter", latency_ms=latency_ms,
                             usage=usage, partial=partial)


def _reply(resp: Any, spec: ModelSpec, provider: str, latency_ms: float, notes: list[str] | tuple = ()) -> Reply:
    try:
        choice = resp.choices[0]
        message = choice.message
    except (IndexError, AttributeError, TypeError):
        raise TransportError("malformed", "response has no choices", provider=provider,
                             error_class="IndexError", latency_ms=latency_ms) from None
    usage, capped = _checked_usage(getattr(resp, "usage", None), provider, latency_ms)
    finish = getattr(choice, "finish_reason", None)
    _refuse_filtered(finish, provider, latency_ms, usage)
    text = message.content if isinstance(message.content, str) else ""
    calls = _tool_calls(getattr(message, "tool_calls", None))
    if not text.strip() and not calls:
        raise TransportError("empty", "provider answered with no text", provider=provider, status=200,
                             latency_ms=latency_ms, usage=usage)
    return Reply(text=text, usage=usage, provider=provider, response_model=_served_name(resp.model, spec),
                 latency_ms=latency_ms, provider_cost_usd=_provider_cost(getattr(resp, "usage", None), provider),
                 notes=(*notes, *capped), tool_calls=calls, finish_reason=_finish_reason(finish, calls))


def _tool_calls(raw: Any) -> tuple[ToolCall, ...]:
    """litellm's tool calls (OpenAI's shape, whatever the vendor) as routekit's; arguments stay JSON text."""
    out = []
    for i, call in enumerate(raw or ()):
        fn = getattr(call, "function", None)
        args = getattr(fn, "arguments", None)
        if not isinstance(args, str):   # some adapters hand over the parsed object
            args = json.dumps(args if args is not None else {})
        out.append(ToolCall(getattr(call, "id", None) or f"call_{i}", getattr(fn, "name", None) or "", args))
    return tuple(out)


def _finish_reason(finish: Any, calls: tuple[ToolCall, ...]) -> str | None:
    """OpenAI's finish reason, true to the answer: one with tool calls ends with ``tool_calls`` (Gemini and Ollama
    say "stop"), one without does not (litellm turns Bedrock's forced JSON tool into text but keeps its reason)."""
    if calls and finish in (None, "stop"):
        return "tool_calls"
    if not calls and finish == "tool_calls":
        return "stop"
    return finish if isinstance(finish, str) else None


def _served_name(said: Any, spec: ModelSpec) -> str:
    """The provider's own word for the model it served, else the requested model — never an alias."""
    requested = spec.model.split("/", 1)[-1] if spec.model else spec.target
    if not isinstance(said, str) or not said:
        return requested
    # litellm puts its own prefix on some echoes (ollama_chat/NAME): that is not the provider's word.
    prefix = spec.provider_prefix + "/"
    return said[len(prefix):] if said.startswith(prefix) and said[len(prefix):] == requested else said


def _provider_cost(raw_usage: Any, provider: str) -> float | None:
    cost = getattr(raw_usage, "cost", None) if provider in _BILLS_IN_BAND else None
    return float(cost) if isinstance(cost, (int, float)) else None


def _usage(u: Any) -> tuple[Usage, dict[str, int]]:
    """litellm's usage (OpenAI field names) -> routekit's (input includes cached reads and writes, output
    includes reasoning tokens), every count within 0..MAX_TOKENS; and the counts that were out of range."""
    if u is None:
        return Usage(), {}
    get = lambda obj, name: (getattr(obj, name, None) if obj is not None else None) or 0  # noqa: E731
    pdet = getattr(u, "prompt_tokens_details", None)
    cdet = getattr(u, "completion_tokens_details", None)
    raw = {
        "input_tokens": get(u, "prompt_tokens"),
        "output_tokens": get(u, "completion_tokens"),
        "cache_read_tokens": get(pdet, "cached_tokens") or get(u, "cache_read_input_tokens"),
        "cache_write_tokens": get(u, "cache_creation_input_tokens") or get(pdet, "cache_creation_tokens"),
        "reasoning_tokens": get(cdet, "reasoning_tokens"),
    }
    counts: dict[str, int] = {}
    for name, value in raw.items():
        try:
            counts[name] = int(value)
        except (TypeError, ValueError, OverflowError):
            counts[name] = -1   # not a count at all: as wrong as a negative one
    off = {k: v for k, v in counts.items() if not 0 <= v <= MAX_TOKENS}
    return Usage(**{k: min(max(v, 0), MAX_TOKENS) for k, v in counts.items()}), off


def _checked_usage(u: Any, provider: str, latency_ms: float, partial: str = "") -> tuple[Usage, tuple[str, ...]]:
    """Usage of an answer: a negative count fails the attempt (``malformed``: it would lower recorded spend);
    an absurd one is capped at MAX_TOKENS, and the note says so."""
    usage, off = _usage(u)
    negative = {k: v for k, v in off.items() if v < 0}
    if negative:
        raise TransportError("malformed", f"provider reported negative or unreadable usage {negative}",
                             provider=provider, status=200, error_class="BadUsage", latency_ms=latency_ms,
                             usage=usage, partial=partial)
    notes = tuple(f"usage capped: {k} {v:.3g} > {MAX_TOKENS:,}" for k, v in off.items())
    return usage, notes


def reply_of(resp: Any, spec: ModelSpec, provider: str, latency_ms: float) -> Reply:
    """A litellm response read as the transport reads its own (text, usage, the served name, notes); raises
    TransportError for an answer routekit would refuse (no choices, no text, negative usage, filtered)."""
    return _reply(resp, spec, provider, latency_ms)


def usage_of(resp: Any) -> Usage:
    """Usage of a litellm response, in routekit's terms."""
    return _usage(getattr(resp, "usage", None))[0]


# --- the error taxonomy ------------------------------------------------------------------------


def _retry_after(e: Exception) -> float | None:
    for headers in (getattr(e, "litellm_response_headers", None), getattr(e, "headers", None),
                    getattr(getattr(e, "response", None), "headers", None)):
        if not headers:
            continue
        try:
            value = next((headers[k] for k in headers if str(k).lower() == "retry-after"), None)
            if value is not None:
                seconds = float(value)
                # a date, a negative or a non-number is no usable wait; years are capped (the circuit caps further)
                return min(seconds, MAX_RETRY_AFTER_S) if math.isfinite(seconds) and seconds >= 0 else None
        except (TypeError, ValueError):
            return None
    return None


_CONTEXT_WORDS = re.compile(r"(?i)context.length|context window|prompt is too long|input is too long|"
                            r"exceeds the maximum number of tokens|maximum context")
_POLICY_WORDS = re.compile(r"(?i)content.?policy|content_filter|content management policy|safety system")
_OVERLOADED_WORDS = re.compile(r"(?i)overloaded")
_TIMEOUT_WORDS = re.compile(r"(?i)timed? ?out\b|timeout")
_MALFORMED_WORDS = re.compile(r"(?i)<html|<!doctype|jsondecode|expecting value|unterminated string|invalid json|"
                              r"unable to get json|unable to parse|failed to parse|not valid json|unexpected string "
                              r"response|invalid response|error converting to valid response|checksum mismatch|"
                              r"undecoded bytes|malformed")
_CONNECTION_WORDS = re.compile(r"(?i)connection (refused|reset|error|aborted)|connecterror|cannot connect|"
                               r"remote ?protocol ?error|server disconnected|peer closed connection|"
                               r"incomplete chunked read|name or service not known|errno 10[34]|errno 111")
_MAX_MESSAGE = 600
# Exception classes litellm uses when no HTTP answer came back (their status_code is made up).
_NO_ANSWER = {"APIConnectionError", "Timeout", "APITimeoutError", "TimeoutError", "ReadTimeout",
              "InternalServerError", "APIError", "ServiceUnavailableError", "BadGatewayError"}


def classify(e: Exception, provider: str, latency_ms: float) -> TransportError:
    """Map any exception litellm raises (for any provider, streamed or not) to one taxonomy kind."""
    # A failure inside a stream arrives wrapped; the wrapped exception carries the class and headers.
    inner = getattr(e, "original_exception", None)
    if type(e).__name__ == "MidStreamFallbackError" and isinstance(inner, Exception):
        e = inner
    name = type(e).__name__
    status = getattr(e, "status_code", None)
    status = status if isinstance(status, int) else None
    # Some providers append a whole Python traceback (whose code lines mention "timeout"): keep the message.
    text = str(e).split("\nTraceback (most recent call last)", 1)[0].strip()[:_MAX_MESSAGE]

    def err(kind: str, **kw: Any) -> TransportError:
        # The status is kept only where the provider really answered with it.
        answered = kind not in ("timeout", "connection", "malformed")
        return TransportError(kind, text, provider=provider, status=status if answered else None,
                              error_class=name, latency_ms=latency_ms, **kw)

    client_error = status is not None and 400 <= status < 500 and status not in (408, 429)
    if name == "ContextWindowExceededError" or (client_error and _CONTEXT_WORDS.search(text)):
        return err("context_window")
    if name == "ContentPolicyViolationError" or (client_error and _POLICY_WORDS.search(text)):
        return err("content_policy")
    if status == 529 or _OVERLOADED_WORDS.search(text):
        return err("overloaded", retry_after_s=_retry_after(e))
    if name == "RateLimitError" or status == 429:
        return err("rate_limited", retry_after_s=_retry_after(e))
    if name in ("AuthenticationError", "PermissionDeniedError") or status in (401, 403):
        return err("auth")
    if name in ("Timeout", "APITimeoutError", "TimeoutError", "ReadTimeout") or (
            name in _NO_ANSWER and _TIMEOUT_WORDS.search(text)):
        return err("timeout")
    if name in ("JSONDecodeError", "IndexError") or _MALFORMED_WORDS.search(text):
        return err("malformed")
    if name == "APIConnectionError" or _CONNECTION_WORDS.search(text):
        return err("connection")
    if (status is not None and status >= 500) or name in _NO_ANSWER:
        return err("server_error")
    if client_error or name in ("BadRequestError", "NotFoundError", "UnprocessableEntityError",
                                "UnsupportedParamsError"):
        return err("bad_request")
    return err("server_error")


# --- deterministic tools as candidates ---------------------------------------------------------


def call_tool(spec: ModelSpec, messages: list[dict]) -> Reply:
    """Run a ``tool:`` candidate: a Python function taking messages and returning text."""
    t0 = time.perf_counter()
    try:
        text = load_function(spec.tool)(messages)
    except Exception as e:  # noqa: BLE001 — a tool's failure is an attempt outcome like any other
        raise TransportError("tool_error", f"{type(e).__name__}: {e}", provider="routekit_tool",
                             error_class=type(e).__name__, latency_ms=(time.perf_counter() - t0) * 1000) from None
    latency = (time.perf_counter() - t0) * 1000
    if not isinstance(text, str) or not text.strip():
        raise TransportError("empty", "tool returned no text", provider="routekit_tool", latency_ms=latency)
    return Reply(text=text, usage=Usage(), provider="routekit_tool", response_model=spec.tool, latency_ms=latency)
