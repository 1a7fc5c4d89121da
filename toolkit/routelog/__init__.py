"""The route log: one audit record per routed request, appended as JSON lines per UTC day, compacted to
Parquet once a day is closed, read back with one stable schema.

The record and its fields: routelog/schema.py.  What values may be summed: routelog/domain.py.

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
"""
from .compaction import CompactReport, compact, compact_partition, seal
from .domain import (DOMAIN, DOMAIN_ID, DOMAIN_MARK, OUTCOMES, Bound, clamp_to_domain, describe_problems,
                     domain_problems, inside_domain, outside_domain)
from .files import (COMPACT_LOCK, DEFAULT_LOG_DIR, JSONL_NAME, STATE_LOCK, not_a_log, parse_day, parse_period,
                    require_log)
from .privacy import privacy_findings
from .reader import (Damage, LogScan, count_rejected, error_line, partition_files, read_jsonl, reading, scan_log,
                     screen_parquet, verify_parquet)
from .record import clean_record, may_hold_secret, normalise_timestamp, record_line
from .schema import ATTEMPT_FIELDS, FIELD_NAMES, FIELDS, SCHEMA_VERSION, SKIP_FIELDS, TS_FORMAT, polars_schema
from .writer import RouteLogWriter

__all__ = ["ATTEMPT_FIELDS", "COMPACT_LOCK", "DEFAULT_LOG_DIR", "DOMAIN", "DOMAIN_ID", "DOMAIN_MARK", "FIELDS",
           "FIELD_NAMES", "JSONL_NAME", "OUTCOMES", "SCHEMA_VERSION", "SKIP_FIELDS", "STATE_LOCK", "TS_FORMAT",
           "Bound", "CompactReport", "Damage", "LogScan", "RouteLogWriter", "clamp_to_domain", "clean_record",
           "compact", "compact_partition", "count_rejected", "describe_problems", "domain_problems", "error_line",
           "inside_domain", "may_hold_secret", "normalise_timestamp", "not_a_log", "outside_domain", "parse_day",
           "parse_period", "partition_files", "polars_schema", "privacy_findings", "read_jsonl", "reading",
           "record_line", "require_log", "scan_log", "screen_parquet", "seal", "verify_parquet"]
