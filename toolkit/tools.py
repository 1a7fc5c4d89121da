"""Python functions a policy names: deterministic tools as route candidates, and checks.

A policy refers to a function as ``package.module:function``: a route candidate ``tool: toolkit.tools:NAME``
(it takes the request's messages and returns text; it costs no tokens and runs in-process, so it is local by
definition: the transport runs it like a model call) or a verification ``callable`` (it takes the answer and
returns a bool).  :func:`load_function` resolves such a reference once and keeps it.

The tools shipped here are examples a policy can use as they are.
"""
from __future__ import annotations

import importlib
import json
import re
from typing import Callable

_loaded: dict[str, Callable] = {}


def load_function(ref: str) -> Callable:
    """The function a ``package.module:function`` reference names (imported once, then kept)."""
    fn = _loaded.get(ref)
    if fn is None:
        module, _, attr = ref.partition(":")
        fn = getattr(importlib.import_module(module), attr)
        _loaded[ref] = fn
    return fn


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


# An example tool for agents (the demo's agent loop): the function, and its schema as the model is offered it.
INVOICES = {"INV-2231": {"invoice_id": "INV-2231", "status": "paid", "charged": 2, "amount_usd": 1240.50}}
LOOKUP_INVOICE = {"type": "function", "function": {
    "name": "lookup_invoice", "description": "Look an invoice up by its id: status, times charged, amount.",
    "parameters": {"type": "object", "properties": {"invoice_id": {"type": "string", "enum": sorted(INVOICES)}},
                   "required": ["invoice_id"], "additionalProperties": False}}}


def lookup_invoice(invoice_id: str) -> dict:
    """The invoice's record (a stand-in for a billing system), or an error the model can read."""
    return INVOICES.get(invoice_id, {"error": f"no invoice {invoice_id!r}"})
