"""The Redis state backend: one kill switch, one set of circuits and one budget ledger for every host.

Keys (one hash tag, so the scripts also run on a Redis Cluster; pick a database number per policy family when
several share one server)::

    routekit:{state}:overrides   hash  target -> the disable (JSON: target, reason, by, since, until)
    routekit:{state}:history     list  the audit history, one JSON AuditEntry per change, oldest first
    routekit:{state}:circuits    hash  alias -> {failures, open_until, openings, tripped, holder, changed}
    routekit:{budgets}:...             the ledger (toolkit/state/ledger.py RedisStore)

The hot path never waits on Redis for the kill switch or the circuits: a background thread per process re-reads
both every ``state.refresh_s`` (one pipelined round trip), and a request reads that snapshot.  Circuit changes
are Lua scripts run on Redis's clock (so hosts' clocks need not agree): a failure counts towards the shared
threshold, and a success is sent only when the shared state has something to reset.

When Redis cannot be reached (the refresh, a circuit write or the ledger fails) the state is *degraded-local*:
``mode`` says so (every record's ``state``), ``overrides.damage`` names the host (the records' ``warnings``, one
log line when it starts and one when it ends), routing honours the last shared state seen plus this host's
overrides file and per-process circuits, and the ledger refuses at once (the policy's ``on_unavailable``
decides).  A disable or enable issued meanwhile, and a budget settle that could not be written, go to the
outbox (``<policy>.redis-outbox.jsonl``); the first process to see Redis again copies them in, in order — a
disable only where Redis holds nothing newer for that target — and empties it.  Disables take effect on this
host at once (its Routers read the local file while degraded); an enable takes effect when it reaches Redis.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any, Iterator

from .. import redact
from ..circuit import HOST, CircuitBreaker
from ..errors import LedgerUnavailable
from ..overrides import AuditEntry, Override, append_line, parse_entry, whoami
from .embedded import CircuitView, EmbeddedState
from .ledger import LedgerStore, RedisStore

log = logging.getLogger("routekit.state")

PREFIX = "routekit:{state}:"
DEGRADED = "degraded-local"

# KEYS: overrides, history; ARGV: target, the change's time, the new entry's JSON ('' = enable), audit JSON.
# A change older than what Redis holds for the target (a replayed one) only joins the history.
# Returns {applied, existed}.
_CHANGE = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, c = pcall(cjson.decode, cur)
  if ok and type(c) == 'table' and tonumber(c.since) and tonumber(c.since) > tonumber(ARGV[2]) then
    redis.call('RPUSH', KEYS[2], ARGV[4])
    return {0, 1}
  end
end
if ARGV[3] == '' then
  if not cur then return {0, 0} end
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
redis.call('RPUSH', KEYS[2], ARGV[4])
return {1, cur and 1 or 0}
"""

# KEYS: circuits; ARGV: alias, failures to open, cooldown, retry-after (0: none), max cooldown, holder.
# Returns {opened, cooldown as text}.
_FAILURE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local s = {failures = 0, open_until = 0, openings = 0, tripped = false}
if raw then
  local ok, d = pcall(cjson.decode, raw)
  if ok and type(d) == 'table' then s = d end
end
s.failures = (tonumber(s.failures) or 0) + 1
local cooldown = nil
local ra = tonumber(ARGV[4])
if ra > 0 then cooldown = math.min(ra, tonumber(ARGV[5]))
elseif s.failures >= tonumber(ARGV[2]) or s.tripped == true then cooldown = tonumber(ARGV[3]) end
if cooldown then
  s.open_until = now + cooldown
  s.failures = 0
  s.tripped = true
  s.openings = (tonumber(s.openings) or 0) + 1
end
s.holder = ARGV[6]
s.changed = now
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(s))
if cooldown then return {1, tostring(cooldown)} end
return {0, '0'}
"""

# KEYS: circuits; ARGV: alias.  A success resets the consecutive failures and closes a tripped circuit.
_SUCCESS = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local ok, s = pcall(cjson.decode, raw)
if not ok or type(s) ~= 'table' then redis.call('HDEL', KEYS[1], ARGV[1]) return 1 end
if (tonumber(s.failures) or 0) == 0 and s.tripped ~= true then return 0 end
local t = redis.call('TIME')
s.failures = 0
s.tripped = false
s.changed = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(s))
return 1
"""


class RedisState:
    """The policy's state in Redis (module docstring); ``local`` is this host's embedded state, the fallback."""

    kind = "redis"

    def __init__(self, policy: Any, url: str | None):
        spec = policy.state
        self.local = EmbeddedState.of(policy)
        self.files = policy.state_files
        self.circuit_spec = policy.circuit
        self.refresh_s = spec.refresh_s
        self.lock_timeout_s = spec.lock_timeout_s
        self.holder = f"{HOST}:{os.getpid()}"
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._overrides: dict[str, Override] = {}    # the last shared kill switch seen
        self._open: dict[str, float] = {}            # alias -> monotonic deadline of an open shared circuit
        self._fresh: dict[str, tuple[float, float]] = {}   # alias -> (deadline, when) opened here since a poll began
        self._dirty: set[str] = set()                # aliases whose shared state a success must reset
        self.shared_damage: str | None = None        # shared entries that could not be read
        self._down: str | None = None                # why Redis is unreachable (None: it answers)
        self._down_since = 0.0
        self._pid: int | None = None
        self._stop = threading.Event()
        self.url = url
        if url:
            import redis

            redact.remember(url)
            self._redis = redis
            timeout = spec.connect_timeout_s
            self.client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
            self.failures: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
            kw = self.client.connection_pool.connection_kwargs
            self.where = f"redis at {kw.get('host', kw.get('path', '?'))}:{kw.get('port', '')}"   # never a password
            self._change = self.client.register_script(_CHANGE)
            self._failure = self.client.register_script(_FAILURE)
            self._success = self.client.register_script(_SUCCESS)
        else:
            self.client = None
            self.failures = ()
            self.where = f"redis (the variable {spec.url_env} is not set)"
            self._down, self._down_since = f"{spec.url_env} is not set", time.time()
        self.overrides = SharedOverrides(self)
        self.circuit = SharedCircuit(self)
        self._ledger: RedisStore | None = None

    # --- health -------------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        return DEGRADED if self._down is not None else "redis"

    @property
    def down(self) -> bool:
        return self._down is not None

    @property
    def problem(self) -> str | None:
        """What every record's warnings say while degraded (the host only, never a password)."""
        if self._down is None:
            return None
        since = time.strftime("%H:%M:%SZ", time.gmtime(self._down_since))
        return (f"state: {self.where} unreachable since {since} ({self._down}); routing with local state "
                f"(the last shared state seen and this host's overrides file); budget settles and kill-switch "
                f"changes are kept in {self.files.outbox.name} until Redis answers")

    def mark_down(self, why: BaseException | str) -> None:
        reason = why if isinstance(why, str) else f"{type(why).__name__}: {str(why)[:120]}"
        reason = redact.scrub(reason) or "unreachable"
        with self._lock:
            if self._down is None:
                self._down, self._down_since = reason, time.time()
                log.warning("%s", self.problem)

    def _recover(self) -> int:
        """Redis answered: copy the outbox in, then leave degraded mode; the number of writes copied."""
        try:
            copied = self.drain()
        except self.failures as e:
            self.mark_down(e)
            return 0
        with self._lock:
            was, self._down = self._down, None
        if was is not None:
            log.warning("state: %s answers again; shared state resumes (it was unreachable: %s)", self.where, was)
        return copied

    # --- the snapshot the hot path reads --------------------------------------------------------

    def ensure_polling(self) -> None:
        """Start the background refresh in this process (after a fork too); the first read is synchronous, so
        a new Router honours every disable already in Redis from its first request."""
        if self._pid == os.getpid() or self.client is None:
            return
        with self._start_lock:
            if self._pid == os.getpid():
                return
            self.poll()
            self._stop = threading.Event()
            threading.Thread(target=_refresh_loop, args=(weakref.ref(self), self._stop, self.refresh_s),
                             name="routekit-state", daemon=True).start()
            self._pid = os.getpid()

    def poll(self) -> bool:
        """Re-read the shared kill switch and circuits (one round trip); False when Redis did not answer.  When it
        answers after an outage, or this host has writes waiting, they are copied in first."""
        if not self._read():
            return False
        if (self._down is not None or self.files.outbox.exists()) and self._recover():
            return self._read()
        return True

    def _read(self) -> bool:
        if self.client is None:
            return False
        began = time.monotonic()
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.time()
            pipe.hgetall(PREFIX + "overrides")
            pipe.hgetall(PREFIX + "circuits")
            (secs, micros), overrides, circuits = pipe.execute()
        except self.failures as e:
            self.mark_down(e)
            return False
        mono, now = time.monotonic(), secs + micros / 1e6
        items, bad = {}, []
        for target, raw in overrides.items():
            try:
                o = parse_entry(json.loads(raw))
                items[o.target] = o
            except (ValueError, TypeError):
                bad.append(target.decode(errors="replace"))
        opens, dirty = {}, set()
        for alias, raw in circuits.items():
            try:
                c = json.loads(raw)
                left = float(c.get("open_until") or 0) - now
                name = alias.decode()
            except (ValueError, TypeError, AttributeError):
                continue
            if left > 0:
                opens[name] = mono + left
            if c.get("failures") or c.get("tripped"):
                dirty.add(name)
        with self._lock:
            if bad:   # like a damaged overrides file: keep every disable this process knew of
                items = {**{k: v for k, v in self._overrides.items() if k in bad}, **items}
                self.shared_damage = (f"state: {len(bad)} kill-switch entries in {self.where} are damaged "
                                      f"({', '.join(sorted(bad)[:3])}); their last good state is honoured")
            else:
                self.shared_damage = None
            for alias, (deadline, at) in self._fresh.items():
                if at >= began and deadline > opens.get(alias, 0.0):
                    opens[alias] = deadline
            self._fresh = {a: v for a, v in self._fresh.items() if v[1] >= began}
            self._overrides, self._open, self._dirty = items, opens, dirty | set(self._fresh)
        return True

    # --- circuits ----------------------------------------------------------------------------------

    def circuit_failure(self, alias: str, retry_after_s: float | None) -> bool:
        c = self.circuit_spec
        opened, cooldown = self._failure(keys=[PREFIX + "circuits"],
                                         args=[alias, c.failures, c.cooldown_s, retry_after_s or 0,
                                               c.max_cooldown_s, self.holder])
        now = time.monotonic()
        with self._lock:
            self._dirty.add(alias)
            if int(opened):
                deadline = now + float(cooldown)
                self._open[alias] = deadline
                self._fresh[alias] = (deadline, now)
        return bool(int(opened))

    def circuit_success(self, alias: str) -> None:
        self._success(keys=[PREFIX + "circuits"], args=[alias])
        with self._lock:
            self._dirty.discard(alias)

    # --- the kill switch -----------------------------------------------------------------------

    def disable(self, target: str, reason: str, for_s: float | None = None, by: str | None = None) -> Override:
        if self._down is None and self.client is not None:
            now = time.time()
            o = Override.new(target, reason, for_s, by, now)
            try:
                self._change(keys=[PREFIX + "overrides", PREFIX + "history"],
                             args=[target, repr(now), json.dumps(asdict(o)),
                                   AuditEntry(now, "disable", target, o.by, reason, o.until, self.kind).to_json()])
                with self._lock:
                    self._overrides[target] = o
                return o
            except self.failures as e:
                self.mark_down(e)
        with self._outbox():
            self.local.overrides.where = f"{DEGRADED} ({self.where} unreachable)"
            o = self.local.overrides.disable(target, reason, for_s, by=by)
            self._journal({"op": "disable", "override": asdict(o)})
        return o

    def enable(self, target: str, by: str | None = None, reason: str | None = None) -> bool:
        who = by or whoami()
        if self._down is None and self.client is not None:
            now = time.time()
            try:
                _, existed = self._change(keys=[PREFIX + "overrides", PREFIX + "history"],
                                          args=[target, repr(now), "",
                                                AuditEntry(now, "enable", target, who, reason, None,
                                                           self.kind).to_json()])
                with self._lock:
                    self._overrides.pop(target, None)
                return bool(int(existed))
            except self.failures as e:
                self.mark_down(e)
        with self._outbox():
            self.local.overrides.where = f"{DEGRADED} ({self.where} unreachable)"
            found = self.local.overrides.enable(target, by=who, reason=reason)
            found = found or target in self._overrides
            if found:
                self._journal({"op": "enable", "target": target, "by": who, "reason": reason, "at": time.time()})
        return found

    def active(self) -> dict[str, Override]:
        self.poll()
        return self.overrides.active()

    def history(self, limit: int | None = None) -> list[AuditEntry]:
        """The shared audit history (oldest first); while Redis is unreachable, this host's."""
        if self.client is not None and self._down is None:
            try:
                raw = self.client.lrange(PREFIX + "history", -limit if limit else 0, -1)
                out = []
                for line in raw:
                    try:
                        out.append(AuditEntry.from_json(line))
                    except (ValueError, TypeError):
                        continue
                return out
            except self.failures as e:
                self.mark_down(e)
        return self.local.history(limit)

    def circuits(self) -> CircuitView:
        if self.client is None:
            return CircuitView(damage=self.problem)
        try:
            (secs, micros), raw = self.client.pipeline(transaction=False).time().hgetall(PREFIX + "circuits").execute()
        except self.failures as e:
            self.mark_down(e)
            return CircuitView(damage=self.problem)
        offset = time.time() - (secs + micros / 1e6)   # show Redis's times on this host's clock
        out = {}
        for alias, value in raw.items():
            try:
                c = json.loads(value)
                host, _, pid = str(c.get("holder", "?:0")).rpartition(":")
                until = float(c.get("open_until") or 0)
                out[alias.decode()] = {"open_until": until + offset if c.get("tripped") else None,
                                       "openings": int(c.get("openings") or 0), "pid": int(pid or 0), "host": host,
                                       "changed": float(c.get("changed") or 0) + offset,
                                       "failures": int(c.get("failures") or 0)}
            except (ValueError, TypeError, AttributeError):
                continue
        return CircuitView(out)

    # --- the ledger -----------------------------------------------------------------------------

    def ledger_store(self) -> LedgerStore:
        return SharedLedger(self)

    def raw_ledger(self) -> RedisStore:
        if self._ledger is None:
            self._ledger = RedisStore(self.url, timeout_s=self.lock_timeout_s)
        return self._ledger

    # --- the outbox: writes made while Redis was unreachable --------------------------------------

    @contextmanager
    def _outbox(self) -> Iterator[None]:
        path = self.files.outbox
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _journal(self, op: dict[str, Any]) -> None:
        """Append one write to the outbox (the caller holds its lock); flushed to disk before returning."""
        append_line(self.files.outbox, json.dumps(op, sort_keys=True), 0o600)

    def journal(self, op: dict[str, Any]) -> None:
        with self._outbox():
            self._journal(op)

    def pending(self) -> int:
        """Writes waiting in the outbox."""
        try:
            return sum(1 for line in self.files.outbox.read_bytes().splitlines() if line.strip())
        except FileNotFoundError:
            return 0

    def drain(self) -> int:
        """Copy the outbox into Redis, in order, and empty it (a Redis error leaves what is left for next time)."""
        if self.client is None or not self.files.outbox.exists():
            return 0
        done = 0
        with self._outbox():
            lines = [ln for ln in self.files.outbox.read_bytes().splitlines() if ln.strip()]
            overrides_replayed = False
            try:
                for line in lines:
                    try:
                        op = json.loads(line)
                    except ValueError:
                        done += 1     # a torn last line from a crash: nothing to replay
                        continue
                    overrides_replayed |= self._replay(op)
                    done += 1
            finally:
                rest = lines[done:]
                if rest:
                    tmp = self.files.outbox.with_name(self.files.outbox.name + f".tmp{os.getpid()}")
                    tmp.write_bytes(b"\n".join(rest) + b"\n")
                    os.replace(tmp, self.files.outbox)
                else:
                    self.files.outbox.unlink(missing_ok=True)
                    if overrides_replayed:
                        self.local.overrides.clear()   # now in Redis, which is the truth again
        if done:
            log.warning("state: copied %d change(s) made while %s was unreachable into it", done, self.where)
        return done

    def _replay(self, op: dict[str, Any]) -> bool:
        note = f"{DEGRADED} on {HOST}, copied into redis"
        if op.get("op") == "disable":
            o = parse_entry(op["override"])
            self._change(keys=[PREFIX + "overrides", PREFIX + "history"],
                         args=[o.target, repr(o.since), json.dumps(asdict(o)),
                               AuditEntry(o.since, "disable", o.target, o.by, o.reason, o.until, note).to_json()])
            return True
        if op.get("op") == "enable":
            self._change(keys=[PREFIX + "overrides", PREFIX + "history"],
                         args=[op["target"], repr(op["at"]), "",
                               AuditEntry(op["at"], "enable", op["target"], op["by"], op.get("reason"), None,
                                          note).to_json()])
            return True
        if op.get("op") == "settle":
            self.raw_ledger().settle(op["hold"], [tuple(k) for k in op["keys"]], op["cost"])
        return False

    def close(self) -> None:
        self._stop.set()
        if self.client is not None:
            self.client.close()
        if self._ledger is not None:
            self._ledger.close()


def _refresh_loop(ref: "weakref.ref[RedisState]", stop: threading.Event, every: float) -> None:
    """Re-read the shared state until ``stop`` is set or its owner is gone (a Router garbage-collected)."""
    while not stop.wait(every):
        state = ref()
        if state is None:
            return
        try:
            state.poll()
        except Exception:  # noqa: BLE001 — the refresh must outlive anything Redis sends back
            log.exception("state: refreshing from %s failed", state.where)
        del state


class SharedOverrides:
    """The kill switch as a Router reads it (``refresh``/``get``/``damage``), from the shared snapshot; while
    degraded, also from this host's overrides file."""

    def __init__(self, state: RedisState):
        self.state = state
        self.local = state.local.overrides

    def refresh(self) -> None:
        s = self.state
        s.ensure_polling()
        if s._down is not None:
            self.local.refresh()

    @property
    def damage(self) -> str | None:
        s = self.state
        if s._down is None and s.shared_damage is None:
            return None
        parts = [s.problem, s.shared_damage, self.local.damage if s._down is not None else None]
        return " | ".join(p for p in parts if p) or None

    def get(self, target: str, now: float | None = None) -> Override | None:
        now = time.time() if now is None else now
        o = self.state._overrides.get(target)
        if o is not None and o.active(now):
            return o
        return self.local.get(target, now) if self.state._down is not None else None

    def active(self, now: float | None = None) -> dict[str, Override]:
        now = time.time() if now is None else now
        local = self.local.active(now) if self.state._down is not None else {}
        return {**local, **{k: o for k, o in self.state._overrides.items() if o.active(now)}}


class SharedCircuit:
    """Circuits shared through Redis (``is_open`` reads the snapshot); while degraded, a per-process breaker
    as in the embedded state, on top of the shared openings last seen."""

    def __init__(self, state: RedisState):
        self.state = state
        c = state.circuit_spec
        self.local = CircuitBreaker(c.failures, c.cooldown_s, c.max_cooldown_s)

    def is_open(self, key: str) -> float | None:
        s = self.state
        deadline = s._open.get(key)
        left = deadline - time.monotonic() if deadline is not None else 0.0
        if s._down is not None:
            left = max(left, self.local.is_open(key) or 0.0)
        return left if left > 0 else None

    def failure(self, key: str, retry_after_s: float | None = None) -> bool:
        s = self.state
        if s._down is None:
            try:
                return s.circuit_failure(key, retry_after_s)
            except s.failures as e:
                s.mark_down(e)
        return self.local.failure(key, retry_after_s)

    def success(self, key: str) -> None:
        s = self.state
        if s._down is not None:
            self.local.success(key)
        elif key in s._dirty:   # only when the shared state has failures to reset: one round trip, rarely
            try:
                s.circuit_success(key)
            except s.failures as e:
                s.mark_down(e)

    def snapshot(self) -> dict[str, dict]:
        now = time.monotonic()
        return {k: {"open": d > now, "seconds_left": max(0.0, round(d - now, 1))}
                for k, d in self.state._open.items()}


class SharedLedger:
    """The Redis ledger behind the state's health: while Redis is unreachable it refuses at once (no timeout on
    the request path) and a settle is journaled in the outbox, to be added when Redis answers."""

    def __init__(self, state: RedisState):
        self.state = state
        self.name = state.where if state.client is None else state.raw_ledger().name

    def _store(self) -> RedisStore:
        s = self.state
        if s._down is not None or s.client is None:
            raise LedgerUnavailable(f"budget ledger {s.where} unavailable ({s._down})")
        return s.raw_ledger()

    def _call(self, method: str, *args: Any) -> Any:
        store = self._store()
        try:
            return getattr(store, method)(*args)
        except LedgerUnavailable as e:
            self.state.mark_down(str(e))
            raise

    def reserve(self, hold_id, wants, amount, now, expires):
        return self._call("reserve", hold_id, wants, amount, now, expires)

    def settle(self, hold_id, keys, cost):
        try:
            return self._call("settle", hold_id, keys, cost)
        except LedgerUnavailable:
            if self.state.client is None:
                raise
            self.state.journal({"op": "settle", "hold": hold_id, "keys": [list(k) for k in keys], "cost": cost})
            return []   # counted when Redis answers again (no alert meanwhile)

    def claim_alert(self, budget, period, level, reason, now):
        return self._call("claim_alert", budget, period, level, reason, now)

    def usage(self, budget, period, now):
        return self._call("usage", budget, period, now)

    def close(self) -> None:
        pass   # the state owns the connection

