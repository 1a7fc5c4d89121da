"""A paid answer is never lost: the log and the ledger are checked before the first provider call, a write that
fails after it spools the record and still returns the answer, usage is sanity-checked.

Before: on a read-only log directory, a full disk, a full or locked SQLite ledger, Redis killed mid-request, or
provider usage too large for SQLite (completion_tokens 1e19), the provider answered and billed and the caller got
a raw exception, no answer and no record (and on a full disk a torn last line).
"""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from toolkit.costs import MAX_TOKENS
from toolkit.routelog import clamp_to_domain
from toolkit.router import NoEligibleRoute, Router

from .conftest import read_records
from .services import RedisServer, fill, tmpfs


def spooled(spool) -> list[dict]:
    return [json.loads(line) for f in sorted(spool.rglob("*.jsonl")) for line in f.read_text().splitlines() if line]


def sent(sim) -> int:
    return sum(sim.state.stats.values())


def recover(log, spool) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "toolkit.cli", "log", "recover", "--log", str(log),
                           "--spool", str(spool)], capture_output=True, text=True)


# --- the route log -------------------------------------------------------------------------------------


def test_read_only_log_spools_the_record_and_returns_the_answer(sim_env, policy_copy, tmp_path, spool):
    with tmpfs(tmp_path / "ro", read_only=True) as ro:
        router = Router(policy_copy, log=ro / "routelog")
        r = router.complete("triage", "Is this spam?")
        assert r.text and r.served_model == "fast-openai" and sent(sim_env) == 1
        assert any("spooled" in w for w in r.warnings)
    [rec] = spooled(spool)
    assert rec["request_id"] == r.request_id and "spooled" in rec["warnings"] and rec["cost_usd"] == r.cost_usd
    out = recover(tmp_path / "log", spool)
    assert out.returncode == 0 and "1 record" in out.stdout, out.stderr
    assert [x["request_id"] for x in read_records(tmp_path / "log")] == [r.request_id]
    assert spooled(spool) == []
    again = recover(tmp_path / "log", spool)          # idempotent: nothing twice
    assert again.returncode == 0 and len(read_records(tmp_path / "log")) == 1


def test_nowhere_to_write_refuses_before_paying(sim_env, policy_copy, tmp_path, monkeypatch):
    with tmpfs(tmp_path / "ro", read_only=True) as ro:
        monkeypatch.setenv("ROUTEKIT_SPOOL_DIR", str(ro / "spool"))
        router = Router(policy_copy, log=ro / "routelog")
        with pytest.raises(NoEligibleRoute) as e:
            router.complete("triage", "Is this spam?")
    assert "not writable" in str(e.value) and sent(sim_env) == 0


def test_full_disk_leaves_no_torn_line_and_loses_no_answer(sim_env, policy_copy, tmp_path, spool):
    with tmpfs(tmp_path / "small", size="64k") as small:
        log = small / "routelog"
        router = Router(policy_copy, log=log)
        first = router.complete("triage", "warm up")          # the day file exists and holds one record
        fill(small, leave=0)       # what is left is the slack of the day file's last page: a record or two
        results = [router.complete("triage", f"question {i}") for i in range(6)]
        assert all(r.text for r in results) and sent(sim_env) == 7
        lines = [line for f in log.rglob("*.jsonl") for line in f.read_text().splitlines()]
        in_log = [json.loads(line)["request_id"] for line in lines]    # every line parses: no torn fragment
    in_spool = [x["request_id"] for x in spooled(spool)]
    assert in_log[0] == first.request_id and in_spool, "the disk filled up, so some records were spooled"
    assert sorted(in_log[1:] + in_spool) == sorted(r.request_id for r in results)    # each exactly once
    assert all(any("spooled" in w for w in r.warnings) == (r.request_id in in_spool) for r in results)


# --- usage sanity --------------------------------------------------------------------------------------


def test_absurd_usage_is_capped_and_flagged(sim_env, policy_copy, log_dir):
    sim_env.state.set("gpt-4o-mini", {"output_tokens": 10**19})
    router = Router(policy_copy, log=log_dir)
    r = router.complete("triage", "hi", team="growth")   # growth has a budget in the demo policy
    assert r.text and any("capped" in w for w in r.warnings) and any("past the budget hold" in w for w in r.warnings)
    [rec] = read_records(log_dir)
    assert rec["gen_ai.usage.output_tokens"] == MAX_TOKENS and "capped" in rec["warnings"]


def test_negative_usage_is_an_error_kind_not_a_refund(sim_env, policy_copy, log_dir):
    sim_env.state.set("gpt-4o-mini", {"output_tokens": -500})
    r = Router(policy_copy, log=log_dir).complete("triage", "hi")
    assert r.served_model == "fast-google"
    assert r.attempts[0].outcome == "malformed" and "negative" in r.attempts[0].message
    assert all(a.cost_usd is None or a.cost_usd >= 0 for a in r.attempts)


# --- the budget ledger ---------------------------------------------------------------------------------


def budget_policy(policy_copy, state: str = "") -> None:
    text = policy_copy.read_text()
    policy_copy.write_text(text + textwrap.dedent(f"""
        {state}
        """))


def test_locked_sqlite_ledger_fails_closed_before_paying(sim_env, policy_copy, log_dir, tmp_path):
    budget_policy(policy_copy, "state: {lock_timeout_s: 0.2}")
    router = Router(policy_copy, log=log_dir)
    blocker = sqlite3.connect(router.budgets.store.path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(NoEligibleRoute) as e:
            router.complete("triage", "hi", team="growth")
    finally:
        blocker.execute("ROLLBACK")
    assert "budget ledger" in str(e.value) and sent(sim_env) == 0
    [rec] = read_records(log_dir)
    assert rec["outcome"] == "blocked" and rec["error_kind"] == "budget_unavailable"


def test_locked_sqlite_ledger_fails_open_when_the_policy_says_so(sim_env, policy_copy, log_dir):
    budget_policy(policy_copy, "state: {lock_timeout_s: 0.2, on_unavailable: fail_open}")
    router = Router(policy_copy, log=log_dir)
    blocker = sqlite3.connect(router.budgets.store.path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        r = router.complete("triage", "hi", team="growth")
    finally:
        blocker.execute("ROLLBACK")
    assert r.text and any("budget ledger" in w for w in r.warnings)
    assert "budget ledger" in read_records(log_dir)[0]["warnings"]


def test_ledger_locked_after_the_call_keeps_the_answer(sim_env, policy_copy, log_dir):
    budget_policy(policy_copy, "state: {lock_timeout_s: 0.2}")
    sim_env.state.set("gpt-4o-mini", {"latency_ms": 600})
    router = Router(policy_copy, log=log_dir)
    path = router.budgets.store.path
    done = threading.Event()

    def lock_during_the_call() -> None:
        # Once the vendor has the request the budget hold is made, and the answer is 600 ms away.
        while not sent(sim_env) and not done.is_set():
            time.sleep(0.01)
        con = sqlite3.connect(path, isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        done.wait(10)
        con.execute("ROLLBACK")

    t = threading.Thread(target=lock_during_the_call)
    t.start()
    try:
        r = router.complete("triage", "hi", team="growth")
    finally:
        done.set()
        t.join()
    assert r.text and any("settle" in w for w in r.warnings)
    [rec] = read_records(log_dir)
    assert rec["outcome"] == "served" and "settle" in rec["warnings"]


def test_full_sqlite_ledger_fails_closed(sim_env, policy_copy, log_dir, tmp_path):
    with tmpfs(tmp_path / "state", size="64k") as state:
        budget_policy(policy_copy, f"state: {{dir: {state}}}")
        router = Router(policy_copy, log=log_dir)
        fill(state, leave=0)
        with pytest.raises(NoEligibleRoute) as e:
            for i in range(50):   # the WAL grows until the disk refuses it
                router.complete("triage", f"hi {i}", team="growth")
        assert "budget ledger" in str(e.value)


def test_the_ledger_is_the_policys_not_the_log_directorys(sim_env, policy_copy, tmp_path):
    a = Router(policy_copy, log=tmp_path / "log-a")
    b = Router(policy_copy, log=tmp_path / "log-b")
    assert a.budgets.store.path == b.budgets.store.path
    assert not str(a.budgets.store.path).startswith(str(tmp_path / "log-a"))


# --- Redis -------------------------------------------------------------------------------------------


@pytest.fixture
def redis_server(tmp_path):
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def redis_policy(policy_copy, monkeypatch, url: str, mode: str = "") -> None:
    monkeypatch.setenv("ROUTEKIT_TEST_REDIS", url)
    extra = f", on_unavailable: {mode}" if mode else ""
    budget_policy(policy_copy, f"state: {{backend: redis, url_env: ROUTEKIT_TEST_REDIS{extra}}}")


def test_dead_redis_fails_closed_with_a_record(sim_env, policy_copy, log_dir, monkeypatch, redis_server):
    redis_policy(policy_copy, monkeypatch, redis_server.url)
    router = Router(policy_copy, log=log_dir)
    redis_server.kill9()
    with pytest.raises(NoEligibleRoute) as e:
        router.complete("triage", "hi", team="growth")
    assert "budget ledger" in str(e.value) and sent(sim_env) == 0
    [rec] = read_records(log_dir)
    assert rec["error_kind"] == "budget_unavailable"


def test_dead_redis_fails_open_when_asked(sim_env, policy_copy, log_dir, monkeypatch, redis_server):
    redis_policy(policy_copy, monkeypatch, redis_server.url, "fail_open")
    router = Router(policy_copy, log=log_dir)
    redis_server.kill9()
    r = router.complete("triage", "hi", team="growth")
    assert r.text and any("budget ledger" in w for w in r.warnings)
    # the URL's host may be named, never the whole URL (it can carry a password)
    assert redis_server.url not in json.dumps(read_records(log_dir))


def test_redis_killed_mid_request_keeps_the_answer(sim_env, policy_copy, log_dir, monkeypatch, redis_server):
    redis_policy(policy_copy, monkeypatch, redis_server.url)
    sim_env.state.set("gpt-4o-mini", {"latency_ms": 600})
    router = Router(policy_copy, log=log_dir)
    killer = threading.Timer(0.25, redis_server.kill9)
    killer.start()
    r = router.complete("triage", "hi", team="growth")
    killer.join()
    assert r.text and any("settle" in w for w in r.warnings)
    assert read_records(log_dir)[0]["outcome"] == "served"


def test_redis_ledger_survives_kill_9_with_aof(sim_env, policy_copy, log_dir, monkeypatch, redis_server):
    redis_policy(policy_copy, monkeypatch, redis_server.url)
    router = Router(policy_copy, log=log_dir)
    for i in range(5):
        router.complete("triage", f"hi {i}", team="growth")
    [before] = [s for s in router.budgets.status() if s.budget == "growth-monthly"]
    assert before.requests == 5 and before.spent_usd > 0
    redis_server.kill9()
    redis_server.start()
    [after] = [s for s in Router(policy_copy, log=log_dir).budgets.status() if s.budget == "growth-monthly"]
    assert (after.requests, after.spent_usd) == (before.requests, before.spent_usd)


def test_a_paid_record_with_values_outside_their_domain_is_clamped_and_flagged_not_lost(sim_env, policy_copy,
                                                                                      log_dir):
    sim_env.state.set("gpt-4o-mini", {"error_rate": 1.0, "error_status": 429, "retry_after_s": 1e12})
    r = Router(policy_copy, log=log_dir).complete("triage", "hi")
    assert r.served_model == "fast-google" and r.attempts[0].retry_after_s == 86400 * 365   # a year at most
    record = {"attempts": [{"cost_usd": float("nan"), "latency_ms": 5.0}], "cost_usd": 1e6, "latency_ms": -3.0}
    notes = clamp_to_domain(record)
    assert record["cost_usd"] == 1e4 and record["latency_ms"] == 0 and record["attempts"][0]["cost_usd"] == 0
    assert len(notes) == 3 and all("outside" in n for n in notes)
