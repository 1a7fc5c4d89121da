"""The kill switch's history: who disabled or enabled what, when and why (what ``routekit readiness`` reads to
tell that on-call has rehearsed taking a route out of service).

It lives beside the overrides file (``policy.overrides.json`` -> ``policy.overrides.history.jsonl``): one JSON
line per disable or enable, appended with a single ``os.write`` on an ``O_APPEND`` descriptor, so lines from
several processes never interleave.  The history is an audit trail, never state: the kill switch behaves the
same whether the history is there, damaged or unwritable.  A write that fails is reported (``Overrides``
keeps it in ``history_problem``) and the switch still switches; a line that cannot be read is skipped and
counted, never fatal.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Literal

Action = Literal["disable", "enable"]


@dataclass(frozen=True)
class SwitchEvent:
    action: Action
    target: str            # a model alias or a route (intent) name
    by: str
    at: float              # unix seconds
    reason: str = ""
    until: float | None = None   # a disable's expiry (None: until enabled)


@dataclass(frozen=True)
class Rehearsal:
    """A disable of a target and what ended it: an enable, or the disable's own expiry."""

    disable: SwitchEvent
    ended_by: SwitchEvent | None   # the enable; None when the disable expired by itself
    ended_at: float

    def describe(self) -> str:
        how = f"enabled by {self.ended_by.by}" if self.ended_by else "expired"
        return (f"{self.disable.target} disabled by {self.disable.by} ({self.disable.reason or 'no reason'}), "
                f"then {how}")


def history_path(overrides: str | os.PathLike) -> Path:
    """Where the history of an overrides file is kept."""
    p = Path(overrides)
    return p.with_name(p.name.removesuffix(".json") + ".history.jsonl")


def append_event(path: str | os.PathLike, event: SwitchEvent) -> None:
    """Add one event (raises OSError when the file cannot take it)."""
    data = (json.dumps(asdict(event), separators=(",", ":")) + "\n").encode()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if os.fstat(fd).st_size:
            with open(p, "rb") as f:   # never glue an event onto a torn line
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    data = b"\n" + data
        os.write(fd, data)
    finally:
        os.close(fd)


def _event(d: object) -> SwitchEvent:
    if not isinstance(d, dict) or d.get("action") not in ("disable", "enable"):
        raise ValueError("not a disable or enable event")
    until = d.get("until")
    ok = (isinstance(d.get("target"), str) and isinstance(d.get("by"), str)
          and isinstance(d.get("at"), (int, float)) and not isinstance(d.get("at"), bool)
          and isinstance(d.get("reason", ""), str)
          and (until is None or (isinstance(until, (int, float)) and not isinstance(until, bool))))
    if not ok:
        raise ValueError("a field has the wrong type")
    return SwitchEvent(d["action"], d["target"], d["by"], float(d["at"]), d.get("reason", ""),
                       None if until is None else float(until))


def read_history(path: str | os.PathLike) -> tuple[list[SwitchEvent], str | None]:
    """Every event that can be read, oldest first, and what is damaged (None: nothing)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return [], None
    except OSError as e:
        return [], f"{path}: not readable ({e.strerror})"
    events, bad = [], []
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            events.append(_event(json.loads(line)))
        except ValueError as e:    # JSON and UTF-8 errors are ValueErrors too
            bad.append(f"line {n}: {str(e)[:60]}")
    events.sort(key=lambda e: e.at)
    damage = f"{path}: {len(bad)} unreadable line(s) skipped ({'; '.join(bad[:3])})" if bad else None
    return events, damage


def rehearsals(events: Iterable[SwitchEvent], targets: Iterable[str], now: float) -> list[Rehearsal]:
    """Completed disable -> enable (or expiry) cycles of any of ``targets``, oldest first."""
    wanted = set(targets)
    open_: dict[str, SwitchEvent] = {}
    done: list[Rehearsal] = []
    for e in sorted(events, key=lambda e: e.at):
        if e.target not in wanted:
            continue
        started = open_.get(e.target)
        if started is not None and started.until is not None and started.until <= e.at:
            done.append(Rehearsal(started, None, started.until))   # it expired before this event
            open_.pop(e.target)
            started = None
        if e.action == "disable":
            open_[e.target] = e
        elif started is not None:
            done.append(Rehearsal(started, e, e.at))
            open_.pop(e.target)
    done += [Rehearsal(d, None, d.until) for d in open_.values() if d.until is not None and d.until <= now]
    return sorted(done, key=lambda r: r.ended_at)
