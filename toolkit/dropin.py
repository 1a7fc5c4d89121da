"""routekit inside agent frameworks: a litellm custom provider, and an OpenAI-client-shaped client.

Both route every call through a policy — intents, capabilities, fallbacks, verification, the route log — and
hand back what the framework expects:

    >>> toolkit.register_litellm_provider("data/policy.demo.yaml")
    >>> litellm.completion(model="routekit/agent", messages=..., tools=...)   # any framework that calls litellm
    >>> client = RoutedClient("data/policy.demo.yaml")
    >>> client.chat.completions.create(model="agent", messages=..., tools=...)   # openai.types.chat.ChatCompletion

The model name is the intent.  The OpenAI chat parameters go through as the Router takes them (toolkit/chat.py);
``max_completion_tokens`` is ``max_tokens``; ``user``, ``stream_options`` and ``parallel_tool_calls`` are
accepted and not used; anything else is refused, named.  routekit's own arguments — ``team``, ``sensitivity``,
``conversation_id`` — may be given as keyword arguments or in ``metadata``.  What routekit did (the served
alias, fallback, request id) is in the response's ``routekit`` field.

litellm's errors for a routed failure: a bad argument is ``BadRequestError`` (400), an unknown intent
``NotFoundError`` (404), no eligible candidate ``ServiceUnavailableError`` (503), a stream broken after its first
token ``BadGatewayError`` (502).  ``RoutedClient`` raises routekit's own errors (toolkit/errors.py).

litellm 1.106 imports its MCP gateway — the ``mcp`` package — for every ``completion`` that passes tools, before
it looks at the provider: a framework calling ``litellm.completion(..., tools=...)`` needs
``pip install 'routekit[agents]'`` (routekit's own calls skip that gateway).
"""
from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any, Iterator

from .chat import ToolCallDelta
from .errors import BadInput, NoEligibleRoute, RequestError, StreamInterrupted, TransportError, UnknownIntent
from .policy import Policy
from .result import Result
from .router import Router

ROUTEKIT_ARGUMENTS = ("team", "sensitivity", "conversation_id")
NOT_USED = ("user", "stream_options", "parallel_tool_calls")


def router_arguments(params: dict[str, Any], metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Router's keyword arguments from an OpenAI-style call's parameters (and its ``metadata``)."""
    kw = {k: v for k, v in params.items() if k not in NOT_USED and k != "metadata" and v is not None}
    if "max_completion_tokens" in kw:
        kw["max_tokens"] = kw.pop("max_completion_tokens")
    for name in ROUTEKIT_ARGUMENTS:
        if name not in kw and isinstance(metadata, dict) and metadata.get(name) is not None:
            kw[name] = metadata[name]
    return kw


def completion_dict(result: Result) -> dict[str, Any]:
    """A routed result as an OpenAI chat completion (the JSON the API would send)."""
    served = result.attempts[-1] if result.attempts else None
    prompt, completion = (served.input_tokens, served.output_tokens) if served else (0, 0)
    return {"id": "chatcmpl-" + result.request_id, "object": "chat.completion", "created": int(time.time()),
            "model": result.response_model,
            "choices": [{"index": 0, "message": result.message, "finish_reason": result.finish_reason or "stop",
                         "logprobs": None}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
            "routekit": routed_facts(result)}


def routed_facts(result: Result) -> dict[str, Any]:
    """What routekit did, beside an answer: enough to find its record."""
    return {"request_id": result.request_id, "intent": result.intent, "served_model": result.served_model,
            "provider": result.provider, "fallback_used": result.fallback_used, "degraded": result.degraded,
            "verification": result.verification, "cost_usd": result.cost_usd, "warnings": list(result.warnings)}


def _status(e: Exception) -> int:
    if isinstance(e, UnknownIntent):
        return 404
    if isinstance(e, BadInput):
        return 400
    if isinstance(e, StreamInterrupted):
        return 502
    return 503 if isinstance(e, NoEligibleRoute) else 500


def _as_router(policy: Policy | str | Path | Router, router_kw: dict[str, Any]) -> Router:
    return policy if isinstance(policy, Router) else Router(policy, **router_kw)


# --- litellm ------------------------------------------------------------------------------------------------------


def register_litellm_provider(policy: Policy | str | Path | Router, *, prefix: str = "routekit",
                              **router_kw: Any) -> Router:
    """Make ``litellm.completion(model="<prefix>/<intent>", ...)`` (sync, async, streamed) route through
    ``policy``; returns the Router doing it (``router_kw`` go to it: ``log=``, ``transport=``...)."""
    from .transport import litellm_module

    lit = litellm_module()
    router = _as_router(policy, router_kw)
    handler = _handler_class(lit)(router)
    lit.custom_provider_map = [*(p for p in lit.custom_provider_map if p.get("provider") != prefix),
                               {"provider": prefix, "custom_handler": handler}]
    from litellm.utils import custom_llm_setup

    custom_llm_setup()
    return router


def _handler_class(lit: Any) -> type:
    from litellm.llms.custom_llm import CustomLLMError

    def failed(e: Exception) -> Exception:
        return CustomLLMError(status_code=_status(e), message=str(e))

    class RoutekitHandler(lit.CustomLLM):
        """A litellm CustomLLM whose model names are intents."""

        def __init__(self, router: Router):
            super().__init__()
            self.router = router

        def completion(self, model: str, messages: list, *args: Any, model_response: Any = None,
                       optional_params: dict | None = None, litellm_params: dict | None = None, **kw: Any) -> Any:
            try:
                result = self.router.complete(model, messages, **self._kw(optional_params, litellm_params))
            except (RequestError, BadInput, UnknownIntent, NoEligibleRoute) as e:
                raise failed(e) from None
            return self._response(result, model_response)

        async def acompletion(self, model: str, messages: list, *args: Any, model_response: Any = None,
                              optional_params: dict | None = None, litellm_params: dict | None = None,
                              **kw: Any) -> Any:
            try:
                result = await self.router.acomplete(model, messages, **self._kw(optional_params, litellm_params))
            except (RequestError, BadInput, UnknownIntent, NoEligibleRoute) as e:
                raise failed(e) from None
            return self._response(result, model_response)

        def streaming(self, model: str, messages: list, *args: Any, optional_params: dict | None = None,
                      litellm_params: dict | None = None, **kw: Any) -> Iterator[dict]:
            try:
                stream = self.router.stream(model, messages, **self._kw(optional_params, litellm_params))
                for item in stream:
                    yield _chunk(item)
            except (RequestError, BadInput, UnknownIntent, NoEligibleRoute, StreamInterrupted) as e:
                raise failed(e) from None
            yield _last_chunk(stream.result)

        async def astreaming(self, model: str, messages: list, *args: Any, optional_params: dict | None = None,
                             litellm_params: dict | None = None, **kw: Any) -> Any:
            try:
                stream = self.router.astream(model, messages, **self._kw(optional_params, litellm_params))
                async for item in stream:
                    yield _chunk(item)
            except (RequestError, BadInput, UnknownIntent, NoEligibleRoute, StreamInterrupted) as e:
                raise failed(e) from None
            yield _last_chunk(stream.result)

        @staticmethod
        def _kw(optional_params: dict | None, litellm_params: dict | None) -> dict[str, Any]:
            params = {k: v for k, v in (optional_params or {}).items() if k != "stream"}
            return router_arguments(params, (litellm_params or {}).get("metadata"))

        @staticmethod
        def _response(result: Result, model_response: Any) -> Any:
            return lit.ModelResponse(**completion_dict(result))

    return RoutekitHandler


def _chunk(item: Any) -> dict[str, Any]:
    """One delta as litellm's GenericStreamingChunk."""
    if isinstance(item, ToolCallDelta):
        use = {"id": item.id, "type": "function", "index": item.index,
               "function": {"name": item.name, "arguments": item.arguments}}
        return {"text": "", "tool_use": use, "is_finished": False, "finish_reason": "", "usage": None, "index": 0}
    if not isinstance(item, str):
        raise restart_error(item)
    return {"text": item, "tool_use": None, "is_finished": False, "finish_reason": "", "usage": None, "index": 0}


def _last_chunk(result: Result) -> dict[str, Any]:
    usage = completion_dict(result)["usage"]
    return {"text": "", "tool_use": None, "is_finished": True, "finish_reason": result.finish_reason or "stop",
            "usage": usage, "index": 0}


def restart_error(restart: Any, intent: str = "") -> StreamInterrupted:
    """A route that restarts broken streams on another model (``stream_restart: true``) cannot do so here: an
    OpenAI-style stream has no way to take back what it showed."""
    cause = TransportError(restart.reason, "the route restarts broken streams on another model, which an "
                                           "OpenAI-style stream cannot show", provider=restart.failed_alias)
    cause.partial = "\u2026" * restart.discarded   # only its length is reported
    return StreamInterrupted(intent, restart.failed_alias, cause)


# --- an OpenAI-client-shaped client ------------------------------------------------------------------------------


class RoutedClient:
    """``RoutedClient(policy).chat.completions.create(model="<intent>", messages=..., ...)``: the OpenAI SDK's
    ``ChatCompletion`` (or, with ``stream=True``, an iterator of ``ChatCompletionChunk``), routed by intent."""

    def __init__(self, policy: Policy | str | Path | Router, **router_kw: Any):
        self.router = _as_router(policy, router_kw)
        self.chat = _Chat(self.router)


class _Chat:
    def __init__(self, router: Router):
        self.completions = _Completions(router)


class _Completions:
    def __init__(self, router: Router):
        self.router = router

    def create(self, *, model: str, messages: list[dict], stream: bool = False, **params: Any) -> Any:
        from openai.types.chat import ChatCompletion

        kw = router_arguments(params, params.get("metadata"))
        if stream:
            return self._chunks(model, messages, kw)
        return ChatCompletion.model_validate(completion_dict(self.router.complete(model, messages, **kw)))

    def _chunks(self, intent: str, messages: list[dict], kw: dict[str, Any]) -> Iterator[Any]:
        from openai.types.chat import ChatCompletionChunk

        stream = self.router.stream(intent, messages, **kw)   # arguments are checked here, before iterating
        created, stream_id = int(time.time()), uuid.uuid4().hex

        def chunk(delta: dict, finish: str | None = None, **extra: Any) -> Any:
            return ChatCompletionChunk.model_validate({
                "id": "chatcmpl-" + stream_id, "object": "chat.completion.chunk", "created": created,
                "model": intent, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra})

        def run() -> Iterator[Any]:
            for item in stream:
                if isinstance(item, ToolCallDelta):
                    call: dict[str, Any] = {"index": item.index, "function": {"arguments": item.arguments}}
                    if item.id:
                        call.update(id=item.id, type="function")
                    if item.name:
                        call["function"]["name"] = item.name
                    yield chunk({"tool_calls": [call]})
                elif isinstance(item, str):
                    yield chunk({"content": item})
                else:
                    raise restart_error(item, intent)
            result = stream.result
            yield chunk({}, result.finish_reason or "stop", usage=completion_dict(result)["usage"],
                        routekit=routed_facts(result))

        return run()
