"""Importers: LiteLLM proxy spend logs (CSV and a real PostgreSQL) and OTel GenAI spans (OTLP JSON)."""
from __future__ import annotations

import csv
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from toolkit.costs import PriceBook, Usage
from toolkit.importers import (OMITTED, OMITTED_OUTPUT, OMITTED_PROMPT, import_litellm_csv, import_litellm_postgres,
                               import_otel_json)
from toolkit.redact import SECRET_PATTERNS
from toolkit.routelog import scan_log

FIXTURES = Path(__file__).parent / "fixtures" / "importers"
ROOT = Path(__file__).resolve().parent.parent


# --- a real PostgreSQL server, started and torn down here ---------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_server():
    """initdb + pg_ctl from the Debian package, in a temporary directory, on a free port.

    PostgreSQL refuses to run as root: as root, the cluster belongs to the package's ``postgres``
    user (runuser); otherwise it runs as the current user.
    """
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.skip("PostgreSQL is not installed (Debian package postgresql; `make system` installs it)")
    bindir = Path(bins[-1]).parent
    base = Path(tempfile.mkdtemp(prefix="routekit-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(base, pg.pw_uid, pg.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", _free_port()
    run = lambda *cmd: subprocess.run([*as_user, *map(str, cmd)], check=True, capture_output=True, timeout=120)  # noqa: E731
    try:
        run(bindir / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        run(bindir / "pg_ctl", "-D", data, "-l", base / "server.log", "-w", "-t", "60", "start",
            "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off")
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            run(bindir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def spendlogs_db():
    """A real PostgreSQL holding the LiteLLM_SpendLogs fixture table."""
    import psycopg

    with postgres_server() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute((FIXTURES / "litellm_spendlogs.sql").read_text())
        yield url


def export_csv(url: str) -> str:
    """What `COPY ... TO STDOUT WITH CSV HEADER` prints (how the CSV fixture was made)."""
    import psycopg

    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy('COPY "LiteLLM_SpendLogs" TO STDOUT WITH CSV HEADER') as copy:
            return b"".join(bytes(chunk) for chunk in copy).decode()


def records(log_dir: Path) -> dict[str, dict]:
    scan = scan_log(log_dir)
    assert scan.bad_lines == 0
    return {r["request_id"]: r for r in scan.frame.collect().to_dicts()}


def raw_text(log_dir: Path) -> str:
    return "".join(p.read_text() for p in sorted(log_dir.rglob("*.jsonl")))


# --- LiteLLM ----------------------------------------------------------------------------------------


def test_csv_fixture_is_what_postgres_exports(spendlogs_db):
    assert export_csv(spendlogs_db) == (FIXTURES / "litellm_spendlogs.csv").read_text()


def test_litellm_csv_maps_every_row(log_dir):
    report = import_litellm_csv(FIXTURES / "litellm_spendlogs.csv", log_dir)
    assert (report.records, report.bad) == (6, 0)
    recs = records(log_dir)
    assert set(recs) == {"chatcmpl-9f1c2a7e-0001", "chatcmpl-9f1c2a7e-0002", "chatcmpl-9f1c2a7e-0003",
                         "chatcmpl-9f1c2a7e-0004", "emb-77a0-0005", "legacy-0006"}
    ok = recs["chatcmpl-9f1c2a7e-0001"]
    assert ok["timestamp"].isoformat() == "2026-11-20T09:15:02.120000+00:00"
    assert (ok["source"], ok["team"], ok["intent"], ok["route_id"]) == ("litellm_proxy", "support", "triage", "fast")
    assert (ok["gen_ai.request.model"], ok["gen_ai.response.model"], ok["gen_ai.provider.name"]) == \
        ("fast", "gpt-4o-mini", "openai")
    assert (ok["gen_ai.usage.input_tokens"], ok["gen_ai.usage.output_tokens"], ok["usage.cache_read_tokens"]) == \
        (800, 30, 512)
    assert ok["cost_usd"] == pytest.approx(0.0000996) and ok["latency_ms"] == 884
    assert ok["outcome"] == "served" and ok["attempts"][0]["outcome"] == "ok" and ok["stream"] is False
    # The proxy's own price agrees with the snapshot's for this usage (an independent check of the mapping).
    book = PriceBook.load()
    assert book.lookup("gpt-4o-mini").cost(Usage(800, 30, cache_read_tokens=512))[0] == pytest.approx(ok["cost_usd"])

    fb = recs["chatcmpl-9f1c2a7e-0002"]
    assert (fb["team"], fb["intent"], fb["fallback_used"], fb["requested_alias"]) == \
        ("research", "synthesis", True, "synthesis-primary")
    assert (fb["usage.cache_write_tokens"], fb["usage.cache_read_tokens"], fb["usage.reasoning_tokens"]) == \
        (1000, 2000, 120)
    assert fb["stream"] is True and fb["latency_ms"] == 9513

    limited = recs["chatcmpl-9f1c2a7e-0003"]
    assert (limited["outcome"], limited["error_kind"], limited["team"]) == ("failed", "rate_limited", "devex")
    assert (limited["failed_attempt_count"], recs["chatcmpl-9f1c2a7e-0001"]["failed_attempt_count"]) == (1, 0)
    a = limited["attempts"][0]
    assert (a["status"], a["retryable"], a["error_class"]) == (429, True, "RateLimitError")
    assert "Rate limit reached" in a["message"] and "sk-proj" not in a["message"]
    assert recs["chatcmpl-9f1c2a7e-0004"]["error_kind"] == "server_error"
    emb = recs["emb-77a0-0005"]
    assert (emb["gen_ai.operation.name"], emb["intent"], emb["prompt_hash"]) == ("embeddings", "retrieval", None)
    legacy = recs["legacy-0006"]
    assert legacy["latency_ms"] == pytest.approx(1500.0) and legacy["outcome"] == "served"
    assert legacy["timestamp"].date().isoformat() == "2026-11-19"


def test_litellm_unknown_columns_and_metadata_are_kept_not_prompts(log_dir, tmp_path):
    # A newer proxy adds a column: it lands in extra, like every unmapped column and metadata key.
    src = tmp_path / "newer.csv"
    with open(FIXTURES / "litellm_spendlogs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(src, "w", newline="") as f:
        w = csv.DictWriter(f, [*rows[0], "future_column"])
        w.writeheader()
        w.writerows({**r, "future_column": "kept-value"} for r in rows)
    import_litellm_csv(src, log_dir)
    ok = records(log_dir)["chatcmpl-9f1c2a7e-0001"]
    extra = json.loads(ok["extra"])
    assert extra["future_column"] == "kept-value"
    assert extra["api_key"].startswith("88dc28") and extra["cache_key"] == "Cache OFF"
    assert extra["request_tags"] == ["intent:triage", "env:prod"] and extra["litellm_call_id"] == "0c9a4e1e-call-1"
    assert extra["metadata"]["user_api_key_alias"] == "support-bot"
    assert extra["metadata"]["model_map_information"] == {"model_map_key": "gpt-4o-mini"}
    assert extra["response"]["model"] == "gpt-4o-mini-2024-07-18" and extra["response"]["choices"] == OMITTED_OUTPUT
    assert extra["messages"] == OMITTED_PROMPT
    assert extra["proxy_server_request"]["temperature"] == 0
    # Raw prompts and answers are hashed, never stored.
    text = raw_text(log_dir)
    assert "CANARY" not in text and ok["prompt"] is None
    assert len(ok["prompt_hash"]) == 64 and len(ok["output_hash"]) == 64
    assert not any(p.search(text) for p in SECRET_PATTERNS)


def test_litellm_postgres_gives_the_same_records_as_the_csv(spendlogs_db, tmp_path):
    report = import_litellm_postgres(spendlogs_db, tmp_path / "pg")
    assert (report.records, report.bad) == (6, 0)
    import_litellm_csv(FIXTURES / "litellm_spendlogs.csv", tmp_path / "csv")
    assert records(tmp_path / "pg") == records(tmp_path / "csv")


def test_litellm_postgres_since(spendlogs_db, log_dir, tmp_path):
    from datetime import datetime, timezone

    from toolkit.cli import main

    report = import_litellm_postgres(spendlogs_db, log_dir, since=datetime(2026, 11, 22, tzinfo=timezone.utc))
    assert report.records == 2 and set(records(log_dir)) == {"chatcmpl-9f1c2a7e-0004", "emb-77a0-0005"}
    # the command line's --since is the same day, from its first instant (UTC)
    assert main(["log", "import", "litellm-postgres", spendlogs_db, "--since", "2026-11-22",
                 "--log", str(tmp_path / "cli")]) == 0
    assert records(tmp_path / "cli") == records(log_dir)


def test_litellm_bad_rows_are_reported_good_rows_kept(log_dir, tmp_path):
    src = tmp_path / "broken.csv"
    with open(FIXTURES / "litellm_spendlogs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    bad_time = {**rows[0], "request_id": "bad-time", "startTime": "not a time"}
    bad_json = {**rows[0], "request_id": "bad-json", "metadata": "{oops"}
    with open(src, "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows([rows[0], bad_time, *rows[1:], bad_json])
    report = import_litellm_csv(src, log_dir)
    assert (report.records, report.bad) == (6, 2)
    assert report.examples[0].startswith(f"{src}:3:") and "column 'startTime'" in report.examples[0]
    assert report.examples[1].startswith(f"{src}:9:") and "column 'metadata'" in report.examples[1]
    assert len(records(log_dir)) == 6
    with pytest.raises(ValueError, match="not a LiteLLM_SpendLogs export"):
        (tmp_path / "other.csv").write_text("a,b\n1,2\n")
        import_litellm_csv(tmp_path / "other.csv", log_dir)


# --- OpenTelemetry ------------------------------------------------------------------------------------


def test_otel_genai_spans(log_dir):
    report = import_otel_json(FIXTURES / "otel_genai_spans.json", log_dir)
    assert (report.records, report.skipped, report.bad) == (4, 2, 0)
    recs = records(log_dir)
    chat = recs["5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174"]
    assert chat["timestamp"].isoformat() == "2026-11-20T10:00:00.123456+00:00"
    assert chat["latency_ms"] == pytest.approx(1234.5)
    assert (chat["gen_ai.provider.name"], chat["gen_ai.request.model"], chat["gen_ai.response.model"]) == \
        ("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert (chat["team"], chat["intent"]) == ("support", "triage")
    assert (chat["gen_ai.usage.input_tokens"], chat["gen_ai.usage.output_tokens"], chat["usage.cache_read_tokens"]) \
        == (1200, 80, 1000)
    book = PriceBook.load()
    expected = book.lookup("gpt-4o-mini").cost(Usage(1200, 80, cache_read_tokens=1000))[0]
    assert chat["cost_usd"] == pytest.approx(expected) and chat["price_version"] == book.version
    extra = json.loads(chat["extra"])
    assert extra["gen_ai.response.id"] == "chatcmpl-abc123" and extra["gen_ai.response.finish_reasons"] == ["stop"]
    assert extra["resource.service.name"] == "support-bot" and extra["resource.deployment.environment"] == "prod"
    assert extra["server.address"] == "api.openai.com" and extra["otel.scope"] == "opentelemetry.instrumentation.openai_v2"
    assert extra["gen_ai.input.messages"] == OMITTED and extra["otel.events"][0]["attributes"]["gen_ai.prompt"] == OMITTED
    assert "CANARY" not in json.dumps(extra)
    assert len(chat["prompt_hash"]) == 64 and len(chat["output_hash"]) == 64

    failed = recs["5b8efff798038103d269b633813fc60c-00f067aa0ba902b7"]
    assert (failed["outcome"], failed["error_kind"], failed["gen_ai.provider.name"]) == ("failed", "rate_limited",
                                                                                       "anthropic")
    assert failed["team"] == "research"  # service.name when no routekit.team
    old = recs["4bf92f3577b34da6a3ce929d0e0e4736-53995c3f42cd8ad8"]
    assert (old["gen_ai.provider.name"], old["gen_ai.usage.input_tokens"], old["gen_ai.usage.output_tokens"]) == \
        ("anthropic", 300, 50)
    assert old["usage.cache_write_tokens"] == 200 and old["usage.reasoning_tokens"] == 0
    unpriced = recs["4bf92f3577b34da6a3ce929d0e0e4736-a3ce929d0e0e4736"]
    assert unpriced["unpriced"] is True and unpriced["cost_usd"] is None
    assert "CANARY" not in raw_text(log_dir)


def test_otel_jsonl_export_with_a_bad_line(log_dir, tmp_path):
    doc = json.loads((FIXTURES / "otel_genai_spans.json").read_text())
    src = tmp_path / "export.jsonl"
    src.write_text(json.dumps({"resourceSpans": doc["resourceSpans"][:1]}) + "\n{broken\n"
                   + json.dumps({"resourceSpans": doc["resourceSpans"][1:]}) + "\n")
    report = import_otel_json(src, log_dir)
    assert (report.records, report.bad) == (4, 1) and report.examples[0].startswith(f"{src}:2:")


def test_cli_import_and_scan(tmp_path):
    log = tmp_path / "log"
    run = lambda *a: subprocess.run([sys.executable, "-m", "toolkit.cli", "log", *a], cwd=ROOT,  # noqa: E731
                                    capture_output=True, text=True, timeout=120)
    r = run("import", "litellm-csv", str(FIXTURES / "litellm_spendlogs.csv"), "--log", str(log))
    assert r.returncode == 0 and "6 records imported" in r.stdout, r.stderr
    r = run("import", "otel", str(FIXTURES / "otel_genai_spans.json"), "--log", str(log))
    assert r.returncode == 0 and "4 records imported" in r.stdout and "2 skipped" in r.stdout, r.stderr
    r = run("scan", "--log", str(log))
    assert r.returncode == 0 and "10 records" in r.stdout and "litellm_proxy" in r.stdout, r.stderr
    r = run("import", "otel", str(tmp_path / "missing.json"), "--log", str(log))
    assert r.returncode == 2 and "missing.json" in r.stderr


def test_cli_names_a_missing_file_and_writes_no_log(tmp_path, capsys):
    from toolkit.cli import main

    missing = tmp_path / "spend.csv"
    assert main(["log", "import", "litellm-csv", str(missing), "--log", str(tmp_path / "log")]) == 2
    assert f"routekit log import: {missing}: No such file or directory" in capsys.readouterr().err
    assert not (tmp_path / "log").exists()
