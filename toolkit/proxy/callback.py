"""routekit inside the LiteLLM proxy: one route record per proxied request, and the served model on the answer.

The config ``routekit export litellm-proxy`` writes names ``toolkit.proxy.callback.handler`` under
``litellm_settings.callbacks``.  Inside the proxy it:

- keeps every failed attempt of a request (litellm's ``async_log_failure_event``, one per deployment tried,
  matched by the request's ``litellm_call_id``); a deployment skipped because the proxy has it cooling down is
  a skip with reason ``circuit_open``, not an attempt;
- on the answer (``async_log_success_event``) or the request's final failure (``async_post_call_failure_hook``)
  writes one record through routekit's own builder (:func:`toolkit.routelog.record.build_record`,
  ``source: litellm_proxy``) and writer (:func:`toolkit.spool.keep`) to ``$ROUTEKIT_LOG_DIR``: intent (the
  model group asked for), served alias, model and provider, every attempt, ``fallback_used``, ``degraded`` when
  the served tier is below the route's floor, tokens, cost priced from routekit's snapshot, team from the key's
  team (alias, else id), the prompt hashed — never stored, whatever the route's ``store_prompts`` says;
- the record's ``request_id`` is the one the proxy's own spend log uses (its ``LiteLLM_SpendLogs.request_id``),
  so importing that table beside these records (toolkit/importers.py) skips what is already here;
- names the model that actually served in the answer's ``model`` (LiteLLM reports the group or the requested
  name; the pre-call hook asks it to leave the name the post-call hook sets) and adds headers
  ``x-routekit-fallback-used``, ``x-routekit-attempts`` and ``x-routekit-served-alias``.

It reads the policy from ``$ROUTEKIT_POLICY`` (the export sets it).  A callback failure is logged, never
raised: the proxy's answer must not depend on routekit's bookkeeping.  litellm is not imported until the proxy
asks for ``handler`` (module ``__getattr__``).
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ..costs import PriceBook
from ..eligibility import below_floor
from ..errors import BadInput, TransportError
from ..policy import Policy, load_policy
from ..result import Attempt, Request, Skip
from ..routelog import RouteLogWriter
from ..routelog.record import build_record, priced_attempt
from .export import proxy_chain, served_alias

log = logging.getLogger("routekit.proxy")

SOURCE = "litellm_proxy"
WAIT_FOR_FAILURES_S = 2.0   # litellm logs a failed attempt in the background: wait this long for it at most
COOLING_DOWN = ("No deployments available", "RouterRateLimitError", "CooldownList")


class Bookkeeper:
    """The callback's state and logic, independent of litellm's base class (built in :func:`handler_class`)."""

    def __init__(self) -> None:
        self._policy: Policy | None = None
        self._prices: PriceBook | None = None
        self._writer: RouteLogWriter | None = None
        self.pending: dict[str, list[Attempt | Skip]] = {}   # litellm_call_id -> what failed so far
        self.arrived: dict[str, asyncio.Event] = {}

    # --- set up on first use, inside the proxy ----------------------------------------------------

    @property
    def policy(self) -> Policy:
        if self._policy is None:
            path = os.environ.get("ROUTEKIT_POLICY")
            if not path:
                raise BadInput("ROUTEKIT_POLICY is not set (routekit export litellm-proxy sets it in the config)")
            self._policy = load_policy(path)
        return self._policy

    @property
    def prices(self) -> PriceBook:
        if self._prices is None:
            self._prices = PriceBook.load()
        return self._prices

    @property
    def writer(self) -> RouteLogWriter:
        if self._writer is None:
            self._writer = RouteLogWriter(Path(os.environ["ROUTEKIT_LOG_DIR"])) if os.environ.get("ROUTEKIT_LOG_DIR") \
                else RouteLogWriter()
        return self._writer

    # --- reading what litellm hands over -------------------------------------------------------------

    def where(self, kwargs: dict) -> tuple[str, str] | None:
        """(intent, alias) of the deployment a logged call went to."""
        info = (kwargs.get("litellm_params") or {}).get("model_info") or {}
        if info.get("routekit_alias") and info.get("routekit_intent") in self.policy.routes:
            return info["routekit_intent"], info["routekit_alias"]
        slo = kwargs.get("standard_logging_object") or {}
        group = slo.get("model_group") or (kwargs.get("litellm_params") or {}).get("metadata", {}).get("model_group")
        return served_alias(self.policy, group) if group else None

    def failed_attempt(self, kwargs: dict, start: datetime, end: datetime) -> tuple[str, Attempt | Skip] | None:
        from ..transport import classify

        call_id = kwargs.get("litellm_call_id")
        found = self.where(kwargs)
        if not call_id or found is None:
            return None
        _, alias = found
        spec = self.policy.models[alias]
        slo = kwargs.get("standard_logging_object") or {}
        provider = slo.get("custom_llm_provider") or kwargs.get("custom_llm_provider") or spec.provider_prefix
        latency = max((end - start).total_seconds() * 1000, 0.0)
        exc = kwargs.get("exception")
        if not isinstance(exc, Exception):
            err = slo.get("error_information") or {}
            exc = type(err.get("error_class") or "Exception", (Exception,), {})(err.get("error_message") or "")
        if any(mark in f"{type(exc).__name__}: {exc}" for mark in COOLING_DOWN):
            return call_id, Skip(alias, "circuit_open", "the proxy has this deployment cooling down")
        e = exc if isinstance(exc, TransportError) else classify(exc, provider, latency)
        return call_id, priced_attempt(spec, e.usage, latency, e.kind, e, provider, self.prices.rates_for(spec))

    def note_failure(self, kwargs: dict, start: datetime, end: datetime) -> None:
        got = self.failed_attempt(kwargs, start, end)
        if got is not None:
            call_id, step = got
            self.pending.setdefault(call_id, []).append(step)
            self.arrived.setdefault(call_id, asyncio.Event()).set()

    async def failures_of(self, call_id: str, expected: int) -> list[Attempt | Skip]:
        """The failed steps of a request, waiting (briefly) for those litellm has not logged yet."""
        deadline = time.monotonic() + WAIT_FOR_FAILURES_S
        while len(self.pending.get(call_id, ())) < expected and time.monotonic() < deadline:
            event = self.arrived.setdefault(call_id, asyncio.Event())
            event.clear()
            try:
                await asyncio.wait_for(event.wait(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                break
        self.arrived.pop(call_id, None)
        return self.pending.pop(call_id, [])

    # --- one record per proxied request --------------------------------------------------------------

    def record(self, *, intent: str, call_id: str, request_id: str, kwargs: dict, steps: list[Attempt | Skip],
               served: str | None, reply: Any, error: Exception | None, start: datetime, end: datetime,
               warnings: list[str]) -> dict[str, Any]:
        policy = self.policy
        route = policy.routes[intent].model_copy(update={"store_prompts": False})   # hashed, never stored
        chain = proxy_chain(policy, intent)
        meta = (kwargs.get("litellm_params") or {}).get("metadata") or kwargs.get("metadata") or {}
        team = meta.get("user_api_key_team_alias") or meta.get("user_api_key_team_id") or "default"
        req = Request(intent, list(kwargs.get("messages") or []), str(team), stream=bool(kwargs.get("stream")),
                      request_id=request_id, started=start.timestamp())
        attempts = [s for s in steps if isinstance(s, Attempt)]
        skipped = [s for s in steps if isinstance(s, Skip)]
        tokens = attempts[-1].input_tokens if attempts else 0
        return build_record(
            req, route, first=policy.models[chain[0]], boundary=policy.required_boundary(route, None),
            attempts=attempts, skipped=skipped, prompt_tokens=tokens,
            served=policy.models[served] if served else None, reply=reply, verification="skipped", error=error,
            latency_ms=max((end - start).total_seconds() * 1000, 0.0),
            degraded=bool(served and below_floor(policy, served, route)),
            warnings=warnings, policy_version=policy.version, price_version=self.prices.version,
            rates=lambda a: self.prices.rates_for(policy.models[a]), source=SOURCE,
            extra={"litellm_call_id": call_id})

    async def on_success(self, kwargs: dict, response: Any, start: datetime, end: datetime) -> None:
        from litellm.proxy.spend_tracking.spend_tracking_utils import get_spend_logs_id

        from ..transport import Reply, reply_of, usage_of

        found = self.where(kwargs)
        call_id = kwargs.get("litellm_call_id")
        if found is None or not call_id:
            return
        meta = (kwargs.get("litellm_params") or {}).get("metadata") or {}
        intent = meta.get("original_model_group") or found[0]
        intent = intent if intent in self.policy.routes else found[0]
        alias = found[1]
        spec = self.policy.models[alias]
        steps = await self.failures_of(call_id, int(meta.get("attempted_fallbacks") or 0))
        slo = kwargs.get("standard_logging_object") or {}
        provider = slo.get("custom_llm_provider") or kwargs.get("custom_llm_provider") or spec.provider_prefix
        latency = float(slo.get("response_time") or 0.0) * 1000 or max((end - start).total_seconds() * 1000, 0.0)
        warnings: list[str] = []
        try:
            reply = reply_of(response, spec, provider, latency)
        except TransportError as e:   # served to the client all the same: recorded, and said so
            reply = Reply("", usage_of(response), provider, spec.model or spec.target, latency)
            warnings.append(f"the proxy served an answer routekit would refuse ({e.kind}: {e.message})")
        steps.append(priced_attempt(spec, reply.usage, latency, "ok", None, provider, self.prices.rates_for(spec)))
        dumped = response.model_dump() if hasattr(response, "model_dump") else dict(response or {})
        request_id = get_spend_logs_id(kwargs.get("call_type") or "acompletion", dumped, kwargs) or call_id
        record = self.record(intent=intent, call_id=call_id, request_id=request_id, kwargs=kwargs, steps=steps,
                             served=alias, reply=reply, error=None, start=start, end=end, warnings=warnings)
        self.keep(record)

    async def on_request_failure(self, request_data: dict, exc: Exception) -> None:
        from ..transport import classify

        call_id = request_data.get("litellm_call_id")
        intent = request_data.get("model")
        if not call_id or intent not in self.policy.routes:
            return
        chain = proxy_chain(self.policy, intent)
        steps = await self.failures_of(call_id, 1 if chain else 0)
        now = datetime.now()
        start = getattr(request_data.get("litellm_logging_obj"), "start_time", None) or now
        spec_provider = self.policy.models[chain[0]].provider_prefix if chain else "litellm_proxy"
        error = classify(exc, spec_provider, 0.0)
        record = self.record(intent=intent, call_id=call_id, request_id=call_id, kwargs=request_data, steps=steps,
                             served=None, reply=None, error=error, start=start, end=now, warnings=[])
        self.keep(record)

    def keep(self, record: dict[str, Any]) -> None:
        from .. import spool

        spool.keep(self.writer, record)

    # --- what the client sees -----------------------------------------------------------------------

    def served_of(self, response: Any) -> tuple[str, int, bool] | None:
        """(alias, attempts, fallback used) of an answer, from the proxy's hidden routing facts."""
        hidden = getattr(response, "_hidden_params", None) or {}
        found = served_alias(self.policy, str(hidden.get("model_id") or ""))
        if found is None:
            return None
        extra = hidden.get("additional_headers") or {}
        fallbacks = int(extra.get("x-litellm-attempted-fallbacks") or 0)
        retries = int(extra.get("x-litellm-attempted-retries") or 0)
        intent, alias = found
        return alias, 1 + fallbacks + retries, alias != proxy_chain(self.policy, intent)[0]


def handler_class() -> type:
    """The callback class, a litellm CustomLogger (imported here: only the proxy, which has litellm loaded,
    asks for it)."""
    from litellm.constants import RETURN_RAW_MODEL_NAME_METADATA_KEY
    from litellm.integrations.custom_logger import CustomLogger

    class RoutekitProxyCallback(CustomLogger, Bookkeeper):
        def __init__(self) -> None:
            CustomLogger.__init__(self)
            Bookkeeper.__init__(self)

        async def async_pre_call_hook(self, user_api_key_dict, cache, data, call_type):
            # keep the model name the post-call hook sets (the proxy otherwise puts the requested name back)
            if isinstance(data, dict) and data.get("model") in self.policy.routes:
                data.setdefault("metadata", {})[RETURN_RAW_MODEL_NAME_METADATA_KEY] = True
            return data

        async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
            try:
                self.note_failure(kwargs, start_time, end_time)
            except Exception:  # noqa: BLE001 — bookkeeping must never fail a proxied request
                log.exception("routekit: could not note a failed attempt")

        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            try:
                await self.on_success(kwargs, response_obj, start_time, end_time)
            except Exception:  # noqa: BLE001
                log.exception("routekit: could not write the route record of a proxied request")

        async def async_post_call_failure_hook(self, request_data, original_exception, user_api_key_dict,
                                               traceback_str=None):
            try:
                await self.on_request_failure(request_data, original_exception)
            except Exception:  # noqa: BLE001
                log.exception("routekit: could not write the route record of a failed proxied request")
            return None

        async def async_post_call_success_hook(self, data, user_api_key_dict, response):
            try:
                served = self.served_of(response)
                if served is not None and hasattr(response, "model"):
                    response.model = self.policy.models[served[0]].model
            except Exception:  # noqa: BLE001
                log.exception("routekit: could not name the served model")
            return response

        async def async_post_call_response_headers_hook(self, data, user_api_key_dict, response,
                                                        request_headers=None, litellm_call_info=None):
            served = self.served_of(response) if response is not None else None
            if served is None:
                return None
            alias, attempts, fallback = served
            return {"x-routekit-served-alias": alias, "x-routekit-attempts": str(attempts),
                    "x-routekit-fallback-used": "true" if fallback else "false"}

    return RoutekitProxyCallback


_handler: Any = None


def __getattr__(name: str) -> Any:
    """``handler``: the one callback instance the proxy config names (built on first access)."""
    global _handler
    if name == "handler":
        if _handler is None:
            _handler = handler_class()()
        return _handler
    raise AttributeError(name)
