"""Secrets: find them in a policy, scrub them from any text we write.

API keys reach routekit only by environment-variable name.  Scrubbing is by *value* first: the value of
every variable a loaded policy names as secret (``api_key_env``, ``alert_webhook_env``, ``state.url_env``),
of every variable whose name says it holds a credential (``*_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*PASSWORD*``
...: litellm reads some of those by itself), every key the transport sent, and a URL's password, is
replaced wherever it appears, whatever its shape.  The shape patterns (provider key prefixes, bearer
tokens, AWS access keys) stay as a second net for secrets routekit was never told about.
"""
from __future__ import annotations

import os
import re
import threading
import time
from typing import Iterable
from urllib.parse import urlsplit

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

# Environment variables whose names say they hold a credential.
SECRET_ENV_NAME = re.compile(r"(?i)(?:^|_)(?:API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?|AUTH)(?:_|$)")
# Shorter values are flags or ports, not secrets: scrubbing every "1" would ruin the log.
MIN_SECRET_LENGTH = 8

_lock = threading.Lock()
_values: set[str] = set()                 # remembered secret values
_names: set[str] = set()                  # variables named as secret by a policy
_seen_env: tuple | None = None            # the environment the value set was last built from
_checked = 0.0                            # when the environment was last compared (monotonic seconds)
ENV_RECHECK_S = 1.0                       # reading the environment costs ~13 µs: not on every record
_pattern: re.Pattern[str] | None = None   # all values, longest first


def remember(*values: str | None) -> None:
    """Treat these exact strings as secrets from now on (and a URL's password with it)."""
    global _pattern
    new = set()
    for v in values:
        if v and len(v) >= MIN_SECRET_LENGTH:
            new.add(v)
            try:
                password = urlsplit(v).password if "://" in v else None
            except ValueError:
                password = None
            if password and len(password) >= MIN_SECRET_LENGTH:
                new.add(password)
    with _lock:
        if not new <= _values:
            _values.update(new)
            _pattern = None


def remember_env(names: Iterable[str]) -> None:
    """Variables a policy names as secret: their values are scrubbed, whatever the names look like."""
    global _seen_env
    with _lock:
        _names.update(names)
        _seen_env = None


def _refresh() -> None:
    """Pick up secret-named variables and the policy-named ones from the environment when it changed
    (looked at once a second, and at once after a policy names new variables)."""
    global _seen_env, _checked
    now = time.monotonic()
    if _seen_env is not None and now - _checked < ENV_RECHECK_S:
        return
    _checked = now
    env = tuple(os.environ.items())
    if env == _seen_env:
        return
    remember(*(v for k, v in env if k in _names or SECRET_ENV_NAME.search(k)))
    _seen_env = env


def _value_pattern() -> re.Pattern[str] | None:
    global _pattern
    _refresh()
    with _lock:
        if _pattern is None and _values:
            _pattern = re.compile("|".join(re.escape(v) for v in sorted(_values, key=len, reverse=True)))
        return _pattern


def holds_known_secret(text: str) -> bool:
    """Does ``text`` contain a remembered secret value?"""
    pattern = _value_pattern()
    return bool(pattern and pattern.search(text))


def looks_like_secret(text: str) -> bool:
    return any(p.search(text) for p in SECRET_PATTERNS)


def scrub(text: str | None) -> str | None:
    """Return ``text`` with every known secret value and every secret-looking substring replaced."""
    if not text:
        return text
    pattern = _value_pattern()
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    for p in SECRET_PATTERNS:
        text = p.sub(REDACTED, text)
    return text
