"""The numbers readers sum have a domain (``DOMAIN``, ``OUTCOMES``: no negative cost, latency or token
count, no NaN or infinity, nothing absurdly large, no unknown outcome).  The writer refuses a record
outside it (a ValueError naming the field and value).  Readers never fail on damage and never change
a file: they skip it and name it (``Damage``) -- a Parquet part that does not read (whole file), a
line that is not a route record or holds a value outside the domain (file:line; compaction keeps it
in ``rejected-<id>.jsonl``), a Parquet record outside the domain (file and request, quarantined).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable

from .schema import FIELDS

# Defined once, used twice: ``clean_record`` refuses a record with a value outside it (a ValueError
# naming the field and value), and every reader (``scan_log``, the rollups on each engine)
# quarantines such a record: it is counted and named, never summed.  Null stays allowed (unknown,
# e.g. an unpriced cost).  The upper bounds are not limits anyone should meet: they sit far above
# any real request, where a value can only come from a unit error, an overflow or a provider bug.


@dataclass(frozen=True)
class Bound:
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.low:g} .. {self.high:g}"


TOKENS = Bound(0, 1e9)   # one request; ~100x the largest context window
USD = Bound(0, 1e4)      # one request
MS = Bound(0, 1e8)       # one request: 28 hours
DOMAIN: dict[str, Bound] = {
    "gen_ai.usage.input_tokens": TOKENS, "gen_ai.usage.output_tokens": TOKENS, "usage.cache_read_tokens": TOKENS,
    "usage.cache_write_tokens": TOKENS, "usage.reasoning_tokens": TOKENS, "prompt_tokens": TOKENS,
    "attempt_count": Bound(0, 1e4), "failed_attempt_count": Bound(0, 1e4), "cost_usd": USD, "failed_cost_usd": USD, "cache_savings_usd": USD,
    "latency_ms": MS,
}
ATTEMPT_DOMAIN: dict[str, Bound] = {  # checked at write time (readers sum record-level values only)
    "latency_ms": MS, "input_tokens": TOKENS, "output_tokens": TOKENS, "cache_read_tokens": TOKENS,
    "cache_write_tokens": TOKENS, "reasoning_tokens": TOKENS, "cost_usd": USD, "retry_after_s": Bound(0, 1e9),
}
OUTCOMES = ("served", "failed", "blocked")
_KINDS = dict(FIELDS)
# A Parquet part whose footer carries DOMAIN_MARK = DOMAIN_ID had its values checked against this domain when it was
# written (compaction): readers skip the check, which costs as much as the query itself.  Any change to the domain
# changes the id, so older parts are checked again.
DOMAIN_MARK = "routekit.domain"
DOMAIN_ID = hashlib.sha256(json.dumps([{n: [b.low, b.high] for n, b in DOMAIN.items()}, OUTCOMES],
                                      sort_keys=True).encode()).hexdigest()[:16]


def value_outside(value: Any, bound: Bound) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value!r} is not a number"
    if not (bound.low <= value <= bound.high):  # NaN fails this too
        return f"{value!r} is outside {bound}"
    return None


def _out_of_bounds(d: dict[str, Any], bounds: dict[str, Bound]) -> list[str]:
    """The names of ``d``'s values outside ``bounds`` (the common case, none, costs one comparison a value)."""
    out = []
    for name, b in bounds.items():
        v = d.get(name)
        if v is None or (v.__class__ in (int, float) and b.low <= v <= b.high):
            continue
        if value_outside(v, b) is not None:   # the slow path: another numeric type, NaN, a bool, text
            out.append(name)
    return out


def clamp_to_domain(record: dict[str, Any]) -> list[str]:
    """Bring every number of ``record`` outside its domain to the nearest bound, in place (a writer that must not
    lose the record, such as the Router after a provider was paid, flags the notes this returns instead)."""
    notes = []

    def clamp(d: dict[str, Any], bounds: dict[str, Bound], where: str) -> None:
        for name in _out_of_bounds(d, bounds):
            v, b = d[name], bounds[name]
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                d[name] = b.low if v != v or v < b.low else b.high   # NaN -> low
                notes.append(f"{where}{name} {v!r} set to {d[name]!r} (outside {b})")

    clamp(record, DOMAIN, "")
    for i, attempt in enumerate(record.get("attempts") or ()):
        if isinstance(attempt, dict):
            clamp(attempt, ATTEMPT_DOMAIN, f"attempts[{i}].")
    return notes


def domain_problems(record: dict[str, Any]) -> list[tuple[str, str]]:
    """Every value of ``record`` outside its domain, as (field, why) pairs (empty: none)."""
    found = [(name, value_outside(record[name], DOMAIN[name])) for name in _out_of_bounds(record, DOMAIN)]
    outcome = record.get("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        found.append(("outcome", f"{outcome!r} is not one of {', '.join(OUTCOMES)}"))
    attempts = record.get("attempts")
    for i, attempt in enumerate(attempts if isinstance(attempts, list) else ()):
        if isinstance(attempt, dict):
            found += [(f"attempts[{i}].{name}", value_outside(attempt[name], ATTEMPT_DOMAIN[name]))
                      for name in _out_of_bounds(attempt, ATTEMPT_DOMAIN)]
    return found


def describe_problems(problems: list[tuple[str, str]]) -> str:
    return "; ".join(f"field '{name}': {why}" for name, why in problems)


def inside_domain(name: str, column: str | None = None) -> Any:
    """A narwhals expression (polars, DuckDB, Spark): whether the field ``name`` (in ``column``) is inside its domain;
    null where it is null."""
    import narwhals as nw

    bound, c = DOMAIN[name], nw.col(column or name)
    inside = c.is_between(bound.low, bound.high)
    # NaN compares differently per engine (DuckDB reads a NaN from Parquet as inside any range): test it by name
    return c.is_finite() & inside if _KINDS[name] == "float" else inside


def outside_domain(column: Callable[[str], str] = str) -> Any:
    """The same domain as a narwhals expression (polars, DuckDB, Spark): true for a record with a value outside
    it, false otherwise (never null).  ``column`` maps a log field name to the frame's column name."""
    import narwhals as nw

    outcome = nw.col(column("outcome"))
    return nw.any_horizontal(*((~inside_domain(n, column(n))).fill_null(False) for n in DOMAIN),
                             (~outcome.is_in(OUTCOMES)).fill_null(False), ignore_nulls=True)
