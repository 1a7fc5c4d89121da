"""Import spend that other gateways already recorded, into the same route log.

Sources
=======
- **LiteLLM proxy spend logs**: the ``LiteLLM_SpendLogs`` table (``litellm/proxy/schema.prisma``),
  as a CSV export (``\\copy "LiteLLM_SpendLogs" TO 'spend.csv' CSV HEADER``, any column order, older
  or newer column sets) or read straight from the proxy's Postgres with a connection URL.
- **OpenTelemetry GenAI spans** exported as OTLP JSON: one ``ExportTraceServiceRequest`` document
  (``{"resourceSpans": [...]}``) or JSON lines of them, as the collector's file exporter writes.

Each model call becomes one route record (``source`` = ``litellm_proxy`` / ``otel``).  Nothing is
dropped: every column, metadata key, span attribute or resource attribute that has no field of its
own is kept in ``extra`` (JSON).  Two exceptions, by design: raw prompts and answers (LiteLLM's
``messages`` / ``response`` / request body, the spans' opt-in ``gen_ai.input.messages`` and the like)
are hashed into ``prompt_hash`` / ``output_hash`` and replaced in ``extra`` by a marker, because the
route log never stores raw prompts; and every string is scrubbed of secret shapes by the writer.
A row that cannot be read is reported (``file:line`` and column) and the others are imported.
A record whose ``request_id`` is already in the log is skipped and counted (``duplicates``): importing an
export twice, or a LiteLLM proxy's spend log beside the records its routekit callback wrote
(toolkit/proxy/callback.py uses the proxy's own request ids), never counts a request twice.

LiteLLM_SpendLogs -> record
---------------------------
=====================================  ====================================================
``request_id``                         request_id
``startTime`` (UTC)                    timestamp
``request_duration_ms`` / end - start  latency_ms (and the one attempt's latency)
``call_type``                          gen_ai.operation.name (acompletion -> chat, aembedding -> embeddings)
``model_group`` (else ``model``)       gen_ai.request.model, route_id, attempt alias
``model``                              gen_ai.response.model, attempt model
``custom_llm_provider``                gen_ai.provider.name
``prompt_tokens`` / ``completion_tokens``  gen_ai.usage.input_tokens / output_tokens
metadata.additional_usage_values       usage.cache_read_tokens, cache_write_tokens, reasoning_tokens
``spend``                              cost_usd (the proxy's own price: price_version ``litellm_proxy``)
``status``, metadata.error_information outcome, error_kind (through transport.classify), attempt message
metadata.user_api_key_team_alias       team (else ``team_id``)
tag ``intent:NAME`` / spend_logs_metadata.intent  intent (else the model group)
metadata.attempted_fallbacks > 0       fallback_used
=====================================  ====================================================

OTel GenAI span -> record
-------------------------
Spans whose ``gen_ai.operation.name`` is an inference (chat, text_completion, generate_content,
embeddings); other spans are counted as skipped.  request_id is ``traceId-spanId``; timestamp and
latency from the span times; ``gen_ai.provider.name`` (or the older ``gen_ai.system``); token counts
from ``gen_ai.usage.*`` (cache read/creation and reasoning too, older ``prompt_tokens`` names
accepted); status ERROR or ``error.type`` -> failed.  team from ``routekit.team`` (span, then
resource), else the resource's ``service.name``; intent from ``routekit.intent``.  Spans carry no
price: each is priced with the :class:`~toolkit.costs.PriceBook` snapshot (unpriced if absent).
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from .costs import PriceBook, Usage
from .redact import scrub
from .routelog import RouteLogWriter

BATCH = 5_000
OMITTED_PROMPT = "[omitted: raw prompt, hashed into prompt_hash]"
OMITTED_OUTPUT = "[omitted: raw output, hashed into output_hash]"
OMITTED = "[omitted: raw content]"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass
class ImportReport:
    source: str
    records: int = 0
    skipped: int = 0                                          # not model calls (e.g. HTTP spans)
    bad: int = 0                                              # unreadable rows or lines
    duplicates: int = 0                                       # request ids already in the log: skipped
    examples: list[str] = field(default_factory=list)         # "file:line: reason"

    def problem(self, where: str, reason: str) -> None:
        self.bad += 1
        if len(self.examples) < 20:
            self.examples.append(f"{where}: {reason}")

    def summary(self) -> str:
        s = f"{self.source}: {self.records} records imported"
        if self.skipped:
            s += f", {self.skipped} skipped (not model calls)"
        if self.duplicates:
            s += f", {self.duplicates} already in the log (same request id: not imported again)"
        if self.bad:
            s += f", {self.bad} unreadable (first: {'; '.join(self.examples[:3])})"
        return s


def _write(records: Iterable[dict], log_dir: str | os.PathLike, report: ImportReport) -> ImportReport:
    seen = _LoggedIds(Path(log_dir))
    with RouteLogWriter(Path(log_dir)) as writer:
        batch: list[dict] = []
        for rec in records:
            if seen.has(rec):
                report.duplicates += 1
                continue
            batch.append(rec)
            if len(batch) >= BATCH:
                report.records += writer.write_records(batch)
                batch = []
        report.records += writer.write_records(batch)
    return report


class _LoggedIds:
    """Request ids already in the log, read one day at a time as records of that day come (and every id seen in
    this import: an export holding one request twice imports it once)."""

    def __init__(self, log_dir: Path):
        self.log_dir, self.days, self.ids = log_dir, set(), set()

    def has(self, record: dict) -> bool:
        from .routelog import scan_log
        from .routelog.record import normalise_timestamp

        try:
            day = normalise_timestamp(record["timestamp"])[:10]
        except (KeyError, TypeError, ValueError):
            day = None    # the writer reports it
        if day is not None and day not in self.days:
            self.days.add(day)
            if (self.log_dir / f"date={day}").is_dir():
                frame = scan_log(self.log_dir, start=day, end=day).frame.select("request_id").collect()
                self.ids.update(frame["request_id"])
        rid = record.get("request_id")
        if rid in self.ids:
            return True
        self.ids.add(rid)
        return False


def _sha(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _classify(error_class: str | None, status: int | None, message: str, provider: str, latency_ms: float):
    """The transport's taxonomy for an error another gateway recorded (same rules as live calls)."""
    from .transport import classify

    exc = type(error_class or "Exception", (Exception,), {})(message)
    exc.status_code = status
    return classify(exc, provider, latency_ms)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


# --- LiteLLM proxy spend logs --------------------------------------------------------------------

SPENDLOG_JSON = ("metadata", "request_tags", "messages", "response", "proxy_server_request")
SPENDLOG_INT = ("total_tokens", "prompt_tokens", "completion_tokens", "request_duration_ms")
SPENDLOG_TIME = ("startTime", "endTime", "completionStartTime", "created_at", "updated_at")
CALL_TYPES = {"completion": "chat", "acompletion": "chat", "embedding": "embeddings", "aembedding": "embeddings",
              "text_completion": "text_completion", "atext_completion": "text_completion",
              "responses": "chat", "aresponses": "chat", "anthropic_messages": "chat"}
_REQUEST_CONTENT = ("messages", "input", "prompt", "contents", "system")


def _utc(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace(" ", "T", 1) if "T" not in value else value)
    # Prisma's DateTime columns are timestamp(3) without time zone, holding UTC.
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _spendlog_row(raw: dict[str, Any]) -> dict[str, Any]:
    """A row from CSV (all text) or Postgres (typed) -> typed values; '' means NULL in a CSV export."""
    row = {k: (None if v == "" else v) for k, v in raw.items()}
    convert = {**{k: json.loads for k in SPENDLOG_JSON}, **{k: int for k in SPENDLOG_INT},
               **{k: _utc for k in SPENDLOG_TIME}, "spend": float}
    for k, fn in convert.items():
        value = row.get(k)
        if value is None or (fn is json.loads and not isinstance(value, str)):
            continue
        try:
            row[k] = fn(value)
        except (TypeError, ValueError) as e:
            raise ValueError(f"column {k!r}: cannot read {str(value)[:40]!r} ({type(e).__name__})") from None
    return row


def spendlog_record(raw: dict[str, Any]) -> dict[str, Any]:
    """One ``LiteLLM_SpendLogs`` row -> one route record (see the module docstring)."""
    row = _spendlog_row(raw)
    if not row.get("request_id") or row.get("startTime") is None:
        raise ValueError("row has no request_id or startTime")
    meta = dict(row.get("metadata") or {})
    usage = meta.get("additional_usage_values") or {}
    prompt_details = usage.get("prompt_tokens_details") or {}
    output_details = usage.get("completion_tokens_details") or {}
    start, end = row["startTime"], row.get("endTime")
    latency = row.get("request_duration_ms")
    latency = float(latency) if latency is not None else ((end - start).total_seconds() * 1000 if end else None)
    provider = row.get("custom_llm_provider") or None
    group = row.get("model_group") or row.get("model") or None
    failed = (row.get("status") or meta.get("status")) == "failure"
    err = meta.get("error_information") or {}
    status = _int(err.get("error_code"))
    error = _classify(err.get("error_class"), status, err.get("error_message") or "", provider or "",
                      latency or 0.0) if failed else None
    tags = row.get("request_tags") or []
    intent = next((t.split(":", 1)[1] for t in tags if isinstance(t, str) and t.startswith("intent:")), None) \
        or (meta.get("spend_logs_metadata") or {}).get("intent") or group
    cache_read = _int(usage.get("cache_read_input_tokens")) or _int(prompt_details.get("cached_tokens")) or 0
    cache_write = _int(usage.get("cache_creation_input_tokens")) or _int(prompt_details.get("cache_creation_tokens")) or 0
    reasoning = _int(output_details.get("reasoning_tokens")) or 0
    spend = row.get("spend") or 0.0
    tokens_in, tokens_out = row.get("prompt_tokens") or 0, row.get("completion_tokens") or 0
    messages, response = row.get("messages"), row.get("response")
    answer = _litellm_answer(response)

    mapped = {"request_id", "startTime", "spend", "prompt_tokens", "completion_tokens", "model", "model_group",
              "custom_llm_provider", "status", "request_duration_ms", "call_type", "messages", "response",
              "metadata", "proxy_server_request"}
    extra = {k: v for k, v in row.items() if k not in mapped and v is not None}
    extra["call_type"] = row.get("call_type")
    if meta:
        extra["metadata"] = meta
    if messages:
        extra["messages"] = OMITTED_PROMPT
    if response:
        extra["response"] = {k: v for k, v in response.items() if k != "choices"} if isinstance(response, dict) \
            else OMITTED_OUTPUT
        if isinstance(response, dict) and response.get("choices"):
            extra["response"]["choices"] = OMITTED_OUTPUT
    body = row.get("proxy_server_request")
    if isinstance(body, dict) and body:
        extra["proxy_server_request"] = {k: (OMITTED if k in _REQUEST_CONTENT else v) for k, v in body.items()}
    attempt = {
        "alias": group, "model": row.get("model") or None, "provider": provider, "region": None,
        "outcome": error.kind if error else "ok", "error_class": error.error_class if error else None,
        "status": status if error else None, "retryable": error.retryable if error else None,
        "retry_after_s": None, "latency_ms": latency, "input_tokens": tokens_in, "output_tokens": tokens_out,
        "cache_read_tokens": cache_read, "cache_write_tokens": cache_write, "reasoning_tokens": reasoning,
        "cost_usd": spend, "unpriced": False, "message": scrub(err.get("error_message")) if error else None,
    }
    return {
        "request_id": row["request_id"], "timestamp": start,
        "gen_ai.operation.name": CALL_TYPES.get(row.get("call_type") or "", row.get("call_type")),
        "gen_ai.request.model": group, "gen_ai.response.model": None if failed else row.get("model") or None,
        "gen_ai.provider.name": provider,
        "gen_ai.usage.input_tokens": tokens_in, "gen_ai.usage.output_tokens": tokens_out,
        "usage.cache_read_tokens": cache_read, "usage.cache_write_tokens": cache_write,
        "usage.reasoning_tokens": reasoning,
        "intent": intent, "route_id": group, "team": meta.get("user_api_key_team_alias") or row.get("team_id"),
        "boundary": None, "price_version": "litellm_proxy",
        "outcome": "failed" if failed else "served", "error_kind": error.kind if error else None,
        "requested_alias": meta.get("original_model_group") or group, "served_alias": None if failed else group,
        "fallback_used": bool(_int(meta.get("attempted_fallbacks"))), "degraded": False, "verification": "skipped",
        "attempt_count": 1, "failed_attempt_count": int(error is not None), "attempts": [attempt], "skipped": [],
        "cost_usd": spend, "failed_cost_usd": spend if failed else 0.0, "cache_savings_usd": None, "unpriced": False,
        "latency_ms": latency, "stream": bool(body.get("stream")) if isinstance(body, dict) else None,
        "prompt_hash": _sha(messages) if messages else None, "prompt_tokens": tokens_in,
        "output_hash": _sha(answer) if answer is not None else None, "source": "litellm_proxy",
        "extra": json.dumps(extra, default=str, sort_keys=True),
    }


def _litellm_answer(response: Any) -> str | None:
    if isinstance(response, dict):
        try:
            return response["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            return json.dumps(response, sort_keys=True) if response else None
    return json.dumps(response) if response else None


def _spendlog_records(rows: Iterable[tuple[str, dict]], report: ImportReport) -> Iterator[dict]:
    for where, row in rows:
        try:
            yield spendlog_record(row)
        except (ValueError, TypeError, KeyError) as e:
            report.problem(where, f"{type(e).__name__}: {e}")


def import_litellm_csv(path: str | os.PathLike, log_dir: str | os.PathLike) -> ImportReport:
    """Import a CSV export of ``LiteLLM_SpendLogs`` (header row with the table's column names)."""
    report = ImportReport("litellm_proxy")
    csv.field_size_limit(sys.maxsize)  # messages / response columns hold whole conversations
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"request_id", "startTime"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: not a LiteLLM_SpendLogs export: no column {', '.join(sorted(missing))} "
                             f"(columns: {', '.join(reader.fieldnames or [])})")
        rows = ((f"{path}:{reader.line_num}", row) for row in reader)
        return _write(_spendlog_records(rows, report), log_dir, report)


def import_litellm_postgres(url: str, log_dir: str | os.PathLike, *, table: str = "LiteLLM_SpendLogs",
                            since: datetime | None = None) -> ImportReport:
    """Import ``LiteLLM_SpendLogs`` straight from the proxy's Postgres (``postgresql://...`` URL)."""
    import psycopg
    from psycopg import sql
    from psycopg.rows import dict_row

    report = ImportReport("litellm_proxy")
    query = sql.SQL("SELECT * FROM {} {} ORDER BY {}").format(
        sql.Identifier(table), sql.SQL('WHERE "startTime" >= %s') if since else sql.SQL(""),
        sql.Identifier("startTime"))
    with psycopg.connect(url, row_factory=dict_row) as conn:
        with conn.cursor(name="routekit_import") as cur:  # server-side: streams, whatever the table size
            if since is not None and since.tzinfo is not None:
                since = since.astimezone(timezone.utc).replace(tzinfo=None)  # the column holds naive UTC
            cur.execute(query, (since,) if since else None)
            rows = ((f"{table} row {i}", row) for i, row in enumerate(cur, 1))
            return _write(_spendlog_records(rows, report), log_dir, report)


# --- OpenTelemetry GenAI spans (OTLP JSON) -------------------------------------------------------

INFERENCE_OPS = {"chat", "text_completion", "generate_content", "embeddings"}
SPAN_CONTENT = {"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
                "gen_ai.prompt", "gen_ai.completion", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result",
                "gen_ai.tool.definitions", "content", "message"}
SPAN_MAPPED = {"gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.system", "gen_ai.request.model",
               "gen_ai.response.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
               "gen_ai.usage.prompt_tokens", "gen_ai.usage.completion_tokens",
               "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_creation.input_tokens",
               "gen_ai.usage.reasoning.output_tokens", "error.type", "routekit.team", "routekit.intent"}


def any_value(v: dict[str, Any]) -> Any:
    """An OTLP JSON AnyValue -> a Python value (int64 arrive as strings in OTLP JSON)."""
    if not isinstance(v, dict):
        return v
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [any_value(x) for x in (v["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in v:
        return attributes((v["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def attributes(kvs: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {kv["key"]: any_value(kv.get("value") or {}) for kv in kvs or ()}


def _no_content(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: (OMITTED if k in SPAN_CONTENT else v) for k, v in attrs.items()}


def span_record(span: dict[str, Any], resource: dict[str, Any], scope: dict[str, Any],
                prices: PriceBook) -> dict[str, Any] | None:
    """One OTLP span -> a route record, or None when it is not a GenAI inference span."""
    attrs = attributes(span.get("attributes"))
    op = attrs.get("gen_ai.operation.name")
    if op not in INFERENCE_OPS and not (op is None and "gen_ai.request.model" in attrs):
        return None
    start, end = int(span["startTimeUnixNano"]), int(span.get("endTimeUnixNano") or span["startTimeUnixNano"])
    latency = (end - start) / 1e6
    provider = attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system")
    requested, responded = attrs.get("gen_ai.request.model"), attrs.get("gen_ai.response.model")
    status = span.get("status") or {}
    failed = status.get("code") in (2, "STATUS_CODE_ERROR") or "error.type" in attrs
    tokens_in = _int(attrs.get("gen_ai.usage.input_tokens", attrs.get("gen_ai.usage.prompt_tokens"))) or 0
    tokens_out = _int(attrs.get("gen_ai.usage.output_tokens", attrs.get("gen_ai.usage.completion_tokens"))) or 0
    usage = Usage(tokens_in, tokens_out, _int(attrs.get("gen_ai.usage.cache_read.input_tokens")) or 0,
                  _int(attrs.get("gen_ai.usage.cache_creation.input_tokens")) or 0,
                  _int(attrs.get("gen_ai.usage.reasoning.output_tokens")) or 0)
    rates = next((r for m in (responded, requested) if m
                  for r in (prices.lookup(f"{provider}/{m}"), prices.lookup(m)) if r is not None), None)
    cost, saved = rates.cost(usage) if rates is not None else (None, None)
    error = None
    if failed:
        err_type = attrs.get("error.type")
        code = _int(err_type)
        error = _classify(None if code else err_type, code, status.get("message") or "", provider or "", latency)
    team = attrs.get("routekit.team") or resource.get("routekit.team") or resource.get("service.name")
    inputs, outputs = attrs.get("gen_ai.input.messages"), attrs.get("gen_ai.output.messages")
    extra = {k: v for k, v in _no_content(attrs).items() if k not in SPAN_MAPPED}
    extra.update({f"resource.{k}": v for k, v in resource.items()})
    extra.update({"otel.trace_id": span.get("traceId"), "otel.span_id": span.get("spanId"),
                  "otel.parent_span_id": span.get("parentSpanId") or None, "otel.span_name": span.get("name"),
                  "otel.span_kind": span.get("kind"), "otel.scope": scope.get("name"),
                  "otel.scope_version": scope.get("version"), "otel.status": status or None})
    if span.get("events"):
        extra["otel.events"] = [{"name": e.get("name"), "time_unix_nano": e.get("timeUnixNano"),
                                 "attributes": _no_content(attributes(e.get("attributes")))} for e in span["events"]]
    for k in [k for k, v in span.items() if k not in ("attributes", "events", "startTimeUnixNano", "endTimeUnixNano",
                                                         "traceId", "spanId", "parentSpanId", "name", "kind",
                                                         "status")]:
        extra[f"otel.{k}"] = span[k]  # links, flags, trace state, dropped counts...
    if "error.type" in attrs:
        extra["error.type"] = attrs["error.type"]
    attempt = {
        "alias": requested, "model": responded or requested, "provider": provider, "region": None,
        "outcome": error.kind if error else "ok", "error_class": error.error_class if error else None,
        "status": error.status if error else None, "retryable": error.retryable if error else None,
        "retry_after_s": None, "latency_ms": latency, "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens, "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens, "reasoning_tokens": usage.reasoning_tokens,
        "cost_usd": cost, "unpriced": rates is None, "message": error.message if error else None,
    }
    return {
        "request_id": f"{span.get('traceId')}-{span.get('spanId')}",
        "timestamp": EPOCH + timedelta(microseconds=start // 1000),
        "gen_ai.operation.name": op or "chat", "gen_ai.request.model": requested,
        "gen_ai.response.model": None if failed else responded or requested, "gen_ai.provider.name": provider,
        "gen_ai.usage.input_tokens": usage.input_tokens, "gen_ai.usage.output_tokens": usage.output_tokens,
        "usage.cache_read_tokens": usage.cache_read_tokens, "usage.cache_write_tokens": usage.cache_write_tokens,
        "usage.reasoning_tokens": usage.reasoning_tokens,
        "intent": attrs.get("routekit.intent") or resource.get("routekit.intent"), "route_id": None, "team": team,
        "boundary": None, "price_version": prices.version,
        "outcome": "failed" if failed else "served", "error_kind": error.kind if error else None,
        "requested_alias": requested, "served_alias": None if failed else requested,
        "fallback_used": False, "degraded": False, "verification": "skipped",
        "attempt_count": 1, "failed_attempt_count": int(error is not None), "attempts": [attempt], "skipped": [],
        "cost_usd": cost, "failed_cost_usd": cost if failed else 0.0, "cache_savings_usd": saved,
        "unpriced": rates is None, "latency_ms": latency, "stream": None,
        "prompt_hash": _sha(inputs) if inputs else None, "prompt_tokens": usage.input_tokens,
        "output_hash": _sha(outputs) if outputs else None, "source": "otel",
        "extra": json.dumps(extra, default=str, sort_keys=True),
    }


def _otlp_documents(path: Path, report: ImportReport) -> Iterator[dict]:
    """One OTLP JSON document, or JSON lines of them (the collector's file exporter)."""
    text = path.read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
        yield from (doc if isinstance(doc, list) else [doc])
        return
    except ValueError:
        pass
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except ValueError as e:
            report.problem(f"{path}:{n}", f"not JSON ({e})")


def import_otel_json(path: str | os.PathLike, log_dir: str | os.PathLike, *,
                     prices: PriceBook | None = None) -> ImportReport:
    """Import the GenAI inference spans of an OTLP JSON trace export."""
    prices = prices or PriceBook.load()
    report = ImportReport("otel")
    path = Path(path)

    def records() -> Iterator[dict]:
        for d, doc in enumerate(_otlp_documents(path, report), 1):
            if not isinstance(doc, dict) or "resourceSpans" not in doc:
                report.problem(f"{path} document {d}", "no resourceSpans (not an OTLP JSON trace export)")
                continue
            for rs in doc["resourceSpans"] or ():
                resource = attributes((rs.get("resource") or {}).get("attributes"))
                for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or ():
                    scope = ss.get("scope") or ss.get("instrumentationLibrary") or {}
                    for span in ss.get("spans") or ():
                        try:
                            rec = span_record(span, resource, scope, prices)
                        except (KeyError, ValueError, TypeError) as e:
                            report.problem(f"{path} span {span.get('spanId')}", f"{type(e).__name__}: {e}")
                            continue
                        if rec is None:
                            report.skipped += 1
                        else:
                            yield rec

    return _write(records(), log_dir, report)
