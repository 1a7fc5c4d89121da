"""The real local model (Gemma 3 270M on llama-cpp-python's server) behind the private routes."""
from __future__ import annotations

import pytest

from toolkit.router import NoEligibleRoute, Router

from .conftest import read_records


@pytest.fixture
def local_router(sim_env, local_model, policy_copy, log_dir, monkeypatch):
    monkeypatch.setenv("ROUTEKIT_LOCAL_URL", local_model)
    return Router(policy_copy, log=log_dir)


def test_local_route_produces_real_text(local_router, sim_env, log_dir):
    r = local_router.complete("private", "The capital of France is", sensitivity="private")
    assert r.served_model == "local" and len(r.text.split()) >= 3
    assert r.cost_usd == 0.0 and r.attempts[0].input_tokens > 0
    assert sum(sim_env.state.stats.values()) == 0  # nothing went to a vendor
    assert read_records(log_dir)[0]["boundary"] == "local"


def test_chat_template_empty_answer_is_caught(local_router):
    # Through its own chat template the base model answers this with nothing at all:
    # a real empty answer, which must never be served as a success.
    prompt = "Summarise: the meeting moved to Tuesday at 3pm."
    r = local_router.complete("private-chat", prompt, sensitivity="private")
    assert r.attempts[0].alias == "local-chat" and r.attempts[0].outcome == "empty"
    assert r.served_model == "local" and r.fallback_used and r.text.strip()


def test_private_with_local_model_down_fails_without_vendor_traffic(sim_env, policy_copy, log_dir):
    router = Router(policy_copy, log=log_dir)  # ROUTEKIT_LOCAL_URL from sim_env: nothing listens
    with pytest.raises(NoEligibleRoute) as e:
        router.complete("private", "payroll of employee 7", sensitivity="private")
    assert e.value.attempts[0].outcome == "connection"
    assert sum(sim_env.state.stats.values()) == 0


def test_serve_on_a_taken_port_says_so(capsys):
    import socket

    from toolkit.cli import main

    with socket.socket() as taken:   # before: "RuntimeError: local model server did not start", exit 3
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["local", "serve", "--port", str(port)]) == 2
    assert f"127.0.0.1:{port} is taken (Address already in use); choose another port" in capsys.readouterr().err
