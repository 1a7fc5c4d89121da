"""Route a request by intent: pick candidates by policy, call, fall back honestly, explain.

The routing decision is written once, as a generator (:meth:`Router._decide`) that *yields* what it wants
done — call this candidate, sleep this long — and receives the outcome.  ``complete`` drives it synchronously
and ``acomplete`` with ``await``; ``stream`` and ``astream`` drive the same generator while passing the answer's
text on as it arrives (toolkit/streams.py), so every way of calling shares every rule.

The four calls take what an agent sends — the OpenAI chat parameters (``tools``, ``tool_choice``,
``response_format``, ``temperature``, ``top_p``, ``stop``, ``seed``), image parts and tool turns in the messages
(toolkit/chat.py), and a ``conversation_id`` — and the result carries the answer's normalized ``tool_calls``, its
``finish_reason`` and the assistant ``message`` to append.  A tool call's arguments and a structured answer are
checked against their schemas (toolkit/verify.py) and escalate like any verification failure.  Who made the
conversation's earlier tool calls, and whether this turn left that model, is in the record
(toolkit/conversations.py).

Order of filters for each candidate (each rejection leaves a reason code in the record): privacy boundary
(never relaxed by a fallback) -> vendor / region allow-lists -> capability (what the request needs: tools, a
JSON-schema answer, images) -> kill switch -> open circuit -> context window -> budget -> quality floor.  The
policy's own rules are in toolkit/eligibility.py; the runtime ones (kill switch, circuit, budget) are here.

A paid answer is never lost.  Before the first provider call the route log must be writable (else the spool,
toolkit.spool, must be: else nothing is sent) and the budget ledger must answer (else the policy's
``state.on_unavailable`` decides).  A record the log cannot take after the call is spooled and the answer
returned; a ledger that fails to settle leaves the answer and a warning.  Whatever went wrong around the
answer — a damaged overrides file, a spooled record, capped usage, a provider that served another model than
asked — is in ``Result.warnings`` and the record's ``warnings``.

The result and its parts are in toolkit/result.py, the record is built beside its schema
(toolkit/routelog/record.py), the shadow trial is toolkit/shadow.py, the errors toolkit/errors.py.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Protocol

from .capabilities import Capabilities, capabilities_of
from .chat import chat_options, check_messages, earlier_tool_call_ids, needs
from .circuit import CircuitBreaker
from .conversations import UNKNOWN, ConversationMemory
from .costs import PriceBook, Rates
from .eligibility import (below_floor, candidate_queue, capability_rejection, context_window, rule_rejection,
                          window_rejection)
from .errors import (BudgetDenied, LedgerUnavailable, NoEligibleRoute, RequestError,  # noqa: F401  (re-exported)
                     RoutingError, StreamInterrupted, TransportError, UnknownIntent)
from .policy import ModelSpec, Policy, RouteSpec, load_policy
from .result import ABANDONED, Attempt, Request, Result, Skip, explain_steps
from .routelog import RouteLogWriter
from .routelog.record import build_record, priced_attempt
from . import spool
from .shadow import ShadowTrials, Sink
from .state import StateBackend, open_state
from .streams import (CALL, SLEEP, Decision, RoutedAsyncStream, RoutedStream, StreamRestart,  # noqa: F401
                      drive_astream, drive_async, drive_stream, drive_sync)
from .verify import verify_answer

log = logging.getLogger("routekit.router")


class BudgetHook(Protocol):
    """What the Router needs from a budget ledger (see toolkit/budgets.py)."""

    on_unavailable: str   # "fail_closed" | "fail_open": what to do when reserve raises LedgerUnavailable

    def reserve(self, *, alias: str, spec: ModelSpec, route: RouteSpec, team: str, intent: str,
                prompt_tokens: int | Callable[[], int], max_tokens: int | None) -> Any:
        """Hold the estimated cost of one attempt, or raise :class:`BudgetDenied`.  ``prompt_tokens`` may be a
        function: counting tokens costs time, and only a request some budget covers needs the count."""

    def settle(self, hold: Any, cost_usd: float | None) -> None:
        """Replace a hold with the attempt's real cost (None: unpriced)."""


class PromptSize:
    """Prompt tokens, counted only when needed: UTF-8 bytes bound the token count from above, so a window check
    rarely needs the tokenizer, and a served request uses the provider's count."""

    def __init__(self, spec: ModelSpec, messages: list[dict]):
        self._spec, self._messages = spec, messages
        self._bytes = sum(len(str(m.get("content") or "").encode()) + 8 for m in messages)
        self._tokens: int | None = None

    @property
    def tokens(self) -> int:
        if self._tokens is None:
            if self._spec.is_tool:
                self._tokens = self._bytes // 4
            else:
                from .tokens import count_messages

                self._tokens = count_messages(self._spec.model, self._messages).tokens
        return self._tokens

    def exceeds(self, window: int | None) -> bool:
        return window is not None and self._bytes > window and self.tokens > window

    def final(self, reply: Any) -> int:
        if reply is not None and reply.usage.input_tokens and self._tokens is None:
            return reply.usage.input_tokens
        return self.tokens


class Router:
    """Routes requests by intent through a policy.

    >>> router = Router("data/policy.demo.yaml")
    >>> result = router.complete("triage", "Is this email spam? ...", team="support")
    >>> result.served_model, result.fallback_used, result.cost_usd
    >>> stream = router.stream("synthesis", "Summarise the week.")
    >>> for delta in stream:
    ...     print(delta, end="")
    >>> stream.result.served_model
    >>> r = router.complete("agent", messages, tools=TOOLS, conversation_id="c-42")
    >>> r.tool_calls, r.finish_reason        # normalized: id, name, arguments (JSON text)
    >>> messages.append(r.message)           # then the tool results, then the next turn
    """

    def __init__(self, policy: Policy | str | Path, *, transport: Any = None,
                 log: RouteLogWriter | str | Path | None = RouteLogWriter, prices: PriceBook | None = None,
                 budgets: BudgetHook | None = None, circuit: CircuitBreaker | None = None, sleep=time.sleep,
                 shadow_sink: Sink | None = None, seed: int | None = None, state: StateBackend | None = None):
        self.policy = policy if isinstance(policy, Policy) else load_policy(policy)
        if any(r.router is not None for r in self.policy.routes.values()):
            from .research.learned import policy_problems   # a trained router's model file must be usable

            found = policy_problems(self.policy)
            if found:
                from .errors import PolicyError

                raise PolicyError(found)
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
        # The kill switch, circuits and ledger: files on this host, or shared through Redis (the policy's `state:`).
        self.state = state or open_state(self.policy)
        if budgets is None and self.policy.budgets:
            # A policy's budgets are enforced by default, on the policy's own ledger.
            from .budgets import BudgetLedger
            budgets = BudgetLedger.from_policy(self.policy, prices=self.prices, store=self.state.ledger_store())
        self.budgets = budgets
        self.circuit = circuit or self.state.circuit
        self.overrides = self.state.overrides
        self.shadows = ShadowTrials(self, shadow_sink, seed)
        self.conversations = ConversationMemory()
        self._sleep = sleep
        self._windows: dict[str, int | None] = {}
        self._rates: dict[str, Rates | None] = {}
        self._capabilities: dict[str, Capabilities] = {}

    # --- public API ------------------------------------------------------------------------

    def complete(self, intent: str, messages: str | list[dict], *, team: str = "default",
                 sensitivity: str | None = None, max_tokens: int | None = None, conversation_id: str | None = None,
                 **chat: Any) -> Result:
        """Route one request.  ``chat``: the OpenAI chat parameters (``tools``, ``tool_choice``, ``response_format``,
        ``temperature``, ``top_p``, ``stop``, ``seed``; toolkit/chat.py); a bad one is a RequestError naming it."""
        req = _request(intent, messages, team, sensitivity, max_tokens, conversation_id, chat)
        return drive_sync(self._decide(req), self.transport, req, self._sleep)

    async def acomplete(self, intent: str, messages: str | list[dict], *, team: str = "default",
                        sensitivity: str | None = None, max_tokens: int | None = None,
                        conversation_id: str | None = None, **chat: Any) -> Result:
        """Async :meth:`complete`."""
        req = _request(intent, messages, team, sensitivity, max_tokens, conversation_id, chat)
        return await drive_async(self._decide(req), self.transport, req)

    def stream(self, intent: str, messages: str | list[dict], *, team: str = "default",
               sensitivity: str | None = None, max_tokens: int | None = None, conversation_id: str | None = None,
               **chat: Any) -> RoutedStream:
        """Route like :meth:`complete`, passing the answer's text and tool-call pieces on as they arrive
        (see toolkit/streams.py)."""
        req = _request(intent, messages, team, sensitivity, max_tokens, conversation_id, chat, stream=True)
        decision = self._decide(req)
        return RoutedStream(lambda out: drive_stream(decision, self.transport, req, self._sleep, out))

    def astream(self, intent: str, messages: str | list[dict], *, team: str = "default",
                sensitivity: str | None = None, max_tokens: int | None = None, conversation_id: str | None = None,
                **chat: Any) -> RoutedAsyncStream:
        """Async :meth:`stream`: ``async for delta in router.astream(...)``."""
        req = _request(intent, messages, team, sensitivity, max_tokens, conversation_id, chat, stream=True)
        decision = self._decide(req)
        return RoutedAsyncStream(lambda out: drive_astream(decision, self.transport, req, out))

    def drain(self) -> None:
        """Wait for background shadow calls to finish (tests, scripts, notebook cells)."""
        self.shadows.drain()

    def screen(self, spec: ModelSpec, route: RouteSpec, boundary: str | None, prompt: PromptSize,
               needed: frozenset[str] = frozenset()) -> tuple[str, str] | None:
        """Why ``spec`` may not serve this request now — (reason code, detail) — or None: the policy's rules
        (``needed``: the capabilities the request needs), then the kill switch and the circuit (the quality floor
        and the budget are the decision's)."""
        rejected = rule_rejection(spec, route, boundary)
        if rejected is None and needed:
            rejected = capability_rejection(needed, self.capabilities(spec), spec.target)
        if rejected is not None:
            return rejected
        off = self.overrides.get(spec.alias)
        if off is not None:
            return "disabled", off.describe()
        left = self.circuit.is_open(spec.alias)
        if left is not None:
            return "circuit_open", f"cooling down for {left:.1f}s more"
        window = self._window(spec)
        return window_rejection(prompt.tokens, window) if prompt.exceeds(window) else None

    def capabilities(self, spec: ModelSpec) -> Capabilities:
        """What a policy model can do (its ``supports:``, else the price snapshot)."""
        if spec.alias not in self._capabilities:
            self._capabilities[spec.alias] = capabilities_of(spec, self.prices)
        return self._capabilities[spec.alias]

    def rates(self, alias: str) -> Rates | None:
        """The prices of a policy alias (its override, else the snapshot); None when unpriced."""
        if alias not in self._rates:
            self._rates[alias] = self.prices.rates_for(self.policy.models[alias])
        return self._rates[alias]

    def keep(self, record: dict[str, Any]) -> None:
        """Append a record to the route log; if the log refuses it, spool it (``routekit log recover``)."""
        if self.log is not None:
            spool.keep(self.log, record)

    # --- the decision ------------------------------------------------------------------------

    def _decide(self, req: Request) -> Decision:
        policy = self.policy
        route = policy.routes.get(req.intent)
        if route is None:
            raise UnknownIntent(f"unknown intent {req.intent!r}; the policy {policy.path} routes: "
                                f"{', '.join(sorted(policy.routes))}")
        boundary = policy.required_boundary(route, req.sensitivity)   # first: an undeclared label is refused
        chain = policy.chain(req.intent)
        if route.router is not None:  # a trained router picks the first candidate (toolkit/research/learned.py)
            from .research.learned import choose

            req.learned = choose(route.router, policy.path, req.messages)
            chain = [req.learned.alias, *(a for a in chain if a != req.learned.alias)]
        pinned = self.conversations.pinned(req.intent, req.conversation_id) if route.sticky else None
        if pinned not in chain:   # (a policy change may have dropped it)
            pinned = None
        elif pinned != chain[0]:  # a sticky conversation starts where it was served last
            chain = [pinned, *(a for a in chain if a != pinned)]
        needed = needs(req.options, req.messages) | frozenset(route.requires)
        called = earlier_tool_call_ids(req.messages)
        earlier = self.conversations.producers(called) if called else []
        t0 = time.perf_counter()
        prompt = PromptSize(policy.models[chain[0]], req.messages)
        attempts: list[Attempt] = []
        skipped: list[Skip] = []
        self.overrides.refresh()   # one look at the kill switch per request
        route_off = self.overrides.get(req.intent)
        warnings: list[str] = []

        def finish(reply: Any, served: str | None, verification: str, error: Exception | None) -> dict[str, Any]:
            damage = self.overrides.damage   # read at the end: shared state may have become unreachable meanwhile
            if damage:
                warnings.insert(0, damage)
            switched = False
            if reply is not None:
                warnings.extend(reply.notes)
                switched = self._switch_note(req, served, reply.provider, pinned, earlier, warnings)
            record = build_record(
                req, route, first=policy.models[chain[0]], boundary=boundary, attempts=attempts, skipped=skipped,
                prompt_tokens=prompt.final(reply), served=policy.models[served] if served else None, reply=reply,
                verification=verification, error=error, latency_ms=(time.perf_counter() - t0) * 1000,
                degraded=bool(served and below_floor(policy, served, route)), warnings=warnings,
                policy_version=policy.version, price_version=self.prices.version, rates=self.rates,
                earlier=earlier, switched=switched, state=self.state.mode)
            self.keep(record)
            return record

        def fail(note: str, error: Exception | None = None, kind: str | None = None) -> NoEligibleRoute:
            head = (f"no eligible candidate served intent {req.intent!r} (quality floor min_tier {route.min_tier}, "
                    f"on_exhausted: {route.on_exhausted})")
            err = NoEligibleRoute(req.intent, "\n".join([head + (f": {note}" if note else ""),
                                                          *explain_steps(tuple(attempts), tuple(skipped))]),
                                  tuple(attempts), tuple(skipped), kind=kind)
            err.record = finish(None, None, "skipped", error or err)
            return err

        if route_off is not None:
            skipped.extend(Skip(a, "route_disabled", route_off.describe()) for a in chain)
            raise fail(f"route {route_off.describe()}")

        queue, screened = candidate_queue(policy, route, chain,
                                          lambda a: self.screen(policy.models[a], route, boundary, prompt, needed))
        skipped += [Skip(*s) for s in screened]

        nowhere = self._nowhere_to_write() if queue else None
        if nowhere:
            raise fail(f"nothing was sent: {nowhere}")

        last_error: TransportError | None = None
        budget_note = ""
        unavailable: LedgerUnavailable | None = None
        for i, alias in enumerate(queue):
            spec = policy.models[alias]
            if i > 0:
                # Earlier failures in this request may have opened this candidate's circuit.
                left = self.circuit.is_open(alias)
                if left is not None:
                    skipped.append(Skip(alias, "circuit_open", f"cooling down for {left:.1f}s more"))
                    continue
            floor = below_floor(policy, alias, route) if budget_note else None
            if floor:
                # A budget may route down to a cheaper candidate, never below the quality floor.
                skipped.append(Skip(alias, "below_floor", f"{floor} (not used to get around a budget)"))
                continue
            hold = None
            if self.budgets is not None:
                try:
                    hold = self.budgets.reserve(alias=alias, spec=spec, route=route, team=req.team,
                                                intent=req.intent, prompt_tokens=lambda: prompt.tokens,
                                                max_tokens=req.max_tokens or spec.max_output_tokens
                                                or route.max_output_tokens)
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
            rates = self.rates(alias)
            while True:
                try:
                    reply = yield CALL, spec
                except TransportError as e:
                    attempt = priced_attempt(spec, e.usage, e.latency_ms, e.kind, e, e.provider, rates)
                    if e.partial:  # a stream broke after its first token
                        attempt = replace(attempt, outcome="stream_cut", message=f"{e.kind} after {len(e.partial)} "
                                                                                 f"characters: {e.message}")
                    attempts.append(attempt)
                    self._settle(hold, attempt, warnings)
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
                        yield SLEEP, e.retry_after_s
                        continue
                    break
                verdict = verify_answer(route.verify, reply.text, reply.tool_calls, req.options)
                attempt = priced_attempt(spec, reply.usage, reply.latency_ms, "ok", None, reply.provider, rates)
                if verdict.failed:
                    attempt = replace(attempt, outcome="verify_failed", error_class=verdict.failed,
                                      message=verdict.detail)
                attempts.append(attempt)
                self._settle(hold, attempt, warnings)
                hold = None
                self.circuit.success(alias)
                # A streamed answer was already shown: a failed check is reported, never silently replaced.
                escalate = route.verify.escalate if route.verify else True
                if verdict.failed and escalate and i < len(queue) - 1 and not req.stream:
                    break
                record = finish(reply, alias, verdict.result, None)
                if reply.tool_calls or (route.sticky and req.conversation_id):
                    self.conversations.remember(req.intent, req.conversation_id, alias, reply.provider,
                                                [c.id for c in reply.tool_calls], pin=route.sticky is not None)
                result = Result.from_record(record, reply.text, tuple(attempts), tuple(skipped), reply.tool_calls)
                self.shadows.offer(req, route, boundary, prompt, result, needed)
                return result
            if last_error is not None and not last_error.retryable:
                break

        if unavailable is not None:
            raise fail(f"nothing was sent: {unavailable}", unavailable, LedgerUnavailable.kind)
        note = ""
        if last_error is not None and not last_error.retryable:
            note = f"stopped at a non-retryable failure ({last_error.kind})"
        elif budget_note:
            note = f"budget: {budget_note}"
        raise fail(note, last_error)

    @staticmethod
    def _switch_note(req: Request, served: str, provider: str, pinned: str | None,
                     earlier: list[tuple[str, str]], warnings: list[str]) -> bool:
        """Did this turn leave the model that made the conversation's earlier tool calls, or the one it was pinned
        to?  If so, say so in the warnings (the record flags it too)."""
        made = [alias for alias, _ in earlier if alias != UNKNOWN]
        conversation = f"conversation {req.conversation_id!r}" if req.conversation_id else "this conversation"
        if pinned is not None and served != pinned:
            warnings.append(f"{conversation} was pinned to {pinned}, which could not serve this turn: "
                            f"{served} ({provider}) answered")
            return True
        if made and made[-1] != served:
            by = ", ".join(f"{alias} ({p})" for alias, p in earlier)
            warnings.append(f"{conversation}: its earlier tool calls came from {by}; this turn was answered by "
                            f"{served} ({provider})")
            return True
        return False

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
        spool_problem = spool.writable()
        return None if spool_problem is None else f"the route log is not writable ({problem}) and neither is " \
                                                  f"the spool ({spool_problem})"

    def _window(self, spec: ModelSpec) -> int | None:
        if spec.alias not in self._windows:
            self._windows[spec.alias] = context_window(spec, self.prices)
        return self._windows[spec.alias]


def _request(intent: str, messages: str | list[dict], team: str, sensitivity: str | None, max_tokens: int | None,
             conversation_id: str | None, chat: dict[str, Any], stream: bool = False) -> Request:
    """The caller's request, every argument checked before anything is sent (RequestError names the argument)."""
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise RequestError(f"max_tokens must be a positive integer, not {max_tokens!r}")
    if conversation_id is not None and (not isinstance(conversation_id, str) or not conversation_id):
        raise RequestError(f"conversation_id must be a non-empty string, not {conversation_id!r}")
    if not isinstance(team, str) or not team.strip():   # budgets, spend and the audit log group by it
        raise RequestError(f"team must be a non-empty string, not {team!r}")
    return Request(intent, check_messages(messages), team, sensitivity, max_tokens, stream=stream,
                   options=chat_options(chat), conversation_id=conversation_id)

