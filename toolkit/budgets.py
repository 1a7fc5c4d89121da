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
- :class:`SQLiteStore` (default): a WAL-mode SQLite file beside the route log (``routelog/budgets.sqlite``),
  shared by the threads and processes of one host.
- :class:`RedisStore`: many processes or hosts; ``reserve`` and ``settle`` are Lua scripts, so each is atomic.

Amounts are kept as integer nano-dollars, so sums are exact and a $1.00 limit holds exactly 100 $0.01 requests.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
import threading
import time
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

from .costs import PriceBook, Usage
from .policy import BudgetSpec
from .errors import BudgetDenied, LedgerUnavailable

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


class LedgerStore(Protocol):
    def reserve(self, hold_id: str, wants: Sequence[tuple[str, str, int]], amount: int, now: float,
                expires: float) -> tuple[int, int, int] | None:
        """Hold ``amount`` in every (budget, period, limit) of ``wants`` if each has room, atomically;
        else hold nothing and return (index, spent, held) of the first without room."""

    def settle(self, hold_id: str, keys: Sequence[tuple[str, str]], cost: int | None) -> list[int]:
        """Drop the hold, add the cost (None: count one unpriced attempt); return spent per key."""

    def claim_alert(self, budget: str, period: str, level: float, reason: str, now: float) -> bool:
        """True exactly once per (budget, period, level), whoever asks."""

    def usage(self, budget: str, period: str, now: float) -> tuple[int, int, int, int, tuple[float, ...]]:
        """(spent, held, requests, unpriced, levels fired)."""

    def close(self) -> None: ...


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
    def from_policy(cls, policy: Any, *, ledger: str | os.PathLike | None = None, **kw: Any) -> "BudgetLedger":
        """The policy's budgets over its own ledger (see "Where the ledger lives"), or over ``ledger`` (a SQLite
        path or a ``redis://`` URL) when given."""
        alerts = list(kw.pop("alerts", (log_alert,)))
        for b in policy.budgets:
            url = os.environ.get(b.alert_webhook_env) if b.alert_webhook_env else None
            if url:
                alerts.append(_only_for(b.name, WebhookAlert(url)))
        return cls(policy.budgets, open_store(ledger or ledger_target(policy), policy.state.lock_timeout_s),
                   alerts=alerts, on_unavailable=policy.state.on_unavailable, **kw)

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


def ledger_target(policy: Any) -> str | None:
    """The policy's ledger: its SQLite file, or the Redis URL its ``state.url_env`` names (None: not set)."""
    if policy.state.backend == "redis":
        from . import redact

        url = os.environ.get(policy.state.url_env or "")
        redact.remember(url)
        return url or None
    return str(policy.ledger_path)


def open_store(target: str | os.PathLike | None, timeout_s: float = 5.0) -> LedgerStore:
    """``redis://...`` (or ``rediss://``, ``unix://``) -> :class:`RedisStore`; anything else is a SQLite path.
    Opening never fails: a store that cannot answer raises :class:`LedgerUnavailable` from each call."""
    text = str(target or "")
    if not text:
        return _NoStore("the ledger's Redis URL variable is not set")
    if text.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(text, timeout_s=timeout_s)
    return SQLiteStore(text, timeout_s=timeout_s)


def _unavailable(fn: Callable) -> Callable:
    """A store method whose failures (I/O, locks, a full disk, a dead server) are :class:`LedgerUnavailable`."""
    @functools.wraps(fn)
    def call(self: Any, *args: Any, **kw: Any) -> Any:
        try:
            return fn(self, *args, **kw)
        except self.failures as e:
            raise LedgerUnavailable(f"budget ledger {self.name} unavailable ({type(e).__name__}: "
                                    f"{str(e)[:160]})") from None
    return call


class _NoStore:
    """A ledger that cannot be reached at all (say, its URL is not configured)."""

    failures = ()

    def __init__(self, why: str):
        self.name = why

    def _fail(self, *args: Any, **kw: Any) -> Any:
        raise LedgerUnavailable(f"budget ledger unavailable: {self.name}")

    reserve = settle = claim_alert = usage = _fail

    def close(self) -> None:
        pass


# --- SQLite ------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spend (budget TEXT NOT NULL, period TEXT NOT NULL, spent INTEGER NOT NULL,
    requests INTEGER NOT NULL, unpriced INTEGER NOT NULL, PRIMARY KEY (budget, period));
CREATE TABLE IF NOT EXISTS holds (id TEXT NOT NULL, budget TEXT NOT NULL, period TEXT NOT NULL,
    amount INTEGER NOT NULL, expires REAL NOT NULL, PRIMARY KEY (id, budget, period));
CREATE INDEX IF NOT EXISTS holds_by_budget ON holds (budget, period);
CREATE TABLE IF NOT EXISTS alerts (budget TEXT NOT NULL, period TEXT NOT NULL, level REAL NOT NULL,
    reason TEXT NOT NULL, fired_at REAL NOT NULL, PRIMARY KEY (budget, period, level));
"""


class SQLiteStore:
    """The embedded ledger: one WAL-mode SQLite file; each reserve/settle is one ``BEGIN IMMEDIATE``
    transaction, so threads and processes on one host serialise on it."""

    failures = (sqlite3.Error, OSError)

    def __init__(self, path: str | os.PathLike, *, timeout_s: float = 30.0):
        self.path = Path(path)
        self.name = str(self.path)
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._ready = False

    def _con(self) -> sqlite3.Connection:
        # One connection per thread and process (a connection must not cross a fork).
        con = getattr(self._local, "con", None)
        if con is None or self._local.pid != os.getpid():
            if not self._ready:   # created on first use: a ledger that cannot be created is "unavailable"
                self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process crash
            if not self._ready:
                if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    con.execute("PRAGMA journal_mode=WAL")  # a property of the file: readers never block the writer
                con.executescript(_SCHEMA)
                self._ready = True
            self._local.con, self._local.pid = con, os.getpid()
        return con

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    @_unavailable
    def reserve(self, hold_id, wants, amount, now, expires):
        with self._tx() as con:
            con.execute("DELETE FROM holds WHERE expires < ?", (now,))
            for i, (budget, period, limit) in enumerate(wants):
                spent, held = self._totals(con, budget, period)
                if spent + held + amount > limit:
                    return i, spent, held
            con.executemany("INSERT INTO holds VALUES (?, ?, ?, ?, ?)",
                            [(hold_id, b, p, amount, expires) for b, p, _ in wants])
        return None

    @_unavailable
    def settle(self, hold_id, keys, cost):
        out = []
        with self._tx() as con:
            con.execute("DELETE FROM holds WHERE id = ?", (hold_id,))
            for budget, period in keys:
                row = con.execute(
                    "INSERT INTO spend VALUES (?, ?, ?, 1, ?) ON CONFLICT (budget, period) DO UPDATE SET "
                    "spent = spent + excluded.spent, requests = requests + 1, unpriced = unpriced + excluded.unpriced "
                    "RETURNING spent", (budget, period, cost or 0, int(cost is None))).fetchone()
                out.append(row[0])
        return out

    @_unavailable
    def claim_alert(self, budget, period, level, reason, now):
        cur = self._con().execute("INSERT OR IGNORE INTO alerts VALUES (?, ?, ?, ?, ?)",
                                  (budget, period, level, reason, now))
        return cur.rowcount == 1

    @_unavailable
    def usage(self, budget, period, now):
        con = self._con()
        row = con.execute("SELECT spent, requests, unpriced FROM spend WHERE budget = ? AND period = ?",
                          (budget, period)).fetchone() or (0, 0, 0)
        held = con.execute("SELECT COALESCE(SUM(amount), 0) FROM holds WHERE budget = ? AND period = ? "
                           "AND expires >= ?", (budget, period, now)).fetchone()[0]
        fired = tuple(r[0] for r in con.execute("SELECT level FROM alerts WHERE budget = ? AND period = ? "
                                                "ORDER BY level", (budget, period)))
        return row[0], held, row[1], row[2], fired

    @staticmethod
    def _totals(con: sqlite3.Connection, budget: str, period: str) -> tuple[int, int]:
        row = con.execute("SELECT spent FROM spend WHERE budget = ? AND period = ?", (budget, period)).fetchone()
        held = con.execute("SELECT COALESCE(SUM(amount), 0) FROM holds WHERE budget = ? AND period = ?",
                           (budget, period)).fetchone()[0]
        return (row[0] if row else 0), held

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None and self._local.pid == os.getpid():
            con.close()
            self._local.con = None


# --- Redis -------------------------------------------------------------------------------------

# KEYS: spend hash, holds hash for each budget; ARGV: now, amount, hold id, expires, n, limits..., ttls...
_RESERVE = """
local now, amount, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[5])
for i = 1, n do
  local spent = tonumber(redis.call('HGET', KEYS[2*i-1], 'spent') or '0')
  local held = 0
  local holds = redis.call('HGETALL', KEYS[2*i])
  for j = 1, #holds, 2 do
    local a, e = string.match(holds[j+1], '^(%d+)|(.+)$')
    if tonumber(e) < now then redis.call('HDEL', KEYS[2*i], holds[j]) else held = held + tonumber(a) end
  end
  if spent + held + amount > tonumber(ARGV[5+i]) then return {i, spent, held} end
end
for i = 1, n do
  redis.call('HSET', KEYS[2*i], ARGV[3], ARGV[2] .. '|' .. ARGV[4])
  redis.call('EXPIRE', KEYS[2*i], ARGV[5+n+i])
end
return {0, 0, 0}
"""

# KEYS as above; ARGV: hold id, cost in nano-dollars or -1 (unpriced), n, ttls...
_SETTLE = """
local cost, n, out = tonumber(ARGV[2]), tonumber(ARGV[3]), {}
for i = 1, n do
  redis.call('HDEL', KEYS[2*i], ARGV[1])
  if cost >= 0 then redis.call('HINCRBY', KEYS[2*i-1], 'spent', ARGV[2])
  else redis.call('HINCRBY', KEYS[2*i-1], 'unpriced', 1) end
  redis.call('HINCRBY', KEYS[2*i-1], 'requests', 1)
  redis.call('EXPIRE', KEYS[2*i-1], ARGV[3+i])
  out[i] = tonumber(redis.call('HGET', KEYS[2*i-1], 'spent') or '0')
end
return out
"""


class RedisStore:
    """The shared ledger for many processes or hosts.  Every key carries one hash tag, so the scripts
    also run on a Redis Cluster; keys expire a while after their period ends."""

    def __init__(self, url: str, *, prefix: str = "routekit:{budgets}:", timeout_s: float = 5.0):
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self.failures = (redis.RedisError, OSError)
        kw = self.client.connection_pool.connection_kwargs
        self.name = f"redis at {kw.get('host', kw.get('path', '?'))}:{kw.get('port', '')}"   # never the password
        self.prefix = prefix
        self._reserve = self.client.register_script(_RESERVE)
        self._settle = self.client.register_script(_SETTLE)

    def _keys(self, budget: str, period: str) -> list[str]:
        return [f"{self.prefix}spend:{budget}:{period}", f"{self.prefix}holds:{budget}:{period}"]

    @staticmethod
    def _ttl(period: str) -> int:
        return (40 if len(period) > 7 else 400) * 86400  # daily keys ~40 days, monthly ~400 days

    @_unavailable
    def reserve(self, hold_id, wants, amount, now, expires):
        keys = [k for b, p, _ in wants for k in self._keys(b, p)]
        args = [repr(now), amount, hold_id, repr(expires), len(wants), *[lim for *_, lim in wants],
                *[self._ttl(p) for _, p, _ in wants]]
        i, spent, held = self._reserve(keys=keys, args=args)
        return None if i == 0 else (int(i) - 1, int(spent), int(held))

    @_unavailable
    def settle(self, hold_id, keys, cost):
        flat = [k for b, p in keys for k in self._keys(b, p)]
        args = [hold_id, -1 if cost is None else cost, len(keys), *[self._ttl(p) for _, p in keys]]
        return [int(x) for x in self._settle(keys=flat, args=args)]

    @_unavailable
    def claim_alert(self, budget, period, level, reason, now):
        key = f"{self.prefix}alerts:{budget}:{period}"
        won = bool(self.client.hsetnx(key, repr(level), json.dumps({"reason": reason, "at": now})))
        if won:
            self.client.expire(key, self._ttl(period))
        return won

    @_unavailable
    def usage(self, budget, period, now):
        spend_key, holds_key = self._keys(budget, period)
        spend = {k.decode(): int(v) for k, v in self.client.hgetall(spend_key).items()}
        held = 0
        for v in self.client.hvals(holds_key):
            amount, expires = v.decode().split("|")
            held += int(amount) if float(expires) >= now else 0
        fired = tuple(sorted(float(k) for k in self.client.hkeys(f"{self.prefix}alerts:{budget}:{period}")))
        return spend.get("spent", 0), held, spend.get("requests", 0), spend.get("unpriced", 0), fired

    def close(self) -> None:
        self.client.close()
