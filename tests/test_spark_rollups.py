"""The same rollup on Apache Spark (PySpark, local[2]): one session for the whole test run.

Spark is the optional extra routekit[spark] plus Java 17; `make test` installs both, so in CI
(CI=true) a missing PySpark is a failure, not a skip.
"""
from __future__ import annotations

import os

import pytest

if not os.environ.get("CI"):
    pytest.importorskip("pyspark", reason="the spark extra is not installed: pip install -e '.[spark]'")

from tests.test_rollups import _copy, check_damage, damaged_log, small_log, table  # noqa: E402,F401  (fixtures)
from toolkit import rollups  # noqa: E402


@pytest.fixture(scope="session")
def spark():
    session = rollups.spark_session("local[2]")
    session.conf.set("spark.sql.shuffle.partitions", "4")  # tiny test data: few tasks
    yield session
    session.stop()


def test_polars_duckdb_and_spark_agree_exactly_on_every_count_and_sum(small_log, spark, tmp_path):
    src, records = small_log  # JSONL days (one with a torn line) and a compacted Parquet day
    tables = {}
    for engine in ("polars", "duckdb", "spark"):
        log = tmp_path / engine
        _copy(src, log, rollups_too=False)
        report = rollups.build_rollups(log, engine, session=spark if engine == "spark" else None)
        assert report.records_read == len(records), engine
        tables[engine] = table(log), table(log, "day")
    assert tables["spark"][0].height > 100
    for grain in (0, 1):  # hour and day grain, histograms bin for bin
        assert tables["spark"][grain].equals(tables["polars"][grain])
        assert tables["duckdb"][grain].equals(tables["polars"][grain])


def test_rollup_command_on_spark_reads_and_writes_a_file_url(small_log, spark, tmp_path, capsys):
    from toolkit.cli import main

    src, records = small_log
    log = tmp_path / "routelog"
    _copy(src, log, rollups_too=False)
    url = log.resolve().as_uri()
    # the test session is active, so the command reuses it (a real master URL would start its own)
    assert main(["rollup", "--log", url, "--engine", "spark", "--spark-master", "local[2]"]) == 0
    assert capsys.readouterr().out.startswith(f"spark: read {len(records):,} records from 3 changed day(s)")
    expected = tmp_path / "expected"
    _copy(src, expected, rollups_too=False)
    rollups.build_rollups(expected)
    assert table(log).equals(table(expected))


def test_spark_skips_and_names_the_same_damage_as_polars(damaged_log, spark, tmp_path):
    """Broken Parquet copies, a part broken inside, records outside their domain, bad and rejected lines: Spark
    leaves out exactly what polars does, and names it the same way."""
    _, damaged, records = damaged_log
    built = {}
    for engine in ("polars", "spark"):
        log = tmp_path / engine
        _copy(damaged, log, rollups_too=False)
        report = rollups.build_rollups(log, engine, session=spark if engine == "spark" else None)
        assert report.records_read == len(records), engine
        check_damage(report.damage, log)
        built[engine] = table(log)
    assert built["spark"].equals(built["polars"])
