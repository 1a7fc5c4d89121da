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

Audit history: every disable and enable is appended to ``<name>.history.jsonl`` beside the
file (:class:`OverrideHistory`: one JSON :class:`AuditEntry` a line — when, what, who, why,
until, and which state took it), never rewritten.  With the Redis state backend
(toolkit/state) the same entries go to a Redis list instead.
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

from .errors import BadInput

log = logging.getLogger("routekit.overrides")

MAX_DISABLE_DAYS = 366


@dataclass(frozen=True)
class Override:
    target: str          # a model alias or a route (intent) name
    reason: str
    by: str
    since: float         # unix seconds
    until: float | None  # None: until enabled again

    @classmethod
    def new(cls, target: str, reason: str, for_s: float | None, by: str | None, now: float) -> "Override":
        """A disable made now, for ``for_s`` seconds (None: until enabled): BadInput, before anything is written,
        for one without a target or a reason, or lasting no time or longer than MAX_DISABLE_DAYS (leave it open
        instead)."""
        if not isinstance(target, str) or not target.strip():
            raise BadInput(f"a disable needs a target (a model alias or a route), not {target!r}")
        if not isinstance(reason, str) or not reason.strip():
            raise BadInput("a disable needs a reason (it is shown in status, errors and records)")
        if for_s is not None and not 0 < for_s <= MAX_DISABLE_DAYS * 86400:
            raise BadInput(f"a disable lasts more than 0 s and at most {MAX_DISABLE_DAYS} days, not {for_s:g} s "
                           "(for longer, give no duration: until enabled)")
        return cls(target, reason, by or whoami(), now, None if for_s is None else now + for_s)

    def active(self, now: float) -> bool:
        return self.until is None or now < self.until

    def describe(self) -> str:
        until = "until enabled" if self.until is None else "until " + _iso(self.until)
        return f"disabled by {self.by} at {_iso(self.since)} {until}: {self.reason}"


@dataclass(frozen=True)
class AuditEntry:
    """One change to the kill switch, as the audit history keeps it."""

    at: float            # unix seconds
    action: str          # "disable" | "enable"
    target: str
    by: str
    reason: str | None = None
    until: float | None = None   # a disable's expiry (None: until enabled)
    where: str | None = None     # which state took it: "embedded", "redis", "degraded-local (…)"

    def describe(self) -> str:
        until = "" if self.action != "disable" else (" until enabled" if self.until is None
                                                     else " until " + _iso(self.until))
        why = f": {self.reason}" if self.reason else ""
        return f"{_iso(self.at)} {self.action} {self.target} by {self.by}{until}{why}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> "AuditEntry":
        d = json.loads(text)
        if not isinstance(d, dict) or d.get("action") not in ("disable", "enable"):
            raise ValueError("not a disable or enable entry")
        number = (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
        if not (isinstance(d.get("target"), str) and isinstance(d.get("by"), str) and number(d.get("at"))
                and all(d.get(k) is None or isinstance(d[k], str) for k in ("reason", "where"))
                and (d.get("until") is None or number(d["until"]))):
            raise ValueError("a field has the wrong type")
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__})


class OverrideHistory:
    """The audit history of a kill switch: an append-only JSON-lines file (``history_path``).  ``append``
    writes one line under a lock and flushes it to disk; ``read`` skips lines it cannot read (counted in
    ``damaged``), so a torn line never hides the rest."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.damaged: list[str] = []        # the lines the last read skipped ("line N: why")
        self.problem: str | None = None     # why the last append could not be kept

    def append(self, entry: AuditEntry) -> None:
        """Add one entry; a history that cannot be written is logged and kept in ``problem``, never fatal (the
        change itself is made)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            append_line(self.path, entry.to_json())
            self.problem = None
        except OSError as e:
            self.problem = (f"the kill-switch audit history {self.path} could not record this "
                            f"({e.strerror or e}): {entry.describe()}")
            log.warning("routekit: %s", self.problem)

    def read(self, limit: int | None = None) -> list[AuditEntry]:
        """The entries, oldest first (the last ``limit`` of them when given)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as e:
            self.damaged = [f"not readable ({e.strerror})"]
            return []
        out, self.damaged = [], []
        for n, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(AuditEntry.from_json(line))
            except (ValueError, TypeError) as e:   # JSON and UTF-8 errors are ValueErrors too
                self.damaged.append(f"line {n}: {str(e)[:60]}")
        out.sort(key=lambda e: e.at)
        return out[-limit:] if limit else out

    @property
    def damage(self) -> str | None:
        """What the last read skipped, in a line (None: nothing)."""
        if not self.damaged:
            return None
        return f"{self.path}: {len(self.damaged)} unreadable line(s) skipped ({'; '.join(self.damaged[:3])})"


def append_line(path: Path, text: str, mode: int = 0o644) -> None:
    """Append one line under an exclusive lock and flush it to disk; after a line torn by a crash, on a line of
    its own (so the torn one stays the only casualty)."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
        os.write(fd, (("\n" if torn else "") + text + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def history_path(overrides_path: str | os.PathLike) -> Path:
    """Where the audit history of an overrides file is kept: ``overrides.json`` -> ``overrides.history.jsonl``."""
    p = Path(overrides_path)
    return p.with_name(p.name.removesuffix(".json") + ".history.jsonl")


def _iso(t: float) -> str:
    try:
        return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    except (OverflowError, OSError, ValueError):  # a line another version wrote must not stop the on-call page
        return f"{t!r} (not a time)"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


def parse_duration(text: str) -> float:
    """'90s', '15m', '2h', '1d' -> seconds."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"cannot read duration {text!r}; use a number and s, m, h or d (e.g. 2h)")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def parse_entry(d: Any) -> Override:
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
            o = parse_entry(d)
        except ValueError as e:
            bad.append(str(e))
            continue
        items[o.target] = o
    return items, ("; ".join(bad[:3]) if bad else None)


class Overrides:
    def __init__(self, path: str | os.PathLike, *, where: str = "embedded"):
        self.path = Path(path)
        self.history = OverrideHistory(history_path(self.path))
        self.where = where               # what the audit history says took each change
        self._items: dict[str, Override] = {}
        self._stamp: tuple | None = None
        self._lock = threading.Lock()
        self.damage: str | None = None   # what is wrong with the file, while it is wrong
        self.repaired: Path | None = None  # where the last write kept a damaged file it replaced

    @property
    def history_problem(self) -> str | None:
        """Why the last disable or enable could not be kept in the audit history (None: it was)."""
        return self.history.problem

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
        o = Override.new(target, reason, for_s, by, now)
        self._update(lambda items: {**items, target: o})
        self.history.append(AuditEntry(now, "disable", target, o.by, reason, o.until, self.where))
        return o

    def enable(self, target: str, by: str | None = None, reason: str | None = None) -> bool:
        found = []
        self._update(lambda items: (found.append(target in items), {k: v for k, v in items.items() if k != target})[1])
        if found and found[0]:
            self.history.append(AuditEntry(time.time(), "enable", target, by or whoami(), reason, None, self.where))
        return bool(found and found[0])

    def clear(self) -> list[str]:
        """Remove every entry (no audit line: for a state that has copied them elsewhere); return the targets."""
        gone: list[str] = []
        self._update(lambda items: (gone.extend(items), {})[1])
        return gone

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


def whoami() -> str:
    try:
        return os.environ.get("ROUTEKIT_USER") or getpass.getuser()
    except Exception:  # noqa: BLE001 — no passwd entry in some containers
        return "unknown"
