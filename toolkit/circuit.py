"""Circuit breaker: stop sending traffic to a model that keeps failing.

After ``failures`` consecutive retryable failures a model's circuit opens for
``cooldown_s``; a 429 with Retry-After opens it for that long, but never longer
than ``max_cooldown_s`` (a provider asking for ten days must not take a model
out for ten days).  After the cooldown one request is let through (half-open):
success closes the circuit, failure opens it again.  State is per process;
``openings`` counts every opening.  With ``state_path`` set, each opening and
closing is also published to a small JSON file (beside the overrides file), with
the process id and host that hold it, so that ``routekit status`` can show the
on-call person which circuits are open in running processes — and drop those of
processes that have exited.  A damaged published file is reported, never fatal,
and rewritten whole at the next publication.
"""
from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class _State:
    failures: int = 0
    open_until: float = 0.0
    openings: int = 0
    tripped: bool = False  # opened since the last success: one more failure re-opens at once


@dataclass
class CircuitBreaker:
    failures: int = 3
    cooldown_s: float = 30.0
    max_cooldown_s: float = 300.0
    clock: callable = time.monotonic
    state_path: Path | None = None
    _state: dict[str, _State] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def is_open(self, key: str) -> float | None:
        """Seconds left if the circuit for ``key`` is open, else None."""
        s = self._state.get(key)
        if s is None:
            return None
        left = s.open_until - self.clock()
        return left if left > 0 else None

    def success(self, key: str) -> None:
        with self._lock:
            s = self._state.get(key)
            if s is not None:
                s.failures = 0
                if s.tripped:
                    s.tripped = False
                    self._publish(key, None, s.openings)

    def failure(self, key: str, retry_after_s: float | None = None) -> bool:
        """Count a failure; return True when this failure opened the circuit."""
        with self._lock:
            s = self._state.setdefault(key, _State())
            s.failures += 1
            cooldown = None
            if retry_after_s:
                cooldown = min(retry_after_s, self.max_cooldown_s)
            elif s.failures >= self.failures or s.tripped:
                cooldown = self.cooldown_s
            if cooldown is None:
                return False
            s.open_until = self.clock() + cooldown
            s.failures = 0
            s.tripped = True
            s.openings += 1
            self._publish(key, time.time() + cooldown, s.openings)
            return True

    def _publish(self, key: str, open_until: float | None, openings: int) -> None:
        if self.state_path is None:
            return
        try:
            with open(self.state_path.with_suffix(".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                data = read_published(self.state_path)[0]
                data[key] = {"open_until": open_until, "openings": openings, "pid": os.getpid(),
                             "host": HOST, "changed": time.time()}
                tmp = self.state_path.with_suffix(f".tmp{os.getpid()}")
                tmp.write_text(json.dumps(data, indent=1))
                os.replace(tmp, self.state_path)
        except OSError:
            pass  # publishing is best effort: routing must never fail because of it

    def snapshot(self) -> dict[str, dict]:
        now = self.clock()
        return {k: {"open": s.open_until > now, "seconds_left": max(0.0, round(s.open_until - now, 1)),
                    "consecutive_failures": s.failures, "openings": s.openings}
                for k, s in self._state.items()}


HOST = os.uname().nodename


def read_published(path: Path) -> tuple[dict[str, dict], str | None]:
    """Circuit events published by running Routers, alias -> {open_until, openings, pid, host, changed}, and
    what is damaged about the file (None: nothing).  Entries of the wrong shape are left out."""
    try:
        data = json.loads(Path(path).read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return {}, None
    except (OSError, ValueError) as e:
        return {}, f"{path} is damaged ({type(e).__name__}); it is rewritten at the next circuit change"
    if not isinstance(data, dict):
        return {}, f"{path} is damaged (not an object); it is rewritten at the next circuit change"
    good = {k: v for k, v in data.items() if isinstance(v, dict) and isinstance(v.get("pid"), int)
            and isinstance(v.get("openings"), int) and isinstance(v.get("open_until"), (int, float, type(None)))}
    bad = sorted(set(data) - set(good))
    return good, (f"{path}: entries {bad} are damaged and left out" if bad else None)


def holder_alive(entry: dict) -> bool:
    """Is the process that published ``entry`` still running?  (Unknowable for another host: assume so.)"""
    if entry.get("host", HOST) != HOST:
        return True
    try:
        os.kill(entry["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True   # alive, owned by another user
    return True
