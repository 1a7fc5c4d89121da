"""The tokens of one call, as the providers bill them (the unit every cost, record and budget counts in)."""
from __future__ import annotations

from dataclasses import dataclass

# No call has more tokens than this (the largest context windows are ~2M): a provider reporting more is wrong,
# and its count is capped where it enters (toolkit.transport) so a cost or a ledger amount stays finite.
MAX_TOKENS = 10_000_000


@dataclass(frozen=True)
class Usage:
    """Tokens of one call. ``input_tokens`` includes cached reads and cache writes;
    ``output_tokens`` includes reasoning tokens (as the providers bill them)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
