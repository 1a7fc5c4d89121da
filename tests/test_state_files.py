"""State files fail safe: a damaged overrides file, circuit file or policy never stops routing or the kill switch.

Before: empty, truncated or wrong-shape overrides JSON made every request raise a raw ValueError / TypeError /
AttributeError with no record, and `route`, `status`, `disable`, `enable` printed tracebacks; a broken policy
made `disable`/`enable`/`status` unusable; a Retry-After of 864000 s opened a circuit for 10 days; `status`
showed circuits of exited processes as open.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from toolkit.router import Router

from .conftest import read_records

DAMAGED = {
    "empty": "",
    "truncated": '{"disabled": [{"target": "fast-openai", "reason": "x", "by"',
    "a list": '[{"target": "fast-openai"}]',
    "wrong entries": '{"disabled": "fast-openai"}',
    "entry missing fields": '{"disabled": [{"target": "fast-openai"}]}',
    "wrong types": '{"disabled": [{"target": "fast-openai", "reason": 5, "by": "x", "since": "yesterday", '
                   '"until": null}]}',
    "not utf-8": b"\xff\xfe\x00garbage",
}


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "toolkit.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def damage(path, content) -> None:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())


@pytest.mark.parametrize("kind", sorted(DAMAGED))
def test_damaged_overrides_never_stop_routing(kind, sim_env, policy_copy, log_dir, tmp_path):
    damage(tmp_path / "overrides.json", DAMAGED[kind])
    router = Router(policy_copy, log=log_dir)
    for intent in ("triage", "code", "synthesis"):
        r = router.complete(intent, "hello")
        assert r.text
    records = read_records(log_dir)
    assert len(records) == 3
    assert all("overrides.json" in rec["warnings"] and "damaged" in rec["warnings"] for rec in records)


def test_a_damaged_overrides_file_keeps_the_last_good_state(sim_env, policy_copy, log_dir, tmp_path):
    router = Router(policy_copy, log=log_dir)
    router.overrides.disable("fast-openai", "incident 12")
    assert router.complete("triage", "hi").served_model == "fast-google"
    damage(tmp_path / "overrides.json", DAMAGED["truncated"])
    r = router.complete("triage", "hi")
    assert r.served_model == "fast-google"  # still disabled: the last good state holds
    assert "damaged" in read_records(log_dir)[-1]["warnings"]


@pytest.mark.parametrize("kind", ["empty", "truncated", "a list", "wrong types"])
def test_kill_switch_commands_survive_and_repair_damage(kind, sim_env, policy_copy, tmp_path):
    overrides = tmp_path / "overrides.json"
    damage(overrides, DAMAGED[kind])
    status = cli("status", "--policy", str(policy_copy))
    assert status.returncode == 0 and "Traceback" not in status.stderr
    assert "damaged" in status.stdout + status.stderr and str(overrides) in status.stdout + status.stderr
    routed = cli("route", "--policy", str(policy_copy), "--log", str(tmp_path / "log"), "--intent", "triage", "hi")
    assert routed.returncode == 0 and "Traceback" not in routed.stderr and "damaged" in routed.stdout + routed.stderr
    off = cli("disable", "fast-openai", "--reason", "repair drill", "--policy", str(policy_copy))
    assert off.returncode == 0 and "Traceback" not in off.stderr
    data = json.loads(overrides.read_text())       # rewritten, valid
    assert [d["target"] for d in data["disabled"]] == ["fast-openai"]
    assert list(tmp_path.glob("overrides.json.damaged-*")), "the damaged file is kept beside it, not lost"
    on = cli("enable", "fast-openai", "--policy", str(policy_copy))
    assert on.returncode == 0 and json.loads(overrides.read_text())["disabled"] == []


def test_kill_switch_works_while_the_policy_is_broken(sim_env, policy_copy, tmp_path):
    policy_copy.write_text(policy_copy.read_text() + "\nroutes: [this is: not: valid\n")
    off = cli("disable", "strong-anthropic", "--reason", "vendor incident", "--for", "1h",
              "--policy", str(policy_copy))
    assert off.returncode == 0, off.stderr
    assert "Traceback" not in off.stderr and "cannot be checked" in off.stderr
    status = cli("status", "--policy", str(policy_copy))
    assert status.returncode == 0 and "strong-anthropic" in status.stdout and "Traceback" not in status.stderr
    assert "policy" in status.stderr and "problem" in status.stderr
    on = cli("enable", "strong-anthropic", "--policy", str(policy_copy))
    assert on.returncode == 0 and "Traceback" not in on.stderr


def test_retry_after_is_capped(sim_env, policy_copy, log_dir):
    sim_env.state.set("gpt-4o-mini", {"error_rate": 1.0, "error_status": 429, "retry_after_s": 864000})
    router = Router(policy_copy, log=log_dir)
    router.complete("triage", "hi")
    left = router.circuit.is_open("fast-openai")
    assert left is not None and left <= router.policy.circuit.max_cooldown_s == 300


def test_status_shows_who_holds_a_circuit_and_drops_dead_processes(sim_env, policy_copy, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    circuits = tmp_path / "overrides.circuits.json"   # beside ROUTEKIT_OVERRIDES
    now = time.time()
    circuits.write_text(json.dumps({
        "fast-openai": {"open_until": now + 600, "openings": 1, "pid": dead.pid, "host": os.uname().nodename,
                        "changed": now},
        "fast-google": {"open_until": now + 600, "openings": 2, "pid": os.getpid(), "host": os.uname().nodename,
                        "changed": now},
    }))
    out = cli("status", "--policy", str(policy_copy)).stdout
    assert "fast-google: OPEN" in out and f"pid {os.getpid()}" in out
    assert "fast-openai: OPEN" not in out


def test_damaged_circuit_file_is_reported_not_fatal(sim_env, policy_copy, tmp_path, log_dir):
    (tmp_path / "overrides.circuits.json").write_text("{not json")
    out = cli("status", "--policy", str(policy_copy))
    assert out.returncode == 0 and "Traceback" not in out.stderr and "damaged" in out.stdout + out.stderr
    sim_env.state.set("gpt-4o-mini", {"down": True})
    router = Router(policy_copy, log=log_dir)
    for _ in range(3):
        router.complete("triage", "hi")
    assert json.loads((tmp_path / "overrides.circuits.json").read_text())["fast-openai"]["open_until"] > time.time()


@pytest.mark.parametrize("reason, duration, said", [
    ("vendor incident", "0m", "a disable lasts more than 0 s and at most 366 days"),
    ("vendor incident", "99999999d", "a disable lasts more than 0 s and at most 366 days"),
    ("  ", "1h", "a disable needs a reason"),
])
def test_a_disable_that_cannot_be_one_is_refused_before_anything_is_written(sim_env, policy_copy, tmp_path,
                                                                              reason, duration, said):
    # Before: --for 0m disabled for no time; --for 99999999d was written, then the command failed (exit 3) on its
    # own message, and every later `status` failed on the history line; an empty reason was taken.
    r = cli("disable", "fast-openai", "--reason", reason, "--for", duration, "--policy", str(policy_copy))
    assert r.returncode == 2 and said in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "overrides.json").exists() and not (tmp_path / "overrides.history.jsonl").exists()
    status = cli("status", "--policy", str(policy_copy))
    assert status.returncode == 0 and "nothing disabled" in status.stdout


def test_the_library_refuses_a_disable_with_no_target_or_reason(tmp_path):
    # before: Overrides.disable("", ...) and disable(3, ...) were stored; disable("a", None) raised AttributeError
    from toolkit.errors import BadInput
    from toolkit.overrides import Overrides

    o = Overrides(tmp_path / "overrides.json")
    for target, reason, said in (("", "incident", "a disable needs a target"), (3, "incident", "not 3"),
                                 ("fast-openai", None, "a disable needs a reason")):
        with pytest.raises(BadInput, match=said):
            o.disable(target, reason)
    assert not (tmp_path / "overrides.json").exists() and o.active() == {}


def test_status_reads_a_history_line_whose_time_is_out_of_range(sim_env, policy_copy, tmp_path):
    # what an older version wrote for `disable --for 99999999d`; the on-call page must still come up
    (tmp_path / "overrides.history.jsonl").write_text(json.dumps(
        {"action": "disable", "at": time.time(), "by": "oncall", "reason": "x", "target": "fast-openai",
         "until": 8641795759083.34, "where": "embedded"}) + "\n")
    status = cli("status", "--policy", str(policy_copy))
    assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr
    assert "disable fast-openai by oncall until 8641795759083.34 (not a time)" in status.stdout
