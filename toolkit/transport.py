"""The one narrow seam between routekit and providers.

Everything above this module sees a :class:`Reply` or a :class:`TransportError`
with a ``kind`` from one small taxonomy; nothing above it knows a vendor's name.
litellm is imported lazily (it takes seconds), and its providers' differences —
exception classes for the same HTTP answer, ``""`` vs ``None`` for an empty
answer, bare ``IndexError`` on ``choices: []``, the OpenAI SDK's hidden retries —
are folded in here.

Error kinds (``retryable`` means another candidate, or the same one later, may
succeed, so the Router moves on):

============== ========= ==========================================
kind           retryable typical cause
============== ========= ==========================================
rate_limited   yes       429, with ``retry_after_s`` when given
overloaded     yes       529 / ``overloaded_error``
server_error   yes       500, 502, 503, 504
timeout        yes       no answer within the model's timeout
connection     yes       refused, reset, DNS
empty          yes       200 with no text
malformed      yes       200 with HTML, broken JSON, ``choices: []``
context_window no        prompt longer than the model's window
content_policy no        refused by the provider's filter
auth           no        401/403, missing key variable
bad_request    no        400/404/422 the provider rejects as such
tool_error     no        a deterministic tool candidate raised
============== ========= ==========================================
"""
from __future__ import annotations

import asyncio
import importlib
import os
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from .costs import Usage
from .policy import ModelSpec
from .redact import scrub

RETRYABLE = {"rate_limited", "overloaded", "server_error", "timeout", "connection", "empty", "malformed"}
KINDS = (*sorted(RETRYABLE), "context_window", "content_policy", "auth", "bad_request", "tool_error")

# A placeholder key for endpoints that need none (the simulator, a local server).
NO_KEY = "routekit-no-key"


@dataclass(frozen=True)
class Reply:
    text: str
    usage: Usage
    provider: str
    response_model: str          # what the provider said it served, else the requested model
    latency_ms: float
    provider_cost_usd: float | None = None


class TransportError(Exception):
    def __init__(self, kind: str, message: str, *, provider: str, status: int | None = None,
                 retry_after_s: float | None = None, error_class: str | None = None,
                 latency_ms: float = 0.0, usage: Usage | None = None):
        self.kind = kind
        self.retryable = kind in RETRYABLE
        self.provider = provider
        self.status = status
        self.retry_after_s = retry_after_s
        self.error_class = error_class or kind
        self.latency_ms = latency_ms
        self.usage = usage or Usage()
        self.message = scrub(message) or kind
        super().__init__(f"{kind}: {self.message}")


class Transport(Protocol):
    def complete(self, spec: ModelSpec, messages: list[dict], *, max_tokens: int | None = None) -> Reply: ...

    async def acomplete(self, spec: ModelSpec, messages: list[dict], *, max_tokens: int | None = None) -> Reply: ...


def _litellm():
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch prices from the network
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


class LiteLLMTransport:
    """Calls models through litellm, one request per call (no hidden SDK retries)."""

    def __init__(self) -> None:
        self._lit = _litellm()
        self._providers: dict[str, str] = {}
        # routekit writes its own record and computes its own cost; litellm's background success
        # logging (callbacks routekit does not use) would only compete for the GIL with the Router.
        from litellm._internal_context import is_internal_call

        self._quiet = is_internal_call

    def _kwargs(self, spec: ModelSpec, messages: list[dict], max_tokens: int | None) -> dict[str, Any]:
        kw: dict[str, Any] = dict(spec.params)
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
            kw["api_key"] = key
        elif spec.api_base:
            kw["api_key"] = NO_KEY
        limit = max_tokens or spec.max_output_tokens
        if limit:
            kw["max_tokens"] = limit
        return kw

    def provider(self, spec: ModelSpec) -> str:
        name = self._providers.get(spec.target)
        if name is None:
            try:
                name = self._lit.get_llm_provider(spec.model)[1]
            except Exception:  # noqa: BLE001 — an unknown prefix is still a provider name to record
                name = spec.provider_prefix
            self._providers[spec.target] = name
        return name

    def complete(self, spec: ModelSpec, messages: list[dict], *, max_tokens: int | None = None) -> Reply:
        if spec.is_tool:
            return call_tool(spec, messages)
        provider = self.provider(spec)
        t0 = time.perf_counter()
        token = self._quiet.set(True)
        try:
            resp = self._lit.completion(**self._kwargs(spec, messages, max_tokens))
        except TransportError:
            raise
        except Exception as e:  # noqa: BLE001 — every provider failure is classified below
            raise classify(e, provider, (time.perf_counter() - t0) * 1000) from None
        finally:
            self._quiet.reset(token)
        return _reply(resp, spec, provider, (time.perf_counter() - t0) * 1000)

    async def acomplete(self, spec: ModelSpec, messages: list[dict], *, max_tokens: int | None = None) -> Reply:
        if spec.is_tool:
            return await asyncio.to_thread(call_tool, spec, messages)
        provider = self.provider(spec)
        t0 = time.perf_counter()
        token = self._quiet.set(True)
        try:
            resp = await self._lit.acompletion(**self._kwargs(spec, messages, max_tokens))
        except TransportError:
            raise
        except Exception as e:  # noqa: BLE001
            raise classify(e, provider, (time.perf_counter() - t0) * 1000) from None
        finally:
            self._quiet.reset(token)
        return _reply(resp, spec, provider, (time.perf_counter() - t0) * 1000)


def _reply(resp: Any, spec: ModelSpec, provider: str, latency_ms: float) -> Reply:
    try:
        message = resp.choices[0].message
    except (IndexError, AttributeError, TypeError):
        raise TransportError("malformed", "response has no choices", provider=provider,
                             error_class="IndexError", latency_ms=latency_ms) from None
    usage = usage_of(resp)
    text = message.content if isinstance(message.content, str) else ""
    if not text.strip():
        raise TransportError("empty", "provider answered with no text", provider=provider, status=200,
                             latency_ms=latency_ms, usage=usage)
    provider_cost = None
    raw_usage = getattr(resp, "usage", None)
    if raw_usage is not None and isinstance(getattr(raw_usage, "cost", None), (int, float)):
        provider_cost = float(raw_usage.cost)
    return Reply(text=text, usage=usage, provider=provider,
                 response_model=_served_name(resp, spec), latency_ms=latency_ms, provider_cost_usd=provider_cost)


def _served_name(resp: Any, spec: ModelSpec) -> str:
    said = getattr(resp, "model", None)
    if isinstance(said, str) and said:
        # litellm may echo the name without our provider prefix; keep the provider's own words.
        return said
    return spec.model.split("/", 1)[-1] if spec.model else spec.target


def usage_of(resp: Any) -> Usage:
    u = getattr(resp, "usage", None)
    if u is None:
        return Usage()
    get = lambda obj, name: (getattr(obj, name, None) if obj is not None else None) or 0  # noqa: E731
    pdet = getattr(u, "prompt_tokens_details", None)
    cdet = getattr(u, "completion_tokens_details", None)
    cache_read = get(pdet, "cached_tokens") or get(u, "cache_read_input_tokens")
    cache_write = get(u, "cache_creation_input_tokens") or get(pdet, "cache_creation_tokens")
    return Usage(
        input_tokens=int(get(u, "prompt_tokens")),
        output_tokens=int(get(u, "completion_tokens")),
        cache_read_tokens=int(cache_read),
        cache_write_tokens=int(cache_write),
        reasoning_tokens=int(get(cdet, "reasoning_tokens")),
    )


_RETRY_AFTER = re.compile(r"(?i)retry-after")


def _retry_after(e: Exception) -> float | None:
    for attr in ("litellm_response_headers", "headers"):
        headers = getattr(e, attr, None)
        if headers:
            for k in headers:
                if _RETRY_AFTER.fullmatch(str(k)):
                    try:
                        return float(headers[k])
                    except (TypeError, ValueError):
                        return None
    response = getattr(e, "response", None)
    headers = getattr(response, "headers", None)
    if headers is not None:
        try:
            value = headers.get("retry-after")
            return float(value) if value is not None else None
        except (TypeError, ValueError):
            return None
    return None


_CONNECTION_WORDS = re.compile(r"(?i)connection (refused|reset|error|aborted)|connecterror|cannot connect|"
                               r"remote ?protocol ?error|server disconnected|name or service not known")
_MALFORMED_WORDS = re.compile(r"(?i)<html|<!doctype|jsondecode|expecting value|invalid json|unable to parse|"
                              r"failed to parse|unexpected token|not valid json|malformed")
_TIMEOUT_WORDS = re.compile(r"(?i)timed? ?out|timeout")
_OVERLOADED_WORDS = re.compile(r"(?i)overloaded")


def classify(e: Exception, provider: str, latency_ms: float) -> TransportError:
    """Map any exception litellm raises to one taxonomy kind."""
    name = type(e).__name__
    status = getattr(e, "status_code", None)
    status = status if isinstance(status, int) else None
    text = str(e)

    def err(kind: str, **kw: Any) -> TransportError:
        return TransportError(kind, text, provider=provider, status=status, error_class=name,
                              latency_ms=latency_ms, **kw)

    if name == "ContextWindowExceededError":
        return err("context_window")
    if name == "ContentPolicyViolationError":
        return err("content_policy")
    if status == 529 or _OVERLOADED_WORDS.search(text):
        return err("overloaded", retry_after_s=_retry_after(e))
    if name == "RateLimitError" or status == 429:
        return err("rate_limited", retry_after_s=_retry_after(e))
    if name in ("Timeout", "APITimeoutError", "TimeoutError", "ReadTimeout") or (
            name not in ("BadRequestError",) and _TIMEOUT_WORDS.search(text) and status in (None, 408, 504)):
        return err("timeout")
    if name in ("AuthenticationError", "PermissionDeniedError") or status in (401, 403):
        return err("auth")
    if _MALFORMED_WORDS.search(text) or name in ("JSONDecodeError", "IndexError"):
        return err("malformed")
    if name == "APIConnectionError" or _CONNECTION_WORDS.search(text):
        return err("connection")
    if status is not None and status >= 500 or name in ("InternalServerError", "ServiceUnavailableError", "APIError"):
        return err("server_error")
    if name in ("BadRequestError", "NotFoundError", "UnprocessableEntityError", "UnsupportedParamsError") or (
            status is not None and 400 <= status < 500):
        return err("bad_request")
    return err("server_error")


# --- deterministic tools as candidates ---------------------------------------------------------

_tools: dict[str, Callable[[list[dict]], str]] = {}


def load_tool(ref: str) -> Callable[[list[dict]], str]:
    fn = _tools.get(ref)
    if fn is None:
        module, _, attr = ref.partition(":")
        fn = getattr(importlib.import_module(module), attr)
        _tools[ref] = fn
    return fn


def call_tool(spec: ModelSpec, messages: list[dict]) -> Reply:
    """Run a ``tool:`` candidate: a Python function taking messages and returning text."""
    t0 = time.perf_counter()
    try:
        text = load_tool(spec.tool)(messages)
    except Exception as e:  # noqa: BLE001 — a tool's failure is an attempt outcome like any other
        raise TransportError("tool_error", f"{type(e).__name__}: {e}", provider="routekit_tool",
                             error_class=type(e).__name__, latency_ms=(time.perf_counter() - t0) * 1000) from None
    latency = (time.perf_counter() - t0) * 1000
    if not isinstance(text, str) or not text.strip():
        raise TransportError("empty", "tool returned no text", provider="routekit_tool", latency_ms=latency)
    return Reply(text=text, usage=Usage(), provider="routekit_tool", response_model=spec.tool, latency_ms=latency)
