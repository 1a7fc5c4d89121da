"""Which of a policy's models retire, and when: ``deprecation_date`` in the price snapshot (litellm's map carries
it for ~900 models; the vendors' SDKs warn about the same dates)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from ..policy import Policy

WARNING_DAYS = 30


@dataclass(frozen=True)
class Deprecation:
    alias: str
    model: str
    retires: date
    entry: str                                   # the snapshot entry that gives the date
    days_left: int                               # negative: retired that many days ago
    status: Literal["past", "soon", "later"]     # soon: within the warning window

    def describe(self) -> str:
        when = (f"retired on {self.retires} ({-self.days_left} days ago)" if self.status == "past" else
                f"retires on {self.retires} (in {self.days_left} days)")
        return f"model {self.alias!r} ({self.model}) {when}, per the price snapshot entry {self.entry!r}"


def deprecations(policy: Policy, prices: Any, today: date | None = None,
                 warning_days: int = WARNING_DAYS) -> list[Deprecation]:
    """Every model of the policy with a retirement date, soonest first."""
    today = today or date.today()
    out = []
    for alias, spec in policy.models.items():
        found = prices.deprecation(spec)
        if found is None:
            continue
        retires, entry = found
        left = (retires - today).days
        status = "past" if left <= 0 else "soon" if left <= warning_days else "later"
        out.append(Deprecation(alias, spec.target, retires, entry, left, status))
    return sorted(out, key=lambda d: (d.retires, d.alias))
