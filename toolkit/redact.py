"""Secret patterns: find them in a policy, scrub them from any text we write.

API keys reach routekit only by environment-variable name. Anything that still
looks like a key (provider key prefixes, bearer tokens, AWS access keys) is
replaced before an error message or record is written anywhere.
"""
from __future__ import annotations

import re

# Shapes of real credentials. Deliberately broad: a false positive costs a
# redacted word in a log, a false negative leaks a key.
SECRET_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"sk-(?:ant-|proj-|or-v1-)?[A-Za-z0-9_\-]{16,}"),  # OpenAI, Anthropic, OpenRouter
    re.compile(r"AIza[0-9A-Za-z_\-]{30,}"),                         # Google API keys
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),                   # AWS access key ids
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),                  # GitHub tokens
    re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"),                 # Slack tokens
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9_\-\.=:+/]{16,}"),        # Authorization: Bearer ...
    re.compile(r"(?i)(?:api[-_]?key|x-api-key|x-goog-api-key|api-key)[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9_\-\.]{16,}"),
)

REDACTED = "[REDACTED]"

ENV_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def looks_like_secret(text: str) -> bool:
    return any(p.search(text) for p in SECRET_PATTERNS)


def scrub(text: str | None) -> str | None:
    """Return ``text`` with every secret-looking substring replaced."""
    if not text:
        return text
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text
