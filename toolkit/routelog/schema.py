"""The route record, schema version 1: one flat JSON object per routed request.

Record schema, version 1
========================
One flat JSON object per request.  OpenTelemetry GenAI names where one exists,
plain names for routing fields.  Token and cost fields at the record level are
what the request was *billed*: the sum over all its attempts.

=============================  ========  ==========================================================
field                          type      meaning
=============================  ========  ==========================================================
schema_version                 int       1
request_id                     str       unique per request (required)
timestamp                      datetime  UTC start of the request (required); in JSONL always
                                         ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (the writer normalises it)
gen_ai.operation.name          str       "chat"
gen_ai.request.model           str       model string of the route's first candidate
gen_ai.response.model          str       what the provider said it served (else the requested model)
gen_ai.provider.name           str       provider that served (litellm's provider name)
gen_ai.usage.input_tokens      int       input tokens, all attempts (incl. cached)
gen_ai.usage.output_tokens     int       output tokens, all attempts (incl. reasoning)
usage.cache_read_tokens        int       cached input tokens read
usage.cache_write_tokens       int       input tokens written to a cache
usage.reasoning_tokens         int       reasoning tokens (inside output tokens)
intent / route_id              str       the intent asked for / the policy route that handled it
team                           str       who asked (for spend by team)
sensitivity / boundary         str       request sensitivity / privacy boundary enforced (local, vendor, none)
policy_version                 str       sha256 prefix of the policy file
price_version                  str       price snapshot used for every cost in the record
outcome                        str       served | failed | blocked
error_kind                     str       taxonomy kind of the final failure (see transport.py), else null
requested_alias                str       first candidate's alias
served_alias / served_tier     str/int   alias and tier that answered
min_tier                       int       the route's quality floor
fallback_used                  bool      served by other than the first eligible candidate
degraded                       bool      served below min_tier (only where the route allows it)
verification                   str       pass | fail | skipped
attempt_count                  int       requests sent to providers or tools
failed_attempt_count           int       attempts whose outcome is not ok (readers count ``attempts`` for a record
                                         written before this field: null)
attempts                       list      per attempt: alias, model, provider, region, outcome, error_class,
                                         status, retryable, retry_after_s, latency_ms, tokens, cost_usd,
                                         unpriced, message (scrubbed of secrets)
skipped                        list      candidates not tried: alias, reason code, detail
cost_usd                       float     total cost of all attempts (null if any attempt was unpriced)
failed_cost_usd                float     cost of attempts that did not serve
cache_savings_usd              float     saved by cached reads vs full input price
unpriced                       bool      some attempt's model had no price: cost_usd is not a full figure
latency_ms                     float     wall time of the whole request
stream                         bool      streamed request
prompt_hash                    str       sha256 of the canonical messages (the prompt itself is not stored)
prompt_tokens                  int       prompt tokens (the provider's count when served, else counted)
prompt                         str       raw messages as JSON, only where the route sets store_prompts
output                         str       answer text, only where the route sets store_prompts
output_hash                    str       sha256 of the answer text (agreement checks without the text)
shadow_of                      str       for a shadow call: the production request_id
source                         str       router | synth | litellm_proxy | otel
model_mismatch                 bool      the provider reported serving a different model than requested
warnings                       str       what went wrong around the answer, " | "-separated (damaged state
                                         file, record spooled, usage capped, ledger unavailable, model
                                         mismatch), else null
router_name                    str       the trained router that picked the first candidate (route ``router:``)
router_version                 str       its model file's version (sha256, 12 hex digits)
router_score                   float     the score it gave: predicted strong-minus-weak gain, or score - cost term
conversation_id                str       the caller's conversation (agent loops; a route's ``sticky: conversation``)
tools_offered                  str       names of the tools the request offered, comma-separated (never their
                                         arguments or results unless the route sets store_prompts)
tools_called                   str       names of the tools the served answer called, comma-separated, in order
response_format                str       text | json_object | json_schema, as the request asked (null: not given)
finish_reason                  str       why the served answer ended: stop, length, tool_calls, content_filter
earlier_tool_calls_alias       str       aliases that produced the conversation's earlier tool calls, in order,
                                         comma-separated ("unknown": a call this process did not serve)
earlier_tool_calls_provider    str       their providers, likewise
conversation_switched          bool      this turn was answered by another model than the one that produced the
                                         earlier tool calls, or than the one the conversation was pinned to
state                          str       the routing state the decision read (toolkit/state): embedded, redis,
                                         or degraded-local (Redis unreachable: local state); null when routekit
                                         did not route the request
extra                          str       JSON object of fields an importer did not map (kept, not dropped)
=============================  ========  ==========================================================

The elements of ``attempts`` and ``skipped`` are :class:`toolkit.result.Attempt` and :class:`toolkit.result.Skip`,
field for field (ATTEMPT_FIELDS and SKIP_FIELDS are read from those dataclasses).
Skip reason codes: boundary, vendor, region, capability (the request needs tools, a JSON-schema answer or
images, which the candidate does not support: named in the detail), disabled, circuit_open, context_window,
below_floor, budget, budget_unavailable, route_disabled.  Attempt outcomes: ok, verify_failed, stream_cut (a
stream failed after its first token), abandoned (the caller stopped reading a stream), or an error kind of
transport.py; a record's error_kind takes the same values.  A verify_failed attempt's error_class says which
check failed: schema_invalid (the answer does not validate against the request's JSON schema),
tool_call_invalid (a tool call's arguments are not JSON valid for the tool's schema, it names no tool offered
or goes against the request's tool_choice), or check_failed (the route's own ``verify:``).
Every string in a record is checked for secret shapes (toolkit.redact) before it is written.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from ..result import Attempt, Skip

SCHEMA_VERSION = 1
TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def _fields_of(cls: type) -> tuple[tuple[str, str], ...]:
    """(name, schema type) of a dataclass whose annotations are ``str``, ``int | None`` and the like."""
    return tuple((f.name, str(f.type).split("|")[0].strip()) for f in dataclasses.fields(cls))


ATTEMPT_FIELDS: tuple[tuple[str, str], ...] = _fields_of(Attempt)
SKIP_FIELDS: tuple[tuple[str, str], ...] = _fields_of(Skip)

FIELDS: tuple[tuple[str, str], ...] = (
    ("schema_version", "int"), ("request_id", "str"), ("timestamp", "datetime"),
    ("gen_ai.operation.name", "str"), ("gen_ai.request.model", "str"), ("gen_ai.response.model", "str"),
    ("gen_ai.provider.name", "str"), ("gen_ai.usage.input_tokens", "int"), ("gen_ai.usage.output_tokens", "int"),
    ("usage.cache_read_tokens", "int"), ("usage.cache_write_tokens", "int"), ("usage.reasoning_tokens", "int"),
    ("intent", "str"), ("route_id", "str"), ("team", "str"), ("sensitivity", "str"), ("boundary", "str"),
    ("policy_version", "str"), ("price_version", "str"), ("outcome", "str"), ("error_kind", "str"),
    ("requested_alias", "str"), ("served_alias", "str"), ("served_tier", "int"), ("min_tier", "int"),
    ("fallback_used", "bool"), ("degraded", "bool"), ("verification", "str"), ("attempt_count", "int"),
    ("failed_attempt_count", "int"), ("attempts", "attempts"), ("skipped", "skipped"),
    ("cost_usd", "float"), ("failed_cost_usd", "float"), ("cache_savings_usd", "float"), ("unpriced", "bool"),
    ("latency_ms", "float"), ("stream", "bool"), ("prompt_hash", "str"), ("prompt_tokens", "int"),
    ("prompt", "str"), ("output", "str"), ("output_hash", "str"), ("shadow_of", "str"), ("source", "str"),
    ("model_mismatch", "bool"), ("warnings", "str"),
    ("router_name", "str"), ("router_version", "str"), ("router_score", "float"),
    ("conversation_id", "str"), ("tools_offered", "str"), ("tools_called", "str"), ("response_format", "str"),
    ("finish_reason", "str"), ("earlier_tool_calls_alias", "str"), ("earlier_tool_calls_provider", "str"),
    ("conversation_switched", "bool"),
    ("state", "str"),
    ("extra", "str"),
)
FIELD_NAMES = tuple(name for name, _ in FIELDS)


def polars_schema() -> dict[str, Any]:
    """The stable polars schema of a route log frame."""
    import polars as pl

    base = {"str": pl.String, "int": pl.Int64, "float": pl.Float64, "bool": pl.Boolean,
            "datetime": pl.Datetime("us", "UTC")}
    struct = lambda fields: pl.List(pl.Struct({n: base[t] for n, t in fields}))  # noqa: E731
    base["attempts"] = struct(ATTEMPT_FIELDS)
    base["skipped"] = struct(SKIP_FIELDS)
    return {name: base[t] for name, t in FIELDS}
