"""The embedded state backend: the policy's state in files on this host (the default).

The kill switch is the overrides JSON file (toolkit/overrides.py) and its audit history beside it; circuits
are per process, each opening published to the circuits file for ``routekit status``; the budget ledger is the
SQLite file ``<policy>.budgets.sqlite``.  Paths come from ``Policy.state_files`` (``state.dir``,
``ROUTEKIT_STATE_DIR``, ``ROUTEKIT_OVERRIDES``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..circuit import CircuitBreaker, holder_alive, read_published
from ..overrides import AuditEntry, Override, Overrides
from ..policy import CircuitSpec, StateFiles
from .ledger import LedgerStore, SQLiteStore


@dataclass(frozen=True)
class CircuitView:
    """Circuit state as ``routekit status`` shows it: alias -> {open_until (unix s or None), openings, pid, host,
    changed}; ``gone`` entries of exited processes left out; ``damage`` what could not be read."""

    entries: dict[str, dict] = field(default_factory=dict)
    gone: int = 0
    damage: str | None = None


class EmbeddedState:
    kind = "embedded"
    mode = "embedded"

    def __init__(self, files: StateFiles, circuit: CircuitSpec = CircuitSpec(), lock_timeout_s: float = 5.0):
        self.files = files
        self.where = str(files.overrides.parent)
        self.overrides = Overrides(files.overrides)
        self.circuit = CircuitBreaker(circuit.failures, circuit.cooldown_s, circuit.max_cooldown_s,
                                      state_path=files.circuits)
        self.lock_timeout_s = lock_timeout_s

    @classmethod
    def of(cls, policy: Any) -> "EmbeddedState":
        return cls(policy.state_files, policy.circuit, policy.state.lock_timeout_s)

    def disable(self, target: str, reason: str, for_s: float | None = None, by: str | None = None) -> Override:
        return self.overrides.disable(target, reason, for_s, by=by)

    def enable(self, target: str, by: str | None = None, reason: str | None = None) -> bool:
        return self.overrides.enable(target, by=by, reason=reason)

    def active(self) -> dict[str, Override]:
        return self.overrides.active()

    def history(self, limit: int | None = None) -> list[AuditEntry]:
        return self.overrides.history.read(limit)

    def circuits(self) -> CircuitView:
        published, damage = read_published(self.files.circuits)
        live = {k: c for k, c in published.items() if holder_alive(c)}
        return CircuitView(live, len(published) - len(live), damage)

    def ledger_store(self) -> LedgerStore:
        return SQLiteStore(self.files.ledger, timeout_s=self.lock_timeout_s)

    def close(self) -> None:
        pass
