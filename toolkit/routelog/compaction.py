"""Compaction: closed days from JSON lines to Parquet, one safe step at a time (package docstring: Compaction)."""
from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from ..errors import Busy
from .domain import DOMAIN_ID, DOMAIN_MARK
from .files import COMPACT_LOCK, DEFAULT_LOG_DIR, JSONL_NAME, STATE_LOCK, flocked, fsync, fsync_dir, new_id, today, write_atomic
from .reader import Damage, read_jsonl
from .schema import polars_schema


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
    the run to some days.  Raises :class:`Busy` if another compaction is running.
    """
    root = Path(root)
    report = CompactReport()
    if not root.is_dir():
        return report
    before = min(before or today(), today())
    wanted = set(days) if days is not None else None
    lock = os.open(root / COMPACT_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"another compaction is running on {root}") from None
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
    with flocked(part.parent / STATE_LOCK, fcntl.LOCK_EX):
        try:
            fd = os.open(active, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # wait for an append in progress to finish
            if os.fstat(fd).st_size == 0:
                os.unlink(active)
                return None
            sealed = part / f"sealed-{new_id()}.jsonl"
            os.rename(active, sealed)
            fsync_dir(part)
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
        write_atomic(part / f"rejected-{ident}.jsonl", b"\n".join(rejected) + b"\n")
    tmp = part / f".part-{ident}.parquet.tmp"
    df.write_parquet(tmp, compression="zstd", statistics=True, metadata={DOMAIN_MARK: DOMAIN_ID})  # read_jsonl checked
    fsync(tmp)
    final = part / f"part-{ident}.parquet"
    with flocked(part.parent / STATE_LOCK, fcntl.LOCK_EX):
        os.rename(tmp, final)  # the commit point
        fsync_dir(part)
    return df.height, scan.bad_lines, final


def _cleanup(sealed: Path) -> None:
    """Step 3: the sealed file is now redundant (its twin is committed)."""
    with flocked(sealed.parent.parent / STATE_LOCK, fcntl.LOCK_EX):
        sealed.unlink(missing_ok=True)


