"""Readers skip and name damage: a Parquet part that does not read, a bad line, a value outside its domain.

Issue 14, part 5.  Each damaged file is made the way it happens (a copy cut short, an empty file, garbage bytes, pages
overwritten under an intact footer); the tests check that the rest of the log still reads, that every skip is named
(file, line or request), that nothing on disk changes, and that the writer refuses such values in the first place.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import struct
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.cli import main
from toolkit.routelog import (DOMAIN, OUTCOMES, RouteLogWriter, compact, domain_problems, outside_domain,
                              polars_schema, record_line, scan_log)

DAY = "2026-03-04"
DAMAGE = ("truncated", "empty", "random", "pages")


def rec(i: int, **kw) -> dict:
    r = {"request_id": f"req-{i}", "timestamp": f"{DAY}T10:00:00.000000Z", "team": "support", "intent": "triage",
         "outcome": "served", "gen_ai.usage.input_tokens": 10 + i, "cost_usd": 0.001 * i, "latency_ms": 100.0 + i,
         "source": "router", "attempts": [{"alias": "fast", "outcome": "ok", "cost_usd": 0.001 * i}]}
    r.update(kw)
    return r


def damage_part(good: Path, dst: Path, kind: str) -> Path:
    """``dst`` as a damaged copy of the Parquet part ``good``."""
    data = good.read_bytes()
    if kind == "truncated":      # a copy cut short (disk full, a killed rsync)
        data = data[: len(data) // 2]
    elif kind == "empty":        # created, never written
        data = b""
    elif kind == "random":       # overwritten with garbage
        data = random.Random(1).randbytes(4096)
    elif kind == "pages":        # the footer is intact, the pages before it are not
        footer = struct.unpack("<I", data[-8:-4])[0]
        end = len(data) - 8 - footer
        start = 4 + (end - 4) // 3
        data = data[:start] + bytes(b ^ 0x5A for b in data[start:end - (end - 4) // 3]) + data[end - (end - 4) // 3:]
    else:
        raise ValueError(kind)
    dst.write_bytes(data)
    return dst


def compacted_log(root: Path, n: int = 40) -> Path:
    """A day of ``n`` records compacted to Parquet (before today, so the compactor takes it); returns the part."""
    with RouteLogWriter(root) as w:
        w.write_records(rec(i) for i in range(n))
    compact(root, days=[DAY])
    return next((root / f"date={DAY}").glob("part-*.parquet"))


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.glob("date=*/*")) if p.is_file()}


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_parquet_part_is_skipped_named_and_left_alone(log_dir, kind):
    good = compacted_log(log_dir)
    bad = damage_part(good, good.with_name("part-damaged.parquet"), kind)
    with RouteLogWriter(log_dir) as w:   # and a live day beside it
        w.write(rec(99, timestamp="2026-03-05T09:00:00Z"))
    before = digest(log_dir)
    scan = scan_log(log_dir, verify=kind == "pages")  # an intact footer hides page damage until pages are read
    df = scan.frame.collect()
    assert df.height == 41 and sorted(df["request_id"]) == sorted([f"req-{i}" for i in range(40)] + ["req-99"])
    assert len(scan.damaged_files) == 1 and scan.damaged_files[0].startswith(f"{bad}: not a readable Parquet file")
    assert scan.bad_lines == 0 and "skipped 1 damaged file" in scan.report()
    assert digest(log_dir) == before   # nothing changed on disk


def test_records_outside_their_domain_are_quarantined_never_summed(log_dir):
    with RouteLogWriter(log_dir) as w:
        w.write_records([rec(1), rec(2)])
    # A Parquet part from elsewhere (an older writer, a hand-made import) holding what the writer now refuses.
    foreign = [rec(10, cost_usd=1e308), rec(11, cost_usd=-999_999.99), rec(12, outcome="maybe"),
               rec(13, latency_ms=math.nan), rec(14, **{"gen_ai.usage.input_tokens": -5}), rec(15, cost_usd=0.5)]
    frame = pl.DataFrame([{k: v for k, v in r.items() if k != "attempts"} for r in foreign]).with_columns(
        pl.col("timestamp").str.to_datetime(time_zone="UTC", time_unit="us"))
    frame.write_parquet(log_dir / f"date={DAY}" / "part-foreign.parquet")
    # ... and a JSONL line written around the writer
    jsonl = log_dir / f"date={DAY}" / "routes.jsonl"
    with open(jsonl, "a") as f:
        f.write(json.dumps(rec(20, cost_usd=-5.0)) + "\n")
    scan = scan_log(log_dir)
    df = scan.frame.collect()
    assert sorted(df["request_id"]) == ["req-1", "req-15", "req-2"]
    assert df["cost_usd"].sum() == pytest.approx(0.003 + 0.5)   # not "$-999,999.99 total spend", not 1e308
    assert scan.quarantined == 5 and scan.bad_lines == 1
    text = "\n".join(scan.details())
    for expected in ("part-foreign.parquet: request req-10: field 'cost_usd': 1e+308 is outside 0 .. 10000",
                     "request req-11: field 'cost_usd': -999999.99 is outside",
                     "request req-12: field 'outcome': 'maybe' is not one of served, failed, blocked",
                     "request req-13: field 'latency_ms': nan is outside",
                     "request req-14: field 'gen_ai.usage.input_tokens': -5 is outside",
                     f"{jsonl}:3: request req-20: field 'cost_usd': -5.0 is outside 0 .. 10000"):
        assert expected in text


def test_many_records_outside_their_domain_are_all_counted_the_first_named(log_dir):
    (log_dir / f"date={DAY}").mkdir(parents=True)
    pl.DataFrame({"request_id": [f"neg-{i}" for i in range(25)], "cost_usd": [-1.0] * 25,
                  "timestamp": [datetime(2026, 3, 4, tzinfo=timezone.utc)] * 25}
                 ).write_parquet(log_dir / f"date={DAY}" / "part-sign-flipped.parquet")
    scan = scan_log(log_dir)
    assert scan.frame.collect().height == 0 and scan.quarantined == 25 and len(scan.examples) == 20
    assert scan.details()[-1] == "... and 5 more"


def test_compaction_keeps_an_out_of_domain_line_verbatim_and_still_names_why(log_dir):
    with RouteLogWriter(log_dir) as w:
        w.write_records([rec(1), rec(2)])
    line = json.dumps(rec(3, outcome="maybe"))
    with open(log_dir / f"date={DAY}" / "routes.jsonl", "a") as f:
        f.write(line + "\n")
    report = compact(log_dir, days=[DAY])
    assert report.records == 2 and report.bad_lines == 1
    rejected = next((log_dir / f"date={DAY}").glob("rejected-*.jsonl"))
    assert rejected.read_text() == line + "\n"
    scan = scan_log(log_dir)
    assert scan.frame.collect().height == 2 and scan.bad_lines == 1
    assert "rejected at compaction (kept verbatim): request req-3: field 'outcome': 'maybe'" in scan.examples[0]


@pytest.mark.parametrize("field, value, says", [
    ("cost_usd", -999_999.99, "-999999.99 is outside 0 .. 10000"),
    ("cost_usd", 1e308, "1e+308 is outside"),
    ("cost_usd", math.inf, "inf is outside"),
    ("latency_ms", math.nan, "nan is outside"),
    ("latency_ms", -1.0, "-1.0 is outside"),
    ("gen_ai.usage.output_tokens", 10 ** 19, "10000000000000000000 is outside"),
    ("gen_ai.usage.input_tokens", -3, "-3 is outside"),
    ("cost_usd", "0.5", "'0.5' is not a number"),
    ("outcome", "maybe", "'maybe' is not one of served, failed, blocked"),
])
def test_the_writer_refuses_a_value_outside_its_domain_naming_field_and_value(log_dir, field, value, says):
    with pytest.raises(ValueError, match=f"route record req-1: field '{field}': ") as e:
        RouteLogWriter(log_dir).write(rec(1, **{field: value}))
    assert says in str(e.value)
    assert not log_dir.exists() or not any(log_dir.rglob("*.jsonl"))


def test_the_writer_checks_each_attempt_too(log_dir):
    with pytest.raises(ValueError, match=r"field 'attempts\[1\]\.cost_usd': -0.2 is outside"):
        RouteLogWriter(log_dir).write(rec(1, attempts=[{"alias": "a", "cost_usd": 0.1},
                                                       {"alias": "b", "cost_usd": -0.2}]))
    with pytest.raises(ValueError, match=r"field 'attempts\[0\]\.latency_ms': nan"):
        RouteLogWriter(log_dir).write(rec(1, attempts=[{"alias": "a", "latency_ms": math.nan}]))


def test_integral_float_counts_are_written_as_integers_and_read_back(log_dir):
    # 12.0 tokens (a float from some SDK) once made a line no reader could parse
    with RouteLogWriter(log_dir) as w:
        w.write(rec(1, **{"gen_ai.usage.input_tokens": 12.0}, attempts=[{"alias": "a", "input_tokens": 12.0}]))
    scan = scan_log(log_dir)
    row = scan.frame.collect().row(0, named=True)
    assert scan.bad_lines == 0 and row["gen_ai.usage.input_tokens"] == 12 and row["attempts"][0]["input_tokens"] == 12


NUMBERS = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10 ** 12, 10 ** 12),
                    st.sampled_from([0, 0.0, -0.0, 1e4, 1e4 + 1e-9, 1e9, 1e9 + 1, 1e8, -1e-300]))


@settings(max_examples=300, deadline=None)
@given(values=st.fixed_dictionaries({name: NUMBERS for name in DOMAIN}),
       outcome=st.one_of(st.none(), st.sampled_from([*OUTCOMES, "maybe", ""])))
def test_the_write_check_and_the_read_expression_are_the_same_domain(values, outcome):
    """One domain, two renderings: the writer's Python check and the readers' narwhals expression agree."""
    import narwhals as nw

    record = {**values, "outcome": outcome}
    schema = {name: polars_schema()[name] for name in DOMAIN} | {"outcome": pl.String}
    row = {k: (float(v) if v is not None and schema[k] == pl.Float64 else v) for k, v in record.items()}
    if any(v is not None and schema[k] == pl.Int64 and not (isinstance(v, int) or float(v).is_integer()
                                                             and abs(v) < 2 ** 62) for k, v in row.items()):
        return  # not representable in the Int64 column a reader sees
    row = {k: (int(v) if v is not None and schema[k] == pl.Int64 else v) for k, v in row.items()}
    frame = pl.DataFrame([row], schema=schema)
    by_expression = nw.from_native(frame).select(out=outside_domain()).to_native()["out"][0]
    assert by_expression == bool(domain_problems(row))


def test_log_scan_on_a_missing_directory_is_an_error_naming_it(tmp_path, capsys):
    assert main(["log", "scan", "--log", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert f"no route log at {tmp_path / 'nope'}" in err


def test_log_scan_names_every_kind_of_damage_and_exits_1(log_dir, capsys):
    good = compacted_log(log_dir)
    for kind in DAMAGE:
        damage_part(good, good.with_name(f"part-{kind}.parquet"), kind)
    with open(log_dir / f"date={DAY}" / "routes.jsonl", "a") as f:
        f.write(record_line(rec(50)) + "\n" + '{"request_id": "torn", "timesta\n'
                + json.dumps(rec(51, cost_usd=-1)) + "\n")
    before = digest(log_dir)
    assert main(["log", "scan", "--log", str(log_dir)]) == 1
    out = capsys.readouterr().out
    assert f"{log_dir}: 41 records" in out
    assert "skipped 4 damaged files, 2 bad lines (not lost: the files are untouched):" in out
    for kind in DAMAGE:
        assert f"part-{kind}.parquet: not a readable Parquet file" in out
    assert "routes.jsonl:2: not a route record" in out and "routes.jsonl:3: request req-51: field 'cost_usd'" in out
    assert digest(log_dir) == before
