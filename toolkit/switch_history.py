"""The kill switch's rehearsals: a disable of a route or model and what ended it, read from the audit history
the kill switch keeps (toolkit/overrides.py: ``OverrideHistory``, one ``AuditEntry`` per disable or enable) —
what ``routekit readiness`` reads to tell that on-call has practised taking a route out of service.  A history
that cannot be read is skipped line by line and named, never fatal.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

from .overrides import AuditEntry, OverrideHistory, history_path

__all__ = ["Rehearsal", "history_path", "read_history", "rehearsals"]


@dataclass(frozen=True)
class Rehearsal:
    """A disable of a target and what ended it: an enable, or the disable's own expiry."""

    disable: AuditEntry
    ended_by: AuditEntry | None   # the enable; None when the disable expired by itself
    ended_at: float

    def describe(self) -> str:
        how = f"enabled by {self.ended_by.by}" if self.ended_by else "expired"
        return (f"{self.disable.target} disabled by {self.disable.by} ({self.disable.reason or 'no reason'}), "
                f"then {how}")


def read_history(path: str | os.PathLike) -> tuple[list[AuditEntry], str | None]:
    """Every entry that can be read, oldest first, and what is damaged (None: nothing)."""
    history = OverrideHistory(path)
    return history.read(), history.damage


def rehearsals(events: Iterable[AuditEntry], targets: Iterable[str], now: float) -> list[Rehearsal]:
    """Completed disable -> enable (or expiry) cycles of any of ``targets``, oldest first."""
    wanted = set(targets)
    open_: dict[str, AuditEntry] = {}
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
