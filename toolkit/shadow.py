"""Shadow trials: a sampled copy of a served request sent to the route's ``shadow`` candidate, in the background.

The caller's answer and latency are untouched.  The shadow call leaves its own route record, built like any
other with ``shadow_of`` set to the production request's id, and ``sink(production, shadow)`` (if given) sees
both answers — ``routekit eval shadow`` turns such pairs into a verdict.  A shadow never crosses the privacy
boundary or ignores the kill switch: it is screened like a candidate of the request itself.
"""
from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Protocol

from .costs import PriceBook, Rates
from .eligibility import below_floor
from .errors import TransportError
from .policy import ModelSpec, Policy, RouteSpec
from .result import Request, Result
from .routelog.record import build_record, priced_attempt

Sink = Callable[[Result, Result], None]


class Host(Protocol):
    """What a shadow trial needs from the Router that owns it."""

    policy: Policy
    prices: PriceBook
    transport: Any

    def screen(self, spec: ModelSpec, route: RouteSpec, boundary: str | None, prompt: Any,
               needed: frozenset[str] = frozenset()) -> tuple[str, str] | None:
        ...

    def rates(self, alias: str) -> Rates | None: ...

    def keep(self, record: dict[str, Any]) -> None: ...


class ShadowTrials:
    def __init__(self, router: Host, sink: Sink | None = None, seed: int | None = None):
        self.router, self.sink = router, sink
        self._rng = random.Random(seed)
        self._pool: ThreadPoolExecutor | None = None

    def offer(self, req: Request, route: RouteSpec, boundary: str | None, prompt: Any,
              production: Result, needed: frozenset[str] = frozenset()) -> None:
        """Sample at the route's ``shadow_rate``; send the copy if the shadow candidate may serve this request
        (``needed``: the capabilities it needs)."""
        if route.shadow is None or self._rng.random() >= route.shadow_rate:
            return
        spec = self.router.policy.models[route.shadow]
        if self.router.screen(spec, route, boundary, prompt, needed) is not None:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="routekit-shadow")
        self._pool.submit(self._run, req, route, spec, production)

    def drain(self) -> None:
        """Wait for shadow calls in flight (tests, scripts, notebook cells)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _run(self, req: Request, route: RouteSpec, spec: ModelSpec, production: Result) -> None:
        router = self.router
        shadow_req = Request(req.intent, req.messages, req.team, req.sensitivity, req.max_tokens, options=req.options,
                             conversation_id=req.conversation_id)
        t0 = time.perf_counter()
        reply: Any = None
        error: TransportError | None = None
        rates = router.rates(spec.alias)
        try:
            reply = router.transport.complete(spec, req.messages, max_tokens=req.max_tokens, options=req.options)
            attempt = priced_attempt(spec, reply.usage, reply.latency_ms, "ok", None, reply.provider, rates)
        except TransportError as e:
            error = e
            attempt = priced_attempt(spec, e.usage, e.latency_ms, e.kind, e, e.provider, rates)
        except Exception:  # noqa: BLE001 — a shadow must never disturb production
            return
        served = spec if reply is not None else None
        record = build_record(
            shadow_req, route, first=spec, boundary=None, attempts=[attempt], skipped=[],
            prompt_tokens=attempt.input_tokens, served=served, reply=reply, verification="skipped", error=error,
            latency_ms=(time.perf_counter() - t0) * 1000,
            degraded=bool(served and below_floor(router.policy, spec.alias, route)), warnings=(),
            policy_version=router.policy.version, price_version=router.prices.version, rates=router.rates,
            shadow_of=req.request_id, state=router.state.mode)
        router.keep(record)
        if self.sink is not None and reply is not None:
            self.sink(production, Result.from_record(record, reply.text, (attempt,), (), reply.tool_calls))
