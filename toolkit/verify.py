"""Checks on an answer: the request's own contract, then the route's ``verify:``.

- Tool calls (the request offered tools): each must name a tool offered — the one ``tool_choice`` names, if it
  names one — with arguments that are JSON valid for that tool's ``parameters`` schema; ``tool_choice: none``
  allows no call, ``required`` demands one — else ``tool_call_invalid`` (some vendors cannot express a tool
  choice: Ollama has none, so its model may answer against it).
- A ``json_schema`` response format: the answer must be JSON valid for the schema — else ``schema_invalid``.
- The route's ``verify:`` (non-empty, a regex, a JSON schema, a Python callable) on the answer's text — else
  ``check_failed``.  An answer that calls tools has no final text yet: the route's text checks wait for the turn
  that answers.

A failed check makes the attempt ``verify_failed`` (its ``error_class`` is the check that failed); the Router
then tries the next candidate (a cascade) unless the route's ``verify.escalate`` is false — except for a streamed
answer, which the caller has already seen: that is reported, never silently replaced.  A detail never quotes the
answer's values (records keep no arguments): only which check, where.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable

from .chat import ChatOptions, ToolCall, schema_validator
from .policy import Verify
from .tools import load_function

SCHEMA_INVALID, TOOL_CALL_INVALID, CHECK_FAILED = "schema_invalid", "tool_call_invalid", "check_failed"


@dataclass(frozen=True)
class Verdict:
    result: str                  # pass | fail | skipped (nothing to check)
    failed: str | None = None    # which check: schema_invalid, tool_call_invalid, check_failed
    detail: str | None = None    # where it failed (never a value from the answer)


PASS, SKIPPED = Verdict("pass"), Verdict("skipped")


def verify(check: Verify | None, text: str) -> str:
    """The route's own checks on a text: ``pass``, ``fail``, or ``skipped`` when the route sets none."""
    if check is None:
        return "skipped"
    if check.non_empty and not text.strip():
        return "fail"
    if check.regex is not None and not re.search(check.regex, text):
        return "fail"
    if check.json_schema is not None and _json_problem(text, schema_validator(check.json_schema)) is not None:
        return "fail"
    if check.callable is not None and not load_function(check.callable)(text):
        return "fail"
    return "pass"


def verify_answer(check: Verify | None, text: str, tool_calls: Iterable[ToolCall], options: ChatOptions) -> Verdict:
    """Every check that applies to an answer (module docstring), the first failure reported."""
    calls = tuple(tool_calls)
    checked = False
    choice = options.tool_choice
    if choice == "required" and not calls:
        return Verdict("fail", TOOL_CALL_INVALID, "tool_choice required, but the answer calls no tool")
    if calls:
        named = choice["function"]["name"] if isinstance(choice, dict) else None
        for call in calls:
            validator = options.tool_validator(call.name)
            if validator is None:
                return Verdict("fail", TOOL_CALL_INVALID, f"tool call {call.name!r} names no tool offered")
            if choice == "none" or (named is not None and call.name != named):
                return Verdict("fail", TOOL_CALL_INVALID, f"tool call {call.name!r} against tool_choice "
                                                          f"{named or choice!r}")
            problem = _json_problem(call.arguments, validator, object_only=True)
            if problem is not None:
                return Verdict("fail", TOOL_CALL_INVALID, f"arguments of tool call {call.name!r}: {problem}")
        return PASS
    validator = options.response_validator
    if validator is not None:
        checked = True
        problem = _json_problem(text, validator)
        if problem is not None:
            return Verdict("fail", SCHEMA_INVALID, f"answer for response_format json_schema: {problem}")
    route = verify(check, text)
    if route == "fail":
        return Verdict("fail", CHECK_FAILED, "the route's verify: check failed")
    return PASS if checked or route == "pass" else SKIPPED


def _json_problem(text: str, validator: Any, object_only: bool = False) -> str | None:
    """Why ``text`` is not JSON valid for the validator's schema (without quoting its values), or None."""
    try:
        value = json.loads(text)
    except ValueError as e:
        return f"not valid JSON ({e.msg} at character {e.pos})"
    if object_only and not isinstance(value, dict):
        return f"a JSON {type(value).__name__}, not an object"
    import jsonschema

    try:
        if validator.is_valid(value):
            return None
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    except jsonschema.exceptions.SchemaError as e:
        return f"the schema cannot be applied ({e.message})"
    except Exception as e:  # noqa: BLE001 — an unresolvable $ref and the like: the answer cannot be vouched for
        return f"the schema cannot be applied ({type(e).__name__})"
    where = "/".join(str(p) for p in error.absolute_path) or "(top)"
    if error.validator in ("required", "additionalProperties"):   # these messages name keys, not values
        return f"{error.message} at {where}"
    return f"fails {error.validator!r} at {where}"
