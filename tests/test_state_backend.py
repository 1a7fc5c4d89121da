"""The state backend (toolkit/state): the embedded files and a real redis-server (AOF, a password) behind one
interface — the kill switch with its audit history, circuits, the ledger — and what happens when Redis goes
away and comes back.  The many-hosts run is tests/test_scale_out.py."""
from __future__ import annotations

import json
import logging
import shutil
import time

import pytest

from toolkit.budgets import BudgetLedger
from toolkit.errors import RoutingError
from toolkit.policy import load_policy
from toolkit.router import Router
from toolkit.state import EmbeddedState, open_state

from .conftest import DEMO_POLICY, read_records, wait_for
from .services import RedisServer

PASSWORD = "s3cret-redis-pass-1717"
URL_ENV = "RK_TEST_REDIS_URL"


def redis_policy(tmp_path, url: str, monkeypatch, *, extra: str = "", refresh_s: float = 0.05):
    """The demo policy with its state in Redis (the URL by environment-variable name)."""
    monkeypatch.setenv(URL_ENV, url)
    path = tmp_path / "policy.yaml"
    path.write_text(DEMO_POLICY.read_text() + extra +
                    f"\nstate: {{backend: redis, url_env: {URL_ENV}, refresh_s: {refresh_s}}}\n")
    return path


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis", password=PASSWORD)
    server.workdir.mkdir()
    server.start()
    yield server
    server.stop()


def skipped(result_or_record, reason: str) -> list[str]:
    items = result_or_record["skipped"] if isinstance(result_or_record, dict) else \
        [{"alias": s.alias, "reason": s.reason} for s in result_or_record.skipped]
    return [s["alias"] for s in items if s["reason"] == reason]


# --- embedded -----------------------------------------------------------------------------------


def test_embedded_state_keeps_an_audit_history_and_records_say_embedded(sim_env, policy_copy, log_dir):
    router = Router(policy_copy, log=log_dir)
    assert isinstance(router.state, EmbeddedState) and router.state.mode == "embedded"
    state = EmbeddedState.of(router.policy)
    state.disable("fast-openai", "incident 12", 3600, by="oncall")
    result = router.complete("triage", "hello")
    assert result.served_model == "fast-google" and skipped(result, "disabled") == ["fast-openai"]
    assert state.enable("fast-openai", by="oncall-2", reason="vendor fixed it")
    assert not state.enable("fast-openai")            # not disabled: nothing enabled, nothing in the history
    history = state.history()
    assert [(h.action, h.target, h.by) for h in history] == [("disable", "fast-openai", "oncall"),
                                                            ("enable", "fast-openai", "oncall-2")]
    assert history[0].reason == "incident 12" and history[0].until == pytest.approx(history[0].at + 3600)
    assert history[1].reason == "vendor fixed it"
    assert {r["state"] for r in read_records(log_dir)} == {"embedded"}


def test_a_torn_history_line_hides_nothing_else(tmp_path):
    from toolkit.overrides import AuditEntry, OverrideHistory

    h = OverrideHistory(tmp_path / "o.history.jsonl")
    h.append(AuditEntry(1.0, "disable", "a", "me", "why"))
    with open(h.path, "a") as f:
        f.write('{"at": 2, "action": "dis')           # a crash mid-append
    h.append(AuditEntry(3.0, "enable", "a", "me"))
    assert [e.at for e in h.read()] == [1.0, 3.0] and len(h.damaged) == 1 and "1 unreadable line(s)" in h.damage
    assert [e.at for e in h.read(limit=1)] == [3.0]


# --- Redis ------------------------------------------------------------------------------------------


def test_redis_kill_switch_is_shared_with_its_history(sim_env, tmp_path, log_dir, redis_server, monkeypatch, capsys):
    from toolkit.cli import main

    policy = redis_policy(tmp_path, redis_server.url, monkeypatch)
    a, b = Router(policy, log=log_dir), Router(policy, log=log_dir)
    assert a.complete("triage", "warm up").served_model == "fast-openai"
    assert b.complete("triage", "warm up").served_model == "fast-openai"
    assert main(["disable", "fast-openai", "--reason", "vendor incident 7", "--for", "1h", "--by", "oncall",
                 "--policy", str(policy)]) == 0
    seen = [wait_for(lambda r=r: r.overrides.get("fast-openai") is not None, "disable seen") for r in (a, b)]
    print(f"disable seen by two Routers after {max(seen) * 1000:.0f} ms (refresh_s 0.05)")
    for r in (a, b):
        result = r.complete("triage", "after the disable")
        assert result.served_model == "fast-google" and skipped(result, "disabled") == ["fast-openai"]
    # the local overrides file was not used: the disable lives in Redis only
    assert not a.policy.overrides_path.exists() or "fast-openai" not in a.policy.overrides_path.read_text()
    assert main(["enable", "fast-openai", "--reason", "vendor recovered", "--by", "oncall-2",
                 "--policy", str(policy)]) == 0
    wait_for(lambda: a.overrides.get("fast-openai") is None and b.overrides.get("fast-openai") is None, "enable seen")
    assert a.complete("triage", "enabled again").served_model == "fast-openai"
    capsys.readouterr()
    assert main(["status", "--policy", str(policy), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "redis" and status["mode"] == "redis" and status["disabled"] == []
    assert [(h["action"], h["by"], h["reason"], h["where"]) for h in status["history"]] == [
        ("disable", "oncall", "vendor incident 7", "redis"), ("enable", "oncall-2", "vendor recovered", "redis")]
    assert status["history"][0]["until"] == pytest.approx(status["history"][0]["at"] + 3600)
    assert PASSWORD not in json.dumps(status)
    records = read_records(log_dir)
    assert {r["state"] for r in records} == {"redis"}


def test_a_circuit_opened_in_one_router_is_skipped_by_another(sim_env, tmp_path, log_dir, redis_server,
                                                              monkeypatch):
    policy = redis_policy(tmp_path, redis_server.url, monkeypatch)
    sim_env.state.set("gpt-4o-mini", {"error_rate": 1.0, "error_status": 500})
    a = Router(policy, log=log_dir)
    for _ in range(3):   # circuit: {failures: 3} in the demo policy
        result = a.complete("triage", "primary fails")
        assert result.served_model == "fast-google" and result.attempts[0].outcome == "server_error"
    asked = sim_env.state.stats[("openai", "gpt-4o-mini")]
    b = Router(policy, log=log_dir)   # a new process-like Router: it never saw a failure itself
    result = b.complete("triage", "after the opening")
    assert skipped(result, "circuit_open") == ["fast-openai"] and result.served_model == "fast-google"
    assert sim_env.state.stats[("openai", "gpt-4o-mini")] == asked      # not asked again
    view = open_state(load_policy(policy)).circuits()
    assert view.entries["fast-openai"]["openings"] == 1 and view.entries["fast-openai"]["open_until"] > time.time()


def test_a_success_resets_the_shared_failure_count(sim_env, tmp_path, log_dir, redis_server, monkeypatch):
    policy = redis_policy(tmp_path, redis_server.url, monkeypatch)
    a, b = Router(policy, log=log_dir), Router(policy, log=log_dir)
    sim_env.state.set("gpt-4o-mini", {"error_rate": 1.0, "error_status": 500})
    a.complete("triage", "one"), b.complete("triage", "two")            # 2 shared failures of 3
    sim_env.state.set("gpt-4o-mini", {"error_rate": 0.0})
    wait_for(lambda: "fast-openai" in b.state._dirty, "b sees the shared failures")
    assert b.complete("triage", "ok").served_model == "fast-openai"     # resets the shared count
    sim_env.state.set("gpt-4o-mini", {"error_rate": 1.0, "error_status": 500})
    a.complete("triage", "three"), a.complete("triage", "four")
    assert a.circuit.is_open("fast-openai") is None                    # 2 after the reset: still closed


def test_redis_down_routing_goes_on_locally_flagged_then_resumes(sim_env, tmp_path, log_dir, redis_server,
                                                                 monkeypatch, caplog):
    policy = redis_policy(tmp_path, redis_server.url, monkeypatch)
    router = Router(policy, log=log_dir)
    assert router.complete("triage", "before", team="growth").served_model == "fast-openai"
    spent_before = BudgetLedger.from_policy(load_policy(policy), alerts=()).status()[0].spent_usd
    assert spent_before > 0
    redis_server.kill9()
    caplog.set_level(logging.WARNING, "routekit.state")
    wait_for(lambda: router.state.mode == "degraded-local", "degraded")
    served = router.complete("triage", "during, not budgeted", team="support")
    assert served.served_model == "fast-openai" and served.record["state"] == "degraded-local"
    host = f"redis at 127.0.0.1:{redis_server.port}"
    assert any(host in w and "unreachable" in w for w in served.warnings)
    assert any(host in r.getMessage() for r in caplog.records)
    with pytest.raises(RoutingError) as blocked:   # the growth budget cannot be held: fail_closed (the default)
        router.complete("triage", "during, budgeted", team="growth")
    assert blocked.value.record["outcome"] == "blocked" and blocked.value.record["error_kind"] == "budget_unavailable"
    assert blocked.value.record["state"] == "degraded-local"
    # a disable issued now is written on this host and obeyed here at once
    cli_state = open_state(load_policy(policy))
    cli_state.disable("fast-openai", "incident during the outage", by="oncall")
    assert cli_state.mode == "degraded-local" and cli_state.pending() == 1
    result = router.complete("triage", "during, disabled", team="support")
    assert skipped(result, "disabled") == ["fast-openai"] and result.served_model == "fast-google"

    redis_server.start()
    wait_for(lambda: router.state.mode == "redis", "resumed")
    assert cli_state.pending() == 0           # copied into Redis by the first process that saw it again
    fresh = open_state(load_policy(policy))
    assert "fast-openai" in fresh.active()    # the outage's disable is now shared
    last = fresh.history()[-1]
    assert last.action == "disable" and last.by == "oncall" and "degraded-local" in last.where
    after = router.complete("triage", "after", team="growth")
    assert after.record["state"] == "redis" and after.served_model == "fast-google"
    assert not any("unreachable" in w for w in after.warnings)
    status = BudgetLedger.from_policy(load_policy(policy), alerts=()).status()[0]
    assert status.spent_usd > spent_before    # what was spent before the kill survived it (AOF), and more since
    records = read_records(log_dir)
    assert [r["state"] for r in sorted(records, key=lambda r: r["timestamp"])] == [
        "redis", "degraded-local", "degraded-local", "degraded-local", "redis"]
    for r in records:
        assert PASSWORD not in json.dumps(r)
    assert all(PASSWORD not in r.getMessage() for r in caplog.records)


def test_a_settle_that_cannot_reach_redis_is_journaled_and_added_later(tmp_path, redis_server, monkeypatch):
    policy = load_policy(redis_policy(tmp_path, redis_server.url, monkeypatch))
    state = open_state(policy)
    ledger = BudgetLedger.from_policy(policy, store=state.ledger_store(), alerts=())
    spec, route = policy.models["strong-anthropic"], policy.routes["synthesis"]
    hold = ledger.reserve(alias=spec.alias, spec=spec, route=route, team="research", intent="synthesis",
                          prompt_tokens=100, max_tokens=100)
    redis_server.kill9()
    ledger.settle(hold, 0.0123)          # journaled, not lost
    assert state.mode == "degraded-local" and state.pending() == 1
    redis_server.start()
    assert state.poll() and state.mode == "redis" and state.pending() == 0
    row = next(s for s in ledger.status() if s.budget == "research-monthly")
    assert row.spent_usd == pytest.approx(0.0123) and row.reserved_usd == 0 and row.requests == 1


def test_a_damaged_shared_entry_keeps_the_last_good_state(sim_env, tmp_path, log_dir, redis_server, monkeypatch):
    import redis

    policy = redis_policy(tmp_path, redis_server.url, monkeypatch)
    router = Router(policy, log=log_dir)
    router.state.disable("fast-openai", "incident", by="oncall")
    router.complete("triage", "seen")
    client = redis.Redis.from_url(redis_server.url)
    client.hset("routekit:{state}:overrides", "fast-openai", "{not json")
    wait_for(lambda: router.state.shared_damage is not None, "damage seen")
    result = router.complete("triage", "damaged")
    assert skipped(result, "disabled") == ["fast-openai"]          # still honoured
    assert any("damaged" in w for w in result.warnings) and result.record["state"] == "redis"
    client.close()


def test_unset_url_variable_is_degraded_from_the_start(sim_env, tmp_path, log_dir, monkeypatch):
    policy = redis_policy(tmp_path, "redis://127.0.0.1:1/0", monkeypatch)
    monkeypatch.delenv(URL_ENV)
    router = Router(policy, log=log_dir)
    result = router.complete("triage", "no redis configured", team="support")
    assert result.record["state"] == "degraded-local"
    assert any(f"{URL_ENV} is not set" in w for w in result.warnings)


def test_status_and_disable_still_work_with_redis_down(tmp_path, redis_server, monkeypatch, capsys):
    from toolkit.cli import main

    policy = redis_policy(tmp_path, redis_server.url, monkeypatch)
    redis_server.kill9()
    assert main(["disable", "mid-anthropic", "--reason", "outage drill", "--policy", str(policy)]) == 0
    err = capsys.readouterr().err
    assert "cannot be reached: written on this host only" in err and PASSWORD not in err
    assert main(["status", "--policy", str(policy)]) == 0
    out = capsys.readouterr().out
    assert "state: degraded-local" in out and "mid-anthropic" in out and PASSWORD not in out
    shutil.rmtree(redis_server.workdir / "appendonlydir", ignore_errors=True)   # even an empty Redis gets it
    redis_server.start()
    assert main(["status", "--policy", str(policy), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["mode"] == "redis" and [d["target"] for d in status["disabled"]] == ["mid-anthropic"]


def test_a_history_that_cannot_be_written_never_stops_a_disable(tmp_path, caplog):
    from toolkit.overrides import Overrides, history_path

    o = Overrides(tmp_path / "overrides.json")
    history_path(o.path).mkdir()          # not a file: every append fails
    caplog.set_level(logging.WARNING, "routekit.overrides")
    o.disable("fast-openai", "incident", by="oncall")
    o.refresh()
    assert o.get("fast-openai") is not None
    assert any("audit history" in r.getMessage() for r in caplog.records)


def test_readiness_reads_the_kill_switch_history_where_the_policy_keeps_its_state(tmp_path, redis_server,
                                                                                  monkeypatch):
    """With the state in Redis, the rehearsal (a disable and an enable) lives in Redis's history, not in a file
    beside the policy: readiness's kill-switch check reads it there."""
    from toolkit.playbook import readiness

    monkeypatch.delenv("ROUTEKIT_OVERRIDES", raising=False)   # the overrides file beside the policy
    monkeypatch.delenv("ROUTEKIT_STATE_DIR", raising=False)
    policy = load_policy(redis_policy(tmp_path, redis_server.url, monkeypatch))
    state = open_state(policy)
    try:
        state.disable("fast-openai", "kill-switch rehearsal", 600, by="on-call")
        assert state.enable("fast-openai", by="on-call", reason="rehearsal done")
    finally:
        state.close()
    assert not policy.overrides_path.with_name(policy.overrides_path.stem + ".history.jsonl").exists()
    check = {c.intent: c for c in readiness(policy).checks if c.check == "kill_switch"}["triage"]
    assert check.ok and "on-call" in check.detail
