"""The kill switch: disable a model or a route in seconds, without a restart.

Overrides live in a small JSON file with the policy's state (``policy.yaml`` ->
``policy.overrides.json``, see ``Policy.overrides_path``; ``ROUTEKIT_OVERRIDES``
points elsewhere).  Writers replace the file atomically under a lock; a running
Router re-reads it when its modification time changes, which it checks once per
request (``refresh``: a ``stat`` call; ``get`` reads what the last refresh saw).

A damaged file (empty, truncated, not JSON, the wrong shape) never stops routing
and never raises: every disable that can still be read is honoured together with
the last good state this process saw, and ``damage`` says what is wrong (the
Router puts it in each record's ``warnings``; ``routekit status`` shows it).
``disable``/``enable`` repair it: the damaged file is kept beside it as
``<name>.damaged-<time>`` and a valid one is written in its place.

Every disable and enable is also appended, with who, why and when, to a history beside the file
(toolkit/switch_history.py): the record that the kill switch was rehearsed.  A history that cannot be
written or read never stops the switch.
"""
from __future__ import annotations

import fcntl
import getpass
import json
import logging
import os
import re
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .switch_history import SwitchEvent, append_event, history_path

log = logging.getLogger("routekit.overrides")


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


def _entry(d: Any) -> Override:
    """One disable from the file, or ValueError saying what is wrong with it."""
    if not isinstance(d, dict):
        raise ValueError(f"an entry is a JSON {type(d).__name__}, not an object")
    missing = sorted({"target", "reason", "by", "since"} - set(d))
    if missing:
        raise ValueError(f"entry {d.get('target')!r} lacks {missing}")
    until = d.get("until")
    ok = (isinstance(d["target"], str) and isinstance(d["reason"], str) and isinstance(d["by"], str)
          and isinstance(d["since"], (int, float)) and not isinstance(d["since"], bool)
          and (until is None or (isinstance(until, (int, float)) and not isinstance(until, bool))))
    if not ok:
        raise ValueError(f"entry {d.get('target')!r} has a field of the wrong type")
    return Override(d["target"], d["reason"], d["by"], float(d["since"]), None if until is None else float(until))


def read_overrides(path: Path) -> tuple[dict[str, Override], str | None]:
    """Every disable that can be read from ``path``, and what is damaged about the file (None: nothing)."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return {}, None
    except (OSError, ValueError) as e:
        return {}, f"not readable JSON ({type(e).__name__}: {str(e)[:80]})"
    if not isinstance(data, dict) or not isinstance(data.get("disabled", []), list):
        return {}, 'not an object with a "disabled" list'
    items: dict[str, Override] = {}
    bad: list[str] = []
    for d in data.get("disabled", []):
        try:
            o = _entry(d)
        except ValueError as e:
            bad.append(str(e))
            continue
        items[o.target] = o
    return items, ("; ".join(bad[:3]) if bad else None)


class Overrides:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._items: dict[str, Override] = {}
        self._stamp: tuple | None = None
        self._lock = threading.Lock()
        self.damage: str | None = None   # what is wrong with the file, while it is wrong
        self.repaired: Path | None = None  # where the last write kept a damaged file it replaced
        self.history = history_path(self.path)       # who disabled / enabled what, when, why
        self.history_problem: str | None = None       # why the last event could not be kept there

    def refresh(self) -> None:
        """Re-read the file if it changed since the last look."""
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None
        if stamp == self._stamp:
            return
        with self._lock:
            items, damage = read_overrides(self.path)
            if damage is None:
                self._items, self.damage = items, None
            else:
                # Honour every disable still readable, and every one this process already knew of.
                self._items = {**self._items, **items}
                self.damage = (f"{self.path} is damaged ({damage}); routing with the last good state "
                               f"({len(self._items)} disabled); repair it with routekit disable/enable")
                log.warning("%s", self.damage)
            self._stamp = stamp

    def active(self, now: float | None = None) -> dict[str, Override]:
        self.refresh()
        now = time.time() if now is None else now
        return {k: o for k, o in self._items.items() if o.active(now)}

    def get(self, target: str, now: float | None = None) -> Override | None:
        """The active disable of ``target`` as of the last :meth:`refresh` (the Router refreshes per request)."""
        o = self._items.get(target)
        return o if o is not None and o.active(time.time() if now is None else now) else None

    def disable(self, target: str, reason: str, for_s: float | None = None, by: str | None = None) -> Override:
        now = time.time()
        o = Override(target=target, reason=reason, by=by or _whoami(), since=now,
                     until=None if for_s is None else now + for_s)
        self._update(lambda items: {**items, target: o})
        self._keep(SwitchEvent("disable", target, o.by, now, reason, o.until))
        return o

    def enable(self, target: str, by: str | None = None, reason: str = "") -> bool:
        found = []
        self._update(lambda items: (found.append(target in items), {k: v for k, v in items.items() if k != target})[1])
        if found and found[0]:
            self._keep(SwitchEvent("enable", target, by or _whoami(), time.time(), reason))
        return bool(found and found[0])

    def _keep(self, event: SwitchEvent) -> None:
        """Add to the history; a history that cannot take it is reported, never in the switch's way."""
        try:
            append_event(self.history, event)
            self.history_problem = None
        except OSError as e:
            self.history_problem = f"the kill-switch history {self.history} could not record this ({e.strerror})"
            log.warning("%s", self.history_problem)

    def _update(self, change) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            items, damage = read_overrides(self.path)
            if damage is not None:
                # Repair: keep the damaged file for whoever wants to read it, write a valid one.
                keep = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
                os.replace(self.path, keep)
                items = {**self._items, **items}
                self.repaired = keep
            items = {k: v for k, v in items.items() if v.active(time.time())}
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
