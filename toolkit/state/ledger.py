"""The budget ledger's stores: where spend, holds and fired alerts are kept (toolkit/budgets.py is the logic).

- :class:`SQLiteStore` (embedded): a WAL-mode SQLite file (``Policy.ledger_path``), shared by the threads and
  processes of one host; each reserve/settle is one ``BEGIN IMMEDIATE`` transaction.
- :class:`RedisStore`: many processes or hosts; ``reserve`` and ``settle`` are Lua scripts, so each is atomic.

Amounts are integer nano-dollars.  A store that cannot answer (I/O, a lock held past the timeout, a full disk,
a dead server) raises :class:`~toolkit.errors.LedgerUnavailable`, naming the store — never a URL's password.
"""
from __future__ import annotations

import functools
import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

from ..errors import LedgerUnavailable


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
