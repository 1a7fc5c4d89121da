"""Where a policy's routing state lives: one interface, two backends.

The state of a policy is what running Routers share besides the policy itself: the kill switch (overrides,
with their audit history: who, why, until), circuit state (consecutive failures, when a circuit opened, its
cooldown) and the budget ledger.  The policy's ``state:`` block picks the backend (toolkit/policy.py
``StateSpec``)::

    state: {backend: embedded}                                   # default: files beside the policy
    state: {backend: redis, url_env: ROUTEKIT_REDIS_URL}          # shared by every host naming that Redis

:class:`~toolkit.state.embedded.EmbeddedState` keeps it in files on this host (the overrides JSON file and its
history, published circuit openings, the SQLite ledger): the threads and processes of one host share the kill
switch and the ledger; circuits are per process.  :class:`~toolkit.state.shared.RedisState` keeps it in Redis:
a disable issued anywhere is obeyed by every Router within ``state.refresh_s`` (a background thread re-reads
the kill switch and the circuits, so a request never waits on Redis for them), a circuit opened by failures seen
in one process is skipped by all, and one ledger holds every budget.

A damaged or unreachable state never stops routing (docs/failure-modes.md): when Redis cannot be reached a
Router goes on with local state — the last shared state it saw plus this host's files — and every record says
``state: degraded-local``; budgets follow ``state.on_unavailable``; writes made meanwhile (a disable, a budget
settle) are journaled on this host and copied into Redis when it answers again.

What a Router and the ``routekit`` commands use (both backends):

- ``overrides``: ``refresh()`` (once per request), ``get(target)``, ``active()``, ``damage`` (what to warn about);
- ``circuit``: ``is_open(alias)``, ``failure(alias, retry_after_s)``, ``success(alias)``, ``snapshot()``;
- ``mode``: ``embedded`` | ``redis`` | ``degraded-local`` (the record's ``state`` field); ``where``: a directory
  or ``redis at HOST:PORT`` (never a password);
- ``disable(target, reason, for_s, by)``, ``enable(target, by, reason)``, ``active()``, ``history(limit)``
  (:class:`~toolkit.overrides.AuditEntry`, oldest first), ``circuits()`` (:class:`CircuitView`),
  ``ledger_store()`` (a :class:`~toolkit.state.ledger.LedgerStore` for toolkit.budgets), ``close()``.
"""
from __future__ import annotations

import os
from typing import Any, Protocol

from ..overrides import AuditEntry, Override
from .embedded import CircuitView, EmbeddedState
from .ledger import LedgerStore


class StateBackend(Protocol):
    kind: str          # "embedded" | "redis"
    where: str
    overrides: Any
    circuit: Any

    @property
    def mode(self) -> str: ...

    def disable(self, target: str, reason: str, for_s: float | None = None, by: str | None = None) -> Override: ...

    def enable(self, target: str, by: str | None = None, reason: str | None = None) -> bool: ...

    def active(self) -> dict[str, Override]: ...

    def history(self, limit: int | None = None) -> list[AuditEntry]: ...

    def circuits(self) -> CircuitView: ...

    def ledger_store(self) -> LedgerStore: ...

    def close(self) -> None: ...


def state_url(policy: Any) -> str | None:
    """The Redis URL the policy's ``state.url_env`` names (None: not set); its password is scrubbed from then on."""
    from .. import redact

    url = os.environ.get(policy.state.url_env or "") or None
    redact.remember(url)
    return url


def open_state(policy: Any) -> StateBackend:
    """The state backend the policy's ``state:`` block names."""
    if policy.state.backend == "redis":
        from .shared import RedisState

        return RedisState(policy, state_url(policy))
    return EmbeddedState.of(policy)


__all__ = ["CircuitView", "EmbeddedState", "StateBackend", "open_state", "state_url"]
