"""What the policy alone lets serve an intent: the Router's own rules (toolkit/eligibility.py), with some models
taken away — no kill switch, circuit or budget, which are the moment's state, not the policy's."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from ..eligibility import below_floor, candidate_queue, context_window, rule_rejection, window_rejection
from ..errors import RequestError
from ..policy import Policy

REMOVED = "removed"   # the reason code of a candidate taken away by the question asked


@dataclass(frozen=True)
class Choice:
    intent: str
    queue: tuple[str, ...]                      # the candidates, in the order the Router would try them
    skipped: tuple[tuple[str, str, str], ...]   # (alias, reason code, detail)
    degraded: bool                              # the first candidate is below the route's floor
    refused: str | None = None                  # why the Router refuses before any candidate (an undeclared label)

    @property
    def served(self) -> str | None:
        """Who serves when every candidate answers: the first of the queue (None: nobody may)."""
        return self.queue[0] if self.queue else None


def choose(policy: Policy, intent: str, *, removed: Iterable[str] = (), sensitivity: str | None = None,
           prompt_tokens: int | None = None, prices: Any = None) -> Choice:
    """The Router's candidate order for ``intent`` with ``removed`` aliases gone; the context window is checked
    when ``prompt_tokens`` and ``prices`` (a PriceBook, for windows the policy does not give) are known."""
    route = policy.routes[intent]
    try:
        boundary = policy.required_boundary(route, sensitivity)
    except RequestError as e:   # a label the policy does not declare
        return Choice(intent, (), (), False, str(e))
    gone = set(removed)

    def rejection(alias: str) -> tuple[str, str] | None:
        if alias in gone:
            return REMOVED, "taken away"
        spec = policy.models[alias]
        rejected = rule_rejection(spec, route, boundary)
        if rejected is None and prompt_tokens is not None and prices is not None:
            rejected = window_rejection(prompt_tokens, context_window(spec, prices))
        return rejected

    queue, skipped = candidate_queue(policy, route, policy.chain(intent), rejection)
    degraded = bool(queue) and below_floor(policy, queue[0], route) is not None
    return Choice(intent, tuple(queue), tuple(skipped), degraded)


def smallest_window(policy: Policy, intent: str, prices: Any) -> int | None:
    """The smallest context window in the intent's chain: a prompt no longer than it passes every window check."""
    windows = [w for w in (context_window(policy.models[a], prices) for a in policy.chain(intent)) if w is not None]
    return min(windows, default=None)
