"""The route log: one audit record per routed request.

Record schema, version 1
========================
One flat JSON object per request.  OpenTelemetry GenAI names where one exists,
plain names for routing fields.  Token and cost fields at the record level are
what the request was *billed*: the sum over all its attempts.

=============================  ========  ==========================================================
field                          type      meaning
=============================  ========  ==========================================================
schema_version                 int       1
request_id                     str       unique per request
timestamp                      datetime  UTC start of the request (ISO 8601 in JSONL)
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
extra                          str       JSON object of fields an importer did not map (kept, not dropped)
=============================  ========  ==========================================================

Skip reason codes: boundary, vendor, region, disabled, circuit_open, context_window, below_floor,
budget, route_disabled.  Attempt outcomes: ok, verify_failed, or an error kind of transport.py.

Files: ``LOG_DIR/date=YYYY-MM-DD/routes.jsonl`` (append-only, one line per record, written with
a single ``write`` under an exclusive lock, so threads and processes never interleave) and, once
compacted, ``LOG_DIR/date=YYYY-MM-DD/part-*.parquet``.
"""
from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .redact import scrub

SCHEMA_VERSION = 1
DEFAULT_LOG_DIR = "routelog"
JSONL_NAME = "routes.jsonl"

ATTEMPT_FIELDS: tuple[tuple[str, str], ...] = (
    ("alias", "str"), ("model", "str"), ("provider", "str"), ("region", "str"), ("outcome", "str"),
    ("error_class", "str"), ("status", "int"), ("retryable", "bool"), ("retry_after_s", "float"),
    ("latency_ms", "float"), ("input_tokens", "int"), ("output_tokens", "int"),
    ("cache_read_tokens", "int"), ("cache_write_tokens", "int"), ("reasoning_tokens", "int"),
    ("cost_usd", "float"), ("unpriced", "bool"), ("message", "str"),
)
SKIP_FIELDS: tuple[tuple[str, str], ...] = (("alias", "str"), ("reason", "str"), ("detail", "str"))

FIELDS: tuple[tuple[str, str], ...] = (
    ("schema_version", "int"), ("request_id", "str"), ("timestamp", "datetime"),
    ("gen_ai.operation.name", "str"), ("gen_ai.request.model", "str"), ("gen_ai.response.model", "str"),
    ("gen_ai.provider.name", "str"), ("gen_ai.usage.input_tokens", "int"), ("gen_ai.usage.output_tokens", "int"),
    ("usage.cache_read_tokens", "int"), ("usage.cache_write_tokens", "int"), ("usage.reasoning_tokens", "int"),
    ("intent", "str"), ("route_id", "str"), ("team", "str"), ("sensitivity", "str"), ("boundary", "str"),
    ("policy_version", "str"), ("price_version", "str"), ("outcome", "str"), ("error_kind", "str"),
    ("requested_alias", "str"), ("served_alias", "str"), ("served_tier", "int"), ("min_tier", "int"),
    ("fallback_used", "bool"), ("degraded", "bool"), ("verification", "str"), ("attempt_count", "int"),
    ("attempts", "attempts"), ("skipped", "skipped"),
    ("cost_usd", "float"), ("failed_cost_usd", "float"), ("cache_savings_usd", "float"), ("unpriced", "bool"),
    ("latency_ms", "float"), ("stream", "bool"), ("prompt_hash", "str"), ("prompt_tokens", "int"),
    ("prompt", "str"), ("output", "str"), ("output_hash", "str"), ("shadow_of", "str"), ("source", "str"),
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


def clean_record(record: dict[str, Any]) -> dict[str, Any]:
    """Scrub secrets from free text and put fields in schema order; unknown keys go into ``extra``."""
    out = {name: record.get(name) for name in FIELD_NAMES}
    unknown = {k: v for k, v in record.items() if k not in out}
    if unknown:
        extra = json.loads(out["extra"]) if out.get("extra") else {}
        extra.update(unknown)
        out["extra"] = json.dumps(extra, default=str, sort_keys=True)
    out["schema_version"] = out["schema_version"] or SCHEMA_VERSION
    # Free text is where a secret could hide (provider error messages echo headers).
    for a in out.get("attempts") or ():
        if a.get("message"):
            a["message"] = scrub(a["message"])
    for s in out.get("skipped") or ():
        if s.get("detail"):
            s["detail"] = scrub(s["detail"])  # kill-switch reasons are typed by people
    return out


@dataclass
class RouteLogWriter:
    """Append records to ``root/date=YYYY-MM-DD/routes.jsonl``.

    Each record is one ``os.write`` of one line on an ``O_APPEND`` descriptor, under
    ``flock``: nothing is buffered in the process, so a crash loses at most the record
    being written, and concurrent threads and processes never interleave lines.
    """

    root: Path = field(default_factory=lambda: Path(os.environ.get("ROUTEKIT_LOG_DIR", DEFAULT_LOG_DIR)))
    _fds: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    def path_for(self, day: str) -> Path:
        return self.root / f"date={day}" / JSONL_NAME

    def write(self, record: dict[str, Any]) -> None:
        rec = clean_record(record)
        self.write_lines(rec["timestamp"][:10], [json.dumps(rec, separators=(",", ":"), default=str)])

    def write_lines(self, day: str, lines: Iterable[str], chunk_bytes: int = 1 << 20) -> None:
        """Append already-serialised records of one day (used by importers and the synthesizer)."""
        buf: list[bytes] = []
        size = 0
        for line in lines:
            b = line.encode() + b"\n"
            buf.append(b)
            size += len(b)
            if size >= chunk_bytes:
                self._append(day, b"".join(buf))
                buf, size = [], 0
        if buf:
            self._append(day, b"".join(buf))

    def _append(self, day: str, data: bytes) -> None:
        with self._lock:
            fd = self._fd(day)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                # The compactor may have sealed (renamed) a closed day's file since we opened it.
                if day != _today() and os.fstat(fd).st_ino != _inode(self.path_for(day)):
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
                    self._fds.pop(day, None)
                    fd = self._fd(day)
                    fcntl.flock(fd, fcntl.LOCK_EX)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _fd(self, day: str) -> int:
        entry = self._fds.get(day)
        if entry is None:
            path = self.path_for(day)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if len(self._fds) > 4:  # a long-running process moves from day to day
                for old in list(self._fds)[:-2]:
                    os.close(self._fds.pop(old)[0])
            self._fds[day] = entry = (fd, os.getpid())
        return entry[0]

    def close(self) -> None:
        with self._lock:
            for fd, _ in self._fds.values():
                os.close(fd)
            self._fds.clear()


def _today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


# --- reading ---------------------------------------------------------------------------------


@dataclass
class LogScan:
    """A route log as a polars LazyFrame, with the damage it found on the way."""

    frame: Any                       # pl.LazyFrame with polars_schema()
    bad_lines: int = 0
    bad_examples: list[str] = field(default_factory=list)   # "file:line: reason"
    files: int = 0

    def report(self) -> str:
        if not self.bad_lines:
            return f"{self.files} files, no bad lines"
        return f"{self.files} files, {self.bad_lines} bad lines skipped (first: {'; '.join(self.bad_examples[:3])})"


def scan_log(root: str | os.PathLike = DEFAULT_LOG_DIR) -> LogScan:
    """Read every partition under ``root`` (JSONL and Parquet) with one stable schema.

    A corrupt or truncated JSONL line is skipped and counted in ``bad_lines``.
    """
    import polars as pl

    schema = polars_schema()
    root = Path(root)
    frames: list[pl.LazyFrame] = []
    scan = LogScan(frame=None)
    for part in sorted(root.glob("date=*")):
        parquet = sorted(part.glob("*.parquet"))
        sealed = {p.stem for p in parquet}
        for pq in parquet:
            frames.append(pl.scan_parquet(pq).select(list(schema)).cast(schema))
            scan.files += 1
        for jl in sorted(part.glob("*.jsonl")):
            # A sealed file whose Parquet twin exists was compacted already (interrupted clean-up).
            if jl.name != JSONL_NAME and jl.stem.replace("sealed-", "part-") in sealed:
                continue
            df = _read_jsonl(jl, schema, scan)
            if df is not None:
                frames.append(df.lazy())
            scan.files += 1
    scan.frame = pl.concat(frames, how="vertical") if frames else pl.LazyFrame(schema=schema)
    return scan


def _read_jsonl(path: Path, schema: dict, scan: LogScan):
    import polars as pl

    data = path.read_bytes()
    if not data.strip():
        return None
    read_schema = {**schema, "timestamp": pl.String}
    try:
        df = pl.read_ndjson(data, schema=read_schema)
    except Exception:  # noqa: BLE001 — some line is bad: find it, keep the rest
        good: list[bytes] = []
        for n, line in enumerate(data.split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict) or "request_id" not in obj or "timestamp" not in obj:
                    raise ValueError("not a route record")
                good.append(line)
            except ValueError as e:
                scan.bad_lines += 1
                if len(scan.bad_examples) < 10:
                    scan.bad_examples.append(f"{path}:{n}: {str(e)[:80]}")
        if not good:
            return None
        df = pl.read_ndjson(b"\n".join(good), schema=read_schema)
    return df.with_columns(pl.col("timestamp").str.to_datetime(time_zone="UTC", time_unit="us"))
