"""Additive rollups of the route log: built once against narwhals, on polars, DuckDB or Spark.

Dashboards, findings and ``routekit stats`` read these tables, never raw records: every number a
dashboard shows is a sum over the rollup, finished in polars (``summarize``).

Rollup contract v3
==================
Built from the route log (toolkit/routelog.py, schema v1) by ``build_rollups(log, engine="polars")``.
Stored at ``LOG/_rollups/v3/date=YYYY-MM-DD/`` (hive-partitioned by ``date``; the ``date`` column is also inside
each file) as two tables of one contract, fully additive: summing any measure, or merging the histograms, over any
subset of keys gives the right total.

- ``part-0.parquet``, hour grain: one row per (hour, keys) below;
- ``day.parquet``, day grain: the same rows merged over the hours of the day (no ``hour`` column), for periods
  longer than a few days (``load_rollups(..., grain="day")``).

A log on a local disk that cannot be written (a read-only mount, another user's folder) keeps its rollups in a
cache folder instead (``cache_dir``: ``$ROUTEKIT_CACHE_DIR``, else ``~/.cache/routekit``), so it can still be viewed.

Keys (group-by columns):

=================  ==================  ===========================================================
date               Date                UTC day of the record timestamp
hour               Datetime[us, UTC]   timestamp truncated to the hour (hour grain only)
team, intent,      String
route_id
requested_model    String              gen_ai.request.model
served_model       String              gen_ai.response.model (null when nothing served)
served_alias       String              policy alias that served (null when nothing served)
provider           String              gen_ai.provider.name
outcome            String              served | failed | blocked
error_kind         String              taxonomy kind of the final failure (null when served)
fallback_used      Boolean
degraded           Boolean
is_shadow          Boolean             shadow_of is not null
=================  ==================  ===========================================================

The latency histogram is held in the row: ``latency_hist``, a list of ``{bin: Int32, n: Int64}`` sorted by bin,
only the bins with requests (sparse).  ``bin`` is floor(log10(max(latency_ms, 0.01)) * 100) (100 bins per decade;
a bin's representative latency is 10 ** ((bin + 0.5) / 100) ms); a request with no latency counts in
``requests`` but in no bin.  Histograms merge by adding ``n`` per bin (``merge``).

v3 moved the histogram into the row: v2 kept one row per latency bin (``latency_bin`` as a key), so a 10M-record
log made ~5M rows.  A v2 (or v1) rollup is not read: the first build after the upgrade builds ``_rollups/v3``
for every day, says so once (``BuildReport.replaced``, and a warning on the ``routekit.rollups`` logger), and the
old folder can be deleted.

A day's file holds the records of that log partition, in no particular row order.

Measures (sums; Int64 counts, Float64 money/ms): ``requests``, ``attempts``, ``failed_attempts``
(attempts whose outcome is not ``ok``), ``retried_requests`` (attempt_count > 1), ``input_tokens``,
``output_tokens``, ``cache_read_tokens``, ``cache_write_tokens``, ``reasoning_tokens``, ``cost_usd``
(null-safe sum; unpriced records count 0 here), ``failed_cost_usd``, ``cache_savings_usd``,
``unpriced_requests``, ``latency_ms_sum``, ``circuit_open_skips`` (skipped entries with reason
circuit_open), ``verification_failures`` (verification == "fail"), ``prompt_tokens``,
``model_mismatches`` (the provider reported serving another model than asked for).  Records outside
routelog's domain are left out (v1 summed them).

Read side (polars): ``load_rollups(log, since=None, until=None, build=True, grain="hour") -> pl.LazyFrame``
(builds stale days first), ``merge(frame, by)`` (rows and histograms merged per group), ``summarize(frame, by) ->
pl.DataFrame`` (requests, served, failed, error_rate, fallback_rate, degraded_rate, p50_ms, p95_ms,
p99_ms, cost_usd, cost_per_success_usd, input_tokens, output_tokens, failed_cost_usd, cache_savings_usd,
plus blocked and mean_ms) and ``percentiles(frame, by)``.  Percentiles are read from summed histograms,
never averaged: percentiles do not combine, histograms do.  Rates are shares of all requests; cost per
success is all spend (failed attempts included) over served requests.

Exactness
---------
Money is summed as integer nano-dollars and latency as integer microseconds, then divided once, so
every sum is exact and identical on every engine and in any order; ``merge`` and ``summarize`` sum them
back in those units (``total``), so the hour and day grain give the same sums.  A latency bin adds 1e-9 before
the floor so exact powers of ten land in their own bin on every engine (engines compute log10
differently in the last bit).  Percentiles interpolate inside the bin (log-linear by rank), which
puts p50/p95/p99 within 1% of exact.

Build
-----
Incremental: a manifest (``_rollups/v3/_manifest.json``) keeps the size and mtime of every source
file per day, and what was skipped in it (below); a build reads only days whose files changed (or
whose rollup is missing) and removes the rollup of days whose source is gone: a closed day is rolled
up once, today again each time its file grows, alone.  Idempotent: the same
sources give the same rows.  Safe to interrupt: each of a day's files is written beside its place and
renamed over it (one object PUT on object stores), and the manifest is updated only after the files
it vouches for, so an interrupted build leaves every day either old or new, and the next build
redoes what the manifest does not vouch for (and deletes the leftovers).  One builder at a time per
log (a lock enforces it on local disks); the build holds routelog's reader lock so compaction
renames nothing under it.  A record is rolled up with the log partition it is stored in (its
``date`` column is still its own UTC day).

Damage
------
Damage never stops a build and is never summed; it is named, per day, in the manifest
(``damage(log)`` reads it back for ``routekit stats`` and the reports' footers).  Before an engine
runs, routelog's reader decides what to skip, the same way for every engine: a Parquet part whose
footer does not read, a JSONL line that is not a route record, a record with a value outside its
domain.  JSONL files are parsed by routelog and handed to the engines as staged Parquet, so every
engine reads exactly the records routelog accepted.  If an engine still fails (pages broken under an
intact footer), each Parquet part of the batch is read whole, the broken ones are named and left out,
and the batch runs once more; a failure that is not damage is a ``RollupError`` naming the days.

Engines
-------
The rollup's records are prepared by one narwhals query (``prepare()``); polars then groups them into rows with
their histograms in one pass, while DuckDB and Spark group them per row and latency bin (``binned()``, what
narwhals can say for every engine) and hand those over as Parquet, for ``fold()`` to make rows of in polars.  From
the rows in integer units, ``finish()`` makes both grains (the day rows added up from the hour rows), so every
engine gives the same tables.  Per engine only a loading function differs: it reads the chosen Parquet files with
the engine's own reader, renames the dotted OTel columns (they break narwhals on Spark and DuckDB), reduces the
nested attempt/skip lists to two counts (a record's ``failed_attempt_count`` where it has one: polars then skips
decoding the attempts of a file where all do), takes each file's partition day from its path, and pins the session
time zone to UTC (DuckDB and Spark truncate to days and hours in it).

Every engine reads a few days per query (``BYTES_PER_QUERY``), so memory stays flat with the log's length.

- ``polars`` (default): embedded.
- ``duckdb``: an in-memory connection, or pass ``session=`` your own (e.g. with S3 secrets).
- ``spark``: PySpark (``pip install 'routekit[spark]'``, Java 17), ``spark_master`` any master URL
  (default ``local[*]``) or ``session=`` an existing SparkSession.

DuckDB and Spark write their result with their own Parquet writer to ``_rollups/v3/_staging/`` (no
Arrow bridge needed); the driver reads it and publishes it per day, so with a non-local Spark master
the log must be at a URL both the cluster and the driver can reach.

Object storage
--------------
``log`` may be a path or a URL (``s3://``, ``gs://``, ``file://``, anything fsspec knows).  Files
are listed, and rollups and the manifest written, through fsspec (``s3fs`` for s3://, ``gcsfs`` for
gs://, credentials from their usual environment: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/
``AWS_REGION`` or ``GOOGLE_APPLICATION_CREDENTIALS``; ``storage_options=`` is passed to fsspec and
polars).  Each engine reads the log with its own reader:

- polars: object_store, same environment variables (or ``storage_options``).
- DuckDB: the ``httpfs`` extension; create a secret on the connection you pass, e.g.
  ``INSTALL httpfs; LOAD httpfs; CREATE SECRET (TYPE s3, KEY_ID '...', SECRET '...', REGION '...')``
  (the CLI runs the SQL in ``$ROUTEKIT_DUCKDB_INIT`` first).
- Spark: Hadoop's S3A (``s3://`` is read as ``s3a://``): ``spark.jars.packages
  org.apache.hadoop:hadoop-aws:<your Hadoop version>`` and credentials from the environment or
  ``spark.hadoop.fs.s3a.*``; gs:// needs the GCS connector jar.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Callable, Iterator

from .errors import RollupError
from .routelog import Damage, inside_domain, not_a_log, outside_domain, parse_period

logger = logging.getLogger("routekit.rollups")

ROLLUP_VERSION = 3
ROLLUP_DIR = f"_rollups/v{ROLLUP_VERSION}"
MANIFEST = "_manifest.json"
PART = "part-0.parquet"        # hour grain
DAY_PART = "day.parquet"       # day grain
GRAINS = ("hour", "day")
HIST = "latency_hist"
BINS_PER_DECADE = 100
ENGINES = ("polars", "duckdb", "spark")

# Flat input columns the loaders produce, from the log fields they come from.
SOURCE_COLUMNS: dict[str, str] = {
    "timestamp": "timestamp",
    "team": "team", "intent": "intent", "route_id": "route_id",
    "requested_model": "gen_ai.request.model", "served_model": "gen_ai.response.model",
    "served_alias": "served_alias", "provider": "gen_ai.provider.name",
    "outcome": "outcome", "error_kind": "error_kind", "fallback_used": "fallback_used", "degraded": "degraded",
    "shadow_of": "shadow_of", "attempt_count": "attempt_count",
    "input_tokens": "gen_ai.usage.input_tokens", "output_tokens": "gen_ai.usage.output_tokens",
    "cache_read_tokens": "usage.cache_read_tokens", "cache_write_tokens": "usage.cache_write_tokens",
    "reasoning_tokens": "usage.reasoning_tokens",
    "cost_usd": "cost_usd", "failed_cost_usd": "failed_cost_usd", "cache_savings_usd": "cache_savings_usd",
    "unpriced": "unpriced", "latency_ms": "latency_ms", "verification": "verification",
    "prompt_tokens": "prompt_tokens", "model_mismatch": "model_mismatch",
}
# ... plus, computed natively by each loader, and the source partition: failed_attempts (the record's
# failed_attempt_count, or for a record written before that field, counted from its attempts), circuit_open_skips
# (counted from its skipped list), both Int64, and _part (Date).
FAILED_COUNT = "failed_attempt_count"
FLAT_OF = {**{src: flat for flat, src in SOURCE_COLUMNS.items()}, FAILED_COUNT: "failed_attempts"}

KEYS = ("date", "hour", "team", "intent", "route_id", "requested_model", "served_model", "served_alias",
        "provider", "outcome", "error_kind", "fallback_used", "degraded", "is_shadow")
DAY_KEYS = tuple(k for k in KEYS if k != "hour")
# Float measures, summed exactly as integers of a small unit: name -> (source column, units per 1).
SCALED = {"cost_usd": ("cost_usd", 1e9), "failed_cost_usd": ("failed_cost_usd", 1e9),
          "cache_savings_usd": ("cache_savings_usd", 1e9), "latency_ms_sum": ("latency_ms", 1e3)}
MEASURE_ORDER = ("requests", "attempts", "failed_attempts", "retried_requests", "input_tokens", "output_tokens",
                 "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost_usd", "failed_cost_usd",
                 "cache_savings_usd", "unpriced_requests", "latency_ms_sum", "circuit_open_skips",
                 "verification_failures", "prompt_tokens", "model_mismatches")


def rollup_schema(grain: str = "hour") -> dict[str, Any]:
    """The polars schema of the rollup table (contract v3) of ``grain`` (hour or day), in column order."""
    import polars as pl

    types = {"date": pl.Date, "hour": pl.Datetime("us", "UTC"), "fallback_used": pl.Boolean,
             "degraded": pl.Boolean, "is_shadow": pl.Boolean}
    schema = {k: types.get(k, pl.String) for k in _keys_of(grain)}
    schema.update({m: pl.Float64 if m in SCALED else pl.Int64 for m in MEASURE_ORDER})
    schema[HIST] = hist_type()
    return schema


def hist_type() -> Any:
    """The polars type of ``latency_hist``: sparse bins, sorted."""
    import polars as pl

    return pl.List(pl.Struct({"bin": pl.Int32, "n": pl.Int64}))


def _keys_of(grain: str) -> tuple[str, ...]:
    if grain not in GRAINS:
        raise ValueError(f"unknown grain {grain!r}; choose one of {', '.join(GRAINS)}")
    return KEYS if grain == "hour" else DAY_KEYS


# --- the rollup, written once against narwhals ---------------------------------------------------

# Each integer measure of a rollup row, from the prepared column it sums (float measures in integer units).
SUMS: dict[str, str] = {
    "attempts": "attempt_count", "failed_attempts": "failed_attempts", "retried_requests": "_retried",
    "unpriced_requests": "_unpriced", "circuit_open_skips": "circuit_open_skips",
    "verification_failures": "_verify_failed", "model_mismatches": "_mismatch",
    **{c: c for c in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
                      "prompt_tokens")},
    **{f"{m}__units": f"_{m}" for m in SCALED}}
UNITS = ["requests", *SUMS]          # the integer columns of a row in the making
ROW_KEYS = ("_part", *(k for k in KEYS if k != "date"))   # the hour gives the date


def prepare(flat: Any, screen: bool = True) -> Any:
    """Flat loader frame (narwhals LazyFrame) -> one row per record: the keys, ``latency_bin``, and each measure's
    input (float measures in integer units, summed exactly; ``finish()`` divides them).

    Records with a value outside its domain (routelog's) are left out (the build names them); ``screen=False``
    when the build knows there are none (it costs ~7% of a polars rollup).
    """
    import narwhals as nw

    def flag(expr: Any) -> Any:
        return expr.cast(nw.Int64).fill_null(0)

    def inside(col: str) -> Any:
        # The filter below drops records outside the domain, but DuckDB may compute a row's columns before it
        # filters: a NaN or 1e308 must not reach a cast to integer there.
        return nw.when(inside_domain(SOURCE_COLUMNS[col], col)).then(nw.col(col)) if screen else nw.col(col)

    ts = nw.col("timestamp")
    log10 = inside("latency_ms").clip(lower_bound=0.01).log(10)
    return (flat.filter(~outside_domain(FLAT_OF.__getitem__)) if screen else flat).with_columns(
        hour=ts.dt.truncate("1h"),
        is_shadow=~nw.col("shadow_of").is_null(),
        latency_bin=(log10 * BINS_PER_DECADE + 1e-9).floor().cast(nw.Int32),
        _retried=flag(nw.col("attempt_count") > 1),
        _unpriced=flag(nw.col("unpriced")),
        _verify_failed=flag(nw.col("verification") == "fail"),
        _mismatch=flag(nw.col("model_mismatch")),
        **{f"_{m}": (inside(src).fill_null(0) * unit + 0.5).floor().cast(nw.Int64)
           for m, (src, unit) in SCALED.items()},
    )


def binned(prepared: Any) -> Any:
    """Prepared records (narwhals) -> one row per (``ROW_KEYS``, latency bin) with the integer sums: what DuckDB and
    Spark compute (a list aggregation is not in narwhals); ``fold()`` makes rows of them."""
    import narwhals as nw

    return (prepared.group_by(*ROW_KEYS, "latency_bin")
            .agg(nw.len().alias("requests"), *(nw.col(src).fill_null(0).sum().alias(name) for name, src in SUMS.items()))
            .with_columns(nw.col(*UNITS).cast(nw.Int64)))


def _rows_polars(prepared: Any) -> Any:
    """Prepared records (polars LazyFrame) -> rows in integer units with their histograms, in one group-by (the
    bins of a group run-length encoded): about half the time of ``binned()`` then ``fold()``, the same rows."""
    import polars as pl

    bins = pl.element().struct
    return (prepared.group_by(*ROW_KEYS)
            .agg(pl.len().cast(pl.Int64).alias("requests"),
                 *(pl.col(src).fill_null(0).sum().cast(pl.Int64).alias(name) for name, src in SUMS.items()),
                 pl.col("latency_bin").drop_nulls().sort().rle().alias(HIST))
            .with_columns(pl.col(HIST).list.eval(pl.struct(bin=bins.field("value"),
                                                           n=bins.field("len").cast(pl.Int64)))))


def fold(binned: Any, keys: tuple[str, ...] | list[str], measures: list[str] | None = None) -> Any:
    """Rows of one latency bin each (a ``latency_bin`` and ``requests`` column; one row per group and bin) -> one
    row per group of ``keys``: ``measures`` summed (all of the contract's by default) and the bins in the row's
    ``latency_hist``."""
    import polars as pl

    measures = list(MEASURE_ORDER) if measures is None else measures
    has_bin = pl.col("latency_bin").is_not_null()
    return binned.lazy().group_by(list(keys)).agg(
        *(pl.col(m).sum() for m in measures),
        pl.struct(bin=pl.col("latency_bin"), n=pl.col("requests").cast(pl.Int64))
        .filter(has_bin).sort_by(pl.col("latency_bin").filter(has_bin)).alias(HIST))


def finish(rows: Any) -> dict[str, Any]:
    """Rows in integer units (polars, ``ROW_KEYS`` + UNITS + histogram, from any engine) -> the contract's tables by
    grain (hour, day): its rows, columns and types, plus ``_part``.  The day rows are the hour rows added up, in
    integer units, so the two agree exactly."""
    import polars as pl

    hour = rows.lazy().with_columns(pl.col("_part").cast(pl.Date), date=pl.col("hour").dt.date())
    day = _added(hour, ["_part", *DAY_KEYS], [pl.col(c).sum() for c in UNITS])
    return {grain: table.with_columns(
        *(pl.col(f"{m}__units").cast(pl.Float64).truediv(unit).alias(m) for m, (_, unit) in SCALED.items())
    ).select("_part", *(pl.col(c).cast(t) for c, t in rollup_schema(grain).items()))
        for grain, table in (("hour", hour), ("day", day))}


def _rows_schema() -> dict[str, Any]:
    """What ``finish()`` takes, in polars types (an empty batch starts from it)."""
    import polars as pl

    hour = rollup_schema()
    return {"_part": pl.Date, **{k: hour[k] for k in ROW_KEYS[1:]}, **{m: pl.Int64 for m in UNITS},
            HIST: hist_type()}


# --- the source files --------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceFile:
    day: str          # YYYY-MM-DD of the partition the file is stored in
    name: str         # path relative to the log root
    url: str          # what engines read
    kind: str         # parquet | jsonl | rejected (lines compaction kept verbatim: counted, never read)
    size: int
    mtime: str


@dataclass(frozen=True)
class Log:
    """Where a log lives: an fsspec filesystem, its root path, and the URL form engines read; ``rollups``: where
    its rollups go (``LOG/_rollups/v1``, or a cache folder when the log is on a local disk we cannot write)."""

    fs: Any
    root: str
    storage_options: dict = field(default_factory=dict)
    rollups: str = ""

    @classmethod
    def at(cls, log: str | os.PathLike, storage_options: dict | None = None) -> "Log":
        import fsspec

        url = os.fspath(log)
        fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        root = root.rstrip("/")
        local = "file" in _protocols(fs)
        readonly = local and os.path.isdir(root) and not os.access(root, os.W_OK)
        return cls(fs, root, dict(storage_options or {}), cache_dir(root) if readonly else f"{root}/{ROLLUP_DIR}")

    @property
    def local(self) -> bool:
        return "file" in _protocols(self.fs)

    def url(self, path: str) -> str:
        return path if self.local else self.fs.unstrip_protocol(path)

    @property
    def out(self) -> str:
        return self.rollups or f"{self.root}/{ROLLUP_DIR}"

    def sources(self) -> dict[str, list[SourceFile]]:
        """The files of every ``date=`` partition, by day (routelog's own choice of files)."""
        from .routelog import partition_files

        folders: dict[str, dict[str, dict]] = {}
        for path, info in self.fs.glob(f"{self.root}/date=*/*", detail=True).items():
            folder, name = path.rsplit("/", 1)
            folders.setdefault(folder, {})[name] = info
        by_day: dict[str, list[SourceFile]] = {}
        for folder, infos in sorted(folders.items()):
            parts, jsonl, rejected = partition_files(infos)
            day = folder.rsplit("/", 1)[-1].removeprefix("date=")
            for kind, names in (("parquet", parts), ("jsonl", jsonl), ("rejected", rejected)):
                for name in names:
                    info = infos[name]
                    mtime = next((str(info[k]) for k in ("mtime", "LastModified", "updated", "ETag") if info.get(k)),
                                 "")
                    by_day.setdefault(day, []).append(SourceFile(
                        day, f"date={day}/{name}", self.url(f"{folder}/{name}"), kind, int(info.get("size") or 0),
                        mtime))
        return by_day

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Hold routelog's reader lock (local logs), so compaction renames nothing under us."""
        if not self.local:
            yield
            return
        from .routelog import reading

        with reading(self.root):
            yield


def cache_dir(root: str) -> str:
    """Where the rollups of a read-only local log go: ``$ROUTEKIT_CACHE_DIR`` (else ``$XDG_CACHE_HOME/routekit``,
    else ``~/.cache/routekit``) ``/rollups/<hash of the log's path>/v3``; built there once, then kept up to date."""
    import hashlib

    base = os.environ.get("ROUTEKIT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "routekit")
    key = hashlib.sha256(os.path.realpath(root).encode()).hexdigest()[:16]
    return os.path.join(base, "rollups", key, f"v{ROLLUP_VERSION}")


def _protocols(fs: Any) -> tuple[str, ...]:
    p = fs.protocol
    return (p,) if isinstance(p, str) else tuple(p)


# --- screening: what the engines are given -------------------------------------------------------
# routelog's reader decides, the same way for every engine, what is skipped and names it: a Parquet part whose
# footer does not read (or whose pages do not, found when an engine trips on it), a JSONL line that is not a route
# record, a record with a value outside its domain.  JSONL files are parsed here and handed to the engines as
# staged Parquet, so that every engine reads exactly the records routelog accepted.


def _screen(where: Log, files: list[SourceFile], damage: Damage, staging: str) -> tuple[list[SourceFile], bool]:
    """One day's readable Parquet (JSONL staged as Parquet), and whether it holds records outside their domain; what
    is skipped is named in ``damage``."""
    from .routelog import JSONL_NAME, count_rejected, polars_schema, read_jsonl, screen_parquet

    by_url = {f.url: f for f in files if f.kind == "parquet"}
    good, outside = screen_parquet(list(by_url), damage, storage_options=where.storage_options,
                                   opener=None if where.local else lambda url: where.fs.open(url, "rb"))
    out = [by_url[u] for u in good]
    for i, f in enumerate(files):
        if f.kind == "parquet":
            continue
        with _local_file(where, f) as local:
            if f.kind == "rejected":
                count_rejected(local, damage, label=f.url)
                continue
            df = read_jsonl(local, damage, lock=where.local and f.name.endswith(f"/{JSONL_NAME}"), label=f.url)
        if df is None:
            continue
        staged = f"{staging}/jsonl/date={f.day}/{i}.parquet"
        where.fs.makedirs(staged.rsplit("/", 1)[0], exist_ok=True)
        with where.fs.open(staged, "wb") as fh:
            df.select(list(polars_schema())).write_parquet(fh, compression="lz4")
        out.append(SourceFile(f.day, f.name, where.url(staged), "parquet", f.size, f.mtime))
    return out, outside


@contextlib.contextmanager
def _local_file(where: Log, f: SourceFile) -> Iterator[Any]:
    """A local path to ``f`` (routelog's JSONL reader wants one): itself, or a temporary copy."""
    import tempfile
    from pathlib import Path

    if where.local:
        yield Path(f.url)
        return
    with tempfile.TemporaryDirectory() as tmp:
        where.fs.get_file(f"{where.root}/{f.name}", f"{tmp}/copy")
        yield Path(tmp, "copy")


def _verify(where: Log, files: list[SourceFile], damage: dict[str, Damage]) -> set[str]:
    """Read each Parquet part whole (after an engine failed on them): the URLs of the damaged ones, named."""
    from .routelog import verify_parquet

    bad = set()
    for f in files:
        why = verify_parquet(f.url, where.storage_options)
        if why:
            damage[f.day].damaged(f.url, why)
            bad.add(f.url)
    return bad


# --- loaders: the only engine-specific code ----------------------------------------------------
# Each gets readable Parquet files only (see screening) and returns the flat frame: SOURCE_COLUMNS renamed, the
# two counts of the nested lists, and ``_part``, the day of the partition each file is stored in.

_PART_OF_PATH = r"date=(\d{4}-\d{2}-\d{2})/[^/]*$"   # a file's partition day, from its path (staged ones too)


def _load_polars(log: Log, files: list[SourceFile], session: Any) -> Any:
    import narwhals as nw
    import polars as pl

    from .routelog import polars_schema

    schema = polars_schema()
    options = log.storage_options or None

    def scan(urls: list[str], **kw: Any) -> pl.LazyFrame:
        return pl.scan_parquet(urls, schema=schema, hive_partitioning=False, missing_columns="insert",
                               extra_columns="ignore", storage_options=options, **kw)

    def flatten(frame: pl.LazyFrame, day: str, counted: bool) -> pl.LazyFrame:
        def count(col: str, field_: str, pred: Callable[[pl.Expr], pl.Expr]) -> pl.Expr:
            return pl.col(col).list.eval(pred(pl.element().struct.field(field_))).list.sum().fill_null(0)

        # Decoding the attempts lists is most of a build: a file whose every record carries its failed-attempt
        # count is read without them.
        failed = pl.col(FAILED_COUNT)
        if not counted:
            failed = pl.coalesce(failed, count("attempts", "outcome", lambda o: o.ne_missing("ok")))
        return frame.select(
            pl.lit(date.fromisoformat(day)).alias("_part"),
            # Categorical strings group faster than plain ones; finish() makes them strings again.
            *(pl.col(src).cast(pl.Categorical if schema[src] == pl.String else schema[src]).alias(flat)
              for flat, src in SOURCE_COLUMNS.items()),
            failed.cast(pl.Int64).alias("failed_attempts"),
            count("skipped", "reason", lambda r: r.eq_missing("circuit_open")).cast(pl.Int64)
            .alias("circuit_open_skips"))

    urls = [f.url for f in files]
    nulls = (scan(urls, include_file_paths="_file").group_by("_file").agg(pl.col(FAILED_COUNT).null_count())
             .collect().rows() if urls else [])
    counted = {url for url, missing in nulls if missing == 0}
    frames = [flatten(pl.LazyFrame(schema=schema), "1970-01-01", True)]
    for day in sorted({f.day for f in files}):
        for whole in (True, False):
            chosen = [f.url for f in files if f.day == day and (f.url in counted) == whole]
            if chosen:
                frames.append(flatten(scan(chosen), day, whole))
    return nw.from_native(pl.concat(frames, how="vertical"))


def _load_duckdb(log: Log, files: list[SourceFile], session: Any) -> Any:
    import duckdb
    import narwhals as nw

    from .routelog import FIELDS

    con = session or duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if session is None and os.environ.get("ROUTEKIT_DUCKDB_INIT"):
        con.execute(os.environ["ROUTEKIT_DUCKDB_INIT"])
    types = {"str": "VARCHAR", "int": "BIGINT", "float": "DOUBLE", "bool": "BOOLEAN", "datetime": "TIMESTAMPTZ"}
    kinds = dict(FIELDS)
    columns = {src: types[kinds[src]] for src in SOURCE_COLUMNS.values()}

    def q(s: str) -> str:
        return "'" + s.replace("'", "''") + "'"

    read = (f"read_parquet([{', '.join(q(f.url) for f in files)}], union_by_name = true, filename = true, "
            "hive_partitioning = false)")
    # A column no file has (an older log) reads as null.
    present = {row[0] for row in con.sql(f"DESCRIBE SELECT * FROM {read}").fetchall()}

    def col(src: str, sql_type: str) -> str:
        return f'CAST("{src}" AS {sql_type})' if src in present else f"CAST(NULL AS {sql_type})"

    def count(nested: str, cond: str) -> str:
        return (f"CAST(len(list_filter(coalesce({nested}, []), lambda x: {cond})) AS BIGINT)" if nested in present
                else "CAST(0 AS BIGINT)")

    select = ", ".join(
        [f"CAST(regexp_extract(filename, {q(_PART_OF_PATH)}, 1) AS DATE) AS _part"]
        + [f"{col(src, columns[src])} AS {flat}" for flat, src in SOURCE_COLUMNS.items()]
        + [f"coalesce({col(FAILED_COUNT, 'BIGINT')}, {count('attempts', 'x.outcome IS DISTINCT FROM ' + q('ok'))})"
           " AS failed_attempts",
           f"{count('skipped', 'x.reason IS NOT DISTINCT FROM ' + q('circuit_open'))} AS circuit_open_skips"])
    return nw.from_native(con.sql(f"SELECT {select} FROM {read}"))


def _load_spark(log: Log, files: list[SourceFile], session: Any) -> Any:
    import narwhals as nw
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from .routelog import FIELDS

    spark = session or spark_session()
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    types = {"str": T.StringType(), "int": T.LongType(), "float": T.DoubleType(), "bool": T.BooleanType(),
             "datetime": T.TimestampType()}
    kinds = dict(FIELDS)
    # An explicit schema: a column a file lacks (an older log) reads as null.
    schema = T.StructType(
        [T.StructField(src, types[kinds[src]]) for src in (*SOURCE_COLUMNS.values(), FAILED_COUNT)]
        + [T.StructField(c, T.ArrayType(T.StructType([T.StructField(f, T.StringType())])))
           for c, f in (("attempts", "outcome"), ("skipped", "reason"))])

    def spark_url(url: str) -> str:
        return "s3a://" + url[5:] if url.startswith("s3://") else url

    frame = spark.read.schema(schema).parquet(*(spark_url(f.url) for f in files))

    def count(col: str, pred: Callable[[Any], Any]) -> Any:
        return F.size(F.filter(F.coalesce(F.col(col), F.array()), pred)).cast("long")

    return nw.from_native(frame.select(
        F.regexp_extract(F.col("_metadata.file_path"), _PART_OF_PATH, 1).cast("date").alias("_part"),
        *(F.col(f"`{src}`").alias(flat) for flat, src in SOURCE_COLUMNS.items()),
        F.coalesce(F.col(FAILED_COUNT), count("attempts", lambda a: ~a["outcome"].eqNullSafe("ok")))
        .alias("failed_attempts"),
        count("skipped", lambda s: s["reason"].eqNullSafe("circuit_open")).alias("circuit_open_skips")))


LOADERS: dict[str, Callable[[Log, list[SourceFile], Any], Any]] = {
    "polars": _load_polars, "duckdb": _load_duckdb, "spark": _load_spark}


def spark_session(master: str | None = None) -> Any:
    """A SparkSession for rollups (UTC, no UI); an active session in this process is reused."""
    import shutil

    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise RuntimeError("the spark engine needs PySpark: pip install 'routekit[spark]'") from None
    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        return active
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise RuntimeError("the spark engine needs Java 17 (Debian: apt-get install openjdk-17-jre-headless)")
    spark = (SparkSession.builder.appName("routekit-rollup").master(master or "local[*]")
             .config("spark.sql.session.timeZone", "UTC").config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


# --- the incremental build ----------------------------------------------------------------------


@dataclass
class BuildReport:
    engine: str
    log: str
    records_read: int = 0
    rows_written: int = 0
    days_built: list[str] = field(default_factory=list)
    days_unchanged: int = 0
    days_removed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    session_seconds: float = 0.0   # engine start-up (Spark session), inside ``seconds``
    damage: Damage = field(default_factory=Damage)  # what the rollups leave out, all days (see ``damage()``)
    replaced: str = ""             # an older rollup format this build replaced (its folder), once

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        rate = self.records_read / self.seconds if self.seconds else 0.0
        head = (f"{self.engine}: read {self.records_read:,} records from {len(self.days_built)} changed day(s), "
                f"wrote {self.rows_written:,} rollup rows in {self.seconds:.2f} s")
        extra = [f"{rate:,.0f} records/s" if self.records_read else "",
                 f"{self.days_unchanged} day(s) unchanged",
                 f"{len(self.days_removed)} removed" if self.days_removed else "",
                 f"engine start {self.session_seconds:.1f} s" if self.session_seconds >= 0.5 else ""]
        tail = f"; {self.damage.summary()} (left out of the rollups, files untouched)" if self.damage.skipped else ""
        return (replaced_message(self.replaced) + "\n" if self.replaced else "") + \
            head + " (" + ", ".join(e for e in extra if e) + ")" + tail


def replaced_message(old: str) -> str:
    return (f"rollups in an older format ({old}) are not read: rebuilt every day as {ROLLUP_DIR} "
            f"(the histogram now in each row); {old} can be deleted")


# Source bytes per engine query, so that memory stays flat with the log's length: polars takes a few
# days at a time (~16 MiB of Parquet is ~200k records, ~375 MB at peak on the bench's log; its queries
# start in milliseconds), DuckDB as many (~600 MB at peak; 930 MB for 32 MiB), Spark more (a Spark job
# costs seconds to start).  A batch's binned rows are then folded in polars at once.
BYTES_PER_QUERY = {"polars": 16 << 20, "duckdb": 16 << 20, "spark": 128 << 20}


def build_rollups(log: str | os.PathLike, engine: str = "polars", *, spark_master: str | None = None,
                  session: Any = None, force: bool = False, storage_options: dict | None = None,
                  progress: bool = False) -> BuildReport:
    """Bring ``LOG/_rollups/v3`` up to date with the log; returns what was read and written, and what is skipped."""
    from tqdm import tqdm

    if engine not in LOADERS:
        raise ValueError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    t0 = time.perf_counter()
    where = Log.at(log, storage_options)
    report = BuildReport(engine=engine, log=os.fspath(log))
    fs = where.fs
    if not fs.isdir(where.root):  # a typo must not build an empty rollup
        raise FileNotFoundError(f"no route log at {log} (a directory of date=YYYY-MM-DD partitions)")
    if not force:
        manifest, sources = _read_manifest(where), where.sources()
        if manifest and _plan(where, manifest, sources, False) == ([], []):
            # Up to date: nothing is locked, read or written (a dashboard asks each time it loads).
            report.days_unchanged, report.damage = len(sources), _damage_of(manifest)
            report.seconds = time.perf_counter() - t0
            return report
    # ...nor write a _rollups folder into a directory that is not a log (its parent, a project)
    not_a_log(log, [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(where.root, detail=False)])
    fs.makedirs(f"{where.out}/_staging", exist_ok=True)
    run = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    staging = f"{where.out}/_staging/{run}"
    with _lock(where), where.reading():
        _clean_leftovers(where)
        fs.makedirs(staging, exist_ok=True)  # the engines write into it
        manifest = _read_manifest(where)
        if not manifest:
            report.replaced = _older_format(where)
            if report.replaced:
                logger.warning(replaced_message(report.replaced))
        sources = where.sources()   # again, under the lock: another build may have run since the check above
        stale, report.days_removed = _plan(where, manifest, sources, force)
        report.days_unchanged = len(sources) - len(stale)
        if stale and engine == "spark" and session is None:
            s0 = time.perf_counter()
            session = spark_session(spark_master)
            report.session_seconds = time.perf_counter() - s0
        try:
            with tqdm(total=len(stale), desc=f"rollup ({engine})", unit="day",
                      disable=None if progress else True) as bar:  # None: on a terminal only
                for batch in _batches(stale, sources, BYTES_PER_QUERY[engine]):
                    damage = {day: Damage() for day in batch}
                    tables = _roll_batch(where, engine, session, batch, sources, damage, staging)
                    for day in batch:
                        rows = tables[day]["hour"]
                        _publish(where, day, tables[day], run)
                        manifest[day] = {"sources": _signature(sources[day]), "rows": rows.height,
                                         "records": int(rows["requests"].sum())}
                        if damage[day].skipped:
                            manifest[day]["damage"] = damage[day].to_dict()
                        report.records_read += manifest[day]["records"]
                        report.rows_written += rows.height
                        report.days_built.append(day)
                        bar.update()
                    # The manifest vouches only for days whose files are in place: written after them.
                    _write_manifest(where, manifest, run)
            for day in report.days_removed:
                _remove_day(where, day)
                manifest.pop(day, None)
            _write_manifest(where, manifest, run)
        finally:
            if fs.exists(staging):
                fs.rm(staging, recursive=True)
    report.damage = _damage_of(manifest)
    report.seconds = time.perf_counter() - t0
    return report


def _plan(where: Log, manifest: dict, sources: dict[str, list[SourceFile]], force: bool) -> tuple[list[str], list[str]]:
    """(the days to build: new, changed, or their rollup files gone; the days whose source is gone)."""
    present = set.intersection(*({p.rsplit("/", 2)[-2].removeprefix("date=")
                                  for p in where.fs.glob(f"{where.out}/date=*/{name}")} for name in (PART, DAY_PART)))
    stale = sorted(d for d, files in sources.items()
                   if force or manifest.get(d, {}).get("sources") != _signature(files)
                   or (manifest[d]["rows"] and d not in present))
    return stale, sorted((set(manifest) | present) - set(sources))


def _roll_batch(where: Log, engine: str, session: Any, batch: list[str], sources: dict[str, list[SourceFile]],
                damage: dict[str, Damage], staging: str) -> dict[str, Any]:
    """The rollup tables of each day of ``batch`` (by grain, polars DataFrames); what was skipped is named in
    ``damage``.

    An engine that fails on files whose footers read (damage inside a Parquet part) gets a second try without the
    parts that do not read whole; a failure with no such part is a :class:`RollupError`.
    """
    import polars as pl

    from .routelog import error_line

    def run(files: list[SourceFile]) -> dict[str, dict[str, Any]]:
        try:
            if not files:
                rows = pl.LazyFrame(schema=_rows_schema())
            else:
                rows = _rows(LOADERS[engine](where, files, session), outside, where, f"{staging}/out")
            tables = finish(rows)
            out: dict[str, dict[str, Any]] = {day: {} for day in batch}
            for grain, df in zip(tables, pl.collect_all(list(tables.values()))):
                parts = df.partition_by("_part", as_dict=True, include_key=False)
                for day in batch:
                    out[day][grain] = parts.get((date.fromisoformat(day),), df.clear().drop("_part"))
            return out
        finally:
            if where.fs.exists(f"{staging}/out"):
                where.fs.rm(f"{staging}/out", recursive=True)

    def failed(e: Exception) -> RollupError:
        return RollupError(f"the {engine} engine failed on {batch[0]} .. {batch[-1]} ({error_line(e)}); "
                           "`routekit log scan` reads every file whole and names damage")

    screened = [_screen(where, sources[day], damage[day], f"{staging}/in") for day in batch]
    files = [f for day_files, _ in screened for f in day_files]
    outside = any(day_outside for _, day_outside in screened)
    try:
        try:
            return run(files)
        except Exception as e:  # noqa: BLE001 — each engine has its own error types
            bad = _verify(where, files, damage)
            if not bad:
                raise failed(e) from e
        try:
            return run([f for f in files if f.url not in bad])
        except Exception as e:  # noqa: BLE001
            raise failed(e) from e
    finally:
        if where.fs.exists(f"{staging}/in"):
            where.fs.rm(f"{staging}/in", recursive=True)


def _batches(days: list[str], sources: dict[str, list[SourceFile]], budget: int | None) -> Iterator[list[str]]:
    """Consecutive days, as many per batch as fit in ``budget`` source bytes (at least one)."""
    batch: list[str] = []
    size = 0
    for day in days:
        day_size = sum(f.size for f in sources[day])
        if batch and budget is not None and size + day_size > budget:
            yield batch
            batch, size = [], 0
        batch.append(day)
        size += day_size
    if batch:
        yield batch


def _clean_leftovers(where: Log) -> None:
    """Temporary files of an interrupted build (readers never look at them; we hold the lock)."""
    for pattern in (f"date=*/.{PART}.*", f"date=*/.{DAY_PART}.*", f"{MANIFEST}.*", "_staging/*"):
        for path in where.fs.glob(f"{where.out}/{pattern}"):
            where.fs.rm(path, recursive=True)


def _rows(flat: Any, screen: bool, where: Log, staging: str) -> Any:
    """The rollup rows in integer units (polars LazyFrame) of a loader's flat frame, computed on its engine."""
    import polars as pl

    prepared = prepare(flat, screen)
    if prepared.implementation.is_polars():
        return _rows_polars(prepared.to_native()).collect().lazy()
    # DuckDB and Spark write their binned rows with their own Parquet writers (no Arrow bridge needed).
    binned(prepared).sink_parquet(where.url(staging))
    parts = [staging] if where.fs.isfile(staging) else sorted(where.fs.glob(f"{staging}/*.parquet"))
    rows = pl.scan_parquet([where.url(p) for p in parts], storage_options=where.storage_options or None)
    return fold(rows.with_columns(pl.col("latency_bin").cast(pl.Int32)), ROW_KEYS, UNITS)


def _write_manifest(where: Log, manifest: dict, run: str) -> None:
    _write_json(where, f"{where.out}/{MANIFEST}", {"version": ROLLUP_VERSION, "days": manifest}, run)


def _signature(files: list[SourceFile]) -> dict[str, list]:
    return {f.name: [f.size, f.mtime] for f in files}


def _damage_of(manifest: dict[str, dict]) -> Damage:
    total = Damage()
    for day in sorted(manifest):
        if "damage" in manifest[day]:
            total.merge(Damage.from_dict(manifest[day]["damage"]))
    return total


def damage(log: str | os.PathLike, storage_options: dict | None = None) -> Damage:
    """What the rollups of ``log`` leave out, as their last build recorded it: damaged files, bad lines and records
    outside their domain, each named (empty if nothing was skipped or no rollup was built)."""
    return _damage_of(_read_manifest(Log.at(log, storage_options)))


def fingerprint(log: str | os.PathLike, storage_options: dict | None = None) -> str:
    """What the rollups of ``log`` hold, in one string: a hash of the manifest, which names each day's sources and
    rows (a build that changes nothing leaves it as it was).  Equal strings, equal tables; "" when none is built."""
    import hashlib

    where = Log.at(log, storage_options)
    path = f"{where.out}/{MANIFEST}"
    return hashlib.sha256(where.fs.cat_file(path)).hexdigest() if where.fs.exists(path) else ""


def _older_format(where: Log) -> str:
    """The folder of the newest rollup of an older contract beside ours ("" if none)."""
    base = where.out.rsplit("/", 1)[0]
    older = [v for v in range(1, ROLLUP_VERSION) if where.fs.exists(f"{base}/v{v}")]
    return f"{base}/v{older[-1]}" if older else ""


def _read_manifest(where: Log) -> dict[str, dict]:
    path = f"{where.out}/{MANIFEST}"
    if not where.fs.exists(path):
        return {}
    try:
        data = json.loads(where.fs.cat_file(path))
    except ValueError:  # a damaged manifest vouches for nothing: every day is built again
        return {}
    return data.get("days", {}) if isinstance(data, dict) and data.get("version") == ROLLUP_VERSION else {}


def _publish(where: Log, day: str, tables: dict[str, Any], run: str) -> None:
    """Write one day's rollup (hour and day grain) beside their place, then rename each over the old one (a day
    counts as present only with both)."""
    folder = f"{where.out}/date={day}"
    if tables["hour"].is_empty():
        _remove_day(where, day)
        return
    where.fs.makedirs(folder, exist_ok=True)
    for name, table in ((PART, tables["hour"]), (DAY_PART, tables["day"])):
        tmp = f"{folder}/.{name}.{run}"
        with where.fs.open(tmp, "wb") as f:
            table.write_parquet(f, compression="zstd", compression_level=1)  # the fastest here, and small
        _replace(where, tmp, f"{folder}/{name}")


def _write_json(where: Log, path: str, data: dict, run: str) -> None:
    tmp = f"{path}.{run}"
    with where.fs.open(tmp, "w") as f:
        f.write(json.dumps(data, indent=1, sort_keys=True))  # one write: json.dump writes each token (~7 ms here)
    _replace(where, tmp, path)


def _replace(where: Log, tmp: str, path: str) -> None:
    if where.local:
        os.replace(tmp, path)  # atomic on one filesystem
    else:
        where.fs.mv(tmp, path)  # object stores: the target object appears whole


def _remove_day(where: Log, day: str) -> None:
    folder = f"{where.out}/date={day}"
    if where.fs.exists(folder):
        where.fs.rm(folder, recursive=True)


@contextlib.contextmanager
def _lock(where: Log) -> Iterator[None]:
    if not where.local:
        yield
        return
    import fcntl

    with open(f"{where.out}/.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


# --- the read side: finishing numbers in polars --------------------------------------------------


def load_rollups(log: str | os.PathLike, since: date | str | None = None, until: date | str | None = None,
                 build: bool = True, storage_options: dict | None = None, progress: bool = False,
                 grain: str = "hour") -> Any:
    """The rollup table (contract v3) of ``grain`` (hour or day) as a LazyFrame, days ``since``..``until``
    inclusive."""
    import polars as pl

    schema = rollup_schema(grain)
    if build:
        build_rollups(log, storage_options=storage_options, progress=progress)
    where = Log.at(log, storage_options)
    since, until = parse_period(since, until)
    files = []
    name = PART if grain == "hour" else DAY_PART
    for path in sorted(where.fs.glob(f"{where.out}/date=*/{name}")):
        day = date.fromisoformat(path.rsplit("/", 2)[-2].removeprefix("date="))
        # A day's file may hold a mis-partitioned record of the next/previous day: prune with slack.
        if (since is None or day.toordinal() >= since.toordinal() - 1) and \
                (until is None or day.toordinal() <= until.toordinal() + 1):
            files.append(where.url(path))
    if not files:
        return pl.LazyFrame(schema=schema)
    frame = pl.scan_parquet(files, hive_partitioning=False, storage_options=where.storage_options or None)
    if since is not None:
        frame = frame.filter(pl.col("date") >= since)
    if until is not None:
        frame = frame.filter(pl.col("date") <= until)
    return frame.select(list(schema)).cast(schema)


def merge(frame: Any, by: list[str] | tuple[str, ...] = ()) -> Any:
    """Rollup rows merged per group of ``by`` (a LazyFrame): every measure summed, histograms added bin by bin.

    The merge is exact: a rollup built in parts and merged equals the rollup built at once."""
    import polars as pl

    lf = frame.lazy().with_columns(_all=pl.lit(True))
    keys = list(by) or ["_all"]
    out = _added(lf, keys, [total(m) for m in lf.collect_schema() if m in MEASURE_ORDER])
    return out.drop("_all") if not by else out


def _added(lf: Any, keys: list[str], aggs: list[Any]) -> Any:
    """One row per group of ``keys``: ``aggs``, and the group's histograms added bin by bin."""
    import polars as pl

    groups, bins = _grouped(lf, keys, *aggs)
    # _grouped's bins come sorted: gathered in order, each list is sorted.
    hist = bins.group_by("_g", maintain_order=True).agg(pl.struct(bin="latency_bin", n="requests").alias(HIST))
    return (groups.join(hist, on="_g", how="left").drop("_g")
            .with_columns(pl.col(HIST).fill_null(pl.lit([], dtype=hist_type()))))


def total(measure: str, where: Any = None) -> Any:
    """The sum of a measure over rollup rows (of those meeting ``where``), exact: money and ms go back to their
    integer units (a stored value is a whole number of them), are summed, and divided once, so that any grain and
    any order give the same sum."""
    import polars as pl

    col = pl.col(measure) if where is None else pl.col(measure).filter(where)
    if measure not in SCALED:
        return col.sum()
    unit = SCALED[measure][1]
    return (col * unit).round().cast(pl.Int64).sum().cast(pl.Float64).truediv(unit).alias(measure)


# The domain's latencies (0.01 ms .. 1e8 ms) make bins -200 .. 800: a bin fits in 16 bits beside a group number.
_BIN_SPAN = 1 << 16


def _grouped(lf: Any, keys: list[str], *aggs: Any) -> tuple[Any, Any]:
    """(one row per group of ``keys`` with ``aggs``, numbered ``_g``; its histograms as columns ``_g``,
    ``latency_bin``, ``requests``: one row per group and occupied bin, sorted by both)."""
    import polars as pl

    groups = (lf.group_by(keys).agg(*aggs) if aggs else lf.select(keys).unique()).with_row_index("_g")
    bins = (lf.select(*keys, HIST).join(groups.select(*keys, "_g"), on=keys, nulls_equal=True)
            .select("_g", HIST).explode(HIST).unnest(HIST).drop_nulls("bin"))
    # Bins added per group as one integer key (the group number and the bin): faster than by the two columns.
    code = pl.col("_g").cast(pl.Int64) * _BIN_SPAN + pl.col("bin") + _BIN_SPAN // 2
    return groups, (bins.group_by(code.alias("_c")).agg(requests=pl.col("n").sum()).sort("_c")
                    .select(_g=(pl.col("_c") // _BIN_SPAN).cast(pl.UInt32),
                            latency_bin=(pl.col("_c") % _BIN_SPAN - _BIN_SPAN // 2).cast(pl.Int32),
                            requests="requests"))


def percentiles(frame: Any, by: list[str] | tuple[str, ...] = (),
                qs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> Any:
    """Latency quantiles per group of ``by`` from summed histograms: columns ``p50_ms``, ``p95_ms``...

    Inside the bin holding the target rank the value is interpolated log-linearly, as if the
    bin's requests were spread evenly over its width.
    """
    import polars as pl

    keys = list(by) or ["_all"]
    groups, bins = _grouped(frame.lazy().with_columns(_all=pl.lit(True)), keys)
    out = groups.join(_percentiles(bins, qs), on="_g", how="left").drop("_g")
    return out.collect().drop("_all") if not by else out.collect()


def _percentiles(bins: Any, qs: tuple[float, ...]) -> Any:
    """Quantiles per group (``_g``) from ``_grouped``'s bins: one row per group and bin, sorted by both."""
    import polars as pl

    n, cum = pl.col("n"), pl.col("cum")
    hist = (bins.rename({"requests": "n"}).filter(n > 0)
            .with_columns(cum=n.cum_sum().over("_g"), total=n.sum().over("_g")))

    def quantile(q: float) -> pl.Expr:
        # Request k (0-based, in latency order) spans [k, k+1) of the cumulative count; the quantile
        # is request q*(N-1) (the usual definition), so aim at its middle: one bin per group holds it.
        target = q * (pl.col("total") - 1) + 0.5
        frac = (target - (cum - n)) / n
        value = pl.lit(10.0).pow((pl.col("latency_bin") + frac) / BINS_PER_DECADE)
        return pl.when((cum >= target) & (cum - n < target)).then(value).max()

    return hist.group_by("_g").agg(**{f"p{q * 100:g}_ms": quantile(q) for q in qs})


def summarize(frame: Any, by: list[str] | tuple[str, ...] = ()) -> Any:
    """Dashboard numbers per group of ``by`` (any rollup keys; empty = one total row)."""
    import polars as pl

    keys = list(by) or ["_all"]
    measures = ("requests", "latency_ms_sum", "cost_usd", "input_tokens", "output_tokens", "failed_cost_usd",
                "cache_savings_usd")

    def where(cond: pl.Expr) -> pl.Expr:
        return pl.when(cond).then(pl.col("requests")).sum()  # faster than a filter inside the group

    lf = frame.lazy().with_columns(_all=pl.lit(True))
    groups, bins = _grouped(lf, keys, where(pl.col("outcome") == "served").alias("served"),
                       where(pl.col("outcome") == "failed").alias("failed"),
                       where(pl.col("outcome") == "blocked").alias("blocked"),
                       where(pl.col("fallback_used")).alias("_fallback"), where(pl.col("degraded")).alias("_degraded"),
                       *(total(c).alias(c) for c in measures))
    share = lambda c: pl.when(pl.col("requests") > 0).then(pl.col(c) / pl.col("requests"))  # noqa: E731
    out = (groups.join(_percentiles(bins, (0.5, 0.95, 0.99)), on="_g", how="left")
           .with_columns(error_rate=share("failed"), fallback_rate=share("_fallback"),
                         degraded_rate=share("_degraded"), mean_ms=share("latency_ms_sum"),
                         cost_per_success_usd=pl.when(pl.col("served") > 0)
                         .then(pl.col("cost_usd") / pl.col("served")))
           .select(*keys, "requests", "served", "failed", "blocked", "error_rate", "fallback_rate",
                   "degraded_rate", "p50_ms", "p95_ms", "p99_ms", "mean_ms", "cost_usd", "cost_per_success_usd",
                   "input_tokens", "output_tokens", "failed_cost_usd", "cache_savings_usd")
           .sort("requests", *keys, descending=[True] + [False] * len(keys), nulls_last=True)
           .collect())
    return out.drop("_all") if not by else out
