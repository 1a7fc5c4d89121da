"""Compaction to Parquet: idempotent, safe to interrupt at every step, safe beside live writers."""
from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from toolkit import routelog
from toolkit.errors import Busy
from toolkit.routelog import compaction
from toolkit.routelog import (COMPACT_LOCK, JSONL_NAME, RouteLogWriter, compact, polars_schema,
                              scan_log)


def day(offset: int) -> str:
    return (datetime.now(timezone.utc).date() + timedelta(days=offset)).isoformat()


def record(i: int, d: str, **kw) -> dict:
    return {"request_id": f"r-{d}-{i}", "timestamp": f"{d}T{i % 24:02d}:00:00.{i:06d}Z", "team": f"t{i % 3}",
            "cost_usd": 0.01 * i, "attempts": [{"alias": "a", "outcome": "ok", "cost_usd": 0.01 * i}], **kw}


@pytest.fixture
def log(log_dir):
    """Three closed days (one with a garbage line and a torn line) and today."""
    with RouteLogWriter(log_dir) as w:
        for d in (day(-3), day(-2), day(-1), day(0)):
            w.write_records(record(i, d) for i in range(50))
    with open(log_dir / f"date={day(-2)}" / JSONL_NAME, "ab") as f:
        f.write(b"garbage\n" + json.dumps(record(99, day(-2))).encode()[:30])
    return log_dir


def totals(log_dir: Path) -> tuple[int, int, float, int]:
    scan = scan_log(log_dir)
    df = scan.frame.collect()
    assert df["request_id"].n_unique() == df.height  # nothing counted twice
    return df.height, scan.bad_lines, round(df["cost_usd"].sum(), 9), df.filter(pl.col("team") == "t1").height


def files(log_dir: Path) -> set[str]:
    return {str(p.relative_to(log_dir)) for p in log_dir.rglob("*") if p.is_file() and not p.name.startswith(".")}


def test_compact_closed_days_to_hive_parquet(log):
    before = totals(log)
    assert before[:2] == (200, 2)
    report = compact(log)
    assert sorted(report.days) == [day(-3), day(-2), day(-1)]
    assert report.records == 150 and report.bad_lines == 2
    assert totals(log) == before
    for d in (day(-3), day(-2), day(-1)):
        names = os.listdir(log / f"date={d}")
        assert not [n for n in names if n.endswith(".jsonl") and not n.startswith("rejected-")]
        assert len([n for n in names if n.endswith(".parquet")]) == 1
    assert os.listdir(log / f"date={day(0)}") == [JSONL_NAME]   # today stays open
    # Plain hive-partitioned Parquet that any engine reads (the date comes from the path).
    plain = pl.scan_parquet(log / "**" / "*.parquet", hive_partitioning=True).collect()
    assert plain.height == 150 and plain.schema["date"] == pl.Date
    assert dict(plain.drop("date").schema) == polars_schema()
    assert (plain["timestamp"].dt.date() == plain["date"]).all()


def test_compact_is_idempotent(log):
    compact(log)
    after_first = (totals(log), files(log))
    report = compact(log)
    assert report.records == 0 and report.days == []
    assert (totals(log), files(log)) == after_first


def _crash(*_a, **_k):
    raise KeyboardInterrupt("simulated crash")


@pytest.mark.parametrize("point", ["after_seal", "after_rejected_and_tmp", "after_commit"])
def test_interrupted_compaction_loses_and_doubles_nothing(log, monkeypatch, point):
    before = totals(log)
    target = {"after_seal": "_convert", "after_rejected_and_tmp": "fsync", "after_commit": "_cleanup"}[point]
    with monkeypatch.context() as m:
        m.setattr(compaction, target, _crash)
        with pytest.raises(KeyboardInterrupt):
            compact(log)
    leftovers = os.listdir(log / f"date={day(-3)}")
    if point == "after_seal":
        assert [n for n in leftovers if n.startswith("sealed-")] and JSONL_NAME not in leftovers
    elif point == "after_rejected_and_tmp":
        assert [n for n in leftovers if n.startswith(".part-")]
    else:
        assert [n for n in leftovers if n.startswith("sealed-")] and [n for n in leftovers if n.endswith(".parquet")]
    assert totals(log) == before             # readers see the same log mid-way
    compact(log)                             # the next run finishes the job
    assert totals(log) == before
    assert not [f for f in log.rglob("*") if f.name.startswith(("sealed-", ".part-"))]


def test_each_step_by_hand_keeps_counts(log):
    # The three internal steps, one at a time, on the day with bad lines.
    part = log / f"date={day(-2)}"
    before = totals(log)
    sealed = routelog.seal(part)
    assert sealed.exists() and not (part / JSONL_NAME).exists()
    assert totals(log) == before
    rejected = part / sealed.name.replace("sealed-", "rejected-")
    n, bad, parquet = compaction._convert(sealed)
    assert (n, bad) == (50, 2) and parquet.exists()
    assert rejected.read_bytes().count(b"\n") == 2 and rejected.read_bytes().startswith(b"garbage\n")
    assert totals(log) == before
    compaction._cleanup(sealed)
    assert not sealed.exists()
    assert totals(log) == before


def test_rejected_lines_count_only_once_their_parquet_is_committed(log):
    # A crash after writing rejected-<id> but before the Parquet commit: the sealed file still rules.
    part = log / f"date={day(-2)}"
    sealed = routelog.seal(part)
    ident = sealed.name[len("sealed-"):-len(".jsonl")]
    (part / f"rejected-{ident}.jsonl").write_bytes(b"garbage\n{half\n")
    assert totals(log)[1] == 2


def test_writer_with_an_open_file_follows_the_seal(log):
    w = RouteLogWriter(log)
    w.write(record(1000, day(-1)))             # holds an open descriptor on yesterday's file
    compact(log)
    w.write(record(1001, day(-1)))             # a late record: lands in a new routes.jsonl
    assert (log / f"date={day(-1)}" / JSONL_NAME).read_text().count("\n") == 1
    ids = scan_log(log, start=day(-1), end=day(-1)).frame.collect()["request_id"].to_list()
    assert len(ids) == 52 and f"r-{day(-1)}-1001" in ids
    compact(log)
    assert len([n for n in os.listdir(log / f"date={day(-1)}") if n.endswith(".parquet")]) == 2
    assert totals(log)[0] == 202


def test_second_compactor_is_refused(log):
    fd = os.open(log / COMPACT_LOCK, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(Busy, match="another compaction"):
            compact(log)
    finally:
        os.close(fd)


def test_old_parquet_without_new_columns_still_reads(log_dir):
    # A part written by an older schema (fewer columns) reads with nulls for the new ones.
    part = log_dir / "date=2026-01-01"
    part.mkdir(parents=True)
    pl.DataFrame({"request_id": ["old"], "timestamp": [datetime(2026, 1, 1, tzinfo=timezone.utc)],
                  "team": ["x"]}).write_parquet(part / "part-old.parquet")
    df = scan_log(log_dir).frame.collect()
    assert df.height == 1 and dict(df.schema) == polars_schema() and df["cost_usd"][0] is None


# --- the must-show concurrency test ------------------------------------------------------------

PROCESSES, THREADS, PER_THREAD = 2, 4, 50_000


def _writer_process(root: str, p: int, days: tuple[str, str]) -> None:
    w = RouteLogWriter(Path(root))

    def run(t: int) -> None:
        for i in range(PER_THREAD):
            d = days[i % 2]  # half to a closed day, which the parent compacts while we write
            w.write({"request_id": f"{p}-{t}-{i}", "timestamp": f"{d}T12:00:00.000000Z", "team": f"p{p}",
                     "intent": f"t{t}", "prompt_tokens": i,
                     "attempts": [{"alias": "fast", "outcome": "ok", "input_tokens": i}]})

    threads = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


@pytest.mark.slow
def test_two_processes_four_threads_with_compaction_running(log_dir):
    ctx = multiprocessing.get_context("spawn")
    days = (day(-1), day(0))
    procs = [ctx.Process(target=_writer_process, args=(str(log_dir), p, days)) for p in range(PROCESSES)]
    for proc in procs:
        proc.start()
    runs = 0
    while any(proc.is_alive() for proc in procs):
        time.sleep(0.3)
        compact(log_dir)          # seals yesterday's file under the writers' feet
        runs += 1
    for proc in procs:
        proc.join()
        assert proc.exitcode == 0
    compact(log_dir)
    for line in (log_dir / f"date={day(0)}" / JSONL_NAME).read_bytes().splitlines():
        json.loads(line)          # every line of the live file parses
    scan = scan_log(log_dir)
    df = scan.frame.select("team", "intent", "prompt_tokens").collect()
    assert scan.bad_lines == 0
    assert df.height == PROCESSES * THREADS * PER_THREAD == 400_000
    per_writer = df.group_by("team", "intent").agg(pl.col("prompt_tokens").n_unique().alias("n"),
                                                   pl.len().alias("rows"))
    assert per_writer.height == PROCESSES * THREADS
    assert (per_writer["n"] == PER_THREAD).all() and (per_writer["rows"] == PER_THREAD).all()
    assert runs >= 2 and len(list((log_dir / f"date={day(-1)}").glob("part-*.parquet"))) >= 2
