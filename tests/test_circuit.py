"""Circuit state: opened by failures, published for `routekit status`."""
from __future__ import annotations

import json
import subprocess
import sys

from toolkit.circuit import CircuitBreaker, read_published
from toolkit.router import Router


def test_opens_half_opens_and_closes(tmp_path):
    now = [0.0]
    cb = CircuitBreaker(failures=2, cooldown_s=10, clock=lambda: now[0], state_path=tmp_path / "c.json")
    assert not cb.failure("m") and cb.is_open("m") is None
    assert cb.failure("m") and cb.is_open("m") == 10
    assert read_published(tmp_path / "c.json")[0]["m"]["openings"] == 1
    now[0] = 11
    assert cb.is_open("m") is None          # half-open: one probe goes through
    assert cb.failure("m")                  # a failed probe re-opens at once
    now[0] = 30
    cb.success("m")
    assert read_published(tmp_path / "c.json")[0]["m"]["open_until"] is None
    assert cb.snapshot()["m"]["openings"] == 2


def test_retry_after_opens_for_that_long():
    cb = CircuitBreaker(failures=5, cooldown_s=30, clock=lambda: 0.0)
    assert cb.failure("m", retry_after_s=4) and cb.is_open("m") == 4


def test_status_shows_open_circuit(sim_env, policy_copy, log_dir):
    router = Router(policy_copy, log=log_dir)
    sim_env.state.set("gpt-4o-mini", {"error_rate": 1.0, "error_status": 500})
    for _ in range(3):
        router.complete("triage", "x")
    r = subprocess.run([sys.executable, "-m", "toolkit.cli", "status", "--policy", str(policy_copy), "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["open_circuits"] == ["fast-openai"]
    r = subprocess.run([sys.executable, "-m", "toolkit.cli", "status", "--policy", str(policy_copy)],
                       capture_output=True, text=True)
    assert "circuit fast-openai: OPEN" in r.stdout
