"""A route record: built from a routed request (``build_record``, the one place that fills every field of
the schema), then on its way to the log cleaned, checked against the domain and scrubbed of secrets into one
line (``record_line``; importers and synth go through that too)."""
from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from .. import redact
from ..chat import assistant_message, tool_calls_digest
from ..costs import Rates
from ..policy import ModelSpec, RouteSpec
from ..redact import scrub
from ..result import WARNING_SEPARATOR, Attempt, Request, Skip, as_dict
from ..usage import Usage
from .domain import clamp_to_domain, describe_problems, domain_problems
from .schema import ATTEMPT_FIELDS, FIELD_NAMES, FIELDS, SCHEMA_VERSION, TS_FORMAT

# Every secret shape in toolkit.redact needs one of these (lower-cased) substrings; checking them
# costs ~1 µs per record where the full patterns cost ~100 µs.  tests/test_routelog.py checks
# that strings generated from each pattern trip this filter, so a new pattern cannot slip by.
_SECRET_HINTS = ("sk-", "aiza", "akia", "asia", "gh", "xox", "bearer", "key")


def may_hold_secret(text: str) -> bool:
    # lower() and substring tests: ~7x faster than one case-insensitive alternation, on a record or a whole file
    low = text.lower()
    return any(h in low for h in _SECRET_HINTS)


def _scrub_deep(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrub_deep(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_deep(v) for v in value]
    return value


def normalise_timestamp(value: Any) -> str:
    """A timestamp as the log writes it: UTC, microseconds, ``Z``."""
    if isinstance(value, str):
        if len(value) == 27 and value.endswith("Z") and value[10] == "T":
            return value  # already canonical (what the router writes)
        value = datetime.fromisoformat(value)
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, timezone.utc)
    if not isinstance(value, datetime):
        raise ValueError(f"not a timestamp: {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)  # naive times in a route log are UTC
    return value.astimezone(timezone.utc).strftime(TS_FORMAT)


def clean_record(record: dict[str, Any]) -> dict[str, Any]:
    """Validate, scrub secrets, and put fields in schema order; unknown keys go into ``extra``."""
    if tuple(record) == FIELD_NAMES:
        out = dict(record)   # already every field in schema order (what build_record makes): nothing unknown
    else:
        out = {name: record.get(name) for name in FIELD_NAMES}
    if not out["request_id"]:
        raise ValueError("route record has no 'request_id'")
    try:
        out["timestamp"] = normalise_timestamp(out["timestamp"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"route record {out['request_id']}: field 'timestamp': {e}") from None
    unknown = {k: v for k, v in record.items() if k not in out}
    if unknown:
        extra = json.loads(out["extra"]) if out.get("extra") else {}
        extra.update(unknown)
        out["extra"] = json.dumps(extra, default=str, sort_keys=True)
    out["schema_version"] = out["schema_version"] or SCHEMA_VERSION
    out = _integral(out, _INT_FIELDS)
    if isinstance(out["attempts"], list):
        out["attempts"] = [_integral(a, _INT_ATTEMPT_FIELDS) if isinstance(a, dict) else a for a in out["attempts"]]
    problems = domain_problems(out)
    if problems:
        raise ValueError(f"route record {out['request_id']}: {describe_problems(problems)}")
    return out


_INT_FIELDS = frozenset(n for n, t in FIELDS if t == "int")
_INT_ATTEMPT_FIELDS = frozenset(n for n, t in ATTEMPT_FIELDS if t == "int")


def _integral(record: dict[str, Any], names: frozenset[str]) -> dict[str, Any]:
    """``10.0`` tokens as ``10`` (JSON ``10.0`` would not read back as an integer); a copy if anything changed."""
    floats = {n: int(v) for n in names if isinstance(v := record.get(n), float) and v.is_integer()}
    return {**record, **floats} if floats else record


def record_line(record: dict[str, Any]) -> str:
    """One record as its JSONL line: cleaned, and scrubbed wherever a secret shape could hide."""
    rec = clean_record(record)
    # allow_nan=False: a non-finite number the domain does not cover fails here, not as an unreadable line
    line = json.dumps(rec, separators=(",", ":"), default=str, allow_nan=False)
    if may_hold_secret(line) or redact.holds_known_secret(line):
        scrubbed = _scrub_deep(rec)
        if rec["extra"]:
            # Scrub the JSON inside 'extra' value by value: scrubbing its text could eat a quote.
            try:
                scrubbed["extra"] = json.dumps(_scrub_deep(json.loads(rec["extra"])), sort_keys=True)
            except ValueError:
                pass
        if scrubbed != rec:
            line = json.dumps(scrubbed, separators=(",", ":"), default=str)
    return line


# --- building a record from a routed request ---------------------------------------------------------

# What may follow a model's name in the name a provider reports for it without being another model:
# a date or version snapshot, a revision, "latest" / "preview" (gpt-4.1-2025-04-14, claude-haiku-4-5-20251001,
# anthropic.claude-3-5-haiku-20241022-v1:0, gemini-2.0-flash-001).
_SNAPSHOT_SUFFIX = re.compile(r"(?:[-@:](?:\d{4}-\d{2}-\d{2}|\d{6,8}|v?\d+(?:[.:]\d+)*|latest|preview|exp))*")


def served_other_model(spec: ModelSpec, reported: str) -> bool:
    """Did the provider report serving a different model than ``spec`` asks for (not just a dated snapshot)?"""
    if spec.is_tool or not reported or not spec.model:
        return False
    asked = spec.model.split("/", 1)[-1].lower()
    said = reported.lower().removeprefix("models/")
    if said == asked or said.endswith("/" + asked):
        return False
    return not (said.startswith(asked) and _SNAPSHOT_SUFFIX.fullmatch(said[len(asked):]))


def prompt_hash(messages: list[dict]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def priced_attempt(spec: ModelSpec, usage: Usage, latency_ms: float, outcome: str, error: Any, provider: str,
                   rates: Rates | None) -> Attempt:
    """One attempt as the record keeps it, priced at ``rates`` (None: unpriced). ``error``: a TransportError."""
    return Attempt(
        alias=spec.alias, model=spec.target, provider=provider, region=spec.region, outcome=outcome,
        error_class=error.error_class if error else None, status=error.status if error else None,
        retryable=error.retryable if error else None, retry_after_s=error.retry_after_s if error else None,
        latency_ms=round(latency_ms, 3), input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens, cache_write_tokens=usage.cache_write_tokens,
        reasoning_tokens=usage.reasoning_tokens, cost_usd=None if rates is None else rates.cost(usage)[0],
        unpriced=rates is None, message=error.message if error else None)


def build_record(req: Request, route: RouteSpec, *, first: ModelSpec, boundary: str | None,
                 attempts: Sequence[Attempt], skipped: Sequence[Skip], prompt_tokens: int,
                 served: ModelSpec | None, reply: Any, verification: str, error: Exception | None,
                 latency_ms: float, degraded: bool, warnings: Sequence[str], policy_version: str,
                 price_version: str, rates: Callable[[str], Rates | None], shadow_of: str | None = None,
                 earlier: Sequence[tuple[str, str]] = (), switched: bool = False, state: str | None = None,
                 source: str = "router", extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The route record of one request (or shadow call: ``shadow_of``), every field of the schema, in order.

    ``first`` is the route's first candidate; ``served`` the one that answered with ``reply`` (a transport
    Reply), else None; ``rates(alias)`` prices cached reads for the savings figure; ``state`` the mode of
    the routing state the decision read (toolkit/state: embedded, redis, degraded-local); ``source`` who routed it
    (``router``, or ``litellm_proxy`` for a request the proxy routed: toolkit/proxy/callback.py); ``extra`` facts of
    the source with no field of their own.  Token and cost totals are
    the sums over ``attempts``.  ``earlier``: (alias, provider) of each tool call the conversation already holds;
    ``switched``: this turn left the model that made them (or the one the conversation was pinned to).  Values
    outside their domain are brought inside it and named in ``warnings``: the provider was paid, so the record
    must be writable.
    """
    warnings = list(warnings)
    mismatch = bool(reply and served and served_other_model(served, reply.response_model))
    if mismatch:
        warnings.append(f"model mismatch: asked {served.target} for {served.model.split('/', 1)[-1]!r}, "
                        f"the provider says it served {reply.response_model!r}")
    unpriced = any(a.unpriced for a in attempts)
    savings = 0.0
    for a in attempts:
        r = rates(a.alias) if a.cache_read_tokens else None
        if r is not None:
            savings += r.cost(Usage(input_tokens=a.cache_read_tokens, cache_read_tokens=a.cache_read_tokens))[1]
    store = route.store_prompts
    kind = getattr(error, "kind", None) or ("no_eligible_route" if error is not None else None)
    calls = reply.tool_calls if reply else ()
    answer = tool_calls_digest(reply.text, calls) if reply else None
    output = (json.dumps(assistant_message(reply.text, calls)) if calls else reply.text) if (store and reply) else None
    record = {
        "schema_version": SCHEMA_VERSION,
        "request_id": req.request_id,
        "timestamp": datetime.fromtimestamp(req.started, timezone.utc).strftime(TS_FORMAT),
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": first.target,
        "gen_ai.response.model": reply.response_model if reply else None,
        "gen_ai.provider.name": reply.provider if reply else None,
        "gen_ai.usage.input_tokens": sum(a.input_tokens for a in attempts),
        "gen_ai.usage.output_tokens": sum(a.output_tokens for a in attempts),
        "usage.cache_read_tokens": sum(a.cache_read_tokens for a in attempts),
        "usage.cache_write_tokens": sum(a.cache_write_tokens for a in attempts),
        "usage.reasoning_tokens": sum(a.reasoning_tokens for a in attempts),
        "intent": req.intent,
        "route_id": req.intent,
        "team": req.team,
        "sensitivity": req.sensitivity,
        "boundary": boundary or "none",
        "policy_version": policy_version,
        "price_version": price_version,
        "outcome": "served" if reply else ("blocked" if not attempts and any(
            s.reason in ("budget", "budget_unavailable") for s in skipped) else "failed"),
        "error_kind": None if reply else kind,
        "requested_alias": first.alias,
        "served_alias": served.alias if served else None,
        "served_tier": served.tier if served else None,
        "min_tier": route.min_tier,
        "fallback_used": bool(served and served.alias != first.alias),
        "degraded": degraded,
        "verification": verification,
        "attempt_count": len(attempts),
        "failed_attempt_count": sum(a.outcome != "ok" for a in attempts),
        "attempts": [as_dict(a) for a in attempts],
        "skipped": [as_dict(s) for s in skipped],
        "cost_usd": None if unpriced else round(sum(a.cost_usd or 0.0 for a in attempts), 12),
        "failed_cost_usd": round(sum(a.cost_usd or 0.0 for a in attempts if a.outcome != "ok"), 12),
        "cache_savings_usd": round(savings, 12),
        "unpriced": unpriced,
        "latency_ms": round(latency_ms, 3),
        "stream": req.stream,
        "prompt_hash": prompt_hash(req.messages),
        "prompt_tokens": prompt_tokens,
        "prompt": json.dumps(req.messages) if store else None,
        "output": output,
        "output_hash": hashlib.sha256(answer.encode()).hexdigest() if reply else None,
        "shadow_of": shadow_of,
        "source": source,
        "model_mismatch": mismatch,
        "warnings": None,
        "router_name": req.learned.name if req.learned else None,
        "router_version": req.learned.version if req.learned else None,
        "router_score": req.learned.score if req.learned else None,
        "conversation_id": req.conversation_id,
        "tools_offered": ",".join(req.options.tool_names) or None,
        "tools_called": ",".join(c.name for c in calls) or None,
        "response_format": req.options.response_kind,
        "finish_reason": reply.finish_reason if reply else None,
        "earlier_tool_calls_alias": ",".join(a for a, _ in earlier) or None,
        "earlier_tool_calls_provider": ",".join(p for _, p in earlier) or None,
        "conversation_switched": switched,
        "state": state,
        "extra": json.dumps(extra, sort_keys=True, default=str) if extra else None,
    }
    clamped = clamp_to_domain(record)
    if clamped:
        warnings.append("values outside their domain: " + "; ".join(clamped))
    record["warnings"] = WARNING_SEPARATOR.join(dict.fromkeys(warnings)) or None
    return record
