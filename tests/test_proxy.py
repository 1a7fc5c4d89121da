"""The policy served by the real LiteLLM proxy (toolkit/proxy): ``routekit export litellm-proxy``, the proxy
started on 127.0.0.1 with that config against the simulator, the routekit callback's records in the route log,
and the proxy's spend log (in a real PostgreSQL) imported beside them without double counting.

The proxy needs ``litellm[proxy]``, which cannot share an environment with routekit (it pins polars < 2): it
runs from its own virtualenv — ``make proxy-env`` builds ``.venv-proxy`` at the litellm version pyproject.toml
pins, with routekit installed into it without its dependencies; ``ROUTEKIT_PROXY_PYTHON`` points elsewhere.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from toolkit.costs import PriceBook
from toolkit.policy import load_policy
from toolkit.routelog.record import prompt_hash

from .conftest import DEMO_POLICY, ROOT, free_port, read_records

pytestmark = pytest.mark.slow

MASTER_KEY = "sk-routekit-proxy-test-0123456789abcdef"
FIXTURES = Path(__file__).parent / "fixtures"


def proxy_python() -> Path | None:
    found = os.environ.get("ROUTEKIT_PROXY_PYTHON") or ROOT / ".venv-proxy" / "bin" / "python"
    path = Path(found)
    return path if path.exists() else None


@pytest.fixture(scope="module")
def proxy_db():
    """A real PostgreSQL with the proxy's LiteLLM_SpendLogs table (as its Prisma schema creates it)."""
    import psycopg

    from .test_importers import postgres_server

    ddl = (FIXTURES / "importers" / "litellm_spendlogs.sql").read_text()
    create = ddl[ddl.index('CREATE TABLE "LiteLLM_SpendLogs"'):]
    create = create[:create.index(");") + 2]
    with postgres_server() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(create)
        yield url


@pytest.fixture(scope="module")
def proxy(sim, proxy_db, tmp_path_factory):
    """The real LiteLLM proxy serving the demo policy (exported by routekit) against the simulator."""
    python = proxy_python()
    if python is None:
        pytest.skip("no LiteLLM proxy environment: `make proxy-env` builds .venv-proxy (or set ROUTEKIT_PROXY_PYTHON)")
    from toolkit.cli import main

    tmp = tmp_path_factory.mktemp("proxy")
    log_dir, config = tmp / "routelog", tmp / "config.yaml"
    env = {**os.environ, "ROUTEKIT_SIM_URL": sim.url, "ROUTEKIT_LOCAL_URL": f"http://127.0.0.1:{free_port()}"}
    saved = {k: os.environ.get(k) for k in ("ROUTEKIT_SIM_URL", "ROUTEKIT_LOCAL_URL")}
    os.environ.update({k: env[k] for k in saved})
    try:
        policy = tmp / "policy.yaml"
        shutil.copy(DEMO_POLICY, policy)
        assert main(["export", "litellm-proxy", "--policy", str(policy), "-o", str(config), "--log", str(log_dir)]) == 0
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    # the stand-in for the proxy's Prisma spend-log writer goes beside the config (tests/fixtures/proxy)
    shutil.copy(FIXTURES / "proxy" / "spendlogs_writer.py", tmp / "spendlogs_writer.py")
    text = config.read_text().replace("  - toolkit.proxy.callback.handler\n",
                                      "  - toolkit.proxy.callback.handler\n  - spendlogs_writer.writer\n")
    config.write_text(text)
    port = free_port()
    penv = {**env, "PYTHONPATH": str(ROOT), "LITELLM_MASTER_KEY": MASTER_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "SPENDLOGS_DATABASE_URL": proxy_db}
    for k in ("ROUTEKIT_LOG_DIR", "DATABASE_URL"):
        penv.pop(k, None)
    out = open(tmp / "proxy.log", "wb")
    proc = subprocess.Popen([str(python), "-m", "litellm.proxy.proxy_cli", "--config", str(config), "--host",
                             "127.0.0.1", "--port", str(port)], cwd=tmp, env=penv, stdout=out,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while True:
        try:
            urllib.request.urlopen(url + "/health/liveliness", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError("the proxy did not start:\n" + (tmp / "proxy.log").read_text()[-3000:])
            time.sleep(0.5)
    yield {"url": url, "log_dir": log_dir, "policy": load_policy(policy), "db": proxy_db, "config": config,
           "tmp": tmp}
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
    out.close()


def ask(proxy: dict, model: str, content: str) -> tuple[int, dict, dict]:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": content}]}).encode()
    req = urllib.request.Request(proxy["url"] + "/v1/chat/completions", data=body, method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {MASTER_KEY}"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read() or b"{}")


def record_of(proxy: dict, content: str, wait_s: float = 15.0) -> dict:
    """The callback's record of the request whose prompt was ``content`` (it is written in the background)."""
    want = prompt_hash([{"role": "user", "content": content}])
    deadline = time.time() + wait_s
    while time.time() < deadline:
        found = [r for r in read_records(proxy["log_dir"]) if r["prompt_hash"] == want]
        if found:
            assert len(found) == 1
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no route record for {content!r}")


@pytest.fixture
def fresh_sim(sim):
    sim.state.scenario = {}
    sim.state.reset()
    sim.state.stats.clear()
    return sim


def test_requests_by_intent_are_served_and_recorded(proxy, fresh_sim):
    status, headers, body = ask(proxy, "triage", "proxy: plain triage")
    assert status == 200 and body["choices"][0]["message"]["content"] == "[gpt-4o-mini] proxy: plain triage"
    assert body["model"] == "openai/gpt-4o-mini"                       # the model that served, not the group
    assert headers["x-routekit-fallback-used"] == "false" and headers["x-routekit-attempts"] == "1"
    rec = record_of(proxy, "proxy: plain triage")
    assert rec["source"] == "litellm_proxy" and rec["intent"] == "triage" and rec["served_alias"] == "fast-openai"
    assert rec["outcome"] == "served" and rec["attempt_count"] == 1 and not rec["fallback_used"]
    assert rec["gen_ai.provider.name"] == "openai" and rec["prompt"] is None and rec["output"] is None
    policy = proxy["policy"]
    rates = PriceBook.load().rates_for(policy.models["fast-openai"])
    a = rec["attempts"][0]
    from toolkit.usage import Usage

    assert rec["cost_usd"] == pytest.approx(rates.cost(Usage(a["input_tokens"], a["output_tokens"]))[0])
    assert rec["policy_version"] == policy.version and rec["price_version"] == PriceBook.load().version
    assert rec["team"] == "default" and rec["state"] is None


def test_a_fallback_serves_when_the_primary_is_down(proxy, fresh_sim):
    fresh_sim.state.set("claude-sonnet-4-6", {"error_rate": 1.0, "error_status": 500})
    status, headers, body = ask(proxy, "synthesis", "proxy: primary down")
    assert status == 200 and body["model"] == "openai/gpt-4.1"
    assert headers["x-routekit-fallback-used"] == "true" and headers["x-routekit-attempts"] == "2"
    assert headers["x-routekit-served-alias"] == "strong-openai"
    rec = record_of(proxy, "proxy: primary down")
    assert rec["fallback_used"] is True and rec["attempt_count"] == 2
    assert [(a["alias"], a["outcome"]) for a in rec["attempts"]] == [("strong-anthropic", "server_error"),
                                                                    ("strong-openai", "ok")]
    assert rec["requested_alias"] == "strong-anthropic" and rec["served_alias"] == "strong-openai"
    assert rec["failed_cost_usd"] == 0 and rec["degraded"] is False


def test_the_config_lists_what_the_proxy_cannot_hold(proxy):
    # extraction: mid-openai, mid-bedrock (tier 2, the floor); regex-extract is a tool the proxy cannot call
    text = proxy["config"].read_text()
    assert "regex-extract" in text.split("model_list:")[0]       # listed as not held, not dropped silently
    assert "extraction@regex-extract" not in text


def test_a_local_intent_never_reaches_a_vendor(proxy, fresh_sim):
    before = fresh_sim.state.stats.copy()
    status, _, _ = ask(proxy, "private", "proxy: private, local model down")
    assert status >= 500
    assert fresh_sim.state.stats == before                          # the simulator saw no request at all
    rec = record_of(proxy, "proxy: private, local model down")
    assert rec["outcome"] == "failed" and rec["served_alias"] is None and rec["boundary"] == "local"
    assert [a["alias"] for a in rec["attempts"]] == ["local"] and rec["attempts"][0]["outcome"] == "connection"


def test_spend_logs_import_beside_the_callback_records_without_double_counting(proxy, fresh_sim, tmp_path):
    import psycopg

    from toolkit.importers import import_litellm_postgres

    ask(proxy, "triage", "proxy: for the spend log")
    record_of(proxy, "proxy: for the spend log")
    time.sleep(1.0)    # the spend-log writer runs in the same background pass as the callback
    with psycopg.connect(proxy["db"]) as conn:
        ids = {r[0] for r in conn.execute('SELECT request_id FROM "LiteLLM_SpendLogs"')}
    logged = {r["request_id"]: r for r in read_records(proxy["log_dir"])}
    assert ids and ids <= set(logged)          # the callback used the proxy's own request ids
    # a request of another proxy instance (no routekit callback there): in the spend log only
    with psycopg.connect(proxy["db"], autocommit=True) as conn:
        conn.execute('INSERT INTO "LiteLLM_SpendLogs" (request_id, call_type, spend, "startTime", "endTime", model, '
                     'model_group, custom_llm_provider, prompt_tokens, completion_tokens, status) VALUES '
                     "('other-instance-1', 'acompletion', 0.0042, now(), now(), 'gpt-4o-mini', 'triage', 'openai', "
                     "10, 20, 'success')")
    before = read_records(proxy["log_dir"])
    report = import_litellm_postgres(proxy["db"], proxy["log_dir"])
    assert report.duplicates == len(ids) and report.records == 1, report.summary()
    after = read_records(proxy["log_dir"])
    assert len(after) == len(before) + 1
    assert sum(r["request_id"] == "other-instance-1" for r in after) == 1
    spent = sum(r["cost_usd"] or 0 for r in after)
    assert spent == pytest.approx(sum(r["cost_usd"] or 0 for r in before) + 0.0042)
    again = import_litellm_postgres(proxy["db"], proxy["log_dir"])   # safe to repeat
    assert again.records == 0 and again.duplicates == len(ids) + 1
