"""A route's ``verify:`` checks on an answer: non-empty, a regex, a JSON schema, a Python callable.

A failed check makes the attempt ``verify_failed``; with ``escalate`` the Router then tries the next candidate
(a cascade) — except for a streamed answer, which the caller has already seen: that is reported, never
silently replaced.
"""
from __future__ import annotations

import json
import re

from .policy import Verify
from .tools import load_function


def verify(check: Verify | None, text: str) -> str:
    """``pass``, ``fail``, or ``skipped`` when the route sets no checks."""
    if check is None:
        return "skipped"
    if check.non_empty and not text.strip():
        return "fail"
    if check.regex is not None and not re.search(check.regex, text):
        return "fail"
    if check.json_schema is not None:
        import jsonschema

        try:
            jsonschema.validate(json.loads(text), check.json_schema)
        except (ValueError, jsonschema.ValidationError):
            return "fail"
    if check.callable is not None and not load_function(check.callable)(text):
        return "fail"
    return "pass"
