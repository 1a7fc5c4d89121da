"""Budgets: a spend ledger the Router consults before every attempt (its ``BudgetHook``).

A budget (``budgets:`` in the policy, :class:`~toolkit.policy.BudgetSpec`) covers the requests whose
team, intent, route and provider (``spec.effective_vendor``) match its ``scope`` (empty scope: all), over a
UTC ``daily`` or ``monthly`` period, up to ``limit_usd``.

How the ledger keeps a limit under concurrency
----------------------------------------------
Before an attempt, :meth:`BudgetLedger.reserve` holds the attempt's *maximum* cost (:meth:`~BudgetLedger.estimate`)
— prompt tokens at the input rate, plus the output cap (``max_tokens``, else the model's or the route's
``max_output_tokens``, else the model's own limit from the price snapshot) and the model's reasoning allowance
(``reasoning_allowance_tokens``; by default the output cap again for a model the snapshot marks as reasoning,
since such providers bill "thinking" past ``max_tokens``) at the output rate — in every matching budget,
atomically, and only if ``spent + held + estimate <= limit`` for each.  After the attempt,
:meth:`~BudgetLedger.settle` replaces the hold with the real cost.  So however many threads, processes or
hosts share the ledger, settled spend passes the limit by at most one request's maximum.  A hold a crashed
worker never settles expires after ``hold_ttl_s``.  (Set ``max_output_tokens`` on a model to make its holds,
and so the room a budget needs near its limit, smaller.)

Where the ledger lives
----------------------
It belongs to the policy, not to a log directory: by default the SQLite file ``Policy.ledger_path`` beside the
policy (or in its ``state: {dir: ...}``), or Redis when the policy says ``state: {backend: redis, url_env:
NAME}``.  So two processes with the same policy share one budget whatever ``--log`` or working directory each
uses.

When the ledger cannot answer
-----------------------------
A locked or full SQLite file, a read-only directory, a Redis that is down: ``reserve`` and ``settle`` raise
:class:`LedgerUnavailable` (naming the ledger, never a password).  Before a call the Router then follows the
policy's ``state.on_unavailable``: ``fail_closed`` (the default) refuses the request without calling anyone,
``fail_open`` serves it without a hold; both are recorded.  After a call (``settle``) the answer is kept and
the record says its cost is not in the ledger.  Redis durability: run it with ``appendonly yes`` and
``appendfsync always`` (or ``everysec``, which may lose the last second's spend on a crash) — without AOF a
restart rolls spend back and it can be spent again.

When a request does not fit, ``reserve`` raises :class:`~toolkit.errors.BudgetDenied` naming the budget:
``on_limit: block`` stops the request; ``on_limit: downgrade`` lets the Router try the next, cheaper, eligible
candidate (never below the route's quality floor).  A candidate that costs nothing per token (a local model
at $0, a tool) is never held and never refused.  A candidate without any price cannot be accounted for: it
is refused by every budget that covers it (``block=False``, so a priced candidate may serve instead).

Alerts
------
Each budget alerts at the fractions in its ``alerts`` (default 50/80/100%) of ``limit_usd``, exactly once per
threshold per period, across every process sharing the ledger (the store claims each one atomically, then
the hooks deliver it).  A threshold fires when settled spend reaches it; the 100% alert also fires when the
first request is refused for lack of room, whichever comes first.  Hooks are callables taking an
:class:`Alert`: :func:`log_alert` (a WARNING log line, the default), :class:`WebhookAlert` (JSON POSTed to a
URL), or any Python callable.  A failing hook is logged; it never fails a request.

Stores
------
The stores live with the rest of the policy's state (toolkit/state/ledger.py): :class:`SQLiteStore` (embedded,
one host) and :class:`RedisStore` (many processes or hosts; each reserve and settle one Lua script).  The
policy's state backend (toolkit/state) hands the ledger its store; with Redis, a settle that cannot reach it
is journaled on this host and replayed when Redis answers again.

Amounts are kept as integer nano-dollars, so sums are exact and a $1.00 limit holds exactly 100 $0.01 requests.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable

from .costs import PriceBook, Usage
from .errors import BudgetDenied, LedgerUnavailable  # noqa: F401  (LedgerUnavailable: what stores raise)
from .policy import BudgetSpec
from .state.ledger import LedgerStore, RedisStore, SQLiteStore, open_store  # noqa: F401  (re-exported)

log = logging.getLogger("routekit.budgets")

NANO = 1_000_000_000
DEFAULT_OUTPUT_TOKENS = 4096   # the output cap when neither the request, the policy nor the snapshot gives one


def to_nano(usd: float) -> int:
    return round(usd * NANO)


def period_key(period: str, now: float) -> str:
    """The UTC period a moment falls in: ``2026-11-23`` (daily) or ``2026-11`` (monthly)."""
    return time.strftime("%Y-%m-%d" if period == "daily" else "%Y-%m", time.gmtime(now))


def scope_text(b: BudgetSpec) -> str:
    return ", ".join(f"{k}={v}" for k, v in b.scope.items()) or "everything"


# --- alerts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    budget: str
    scope: str
    period: str          # daily | monthly
    period_key: str      # 2026-11-23 | 2026-11
    level: float         # the threshold crossed, a fraction of the limit
    spent_usd: float
    limit_usd: float
    reason: str          # "spend": settled spend reached the level; "refused": a request did not fit
    at: str              # ISO 8601 UTC

    def message(self) -> str:
        head = f"budget {self.budget!r} ({self.scope}, {self.period} {self.period_key})"
        if self.reason == "refused":
            return (f"{head} reached its ${self.limit_usd:,.2f} limit: a request did not fit in what is left "
                    f"(${self.spent_usd:,.4f} spent)")
        return f"{head} at {self.level:.0%} of ${self.limit_usd:,.2f}: ${self.spent_usd:,.4f} spent"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "message": self.message()}


AlertHook = Callable[[Alert], None]


def _only_for(budget: str, hook: AlertHook) -> AlertHook:
    """A hook that sees only one budget's alerts (a policy's per-budget webhook)."""
    def deliver(alert: Alert) -> None:
        if alert.budget == budget:
            hook(alert)
    return deliver


def log_alert(alert: Alert) -> None:
    """The default hook: one WARNING line on the ``routekit.budgets`` logger."""
    log.warning("%s", alert.message())


class WebhookAlert:
    """POST each alert as JSON to ``url`` (urllib, in a background thread: a slow receiver never delays a
    request).  ``flush()`` waits for deliveries in flight; failures are logged, not retried."""

    def __init__(self, url: str, *, timeout_s: float = 5.0, headers: dict[str, str] | None = None):
        self.url, self.timeout_s = url, timeout_s
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def __call__(self, alert: Alert) -> None:
        t = threading.Thread(target=self._post, args=(alert,), name="routekit-alert", daemon=True)
        with self._lock:
            self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()

    def _post(self, alert: Alert) -> None:
        body = json.dumps(alert.to_dict()).encode()
        req = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                resp.read()
        except Exception as e:  # noqa: BLE001 — an alert receiver's trouble must not reach a request
            log.error("budget alert webhook failed (%s): %s", type(e).__name__, alert.message())

    def flush(self, timeout_s: float | None = None) -> None:
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(timeout_s)


# --- the ledger ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hold:
    """One attempt's reservation: the estimate held in each matching budget's current period."""

    id: str
    keys: tuple[tuple[str, str], ...]     # (budget name, period key)
    amount: int                           # nano-dollars
    estimate_usd: float


@dataclass(frozen=True)
class BudgetStatus:
    budget: str
    scope: str
    period: str
    period_key: str
    limit_usd: float
    spent_usd: float
    reserved_usd: float                   # held by attempts in flight
    requests: int                         # settled attempts
    unpriced: int                         # settled attempts whose cost was unknown (not in spent_usd)
    alerts_fired: tuple[float, ...]
    on_limit: str

    @property
    def used(self) -> float:
        return self.spent_usd / self.limit_usd


class BudgetLedger:
    """Budgets of a policy over a shared store; pass it to ``Router(..., budgets=ledger)``.

    >>> ledger = BudgetLedger.from_policy(policy, alerts=[log_alert, WebhookAlert("http://ops/hook")])
    >>> Router(policy, budgets=ledger)
    """

    def __init__(self, budgets: Iterable[BudgetSpec], store: LedgerStore, *,
                 prices: PriceBook | None = None, alerts: Iterable[AlertHook] = (log_alert,),
                 default_output_tokens: int = DEFAULT_OUTPUT_TOKENS, hold_ttl_s: float = 600.0,
                 clock: Callable[[], float] = time.time, on_unavailable: str = "fail_closed"):
        self.budgets = tuple(budgets)
        names = [b.name for b in self.budgets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"budget names must be unique; repeated: {dupes}")
        self.store = store
        self.prices = prices or PriceBook.load()
        self.alerts = list(alerts)
        self.default_output_tokens = default_output_tokens
        self.hold_ttl_s = hold_ttl_s
        self.clock = clock
        self.on_unavailable = on_unavailable   # what the Router does when reserve raises LedgerUnavailable

    @classmethod
    def from_policy(cls, policy: Any, *, ledger: str | os.PathLike | None = None, store: LedgerStore | None = None,
                    **kw: Any) -> "BudgetLedger":
        """The policy's budgets over its own ledger (its state backend's: see "Where the ledger lives"), over
        ``store``, or over ``ledger`` (a SQLite path or a ``redis://`` URL) when given."""
        alerts = list(kw.pop("alerts", (log_alert,)))
        for b in policy.budgets:
            url = os.environ.get(b.alert_webhook_env) if b.alert_webhook_env else None
            if url:
                alerts.append(_only_for(b.name, WebhookAlert(url)))
        if store is None:
            if ledger is not None:
                store = open_store(ledger, policy.state.lock_timeout_s)
            else:
                from .state import open_state

                store = open_state(policy).ledger_store()
        return cls(policy.budgets, store, alerts=alerts, on_unavailable=policy.state.on_unavailable, **kw)

    # --- BudgetHook ---------------------------------------------------------------------------

    def matching(self, *, spec: Any, route: Any, team: str, intent: str) -> list[BudgetSpec]:
        """Budgets covering a request; blocking ones first (a refusal from one of them stops the request)."""
        facts = {"team": team, "intent": intent, "route": route.intent, "provider": spec.effective_vendor}
        found = [b for b in self.budgets if all(facts[k] == v for k, v in b.scope.items())]
        return sorted(found, key=lambda b: b.on_limit != "block")

    def reserve(self, *, alias: str, spec: Any, route: Any, team: str, intent: str,
                prompt_tokens: int | Callable[[], int], max_tokens: int | None) -> Hold | None:
        budgets = self.matching(spec=spec, route=route, team=team, intent=intent)
        if not budgets:
            return None
        if callable(prompt_tokens):
            prompt_tokens = prompt_tokens()
        rates = self.prices.rates_for(spec)
        if rates is None:
            b = budgets[0]
            raise BudgetDenied(b.name, f"budget {b.name!r} ({scope_text(b)}) cannot account for {alias} "
                                       f"({spec.target}): no price in {self.prices.version} or the policy", False)
        if rates.is_free:
            return None  # local / zero-cost models never trip a budget
        estimate = self.estimate(spec, route, prompt_tokens=prompt_tokens, max_tokens=max_tokens)
        now = self.clock()
        keys = tuple((b.name, period_key(b.period, now)) for b in budgets)
        hold = Hold(uuid.uuid4().hex, keys, to_nano(estimate), estimate)
        refused = self.store.reserve(hold.id, [(n, p, to_nano(b.limit_usd)) for (n, p), b in zip(keys, budgets)],
                                     hold.amount, now, now + self.hold_ttl_s)
        if refused is None:
            return hold
        i, spent, held = refused
        b, key = budgets[i], keys[i][1]
        self._alert(b, key, spent, now, "refused", [lvl for lvl in b.alerts if lvl >= 1.0])
        left = max(to_nano(b.limit_usd) - spent - held, 0) / NANO
        action = "request blocked" if b.on_limit == "block" else "trying a cheaper candidate"
        raise BudgetDenied(b.name, f"budget {b.name!r} ({scope_text(b)}, {b.period} {key}): {alias} may cost up to "
                                   f"${estimate:.6f} but ${left:.6f} of ${b.limit_usd:,.2f} is left "
                                   f"(${spent / NANO:.6f} spent, ${held / NANO:.6f} in flight); {action}",
                           b.on_limit == "block")

    def estimate(self, spec: Any, route: Any, *, prompt_tokens: int, max_tokens: int | None) -> float:
        """The most one attempt can cost (what ``reserve`` holds); 0.0 for an unpriced model."""
        rates = self.prices.rates_for(spec)
        if rates is None:
            return 0.0
        limits = None if spec.is_tool else self.prices.lookup(spec.price_key or spec.model)
        out = (max_tokens or spec.max_output_tokens or route.max_output_tokens
               or (limits.max_output_tokens if limits else None) or self.default_output_tokens)
        allowance = spec.reasoning_allowance_tokens
        if allowance is None:
            allowance = out if limits is not None and limits.supports_reasoning else 0
        return rates.cost(Usage(prompt_tokens, out + allowance, reasoning_tokens=allowance))[0]

    def settle(self, hold: Hold | None, cost_usd: float | None) -> None:
        if hold is None:
            return
        spent = self.store.settle(hold.id, hold.keys, None if cost_usd is None else to_nano(cost_usd))
        now = self.clock()
        by_name = {b.name: b for b in self.budgets}
        for (name, key), s in zip(hold.keys, spent):
            b = by_name[name]
            self._alert(b, key, s, now, "spend", [lvl for lvl in b.alerts if s >= round(lvl * to_nano(b.limit_usd))])

    # --- reading ------------------------------------------------------------------------------

    def status(self, now: float | None = None) -> list[BudgetStatus]:
        """Spend vs limit of every budget in its current period."""
        now = self.clock() if now is None else now
        out = []
        for b in self.budgets:
            key = period_key(b.period, now)
            spent, held, requests, unpriced, fired = self.store.usage(b.name, key, now)
            out.append(BudgetStatus(b.name, scope_text(b), b.period, key, b.limit_usd, spent / NANO, held / NANO,
                                    requests, unpriced, fired, b.on_limit))
        return out

    def close(self) -> None:
        """Wait for alert deliveries in flight, then close the store."""
        for hook in self.alerts:
            flush = getattr(hook, "flush", None)
            if callable(flush):
                flush()
        self.store.close()

    def _alert(self, b: BudgetSpec, key: str, spent: int, now: float, reason: str, levels: list[float]) -> None:
        for level in sorted(levels):
            if not self.store.claim_alert(b.name, key, level, reason, now):
                continue
            alert = Alert(b.name, scope_text(b), b.period, key, level, spent / NANO, b.limit_usd, reason,
                          time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)))
            for hook in self.alerts:
                try:
                    hook(alert)
                except Exception:  # noqa: BLE001 — a broken hook must not fail the request
                    log.exception("budget alert hook %r failed", hook)
