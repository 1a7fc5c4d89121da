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
extra                          str       JSON object of fields an importer did not map (kept, not dropped)
=============================  ========  ==========================================================

Skip reason codes: boundary, vendor, region, disabled, circuit_open, context_window, below_floor,
budget, route_disabled.  Attempt outcomes: ok, verify_failed, stream_cut (a stream failed after its first token), abandoned
(the caller stopped reading a stream), or an error kind of transport.py; a record's error_kind
takes the same values.
Every string in a record is checked for secret shapes (toolkit.redact) before it is written.

Files
=====
``LOG_DIR/date=YYYY-MM-DD/`` holds one UTC day:

- ``routes.jsonl``            the active file: append-only, one record per line;
- ``sealed-<id>.jsonl``       a closed day's file taken out of service by the compactor;
- ``part-<id>.parquet``       its compacted twin (zstd, sorted by timestamp);
- ``rejected-<id>.jsonl``     lines of ``sealed-<id>`` that did not parse, kept verbatim and still
                              counted as bad lines by the reader;
- ``.part-<id>.parquet.tmp``  work in progress (ignored).

Writers and crashes.  Each append is one ``os.write`` on an ``O_APPEND`` descriptor under an
exclusive ``flock`` of the file, so threads and processes never interleave lines.  Nothing is
buffered in the process: a crash loses at most the record (or, for ``write_lines``, the chunk of
at most 1 MiB) being written.  An append that fails part-way (a full disk) is cut back off the
file before the error is raised, so no torn line survives as data; should a writer die mid-line,
the next append first ends the torn fragment with a newline, so the fragment is one bad line and
never swallows a good record.  ``durable=True`` adds an ``fsync`` per append for power-loss safety.
``writable()`` says, before a provider is paid, whether the directory can take records at all
(the Router spools them elsewhere when it cannot: toolkit.spool).

Compaction (``compact``) of a closed day (before today, UTC), one step at a time:

1. *seal*: under the file's ``flock``, rename ``routes.jsonl`` to ``sealed-<id>.jsonl``.  A writer
   checks, under that same lock, that its descriptor is still the file at ``routes.jsonl`` and
   re-opens if not, so no append lands in a sealed file; late records start a new ``routes.jsonl``.
2. *convert*: parse the sealed file, write ``rejected-<id>.jsonl`` if some lines are bad, write
   the Parquet to a temporary name, then rename it to ``part-<id>.parquet`` (the commit point).
3. *clean up*: delete ``sealed-<id>.jsonl``.

The reader reads ``sealed-<id>`` until ``part-<id>`` exists and counts ``rejected-<id>`` only after,
so every record and every bad line is counted exactly once whichever step was interrupted, and
running ``compact`` again finishes the job.  Renames and deletions happen under an exclusive lock
on ``LOG_DIR/.routelog.lock`` that readers hold shared while they list and read a log; one compactor
runs at a time (``LOG_DIR/.compact.lock``).

Values and damage
=================
The numbers readers sum have a domain (``DOMAIN``, ``OUTCOMES``: no negative cost, latency or token
count, no NaN or infinity, nothing absurdly large, no unknown outcome).  The writer refuses a record
outside it (a ValueError naming the field and value).  Readers never fail on damage and never change
a file: they skip it and name it (``Damage``) -- a Parquet part that does not read (whole file), a
line that is not a route record or holds a value outside the domain (file:line; compaction keeps it
in ``rejected-<id>.jsonl``), a Parquet record outside the domain (file and request, quarantined).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from . import redact
from .redact import SECRET_PATTERNS, scrub

SCHEMA_VERSION = 1
DEFAULT_LOG_DIR = "routelog"
JSONL_NAME = "routes.jsonl"
STATE_LOCK = ".routelog.lock"
COMPACT_LOCK = ".compact.lock"
TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

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
    ("model_mismatch", "bool"), ("warnings", "str"),
    ("router_name", "str"), ("router_version", "str"), ("router_score", "float"),
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


# --- the domain of the values readers sum ----------------------------------------------------
# Defined once, used twice: ``clean_record`` refuses a record with a value outside it (a ValueError
# naming the field and value), and every reader (``scan_log``, the rollups on each engine)
# quarantines such a record: it is counted and named, never summed.  Null stays allowed (unknown,
# e.g. an unpriced cost).  The upper bounds are not limits anyone should meet: they sit far above
# any real request, where a value can only come from a unit error, an overflow or a provider bug.


@dataclass(frozen=True)
class Bound:
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.low:g} .. {self.high:g}"


TOKENS = Bound(0, 1e9)   # one request; ~100x the largest context window
USD = Bound(0, 1e4)      # one request
MS = Bound(0, 1e8)       # one request: 28 hours
DOMAIN: dict[str, Bound] = {
    "gen_ai.usage.input_tokens": TOKENS, "gen_ai.usage.output_tokens": TOKENS, "usage.cache_read_tokens": TOKENS,
    "usage.cache_write_tokens": TOKENS, "usage.reasoning_tokens": TOKENS, "prompt_tokens": TOKENS,
    "attempt_count": Bound(0, 1e4), "cost_usd": USD, "failed_cost_usd": USD, "cache_savings_usd": USD,
    "latency_ms": MS,
}
ATTEMPT_DOMAIN: dict[str, Bound] = {  # checked at write time (readers sum record-level values only)
    "latency_ms": MS, "input_tokens": TOKENS, "output_tokens": TOKENS, "cache_read_tokens": TOKENS,
    "cache_write_tokens": TOKENS, "reasoning_tokens": TOKENS, "cost_usd": USD, "retry_after_s": Bound(0, 1e9),
}
OUTCOMES = ("served", "failed", "blocked")
_KINDS = dict(FIELDS)
# A Parquet part whose footer carries DOMAIN_MARK = DOMAIN_ID had its values checked against this domain when it was
# written (compaction): readers skip the check, which costs as much as the query itself.  Any change to the domain
# changes the id, so older parts are checked again.
DOMAIN_MARK = "routekit.domain"
DOMAIN_ID = hashlib.sha256(json.dumps([{n: [b.low, b.high] for n, b in DOMAIN.items()}, OUTCOMES],
                                      sort_keys=True).encode()).hexdigest()[:16]


def _outside(value: Any, bound: Bound) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value!r} is not a number"
    if not (bound.low <= value <= bound.high):  # NaN fails this too
        return f"{value!r} is outside {bound}"
    return None


def clamp_to_domain(record: dict[str, Any]) -> list[str]:
    """Bring every number of ``record`` outside its domain to the nearest bound, in place (a writer that must not
    lose the record, such as the Router after a provider was paid, flags the notes this returns instead)."""
    notes = []

    def clamp(d: dict[str, Any], name: str, bound: Bound, where: str) -> None:
        v = d.get(name)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not (bound.low <= v <= bound.high):
            d[name] = bound.low if v != v or v < bound.low else bound.high   # NaN -> low
            notes.append(f"{where}{name} {v!r} set to {d[name]!r} (outside {bound})")

    for name, bound in DOMAIN.items():
        clamp(record, name, bound, "")
    for i, attempt in enumerate(record.get("attempts") or ()):
        if isinstance(attempt, dict):
            for name, bound in ATTEMPT_DOMAIN.items():
                clamp(attempt, name, bound, f"attempts[{i}].")
    return notes


def domain_problems(record: dict[str, Any]) -> list[tuple[str, str]]:
    """Every value of ``record`` outside its domain, as (field, why) pairs (empty: none)."""
    found = [(name, why) for name, bound in DOMAIN.items() if (why := _outside(record.get(name), bound))]
    outcome = record.get("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        found.append(("outcome", f"{outcome!r} is not one of {', '.join(OUTCOMES)}"))
    attempts = record.get("attempts")
    for i, attempt in enumerate(attempts if isinstance(attempts, list) else ()):
        if isinstance(attempt, dict):
            found += [(f"attempts[{i}].{name}", why) for name, bound in ATTEMPT_DOMAIN.items()
                      if (why := _outside(attempt.get(name), bound))]
    return found


def describe_problems(problems: list[tuple[str, str]]) -> str:
    return "; ".join(f"field '{name}': {why}" for name, why in problems)


def inside_domain(name: str, column: str | None = None) -> Any:
    """A narwhals expression (polars, DuckDB, Spark): whether the field ``name`` (in ``column``) is inside its domain;
    null where it is null."""
    import narwhals as nw

    bound, c = DOMAIN[name], nw.col(column or name)
    inside = c.is_between(bound.low, bound.high)
    # NaN compares differently per engine (DuckDB reads a NaN from Parquet as inside any range): test it by name
    return c.is_finite() & inside if _KINDS[name] == "float" else inside


def outside_domain(column: Callable[[str], str] = str) -> Any:
    """The same domain as a narwhals expression (polars, DuckDB, Spark): true for a record with a value outside
    it, false otherwise (never null).  ``column`` maps a log field name to the frame's column name."""
    import narwhals as nw

    outcome = nw.col(column("outcome"))
    return nw.any_horizontal(*((~inside_domain(n, column(n))).fill_null(False) for n in DOMAIN),
                             (~outcome.is_in(OUTCOMES)).fill_null(False), ignore_nulls=True)


# --- records ---------------------------------------------------------------------------------

# Every secret shape in toolkit.redact needs one of these (lower-cased) substrings; checking them
# costs ~1 µs per record where the full patterns cost ~100 µs.  tests/test_routelog.py checks
# that strings generated from each pattern trip this filter, so a new pattern cannot slip by.
_SECRET_HINTS = ("sk-", "aiza", "akia", "asia", "gh", "xox", "bearer", "key")


def may_hold_secret(text: str) -> bool:
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


# --- writing ---------------------------------------------------------------------------------

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class RouteLogWriter:
    """Append records to ``root/date=YYYY-MM-DD/routes.jsonl`` (see the module docstring)."""

    root: Path = field(default_factory=lambda: Path(os.environ.get("ROUTEKIT_LOG_DIR", DEFAULT_LOG_DIR)))
    durable: bool = False   # fsync every append: survives power loss, costs a disk flush per record
    _fds: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _writable_at: float = field(default=-1e9, repr=False)   # when writable() last found the directory fine

    WRITABLE_RECHECK_S = 5.0   # a check costs a mkdir and an access call: not on every request

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    def writable(self) -> str | None:
        """None when the log directory can take records, else why not (a full disk shows only on write)."""
        now = time.monotonic()
        if now - self._writable_at < self.WRITABLE_RECHECK_S:
            return None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            return f"cannot create {self.root}: {e.strerror or e}"
        if not os.access(self.root, os.W_OK):
            return f"{self.root} is not writable"
        self._writable_at = now
        return None

    def path_for(self, day: str) -> Path:
        return self.root / f"date={day}" / JSONL_NAME

    def write(self, record: dict[str, Any]) -> None:
        line = record_line(record)
        self.write_lines(_day_of(line), [line])

    def write_records(self, records: Iterable[dict[str, Any]]) -> int:
        """Clean and append many records (grouped into one append per day and chunk)."""
        by_day: dict[str, list[str]] = {}
        n = 0
        for rec in records:
            line = record_line(rec)
            by_day.setdefault(_day_of(line), []).append(line)
            n += 1
        for day, lines in by_day.items():
            self.write_lines(day, lines)
        return n

    def write_lines(self, day: str, lines: Iterable[str | bytes], chunk_bytes: int = 1 << 20) -> None:
        """Append already-serialised, already-clean records of one day (the batch API).

        Lines are gathered into appends of about ``chunk_bytes``; each append is whole lines.
        """
        if not _DAY.match(day):
            raise ValueError(f"day must look like YYYY-MM-DD, got {day!r}")
        buf: list[bytes] = []
        size = 0
        for line in lines:
            b = line.encode() if isinstance(line, str) else line
            if b"\n" in b:
                raise ValueError("a route record line must not contain a newline")
            buf.append(b)
            size += len(b) + 1
            if size >= chunk_bytes:
                self._append(day, b"\n".join(buf) + b"\n")
                buf, size = [], 0
        if buf:
            self._append(day, b"\n".join(buf) + b"\n")

    def _append(self, day: str, data: bytes) -> None:
        path = self.path_for(day)
        with self._lock:
            while True:
                fd = self._fd(day)
                fcntl.flock(fd, fcntl.LOCK_EX)
                st = os.fstat(fd)
                if st.st_ino == _inode(path):
                    break
                # The compactor sealed (renamed) this file since we opened it: start a new one.
                fcntl.flock(fd, fcntl.LOCK_UN)
                self._forget(day)
            try:
                if st.st_size and os.pread(fd, 1, st.st_size - 1) != b"\n":
                    data = b"\n" + data  # a writer died mid-line: keep its fragment on a line of its own
                view = memoryview(data)
                try:
                    while view:
                        view = view[os.write(fd, view):]
                except OSError:
                    os.ftruncate(fd, st.st_size)  # a full disk took part of it: no torn line stays behind
                    self._writable_at = -1e9
                    raise
                if self.durable:
                    os.fsync(fd)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _fd(self, day: str) -> int:
        entry = self._fds.get(day)
        if entry is not None and entry[1] != os.getpid():
            # Inherited across fork: flock does not separate us from the parent on a shared descriptor.
            for fd, _ in self._fds.values():
                os.close(fd)
            self._fds.clear()
            entry = None
        if entry is None:
            path = self.path_for(day)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            if len(self._fds) > 4:  # a long-running process moves from day to day
                for old in list(self._fds)[:-2]:
                    os.close(self._fds.pop(old)[0])
            self._fds[day] = entry = (fd, os.getpid())
        return entry[0]

    def _forget(self, day: str) -> None:
        fd, _ = self._fds.pop(day)
        os.close(fd)

    def close(self) -> None:
        with self._lock:
            for fd, pid in self._fds.values():
                if pid == os.getpid():
                    os.close(fd)
            self._fds.clear()

    def __enter__(self) -> "RouteLogWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _day_of(line: str) -> str:
    i = line.index('"timestamp":"') + 13
    return line[i:i + 10]


def _today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


@contextmanager
def _flocked(path: Path, mode: int, *, required: bool = True) -> Iterator[bool]:
    """Hold ``flock(mode)`` on ``path``; yields False (unlocked) if a reader cannot create it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        if required:
            raise
        yield False
        return
    try:
        fcntl.flock(fd, mode)
        yield True
    finally:
        os.close(fd)


# --- reading ---------------------------------------------------------------------------------

MAX_EXAMPLES = 20


@dataclass
class Damage:
    """What a reader skipped, and where.  Skipping never changes a file: repair or remove it, then read again."""

    damaged_files: list[str] = field(default_factory=list)  # "path: why", each skipped whole
    bad_lines: int = 0       # lines that are not route records, or hold a value outside its domain
    quarantined: int = 0     # Parquet records with a value outside its domain
    examples: list[str] = field(default_factory=list)       # the first bad lines and records, "path:line: why"

    def damaged(self, path: Any, why: str) -> None:
        self.damaged_files.append(f"{path}: {why}")

    def bad(self, path: Any, line: int, reason: str) -> None:
        self.bad_lines += 1
        self._example(f"{path}:{line}: {reason[:160]}")

    def quarantine(self, path: Any, request_id: Any, why: str) -> None:
        self.quarantined += 1
        self._example(f"{path}: request {request_id}: {why[:160]}")

    def _example(self, text: str) -> None:
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(text)

    def merge(self, other: "Damage") -> None:
        self.damaged_files += other.damaged_files
        self.bad_lines += other.bad_lines
        self.quarantined += other.quarantined
        self.examples = (self.examples + other.examples)[:MAX_EXAMPLES]

    @property
    def skipped(self) -> int:
        """Files, lines and records skipped (a damaged file counts once, whatever it held)."""
        return len(self.damaged_files) + self.bad_lines + self.quarantined

    def summary(self) -> str:
        """One line: ``"skipped 1 damaged file, 2 bad lines"`` or ``"nothing skipped"``."""
        parts = [_plural(len(self.damaged_files), "damaged file"), _plural(self.bad_lines, "bad line"),
                 _plural(self.quarantined, "record outside its domain", "records outside their domain")]
        parts = [p for p in parts if p]
        return "skipped " + ", ".join(parts) if parts else "nothing skipped"

    def details(self) -> list[str]:
        """Every damaged file, then the first bad lines and records."""
        more = self.bad_lines + self.quarantined - len(self.examples)
        return [*self.damaged_files, *self.examples] + ([f"... and {more} more"] if more > 0 else [])

    def to_dict(self) -> dict[str, Any]:
        return {"damaged_files": list(self.damaged_files), "bad_lines": self.bad_lines,
                "quarantined": self.quarantined, "examples": list(self.examples)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Damage":
        return cls(list(data.get("damaged_files", [])), int(data.get("bad_lines", 0)),
                   int(data.get("quarantined", 0)), list(data.get("examples", [])))


def _plural(n: int, one: str, many: str | None = None) -> str:
    return "" if not n else f"1 {one}" if n == 1 else f"{n:,} {many or one + 's'}"


@dataclass
class LogScan(Damage):
    """A route log as a polars LazyFrame, with the damage it found on the way."""

    frame: Any = None                # pl.LazyFrame with polars_schema()
    files: int = 0                   # files read (damaged ones included)

    def report(self) -> str:
        return f"{self.files} files, {self.summary()}"


def partition_files(names: Iterable[str]) -> tuple[list[str], list[str], list[str]]:
    """Which files of one ``date=`` directory (``names``) a reader reads: (Parquet parts, JSONL files, rejected-line
    files whose lines count as bad), so that each record and bad line counts once whatever compaction step ran last."""
    names = set(names)
    parts = sorted(n for n in names if n.startswith("part-") and n.endswith(".parquet"))
    committed = {n[len("part-"):-len(".parquet")] for n in parts}
    jsonl = [n for n in sorted(names) if n.startswith("sealed-") and n.endswith(".jsonl")
             and n[len("sealed-"):-len(".jsonl")] not in committed]
    if JSONL_NAME in names:
        jsonl.append(JSONL_NAME)
    rejected = sorted(n for n in names if n.startswith("rejected-") and n.endswith(".jsonl")
                      and n[len("rejected-"):-len(".jsonl")] in committed)
    return parts, jsonl, rejected


@contextmanager
def reading(root: str | os.PathLike) -> Iterator[None]:
    """Hold the log's reader lock: compaction renames and deletes nothing under a reader while it lists and reads."""
    with _flocked(Path(root) / STATE_LOCK, fcntl.LOCK_SH, required=False):
        yield


def scan_log(root: str | os.PathLike = DEFAULT_LOG_DIR, *, start: str | None = None,
             end: str | None = None, verify: bool = False) -> LogScan:
    """Read every partition under ``root`` (JSONL and Parquet) with one stable schema.

    ``start`` / ``end`` (``YYYY-MM-DD``, inclusive) skip whole days.  Damage is skipped and named, never fatal:
    a corrupt or truncated JSONL line (and one holding a value outside its domain) is a bad line (``file:line``);
    a Parquet part that cannot be read is a damaged file; a Parquet record with a value outside its domain is
    quarantined.  Parts are checked by their footer (and their values, unless compaction checked them);
    ``verify`` reads each one whole (slower, and it finds damage inside a part whose footer is intact).
    """
    import polars as pl

    schema = polars_schema()
    root = Path(root)
    scan = LogScan()
    parquet: list[str] = []
    frames: list[Any] = []
    if root.is_dir():
        with reading(root):
            for part in sorted(root.glob("date=*")):
                day = part.name[len("date="):]
                if not part.is_dir() or (start and day < start) or (end and day > end):
                    continue
                parts, jsonl, rejected = partition_files(os.listdir(part))
                parquet += [str(part / n) for n in parts]
                for name in jsonl:
                    df = read_jsonl(part / name, scan, lock=name == JSONL_NAME)
                    if df is not None:
                        frames.append(df.lazy())
                for name in rejected:
                    count_rejected(part / name, scan)
                scan.files += len(parts) + len(jsonl) + len(rejected)
            parquet, outside = screen_parquet(parquet, scan, verify=verify)
    if parquet:
        lf = pl.scan_parquet(parquet, schema=schema, hive_partitioning=False, missing_columns="insert",
                             extra_columns="ignore")
        frames.insert(0, _keep_inside(lf) if outside else lf)
    scan.frame = pl.concat(frames, how="vertical") if frames else pl.LazyFrame(schema=schema)
    return scan


def _keep_inside(frame: Any) -> Any:
    """``frame`` (any narwhals-supported frame of log columns) without its records outside their domain."""
    import narwhals as nw

    return nw.from_native(frame).filter(~outside_domain()).to_native()


def count_rejected(path: Path, damage: Damage, label: Any = None) -> None:
    """Count the lines compaction kept verbatim in ``rejected-<id>.jsonl`` as bad lines, each with its reason."""
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                damage.bad(label or path, n, f"rejected at compaction (kept verbatim): {_line_reason(line)}")


def _line_reason(line: bytes, error: Exception | None = None) -> str:
    """Why a line is not a route record (``error``: what the reader raised on it)."""
    try:
        obj = json.loads(line)
    except ValueError as e:
        return f"invalid JSON ({e})"
    if not isinstance(obj, dict):
        return f"a JSON {type(obj).__name__}, not an object"
    problems = domain_problems(obj)
    if problems:
        return f"request {obj.get('request_id')}: {describe_problems(problems)}"
    if error is not None:
        return str(error).splitlines()[0]
    return "not a route record" if obj.get("request_id") else "no request_id"


def _footer(source: Any) -> tuple[str | None, bool]:
    """From a Parquet part's footer: why it cannot be read as route records (unreadable: a truncated, empty or
    overwritten file; a column of the wrong type), else None; and whether its values were checked against this
    domain when it was written (``DOMAIN_MARK``).  ``source``: a path or an open file."""
    import polars as pl

    expected = polars_schema()
    try:
        schema = pl.read_parquet_schema(source)
        if hasattr(source, "seek"):
            source.seek(0)
        checked = pl.read_parquet_metadata(source).get(DOMAIN_MARK) == DOMAIN_ID
    except Exception as e:  # noqa: BLE001 — polars raises several kinds for a bad file
        return f"not a readable Parquet file ({error_line(e)})", False
    for name, dtype in schema.items():
        want = expected.get(name)
        if want is not None and dtype != want and not (isinstance(want, pl.List) and isinstance(dtype, pl.List)):
            return f"column {name!r} is {dtype}, not {want}", False
    return None, checked


def verify_parquet(url: Any, storage_options: dict | None = None) -> str | None:
    """Why a Parquet part does not read whole (every page of every column decoded), else None."""
    import polars as pl

    try:
        (pl.scan_parquet(url, schema=polars_schema(), hive_partitioning=False, missing_columns="insert",
                         extra_columns="ignore", storage_options=storage_options or None)
         .select(pl.all().is_null().sum()).collect(engine="streaming"))
    except Exception as e:  # noqa: BLE001
        return f"not a readable Parquet file ({error_line(e)})"
    return None


def screen_parquet(parts: list[str], damage: Damage, *, verify: bool = False, storage_options: dict | None = None,
                   opener: Callable[[str], Any] | None = None) -> tuple[list[str], bool]:
    """The parts a reader can read (each other one named in ``damage``), and whether they hold records outside their
    domain (each named in ``damage``: a reader must leave them out).

    Only footers are read, and the values of parts compaction did not check (older or foreign parts); ``verify``
    reads every page of every part too.  ``opener``: how to open a URL for its footer (e.g. fsspec's).
    """
    good, unchecked = [], []
    for url in parts:
        with opener(url) if opener else nullcontext(url) as source:
            why, checked = _footer(source)
        if why is None and verify:
            why = verify_parquet(url, storage_options)
        if why:
            damage.damaged(url, why)
            continue
        good.append(url)
        if not checked:
            unchecked.append(url)
    try:
        examples, outside = _quarantined(unchecked, storage_options)
    except Exception:  # noqa: BLE001 — pages broken under an intact footer: find the part by reading each whole
        if verify:
            raise
        return screen_parquet(good, damage, verify=True, storage_options=storage_options, opener=opener)
    for row in examples:
        damage.quarantine(row.pop("_file"), row["request_id"], describe_problems(domain_problems(row)))
    damage.quarantined += outside - len(examples)
    return good, bool(outside)


def _quarantined(parts: list[str], storage_options: dict | None) -> tuple[list[dict[str, Any]], int]:
    """The first records of ``parts`` outside their domain (file, request_id and the checked fields), and how many
    there are."""
    import narwhals as nw
    import polars as pl

    if not parts:
        return [], 0
    lf = pl.scan_parquet(parts, schema=polars_schema(), hive_partitioning=False, missing_columns="insert",
                         extra_columns="ignore", include_file_paths="_file", storage_options=storage_options or None)
    outside = nw.from_native(lf).filter(outside_domain()).to_native()
    examples = outside.select("_file", "request_id", "outcome", *DOMAIN).head(MAX_EXAMPLES).collect().to_dicts()
    return examples, len(examples) if len(examples) < MAX_EXAMPLES else outside.select(pl.len()).collect().item()


def error_line(e: BaseException) -> str:
    """The first line of an error's message, printable (for naming damage in one line)."""
    line = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    return line.encode("ascii", "replace").decode()  # a garbage file's bytes, quoted in the message, stay printable


def read_jsonl(path: Path, scan: Damage, *, lock: bool = False, rejected: list[bytes] | None = None,
               label: Any = None):
    """Parse one JSONL file into a DataFrame of good records; count (and collect) bad lines, named as ``label``
    (default: the path) and line number."""
    import polars as pl

    label = label or path
    try:
        with open(path, "rb") as f:
            if lock:
                fcntl.flock(f, fcntl.LOCK_SH)  # no append is half-way through while we read
            data = f.read()
    except FileNotFoundError:
        return None
    if not data.strip():
        return None
    try:
        df = _finish(_parse_ndjson(data))
        if not df.select(_invalid().any()).item():
            return df.drop("_outside")
    except Exception:  # noqa: BLE001 — some line is bad: find it below, keep the rest
        pass

    lines = [(n, line) for n, line in enumerate(data.split(b"\n"), 1) if line.strip()]
    frames: list[pl.DataFrame] = []

    def parse(chunk: list[tuple[int, bytes]]) -> None:
        # Halve a failing chunk until the bad lines stand alone: cheap when bad lines are few.
        try:
            df = _parse_ndjson(b"\n".join(line for _, line in chunk))
            if df.height != len(chunk):
                raise ValueError(f"{len(chunk)} lines gave {df.height} records")
        except Exception as e:  # noqa: BLE001
            if len(chunk) == 1:
                n, line = chunk[0]
                scan.bad(label, n, f"not a route record: {_line_reason(line, e)}")
                if rejected is not None:
                    rejected.append(line)
                return
            mid = len(chunk) // 2
            parse(chunk[:mid])
            parse(chunk[mid:])
            return
        frames.append(df.with_columns(pl.Series("_line", [n for n, _ in chunk], pl.Int64)))

    parse(lines)
    if not frames:
        return None
    df = _finish(pl.concat(frames))
    invalid = df.filter(_invalid())
    if invalid.height:
        by_line = dict(lines)
        for row in invalid.iter_rows(named=True):
            rid = row["request_id"]
            why = ("no request_id" if not rid else "missing or unreadable timestamp" if row["timestamp"] is None
                   else f"request {rid}: {describe_problems(domain_problems(row))}")
            scan.bad(label, row["_line"], why)
            if rejected is not None:
                rejected.append(by_line[row["_line"]])
        df = df.filter(~_invalid())
    return df.drop("_line", "_outside")


def _parse_ndjson(data: bytes):
    """JSON lines -> DataFrame of the log schema (timestamp still text); raises on any bad line.

    The nested lists are read as text and decoded in a second pass: several times faster than
    letting the NDJSON reader build them.
    """
    import polars as pl

    schema = polars_schema()
    nested = [name for name, t in FIELDS if t in ("attempts", "skipped")]
    flat = {**schema, "timestamp": pl.String, **{name: pl.String for name in nested}}
    return pl.read_ndjson(data, schema=flat).with_columns(pl.col(n).str.json_decode(schema[n]) for n in nested)


def _finish(df):
    """Parse the timestamp column (canonical ``...Z`` form, or any ISO offset; unreadable -> null) and mark records
    outside their domain (``_outside``)."""
    import narwhals as nw
    import polars as pl

    ts = pl.col("timestamp")
    parsed = pl.coalesce(
        ts.str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_zone="UTC", time_unit="us", strict=False),
        ts.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", time_unit="us", strict=False).dt.convert_time_zone("UTC"),
    )
    df = df.with_columns(timestamp=parsed)
    return nw.from_native(df).with_columns(_outside=outside_domain()).to_native()


def _invalid():
    import polars as pl

    return pl.col("request_id").is_null() | pl.col("timestamp").is_null() | pl.col("_outside")


def privacy_findings(root: str | os.PathLike, prompt_routes: Iterable[tuple[str, str]] = ()) -> list[str]:
    """Every place a log holds a secret-looking string, or a raw prompt or output of a route that did
    not opt in (``prompt_routes``: the (policy_version, route_id) pairs whose route sets
    ``store_prompts``).  Reads the files themselves, bad lines and rejected lines included; a Parquet
    part that does not read is searched as raw bytes (compressed pages stay opaque)."""
    import polars as pl

    allowed = set(prompt_routes)
    found: list[str] = []
    for path in sorted(Path(root).glob("date=*/*")):
        if path.name.endswith(".jsonl"):
            lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
        elif path.name.endswith(".parquet"):
            try:
                lines = pl.read_parquet(path).write_ndjson().splitlines()
            except Exception:  # noqa: BLE001 — a damaged part: readers skip it, its bytes may still hold a key
                lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
        else:
            continue
        for n, text in enumerate(lines, 1):
            if may_hold_secret(text) and any(p.search(text) for p in SECRET_PATTERNS):
                found.append(f"{path}:{n}: secret-looking string")
            if '"prompt":null' in text and '"output":null' in text:
                continue
            try:
                rec = json.loads(text)
            except ValueError:
                continue
            if isinstance(rec, dict) and (rec.get("prompt") or rec.get("output")) \
                    and (rec.get("policy_version"), rec.get("route_id")) not in allowed:
                found.append(f"{path}:{n}: raw prompt or output stored for route {rec.get('route_id')!r}, "
                             f"which did not opt in (store_prompts)")
    return found


# --- compaction ------------------------------------------------------------------------------


class CompactionBusy(RuntimeError):
    """Another ``compact`` holds the log directory."""


@dataclass
class CompactReport:
    days: list[str] = field(default_factory=list)
    records: int = 0
    bad_lines: int = 0
    parts: list[Path] = field(default_factory=list)


def compact(root: str | os.PathLike = DEFAULT_LOG_DIR, *, days: Iterable[str] | None = None,
            before: str | None = None, progress: Callable[[Iterable], Iterable] | None = None) -> CompactReport:
    """Rewrite closed days (before ``before``, default and at most today UTC) to Parquet.

    Idempotent and safe to interrupt at any point (see the module docstring); ``days`` limits
    the run to some days.  Raises :class:`CompactionBusy` if another compaction is running.
    """
    root = Path(root)
    report = CompactReport()
    if not root.is_dir():
        return report
    before = min(before or _today(), _today())
    wanted = set(days) if days is not None else None
    lock = os.open(root / COMPACT_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CompactionBusy(f"another compaction is running on {root}") from None
        parts = [p for p in sorted(root.glob("date=*")) if p.is_dir() and p.name[5:] < before
                 and (wanted is None or p.name[5:] in wanted)]
        for part in (progress(parts) if progress else parts):
            records, bad, new = compact_partition(part)
            if new:
                report.days.append(part.name[5:])
                report.parts += new
                report.records += records
                report.bad_lines += bad
    finally:
        os.close(lock)
    return report


def compact_partition(part: Path) -> tuple[int, int, list[Path]]:
    """Seal, convert and clean up one day directory; returns (records, bad lines, new parts).

    Call it only while holding the compaction lock (``compact`` does).
    """
    for stale in part.glob(".*.tmp"):
        stale.unlink()  # an interrupted conversion; it is redone below
    seal(part)
    records = bad = 0
    new: list[Path] = []
    for sealed in sorted(part.glob("sealed-*.jsonl")):
        ident = sealed.name[len("sealed-"):-len(".jsonl")]
        if not (part / f"part-{ident}.parquet").exists():
            n, b, parquet = _convert(sealed)
            records, bad = records + n, bad + b
            new.append(parquet)
        _cleanup(sealed)
    return records, bad, new


def seal(part: Path) -> Path | None:
    """Step 1: take ``routes.jsonl`` out of service (writers re-open a new one)."""
    active = part / JSONL_NAME
    with _flocked(part.parent / STATE_LOCK, fcntl.LOCK_EX):
        try:
            fd = os.open(active, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # wait for an append in progress to finish
            if os.fstat(fd).st_size == 0:
                os.unlink(active)
                return None
            sealed = part / f"sealed-{_new_id()}.jsonl"
            os.rename(active, sealed)
            _fsync_dir(part)
            return sealed
        finally:
            os.close(fd)


def _convert(sealed: Path) -> tuple[int, int, Path]:
    """Step 2: write ``rejected-<id>.jsonl`` (if needed), then ``part-<id>.parquet`` atomically."""
    import polars as pl

    part = sealed.parent
    ident = sealed.name[len("sealed-"):-len(".jsonl")]
    scan = Damage()
    rejected: list[bytes] = []
    df = read_jsonl(sealed, scan, rejected=rejected)
    schema = polars_schema()
    df = pl.DataFrame(schema=schema) if df is None else df.select(list(schema)).sort("timestamp", maintain_order=True)
    if rejected:
        _write_atomic(part / f"rejected-{ident}.jsonl", b"\n".join(rejected) + b"\n")
    tmp = part / f".part-{ident}.parquet.tmp"
    df.write_parquet(tmp, compression="zstd", statistics=True, metadata={DOMAIN_MARK: DOMAIN_ID})  # read_jsonl checked
    _fsync(tmp)
    final = part / f"part-{ident}.parquet"
    with _flocked(part.parent / STATE_LOCK, fcntl.LOCK_EX):
        os.rename(tmp, final)  # the commit point
        _fsync_dir(part)
    return df.height, scan.bad_lines, final


def _cleanup(sealed: Path) -> None:
    """Step 3: the sealed file is now redundant (its twin is committed)."""
    with _flocked(sealed.parent.parent / STATE_LOCK, fcntl.LOCK_EX):
        sealed.unlink(missing_ok=True)


def _new_id() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}-{secrets.token_hex(3)}"


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
