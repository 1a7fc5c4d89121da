"""Deterministic tools that a policy can use as route candidates (``tool: toolkit.tools:NAME``).

A tool takes the request's messages and returns text.  It costs no tokens and
runs in-process, so it is local by definition.
"""
from __future__ import annotations

import json
import re

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
_AMOUNT = re.compile(r"(?:[$€£]\s?\d[\d,]*(?:\.\d+)?|\b\d[\d,]*(?:\.\d+)?\s?(?:USD|EUR|GBP)\b)")


def _last_user_text(messages: list[dict]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            return c if isinstance(c, str) else " ".join(p.get("text", "") for p in c or [] if isinstance(p, dict))
    return ""


def extract_fields(messages: list[dict]) -> str:
    """Pull emails, ISO dates and money amounts out of the last user message, as JSON."""
    text = _last_user_text(messages)
    return json.dumps({"emails": _EMAIL.findall(text), "dates": _DATE.findall(text),
                       "amounts": [a.strip() for a in _AMOUNT.findall(text)]})
