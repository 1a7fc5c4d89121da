"""The route log writer and reader: schema, secrets, bad lines, crash safety."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolkit.redact import REDACTED, SECRET_PATTERNS
from toolkit.routelog import (JSONL_NAME, RouteLogWriter, may_hold_secret, normalise_timestamp, polars_schema,
                              scan_log)

ROOT = Path(__file__).resolve().parent.parent


def rec(i: int, ts: str = "2026-03-04T10:00:00.000000Z", **kw) -> dict:
    r = {"request_id": f"req-{i}", "timestamp": ts, "team": "support", "intent": "triage",
         "gen_ai.usage.input_tokens": 10 + i, "cost_usd": 0.001 * i, "source": "router",
         "attempts": [{"alias": "fast", "model": "openai/gpt-4o-mini", "outcome": "ok", "latency_ms": 12.5,
                       "input_tokens": 10 + i, "cost_usd": 0.001 * i}],
         "skipped": [{"alias": "mid", "reason": "below_floor", "detail": "tier 1 < min_tier 2"}]}
    r.update(kw)
    return r


def test_round_trip_keeps_schema_and_unknown_fields(log_dir):
    with RouteLogWriter(log_dir) as w:
        w.write(rec(1, team_owner="alice"))          # unknown key: goes to extra, never dropped
        w.write(rec(2, ts="2026-03-04T12:30:00+02:00"))  # any ISO offset: stored as UTC
    scan = scan_log(log_dir)
    df = scan.frame.collect()
    assert dict(df.schema) == polars_schema()
    assert scan.bad_lines == 0 and df.height == 2
    one, two = df.sort("request_id").to_dicts()
    assert json.loads(one["extra"]) == {"team_owner": "alice"}
    assert one["attempts"][0]["cost_usd"] == pytest.approx(0.001)
    assert two["timestamp"].isoformat() == "2026-03-04T10:30:00+00:00"
    lines = (log_dir / "date=2026-03-04" / JSONL_NAME).read_text().splitlines()
    assert [json.loads(x)["timestamp"] for x in lines] == ["2026-03-04T10:00:00.000000Z", "2026-03-04T10:30:00.000000Z"]


def test_records_partition_by_utc_day(log_dir):
    with RouteLogWriter(log_dir) as w:
        w.write_records([rec(1, ts="2026-03-04T23:59:59.999999Z"), rec(2, ts="2026-03-05T01:00:00+03:00"),
                         rec(3, ts="2026-03-05T00:00:00Z")])
    days = {p.name: len(p.joinpath(JSONL_NAME).read_text().splitlines()) for p in log_dir.glob("date=*")}
    assert days == {"date=2026-03-04": 2, "date=2026-03-05": 1}
    assert scan_log(log_dir, start="2026-03-05").frame.collect()["request_id"].to_list() == ["req-3"]
    assert scan_log(log_dir, end="2026-03-04").frame.collect().height == 2


@pytest.mark.parametrize("bad, field", [({"request_id": None}, "request_id"), ({"timestamp": "yesterday"}, "timestamp"),
                                        ({"timestamp": None}, "timestamp")])
def test_bad_record_is_refused_naming_the_field(log_dir, bad, field):
    with pytest.raises(ValueError, match=field):
        RouteLogWriter(log_dir).write(rec(1, **bad))
    assert not log_dir.exists() or not any(log_dir.rglob("*.jsonl"))


def test_secrets_are_scrubbed_from_every_field(log_dir):
    key = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 2
    r = rec(1, team=f"team {key}", error_note=f"Authorization: Bearer {key}", headers={"x-api-key": key, "n": 1})
    r["attempts"][0]["message"] = f"401 Incorrect API key provided: {key}"
    r["skipped"][0]["detail"] = f"disabled by ops, api_key={key}"
    RouteLogWriter(log_dir).write(r)
    text = (log_dir / "date=2026-03-04" / JSONL_NAME).read_text()
    assert key not in text and "A1b2C3d4E5f6G7h8I9j0" not in text
    assert not any(p.search(text) for p in SECRET_PATTERNS)
    assert text.count(REDACTED) >= 4
    row = scan_log(log_dir).frame.collect().row(0, named=True)
    assert row["attempts"][0]["message"].startswith("401 Incorrect API key provided: ")
    assert json.loads(row["extra"])["headers"] == {"x-api-key": REDACTED, "n": 1}  # still JSON, value by value


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_secret_prefilter_catches_every_secret_pattern(data):
    # The writer only runs the (slow) patterns on lines that trip may_hold_secret: it must never miss.
    pattern = data.draw(st.sampled_from(SECRET_PATTERNS))
    text = data.draw(st.from_regex(pattern, fullmatch=False).filter(lambda s: "\n" not in s))
    if pattern.search(text):
        assert may_hold_secret(text)


def test_truncated_last_line_and_garbage_line_are_counted_not_fatal(log_dir):
    with RouteLogWriter(log_dir) as w:
        for i in range(10):
            w.write(rec(i))
    path = log_dir / "date=2026-03-04" / JSONL_NAME
    lines = path.read_bytes().splitlines(keepends=True)
    lines.insert(4, b"\x00\x01 this is not json \xff\n")         # a line of garbage
    lines[-1] = lines[-1][: len(lines[-1]) // 2]                  # a truncated last line (crash mid-write)
    path.write_bytes(b"".join(lines))
    scan = scan_log(log_dir)
    df = scan.frame.collect()
    assert scan.bad_lines == 2
    assert sorted(df["request_id"].to_list()) == sorted(f"req-{i}" for i in range(9))
    assert f"{path}:5: not a route record" in scan.examples[0]
    assert f"{path}:11: not a route record" in scan.examples[1]
    assert "2 bad lines" in scan.report()


def test_each_kind_of_bad_line_is_reported_with_its_reason(log_dir):
    RouteLogWriter(log_dir).write(rec(0))
    path = log_dir / "date=2026-03-04" / JSONL_NAME
    with open(path, "ab") as f:
        f.write(b'[1, 2, 3]\n')                                                   # JSON, not an object
        f.write(b'{"timestamp": "2026-03-04T10:00:00Z", "team": "x"}\n')         # no request_id
        f.write(b'{"request_id": "r", "timestamp": "not a time"}\n')              # unreadable timestamp
        f.write(b'{"request_id": "r2", "timestamp": "2026-03-04T10:00:00Z", "attempts": 7}\n')  # wrong type
        f.write(json.dumps(rec(1)).encode() + b"\n")
    scan = scan_log(log_dir)
    assert scan.frame.collect()["request_id"].sort().to_list() == ["req-0", "req-1"]
    assert scan.bad_lines == 4
    reasons = " | ".join(scan.examples)
    for expected in (":2: not a route record: a JSON list", ":3: no request_id", ":4: missing or unreadable timestamp",
                     ":5: not a route record"):
        assert expected in reasons


def test_torn_line_never_swallows_the_next_record(log_dir):
    w = RouteLogWriter(log_dir)
    w.write(rec(0))
    path = log_dir / "date=2026-03-04" / JSONL_NAME
    with open(path, "ab") as f:
        f.write(json.dumps(rec(1)).encode()[:40])   # another writer died mid-line
    w.write(rec(2))
    RouteLogWriter(log_dir).write(rec(3))
    scan = scan_log(log_dir)
    assert sorted(scan.frame.collect()["request_id"].to_list()) == ["req-0", "req-2", "req-3"]
    assert scan.bad_lines == 1 and ":2:" in scan.examples[0]


CRASH_CHILD = """
import sys, itertools
from toolkit.routelog import RouteLogWriter
w = RouteLogWriter(sys.argv[1])
for i in itertools.count():
    w.write({"request_id": f"c-{i}", "timestamp": "2026-03-04T10:00:00Z", "prompt_tokens": i,
             "attempts": [{"alias": "a", "message": "x" * 2000}]})
    if i == 200:
        print("ready", flush=True)
"""


def test_killed_writer_loses_at_most_the_record_in_flight(log_dir):
    child = subprocess.Popen([sys.executable, "-c", CRASH_CHILD, str(log_dir)], cwd=ROOT, stdout=subprocess.PIPE)
    assert child.stdout.readline().strip() == b"ready"
    time.sleep(0.3)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    RouteLogWriter(log_dir).write(rec(99))       # life goes on after the crash
    scan = scan_log(log_dir)
    ids = scan.frame.collect().filter(pl.col("request_id").str.starts_with("c-"))["prompt_tokens"].sort().to_list()
    assert len(ids) > 200 and ids == list(range(len(ids)))   # every acknowledged record is there, in order
    assert scan.bad_lines <= 1                                # at most the line being written
    assert "req-99" in scan.frame.collect()["request_id"].to_list()


def test_forked_child_gets_its_own_descriptor(log_dir):
    w = RouteLogWriter(log_dir)
    w.write(rec(0))
    parent_fd = w._fds["2026-03-04"]
    pid = os.fork()
    if pid == 0:  # child: must not share the parent's open file (flock would not separate them)
        try:
            w.write(rec(1))
            ok = w._fds["2026-03-04"][1] == os.getpid()
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    w.write(rec(2))
    assert w._fds["2026-03-04"] == parent_fd
    assert sorted(scan_log(log_dir).frame.collect()["request_id"]) == ["req-0", "req-1", "req-2"]


def test_normalise_timestamp_forms():
    assert normalise_timestamp("2026-03-04T10:00:00Z") == "2026-03-04T10:00:00.000000Z"
    assert normalise_timestamp("2026-03-04 10:00:00.5") == "2026-03-04T10:00:00.500000Z"   # naive = UTC
    assert normalise_timestamp(0) == "1970-01-01T00:00:00.000000Z"


def test_empty_or_missing_log_reads_as_empty_frame(tmp_path):
    scan = scan_log(tmp_path / "nothing")
    assert scan.frame.collect().height == 0 and dict(scan.frame.collect_schema()) == polars_schema()
