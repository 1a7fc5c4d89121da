"""Route a request by intent: pick candidates by policy, call, fall back honestly, explain.

The routing decision is written once, as a generator (:meth:`Router._route`) that
*yields* what it wants done — call this candidate, sleep this long — and receives
the outcome.  ``complete`` drives it synchronously and ``acomplete`` with
``await``; ``stream`` and ``astream`` drive the same generator while passing the
answer's text on as it arrives, so every way of calling shares every rule.

Streaming: a candidate that fails before its first token falls back like any
failure.  After the first token there is no silent switch: the caller gets
:class:`StreamInterrupted` (attempt outcome ``stream_cut``, record error_kind
``stream_cut``) — unless the route sets ``stream_restart: true``, in which case
the answer starts over on the next candidate after a :class:`StreamRestart`
event, and the result says ``restarted``.

Order of filters for each candidate (each rejection leaves a reason code):
privacy boundary (never relaxed by a fallback) -> vendor / region allow-lists ->
kill switch -> open circuit -> context window -> budget -> quality floor.

A paid answer is never lost.  Before the first provider call the route log must be
writable (else the spool, toolkit.spool, must be: else nothing is sent) and the budget
ledger must answer (else the policy's ``state.on_unavailable`` decides).  A record the
log cannot take after the call is spooled and the answer returned; a ledger that fails
to settle leaves the answer and a warning.  Whatever went wrong around the answer —
a damaged overrides file, a spooled record, capped usage, a provider that served
another model than asked — is in ``Result.warnings`` and the record's ``warnings``.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import re
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Generator, Iterator, Protocol

from .circuit import CircuitBreaker
from .costs import PriceBook, Usage
from .overrides import Overrides
from .policy import ModelSpec, Policy, RouteSpec, load_policy
from .routelog import RouteLogWriter, clamp_to_domain
from .transport import Reply, TransportError

log = logging.getLogger("routekit.router")
WARNING_SEPARATOR = " | "   # between the warnings in a record's `warnings` field


@dataclass(frozen=True)
class Attempt:
    alias: str
    model: str
    provider: str
    region: str | None
    outcome: str                  # "ok", "verify_failed" or an error kind
    error_class: str | None
    status: int | None
    retryable: bool | None
    retry_after_s: float | None
    latency_ms: float
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: float | None
    unpriced: bool
    message: str | None


@dataclass(frozen=True)
class Skip:
    alias: str
    reason: str
    detail: str


@dataclass(frozen=True)
class Result:
    request_id: str
    intent: str
    text: str
    served_model: str             # the policy alias that answered
    response_model: str           # what the provider said it served
    provider: str
    tier: int
    fallback_used: bool
    degraded: bool
    verification: str
    attempts: tuple[Attempt, ...]
    skipped: tuple[Skip, ...]
    cost_usd: float | None
    unpriced: bool
    latency_ms: float
    price_version: str
    policy_version: str
    restarted: bool = False       # streamed: the answer started over after a stream cut (route opted in)
    model_mismatch: bool = False  # the provider said it served another model than the one asked for
    warnings: tuple[str, ...] = ()  # what went wrong around the answer (see the module docstring)
    record: dict[str, Any] | None = field(default=None, compare=False, repr=False)  # the audit record as written

    def to_dict(self) -> dict[str, Any]:
        d = {f: getattr(self, f) for f in self.__dataclass_fields__ if f != "record"}
        d["attempts"] = [_as_dict(a) for a in self.attempts]
        d["skipped"] = [_as_dict(s) for s in self.skipped]
        d["warnings"] = list(self.warnings)
        return d

    def explain(self) -> str:
        lines = [f"intent {self.intent!r} -> {self.served_model} ({self.response_model} via {self.provider}, tier {self.tier})"
                 + ("  [DEGRADED: below the route's quality floor]" if self.degraded else "")
                 + ("  [fallback]" if self.fallback_used else "")
                 + ("  [RESTARTED after a stream cut]" if self.restarted else "")
                 + ("  [MODEL MISMATCH: the provider served another model]" if self.model_mismatch else "")]
        lines += _explain_steps(self.attempts, self.skipped)
        lines += [f"  warning: {w}" for w in self.warnings]
        cost = "unpriced" if self.cost_usd is None else f"${self.cost_usd:.6f}"
        lines.append(f"  cost {cost} ({self.price_version}), {self.latency_ms:.0f} ms, policy {self.policy_version}")
        return "\n".join(lines)


def _explain_steps(attempts: tuple[Attempt, ...], skipped: tuple[Skip, ...]) -> list[str]:
    lines = [f"  skipped {s.alias}: {s.reason} ({s.detail})" for s in skipped]
    for a in attempts:
        what = "served" if a.outcome == "ok" else f"failed: {a.outcome}" + (f" [{a.error_class}]" if a.error_class else "")
        lines.append(f"  tried {a.alias} ({a.model}): {what}, {a.latency_ms:.0f} ms")
    return lines


class RoutingError(RuntimeError):
    """Base of the errors a routed request raises; each carries its record."""

    record: dict[str, Any]


class NoEligibleRoute(RoutingError):
    """No candidate could serve: every one was rejected or failed (listed in the message)."""

    def __init__(self, intent: str, route: RouteSpec, attempts: tuple[Attempt, ...], skipped: tuple[Skip, ...],
                 note: str = "", kind: str | None = None):
        self.intent, self.attempts, self.skipped = intent, attempts, skipped
        if kind is not None:
            self.kind = kind      # the record's error_kind (else the last attempt's, or no_eligible_route)
        head = f"no eligible candidate served intent {intent!r} (quality floor min_tier {route.min_tier}, " \
               f"on_exhausted: {route.on_exhausted})"
        super().__init__("\n".join([head + (f": {note}" if note else ""), *_explain_steps(attempts, skipped)]))


class BudgetDenied(RoutingError):
    """Raised by a budget hook's ``reserve``: ``block`` stops the request (naming the budget);
    otherwise the Router moves on to the next, cheaper, candidate — never below the floor."""

    def __init__(self, budget: str, message: str, block: bool):
        self.budget, self.block = budget, block
        super().__init__(message)


class LedgerUnavailable(RoutingError):
    """A budget ledger that cannot answer (locked, full, read-only, unreachable): raised by a budget hook's
    ``reserve`` or ``settle``; the Router applies the hook's ``on_unavailable`` (see toolkit/budgets.py)."""

    kind = "budget_unavailable"


class BudgetHook(Protocol):
    """What the Router needs from a budget ledger (see toolkit/budgets.py)."""

    def reserve(self, *, alias: str, spec: ModelSpec, route: RouteSpec, team: str, intent: str,
                prompt_tokens: int | Callable[[], int], max_tokens: int | None) -> Any:
        """Hold the estimated cost of one attempt, or raise :class:`BudgetDenied`.  ``prompt_tokens`` may be a
        function: counting tokens costs time, and only a request some budget covers needs the count."""

    def settle(self, hold: Any, cost_usd: float | None) -> None:
        """Replace a hold with the attempt's real cost (None: unpriced)."""


class StreamInterrupted(RoutingError):
    """A streamed answer broke after its first token.  The text already delivered is in ``partial``;
    the Router does not switch to another model behind the caller's back (see RouteSpec.stream_restart)."""

    kind = "stream_cut"

    def __init__(self, intent: str, alias: str, cause: TransportError):
        self.intent, self.alias, self.cause, self.partial = intent, alias, cause, cause.partial
        super().__init__(f"the streamed answer for intent {intent!r} from {alias} broke after "
                         f"{len(cause.partial)} characters ({cause.kind}: {cause.message}); not switched to "
                         f"another model silently — retry the request, or set stream_restart: true on the route")


@dataclass(frozen=True)
class StreamRestart:
    """Yielded by a stream whose route allows restarts, between the deltas of two candidates:
    discard the ``discarded`` characters shown so far; the next deltas are a new answer."""

    failed_alias: str
    reason: str                   # the taxonomy kind of the cut
    discarded: int


class RoutedStream:
    """What :meth:`Router.stream` returns: iterate for text deltas (``str``), then read ``result``.

    >>> s = router.stream("triage", "Is this spam?")
    >>> for delta in s:
    ...     print(delta, end="", flush=True)
    >>> s.result.served_model, s.result.cost_usd

    A failure raises while iterating (:class:`NoEligibleRoute`, :class:`StreamInterrupted`).
    ``close()`` (or leaving a ``with`` block) before the end stops the call and records it as abandoned.
    """

    def __init__(self, drive: Callable[["RoutedStream"], Iterator[str | StreamRestart]]):
        self.result: Result | None = None
        self._it = drive(self)

    def __iter__(self) -> "RoutedStream":
        return self

    def __next__(self) -> str | StreamRestart:
        return next(self._it)

    def close(self) -> None:
        self._it.close()

    def __enter__(self) -> "RoutedStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class RoutedAsyncStream:
    """What :meth:`Router.astream` returns: ``async for`` text deltas, then read ``result``."""

    def __init__(self, drive: Callable[["RoutedAsyncStream"], AsyncIterator[str | StreamRestart]]):
        self.result: Result | None = None
        self._it = drive(self)

    def __aiter__(self) -> "RoutedAsyncStream":
        return self

    async def __anext__(self) -> str | StreamRestart:
        return await self._it.__anext__()

    async def aclose(self) -> None:
        await self._it.aclose()

    async def __aenter__(self) -> "RoutedAsyncStream":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


class UnknownIntent(RoutingError, KeyError):
    def __str__(self) -> str:
        return self.args[0]


@dataclass
class _Request:
    intent: str
    messages: list[dict]
    team: str
    sensitivity: str | None
    max_tokens: int | None
    stream: bool = False
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: float = field(default_factory=time.time)
    learned: Any = None  # a trained router's Choice (toolkit/research/learned.py), when the route has one


_CALL, _SLEEP = "call", "sleep"
ABANDONED = "abandoned"   # attempt outcome: the caller stopped reading a stream


class Router:
    """Routes requests by intent through a policy.

    >>> router = Router("data/policy.demo.yaml")
    >>> result = router.complete("triage", "Is this email spam? ...", team="support")
    >>> result.served_model, result.fallback_used, result.cost_usd
    >>> stream = router.stream("synthesis", "Summarise the week.")
    >>> for delta in stream:
    ...     print(delta, end="")
    >>> stream.result.served_model
    """

    def __init__(self, policy: Policy | str | Path, *, transport: Any = None,
                 log: RouteLogWriter | str | Path | None = RouteLogWriter, prices: PriceBook | None = None,
                 budgets: "BudgetHook | None" = None, circuit: CircuitBreaker | None = None, sleep=time.sleep,
                 shadow_sink: Any = None, seed: int | None = None):
        self.policy = policy if isinstance(policy, Policy) else load_policy(policy)
        if transport is None:
            from .transport import LiteLLMTransport
            transport = LiteLLMTransport()
        self.transport = transport
        if log is RouteLogWriter:
            log = RouteLogWriter()
        elif isinstance(log, (str, Path)):
            log = RouteLogWriter(Path(log))
        self.log: RouteLogWriter | None = log
        self.prices = prices or PriceBook.load()
        if budgets is None and self.policy.budgets:
            # A policy's budgets are enforced by default, on the policy's own ledger (its `state:`).
            from .budgets import BudgetLedger
            budgets = BudgetLedger.from_policy(self.policy, prices=self.prices)
        self.budgets = budgets
        c = self.policy.circuit
        self.circuit = circuit or CircuitBreaker(c.failures, c.cooldown_s, c.max_cooldown_s,
                                                 state_path=self.policy.circuits_path)
        self.overrides = Overrides(self.policy.overrides_path)
        self._sleep = sleep
        self._windows: dict[str, int | None] = {}
        self._rates_cache: dict[str, Any] = {}
        self.shadow_sink = shadow_sink
        self._rng = random.Random(seed)
        self._pool = None

    # --- public API ------------------------------------------------------------------------

    def complete(self, intent: str, messages: str | list[dict], *, team: str = "default",
                 sensitivity: str | None = None, max_tokens: int | None = None) -> Result:
        req = _Request(intent, _as_messages(messages), team, sensitivity, max_tokens)
        gen = self._route(req)
        return _drive_sync(gen, self.transport, req, self._sleep)

    async def acomplete(self, intent: str, messages: str | list[dict], *, team: str = "default",
                        sensitivity: str | None = None, max_tokens: int | None = None) -> Result:
        req = _Request(intent, _as_messages(messages), team, sensitivity, max_tokens)
        gen = self._route(req)
        return await _drive_async(gen, self.transport, req)

    def stream(self, intent: str, messages: str | list[dict], *, team: str = "default",
               sensitivity: str | None = None, max_tokens: int | None = None) -> RoutedStream:
        """Route like :meth:`complete`, passing the answer on as it arrives (see the module docstring)."""
        req = _Request(intent, _as_messages(messages), team, sensitivity, max_tokens, stream=True)
        gen = self._route(req)
        return RoutedStream(lambda out: _drive_stream(gen, self.transport, req, self._sleep, out))

    def astream(self, intent: str, messages: str | list[dict], *, team: str = "default",
                sensitivity: str | None = None, max_tokens: int | None = None) -> RoutedAsyncStream:
        """Async :meth:`stream`: ``async for delta in router.astream(...)``."""
        req = _Request(intent, _as_messages(messages), team, sensitivity, max_tokens, stream=True)
        gen = self._route(req)
        return RoutedAsyncStream(lambda out: _drive_astream(gen, self.transport, req, out))

    # --- the decision ------------------------------------------------------------------------

    def _route(self, req: _Request) -> Generator[tuple[str, Any], Any, Result]:
        policy = self.policy
        route = policy.routes.get(req.intent)
        if route is None:
            raise UnknownIntent(f"unknown intent {req.intent!r}; the policy {policy.path} routes: "
                                f"{', '.join(sorted(policy.routes))}")
        chain = policy.chain(req.intent)
        if route.router is not None:  # a trained router picks the first candidate (toolkit/research/learned.py)
            from .research.learned import choose

            req.learned = choose(route.router, policy.path, req.messages)
            chain = [req.learned.alias, *(a for a in chain if a != req.learned.alias)]
        t0 = time.perf_counter()
        prompt = _PromptSize(self, policy.models[chain[0]], req.messages)
        boundary = policy.required_boundary(route, req.sensitivity)
        attempts: list[Attempt] = []
        skipped: list[Skip] = []
        usage_total = [0, 0, 0, 0, 0]
        self.overrides.refresh()   # one look at the kill switch per request
        route_off = self.overrides.get(req.intent)
        warnings: list[str] = [self.overrides.damage] if self.overrides.damage else []

        def finish(reply: Reply | None, served: str | None, verification: str, error: Exception | None):
            spec = policy.models[served] if served else None
            if reply is not None:
                warnings.extend(reply.notes)
            record = self._record(req, route, chain, boundary, attempts, skipped, usage_total, prompt.final(reply),
                                  spec, served, reply, verification, error, (time.perf_counter() - t0) * 1000,
                                  warnings)
            self._write(record)
            return record

        if route_off is not None:
            skipped.extend(Skip(a, "route_disabled", route_off.describe()) for a in chain)
            err = NoEligibleRoute(req.intent, route, (), tuple(skipped), note=f"route {route_off.describe()}")
            err.record = finish(None, None, "skipped", err)
            raise err

        queue: list[str] = []
        below: list[str] = []
        for alias in chain:
            spec = policy.models[alias]
            reason = self._reject(alias, spec, route, boundary, prompt, req)
            if reason is not None:
                skipped.append(Skip(alias, *reason))
            elif self._below_floor(alias, route):
                below.append(alias)
            else:
                queue.append(alias)
        if route.on_exhausted == "degrade":
            queue += below
        else:
            skipped += [Skip(a, "below_floor", self._below_floor(a, route)) for a in below]

        nowhere = self._nowhere_to_write() if queue else None
        if nowhere:
            err = NoEligibleRoute(req.intent, route, (), tuple(skipped), note=f"nothing was sent: {nowhere}")
            err.record = finish(None, None, "skipped", err)
            raise err

        last_error: TransportError | None = None
        budget_note = ""
        unavailable: Exception | None = None
        for i, alias in enumerate(queue):
            spec = policy.models[alias]
            if i > 0:
                # Earlier failures in this request may have opened this candidate's circuit.
                left = self.circuit.is_open(alias)
                if left is not None:
                    skipped.append(Skip(alias, "circuit_open", f"cooling down for {left:.1f}s more"))
                    continue
            if budget_note and self._below_floor(alias, route):
                # A budget may route down to a cheaper candidate, never below the quality floor.
                skipped.append(Skip(alias, "below_floor", f"{self._below_floor(alias, route)} "
                                                          f"(not used to get around a budget)"))
                continue
            hold = None
            if self.budgets is not None:
                try:
                    hold = self.budgets.reserve(alias=alias, spec=spec, route=route, team=req.team,
                                                intent=req.intent, prompt_tokens=lambda: prompt.tokens,
                                                max_tokens=req.max_tokens or spec.max_output_tokens or route.max_output_tokens)
                except BudgetDenied as denied:
                    skipped.append(Skip(alias, "budget", str(denied)))
                    budget_note = str(denied)
                    if denied.block:
                        break
                    continue
                except LedgerUnavailable as e:
                    if getattr(self.budgets, "on_unavailable", "fail_closed") != "fail_open":
                        skipped.append(Skip(alias, "budget_unavailable", f"{e} (on_unavailable: fail_closed)"))
                        unavailable = e
                        break
                    warnings.append(f"{e}: served without a budget hold (on_unavailable: fail_open)")
            waited = False
            while True:
                try:
                    reply: Reply = yield _CALL, spec
                except TransportError as e:
                    attempt = self._attempt(alias, spec, e.usage, e.latency_ms, e.kind, e, e.provider)
                    if e.partial:  # a stream broke after its first token
                        attempt = replace(attempt, outcome="stream_cut", message=f"{e.kind} after {len(e.partial)} "
                                                                                 f"characters: {e.message}")
                    attempts.append(attempt)
                    self._settle(hold, attempt, warnings)
                    self._add_usage(usage_total, e.usage)
                    if e.kind != ABANDONED:
                        self.circuit.failure(alias, e.retry_after_s if e.kind == "rate_limited" else None)
                    last_error = e
                    if e.partial and not route.stream_restart:
                        err = StreamInterrupted(req.intent, alias, e)
                        err.record = finish(None, None, "skipped", err)
                        raise err
                    is_last = i == len(queue) - 1
                    if (is_last and not waited and e.kind == "rate_limited" and e.retry_after_s is not None
                            and e.retry_after_s <= route.max_retry_after_s):
                        waited = True  # honour a short Retry-After once on the last candidate
                        yield _SLEEP, e.retry_after_s
                        continue
                    break
                verdict = self._verify(route, reply.text)
                outcome = "ok" if verdict != "fail" else "verify_failed"
                attempts.append(self._attempt(alias, spec, reply.usage, reply.latency_ms, outcome, None,
                                              reply.provider))
                self._settle(hold, attempts[-1], warnings)
                hold = None
                self._add_usage(usage_total, reply.usage)
                self.circuit.success(alias)
                # A streamed answer was already shown: a failed check is reported, never silently replaced.
                if (outcome == "verify_failed" and route.verify and route.verify.escalate and i < len(queue) - 1
                        and not req.stream):
                    break
                result_record = finish(reply, alias, verdict, None)
                result = self._result(req, route, chain, alias, reply, verdict, attempts, skipped, result_record)
                self._maybe_shadow(req, route, boundary, result)
                return result
            if last_error is not None and not last_error.retryable:
                break

        note = ""
        if unavailable is not None:
            note = f"nothing was sent: {unavailable}"
        elif last_error is not None and not last_error.retryable:
            note = f"stopped at a non-retryable failure ({last_error.kind})"
        elif budget_note:
            note = f"budget: {budget_note}"
        err = NoEligibleRoute(req.intent, route, tuple(attempts), tuple(skipped), note=note,
                              kind=LedgerUnavailable.kind if unavailable is not None else None)
        err.record = finish(None, None, "skipped", err if unavailable is not None else (last_error or err))
        raise err

    def _reject(self, alias: str, spec: ModelSpec, route: RouteSpec, boundary: str | None, prompt: "_PromptSize",
                req: _Request) -> tuple[str, str] | None:
        if boundary == "local" and spec.effective_boundary != "local":
            return "boundary", f"request needs a local model; {spec.target} is {spec.effective_boundary}"
        if not spec.is_tool:
            if route.allowed_vendors is not None and spec.effective_vendor not in route.allowed_vendors:
                return "vendor", f"{spec.effective_vendor} not in {list(route.allowed_vendors)}"
            if route.allowed_regions is not None and spec.region not in route.allowed_regions:
                return "region", f"{spec.region} not in {list(route.allowed_regions)}"
        off = self.overrides.get(alias)
        if off is not None:
            return "disabled", off.describe()
        left = self.circuit.is_open(alias)
        if left is not None:
            return "circuit_open", f"cooling down for {left:.1f}s more"
        window = self._window(spec)
        if window is not None and prompt.exceeds(window):
            return "context_window", f"{prompt.tokens} prompt tokens > window {window}"
        return None

    def _below_floor(self, alias: str, route: RouteSpec) -> str | None:
        """Why ``alias`` is below the route's quality floor (declared tier, or a measured score from
        the policy's ``baselines``), or None when it meets it."""
        spec = self.policy.models[alias]
        if spec.tier < route.min_tier:
            return f"tier {spec.tier} < min_tier {route.min_tier}"
        baseline = self.policy.baselines.get(route.intent)
        measured = baseline.scores.get(alias) if baseline else None
        if measured is not None and measured.score < baseline.min_score:
            return f"measured score {measured.score:.3f} < min_score {baseline.min_score} (n={measured.n})"
        return None

    def _settle(self, hold: Any, attempt: Attempt, warnings: list[str]) -> None:
        if hold is None:
            return
        held = getattr(hold, "estimate_usd", None)
        if held is not None and attempt.cost_usd is not None and attempt.cost_usd > held * 1.000001:
            warnings.append(f"billed past the budget hold: {attempt.alias} cost ${attempt.cost_usd:.6f}, the most "
                            f"its request could cost was held as ${held:.6f} (a budget may overshoot by the "
                            f"difference)")
        try:
            self.budgets.settle(hold, attempt.cost_usd)
        except LedgerUnavailable as e:
            warnings.append(f"{e}: settle failed; {attempt.alias}'s cost is in this record but not in the ledger "
                            f"(its hold expires by itself)")

    def _nowhere_to_write(self) -> str | None:
        """Why no record could be kept (the log and the spool both refuse), or None: checked before paying."""
        if self.log is None:
            return None
        problem = self.log.writable()
        if problem is None:
            return None
        from . import spool

        spool_problem = spool.writable()
        return None if spool_problem is None else f"the route log is not writable ({problem}) and neither is " \
                                                  f"the spool ({spool_problem})"

    def _write(self, record: dict[str, Any]) -> None:
        """Append the record; if the log refuses it, spool it (``routekit log recover`` replays it)."""
        if self.log is None:
            return
        try:
            self.log.write(record)
            return
        except (OSError, ValueError) as e:
            why = f"{type(e).__name__}: {getattr(e, 'strerror', None) or e}"
        from . import spool

        record["warnings"] = WARNING_SEPARATOR.join(
            x for x in (record["warnings"], f"spooled: the route log {self.log.root} could not take this record "
                                            f"({why}); routekit log recover replays it") if x)
        try:
            spool.write(record)
        except (OSError, ValueError) as e:
            log.error("routekit: a route record could not be written (log: %s; spool: %s); here it is: %s", why, e,
                      json.dumps(record, default=str))

    def _maybe_shadow(self, req: _Request, route: RouteSpec, boundary: str | None, production: Result) -> None:
        """Send a sampled copy of a served request to the route's shadow candidate, in the background.

        The user's answer and latency are untouched; the shadow call leaves its own record with
        ``shadow_of`` set, and ``shadow_sink(production, shadow)`` (if given) sees both answers.
        """
        if route.shadow is None or self._rng.random() >= route.shadow_rate:
            return
        spec = self.policy.models[route.shadow]
        if self._reject(route.shadow, spec, route, boundary, _PromptSize(self, spec, req.messages), req):
            return  # a shadow never crosses a boundary or ignores a kill switch
        self._shadow_pool().submit(self._run_shadow, req, route, spec, production)

    def _shadow_pool(self):
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor
            self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="routekit-shadow")
        return self._pool

    def _run_shadow(self, req: _Request, route: RouteSpec, spec: ModelSpec, production: Result) -> None:
        shadow_req = _Request(req.intent, req.messages, req.team, req.sensitivity, req.max_tokens)
        t0 = time.perf_counter()
        reply: Reply | None = None
        try:
            reply = self.transport.complete(spec, req.messages, max_tokens=req.max_tokens)
            attempt = self._attempt(spec.alias, spec, reply.usage, reply.latency_ms, "ok", None, reply.provider)
        except TransportError as e:
            attempt = self._attempt(spec.alias, spec, e.usage, e.latency_ms, e.kind, e, e.provider)
        except Exception:  # noqa: BLE001 — a shadow must never disturb production
            return
        usage = [attempt.input_tokens, attempt.output_tokens, attempt.cache_read_tokens,
                 attempt.cache_write_tokens, attempt.reasoning_tokens]
        record = self._record(shadow_req, route, [spec.alias], None, [attempt], [], usage, attempt.input_tokens,
                              spec if reply else None, spec.alias if reply else None, reply,
                              "skipped", None, (time.perf_counter() - t0) * 1000)
        record.update(shadow_of=req.request_id, fallback_used=False, requested_alias=spec.alias,
                      **{"gen_ai.request.model": spec.target})
        self._write(record)
        if self.shadow_sink is not None and reply is not None:
            shadow = self._result(shadow_req, route, [spec.alias], spec.alias, reply, "skipped", [attempt], [], record)
            self.shadow_sink(production, shadow)

    def drain(self, timeout: float | None = None) -> None:
        """Wait for background shadow calls to finish (tests, scripts, notebook cells)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _window(self, spec: ModelSpec) -> int | None:
        if spec.alias not in self._windows:
            rates = None if spec.is_tool else self.prices.lookup(spec.price_key or spec.model)
            self._windows[spec.alias] = spec.context_window or (rates.max_input_tokens if rates else None)
        return self._windows[spec.alias]

    def _rates(self, alias: str):
        if alias not in self._rates_cache:
            self._rates_cache[alias] = self.prices.rates_for(self.policy.models[alias])
        return self._rates_cache[alias]

    def _count(self, spec: ModelSpec, messages: list[dict]) -> int:
        if spec.is_tool:
            return sum(len(str(m.get("content", ""))) for m in messages) // 4
        from .tokens import count_messages
        return count_messages(spec.model, messages).tokens

    def _verify(self, route: RouteSpec, text: str) -> str:
        v = route.verify
        if v is None:
            return "skipped"
        if v.non_empty and not text.strip():
            return "fail"
        if v.regex is not None and not re.search(v.regex, text):
            return "fail"
        if v.json_schema is not None:
            import jsonschema
            try:
                jsonschema.validate(json.loads(text), v.json_schema)
            except (ValueError, jsonschema.ValidationError):
                return "fail"
        if v.callable is not None:
            from .transport import load_tool
            if not load_tool(v.callable)(text):
                return "fail"
        return "pass"

    # --- records ----------------------------------------------------------------------------

    def _attempt(self, alias: str, spec: ModelSpec, usage: Usage, latency_ms: float, outcome: str,
                 error: TransportError | None, provider: str) -> Attempt:
        rates = self._rates(alias)
        cost = None if rates is None else rates.cost(usage)[0]
        return Attempt(
            alias=alias, model=spec.target, provider=provider, region=spec.region, outcome=outcome,
            error_class=error.error_class if error else None, status=error.status if error else None,
            retryable=error.retryable if error else None, retry_after_s=error.retry_after_s if error else None,
            latency_ms=round(latency_ms, 3), input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens, cache_write_tokens=usage.cache_write_tokens,
            reasoning_tokens=usage.reasoning_tokens, cost_usd=cost, unpriced=rates is None,
            message=error.message if error else None)

    @staticmethod
    def _add_usage(total: list[int], u: Usage) -> None:
        for i, v in enumerate((u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens,
                               u.reasoning_tokens)):
            total[i] += v

    def _result(self, req: _Request, route: RouteSpec, chain: list[str], alias: str, reply: Reply,
                verification: str, attempts: list[Attempt], skipped: list[Skip], record: dict) -> Result:
        spec = self.policy.models[alias]
        return Result(
            request_id=req.request_id, intent=req.intent, text=reply.text, served_model=alias,
            response_model=reply.response_model, provider=reply.provider, tier=spec.tier,
            fallback_used=record["fallback_used"], degraded=record["degraded"], verification=verification,
            attempts=tuple(attempts), skipped=tuple(skipped), cost_usd=record["cost_usd"],
            unpriced=record["unpriced"], latency_ms=record["latency_ms"], price_version=self.prices.version,
            policy_version=self.policy.version, restarted=any(a.outcome == "stream_cut" for a in attempts),
            model_mismatch=record["model_mismatch"],
            warnings=tuple(record["warnings"].split(WARNING_SEPARATOR)) if record["warnings"] else (), record=record)

    def _record(self, req: _Request, route: RouteSpec, chain: list[str], boundary: str | None,
                attempts: list[Attempt], skipped: list[Skip], usage: list[int], prompt_tokens: int,
                spec: ModelSpec | None, served: str | None, reply: Reply | None, verification: str,
                error: Exception | None, latency_ms: float, warnings: list[str] = ()) -> dict[str, Any]:
        first = self.policy.models[chain[0]]
        costs = [a.cost_usd for a in attempts]
        unpriced = any(a.unpriced for a in attempts)
        failed = [a.cost_usd or 0.0 for a in attempts if a.outcome != "ok"]
        savings = 0.0
        for a in attempts:
            rates = self._rates(a.alias)
            if rates is not None and a.cache_read_tokens:
                savings += rates.cost(Usage(input_tokens=a.cache_read_tokens, cache_read_tokens=a.cache_read_tokens))[1]
        store = route.store_prompts
        kind = getattr(error, "kind", None) or ("no_eligible_route" if error is not None else None)
        mismatch = bool(reply and spec and served_other_model(spec, reply.response_model))
        if mismatch:
            warnings = [*warnings, f"model mismatch: asked {spec.target} for {spec.model.split('/', 1)[-1]!r}, "
                                   f"the provider says it served {reply.response_model!r}"]
        record = {
            "schema_version": 1,
            "request_id": req.request_id,
            "timestamp": datetime.fromtimestamp(req.started, timezone.utc).isoformat(timespec="microseconds")
                         .replace("+00:00", "Z"),
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": first.target,
            "gen_ai.response.model": reply.response_model if reply else None,
            "gen_ai.provider.name": reply.provider if reply else None,
            "gen_ai.usage.input_tokens": usage[0],
            "gen_ai.usage.output_tokens": usage[1],
            "usage.cache_read_tokens": usage[2],
            "usage.cache_write_tokens": usage[3],
            "usage.reasoning_tokens": usage[4],
            "intent": req.intent,
            "route_id": req.intent,
            "team": req.team,
            "sensitivity": req.sensitivity,
            "boundary": boundary or "none",
            "policy_version": self.policy.version,
            "price_version": self.prices.version,
            "outcome": "served" if reply else ("blocked" if not attempts and any(
                s.reason in ("budget", "budget_unavailable") for s in skipped) else "failed"),
            "error_kind": None if reply else kind,
            "requested_alias": chain[0],
            "served_alias": served,
            "served_tier": spec.tier if spec else None,
            "min_tier": route.min_tier,
            "fallback_used": bool(served and served != chain[0]),
            "degraded": bool(served and self._below_floor(served, route)),
            "verification": verification,
            "attempt_count": len(attempts),
            "attempts": [_as_dict(a) for a in attempts],
            "skipped": [_as_dict(s) for s in skipped],
            "cost_usd": None if unpriced else round(sum(c or 0.0 for c in costs), 12),
            "failed_cost_usd": round(sum(failed), 12),
            "cache_savings_usd": round(savings, 12),
            "unpriced": unpriced,
            "latency_ms": round(latency_ms, 3),
            "stream": req.stream,
            "prompt_hash": prompt_hash(req.messages),
            "prompt_tokens": prompt_tokens,
            "prompt": json.dumps(req.messages) if store else None,
            "output": reply.text if (store and reply) else None,
            "output_hash": hashlib.sha256(reply.text.encode()).hexdigest() if reply else None,
            "shadow_of": None,
            "source": "router",
            "model_mismatch": mismatch,
            "warnings": WARNING_SEPARATOR.join(dict.fromkeys(warnings)) or None,
            "router_name": req.learned.name if req.learned else None,
            "router_version": req.learned.version if req.learned else None,
            "router_score": req.learned.score if req.learned else None,
            "extra": None,
        }
        clamped = clamp_to_domain(record)   # the provider was paid: the record must be writable, flagged
        if clamped:
            record["warnings"] = WARNING_SEPARATOR.join(
                x for x in (record["warnings"], "values outside their domain: " + "; ".join(clamped)) if x)
        return record


class _PromptSize:
    """Prompt tokens, counted only when needed: UTF-8 bytes bound the token count from above,
    so a window check rarely needs the tokenizer, and a served request uses the provider's count."""

    def __init__(self, router: "Router", spec: ModelSpec, messages: list[dict]):
        self._router, self._spec, self._messages = router, spec, messages
        self._bytes = sum(len(str(m.get("content") or "").encode()) + 8 for m in messages)
        self._tokens: int | None = None

    @property
    def tokens(self) -> int:
        if self._tokens is None:
            self._tokens = self._router._count(self._spec, self._messages)
        return self._tokens

    def exceeds(self, window: int) -> bool:
        return self._bytes > window and self.tokens > window

    def final(self, reply: Reply | None) -> int:
        if reply is not None and reply.usage.input_tokens and self._tokens is None:
            return reply.usage.input_tokens
        return self.tokens


def _as_dict(obj: Any) -> dict[str, Any]:
    return {f: getattr(obj, f) for f in obj.__dataclass_fields__}


# What may follow a model's name in the name a provider reports for it without being another model:
# a date or version snapshot, a revision, "latest" / "preview" (gpt-4.1-2025-04-14, claude-haiku-4-5-20251001,
# anthropic.claude-3-5-haiku-20241022-v1:0, gemini-2.0-flash-001).
_SNAPSHOT_SUFFIX = re.compile(r"(?:[-@:](?:\d{4}-\d{2}-\d{2}|\d{6,8}|v?\d+(?:[.:]\d+)*|latest|preview|exp))*")


def served_other_model(spec: ModelSpec, reported: str) -> bool:
    """Did the provider report serving a different model than ``spec`` asks for (not just a dated snapshot)?"""
    if spec.is_tool or not reported or not spec.model:
        return False
    asked = spec.model.split("/", 1)[-1].lower()
    said = reported.lower().removeprefix("models/")
    if said == asked or said.endswith("/" + asked):
        return False
    return not (said.startswith(asked) and _SNAPSHOT_SUFFIX.fullmatch(said[len(asked):]))


def prompt_hash(messages: list[dict]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _as_messages(messages: str | list[dict]) -> list[dict]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return list(messages)


def _drive_sync(gen: Generator, transport: Any, req: _Request, sleep) -> Result:
    send: Any = None
    throw: TransportError | None = None
    while True:
        try:
            action, arg = gen.throw(throw) if throw is not None else gen.send(send)
        except StopIteration as stop:
            return stop.value
        send, throw = None, None
        if action == _SLEEP:
            sleep(arg)
            continue
        try:
            send = transport.complete(arg, req.messages, max_tokens=req.max_tokens)
        except TransportError as e:
            throw = e


async def _drive_async(gen: Generator, transport: Any, req: _Request) -> Result:
    send: Any = None
    throw: TransportError | None = None
    while True:
        try:
            action, arg = gen.throw(throw) if throw is not None else gen.send(send)
        except StopIteration as stop:
            return stop.value
        send, throw = None, None
        if action == _SLEEP:
            await asyncio.sleep(arg)
            continue
        try:
            send = await transport.acomplete(arg, req.messages, max_tokens=req.max_tokens)
        except TransportError as e:
            throw = e


def _drive_stream(gen: Generator, transport: Any, req: _Request, sleep, out: RoutedStream
                  ) -> Iterator[str | StreamRestart]:
    """Drive the decision like ``_drive_sync``, calling ``transport.stream`` and passing its text on."""
    send: Any = None
    throw: TransportError | None = None
    restart: StreamRestart | None = None   # to announce before the next candidate's first delta
    while True:
        try:
            action, arg = gen.throw(throw) if throw is not None else gen.send(send)
        except StopIteration as stop:
            out.result = stop.value
            return
        if action == _SLEEP:
            send, throw = None, None
            sleep(arg)
            continue
        pending, send, throw, restart = restart, None, None, None
        shown: list[str] = []
        t0 = time.perf_counter()
        chunks = None
        try:
            if pending is not None:   # the route starts over after a cut: say so first
                yield pending
            chunks = transport.stream(arg, req.messages, max_tokens=req.max_tokens)
            for item in chunks:
                if isinstance(item, Reply):
                    send = item
                else:
                    shown.append(item)
                    yield item
        except TransportError as e:
            throw = _shown(e, shown)
            restart = StreamRestart(arg.alias, e.kind, len(e.partial)) if e.partial else None
        except GeneratorExit:
            if chunks is not None:
                chunks.close()
            _abandon(gen, arg, t0)
            raise


async def _drive_astream(gen: Generator, transport: Any, req: _Request, out: RoutedAsyncStream
                         ) -> AsyncIterator[str | StreamRestart]:
    send: Any = None
    throw: TransportError | None = None
    restart: StreamRestart | None = None   # to announce before the next candidate's first delta
    while True:
        try:
            action, arg = gen.throw(throw) if throw is not None else gen.send(send)
        except StopIteration as stop:
            out.result = stop.value
            return
        if action == _SLEEP:
            send, throw = None, None
            await asyncio.sleep(arg)
            continue
        pending, send, throw, restart = restart, None, None, None
        shown: list[str] = []
        t0 = time.perf_counter()
        chunks = None
        try:
            if pending is not None:
                yield pending
            chunks = transport.astream(arg, req.messages, max_tokens=req.max_tokens)
            async for item in chunks:
                if isinstance(item, Reply):
                    send = item
                else:
                    shown.append(item)
                    yield item
        except TransportError as e:
            throw = _shown(e, shown)
            restart = StreamRestart(arg.alias, e.kind, len(e.partial)) if e.partial else None
        except GeneratorExit:
            if chunks is not None:
                await chunks.aclose()
            _abandon(gen, arg, t0)
            raise


def _shown(e: TransportError, shown: list[str]) -> TransportError:
    """Mark a failure with the text the caller already saw (whatever the transport knew)."""
    e.partial = e.partial or "".join(shown)
    return e


def _abandon(gen: Generator, spec: ModelSpec, t0: float) -> None:
    """The caller stopped reading: let the decision record the attempt (and settle its budget hold)."""
    stop = TransportError(ABANDONED, "the caller stopped reading the stream", provider=spec.provider_prefix,
                          latency_ms=(time.perf_counter() - t0) * 1000)
    try:
        gen.throw(stop)
    except (RoutingError, StopIteration):
        pass
