"""The kill switch: disable a model or a route in seconds, without a restart.

Overrides live in a small JSON file beside the policy (``policy.yaml`` ->
``policy.overrides.json``; ``ROUTEKIT_OVERRIDES`` points elsewhere).  Writers
replace the file atomically under a lock; a running Router re-reads it when its
modification time changes, which it checks on every request (a ``stat`` call).
"""
from __future__ import annotations

import fcntl
import getpass
import json
import os
import re
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path


@dataclass(frozen=True)
class Override:
    target: str          # a model alias or a route (intent) name
    reason: str
    by: str
    since: float         # unix seconds
    until: float | None  # None: until enabled again

    def active(self, now: float) -> bool:
        return self.until is None or now < self.until

    def describe(self) -> str:
        until = "until enabled" if self.until is None else "until " + _iso(self.until)
        return f"disabled by {self.by} at {_iso(self.since)} {until}: {self.reason}"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


def parse_duration(text: str) -> float:
    """'90s', '15m', '2h', '1d' -> seconds."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"cannot read duration {text!r}; use a number and s, m, h or d (e.g. 2h)")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


class Overrides:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._items: dict[str, Override] = {}
        self._stamp: tuple | None = None
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return
        with self._lock:
            self._items = self._read()
            self._stamp = stamp

    def _read(self) -> dict[str, Override]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise ValueError(f"{self.path}: overrides file is not valid JSON ({e}); fix or delete it") from None
        return {d["target"]: Override(**d) for d in data.get("disabled", [])}

    def active(self, now: float | None = None) -> dict[str, Override]:
        self._refresh()
        now = time.time() if now is None else now
        return {k: o for k, o in self._items.items() if o.active(now)}

    def get(self, target: str, now: float | None = None) -> Override | None:
        self._refresh()
        o = self._items.get(target)
        return o if o is not None and o.active(time.time() if now is None else now) else None

    def disable(self, target: str, reason: str, for_s: float | None = None, by: str | None = None) -> Override:
        now = time.time()
        o = Override(target=target, reason=reason, by=by or _whoami(), since=now,
                     until=None if for_s is None else now + for_s)
        self._update(lambda items: {**items, target: o})
        return o

    def enable(self, target: str) -> bool:
        found = []
        self._update(lambda items: (found.append(target in items), {k: v for k, v in items.items() if k != target})[1])
        return bool(found and found[0])

    def _update(self, change) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            items = {k: v for k, v in self._read().items() if v.active(time.time())}
            items = change(items)
            tmp = self.path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps({"disabled": [asdict(o) for o in items.values()]}, indent=2))
            os.replace(tmp, self.path)
        self._stamp = None


def _whoami() -> str:
    try:
        return os.environ.get("ROUTEKIT_USER") or getpass.getuser()
    except Exception:  # noqa: BLE001 — no passwd entry in some containers
        return "unknown"
