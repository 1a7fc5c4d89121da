"""Secrets are scrubbed by value, whatever their shape.

Before: a provider that echoed the key in a 401 body (an Azure 32-hex key, a generic 32-character key) had it
written verbatim to the route log's attempt messages and printed by `routekit route --json`, because redaction
only recognised known shapes (sk-…, AIza…, Bearer …).
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from toolkit import redact
from toolkit.policy import load_policy
from toolkit.router import NoEligibleRoute, Router

AZURE_KEY = "3f9a1c0b7e6d5a4f8b2c1d0e9f8a7b6c"            # 32 hex, no vendor prefix
GENERIC_KEY = "Zq8wXv2LmN4pR6tY9uB1cD3eF5gH7jK0"           # 32 alphanumerics


def policy(tmp_path, sim_url: str):
    p = tmp_path / "p.yaml"
    p.write_text(textwrap.dedent(f"""\
        models:
          az: {{model: azure/gpt-4.1-mini, tier: 2, api_base: "{sim_url}", api_version: "2024-10-21",
                api_key_env: ROUTEKIT_TEST_AZURE_KEY}}
          gen: {{model: openai/gpt-4o-mini, tier: 2, api_base: "{sim_url}/v1", api_key_env: ROUTEKIT_TEST_GENERIC_KEY}}
        routes:
          azure: {{primary: az}}
          generic: {{primary: gen}}
        """))
    return p


@pytest.fixture
def keyed(sim_env, tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTEKIT_TEST_AZURE_KEY", AZURE_KEY)
    monkeypatch.setenv("ROUTEKIT_TEST_GENERIC_KEY", GENERIC_KEY)
    for model in ("gpt-4.1-mini", "gpt-4o-mini"):
        sim_env.state.set(model, {"error_rate": 1.0, "error_status": 401, "echo_key": True})
    return policy(tmp_path, sim_env.url)


@pytest.mark.parametrize("intent, key", [("azure", AZURE_KEY), ("generic", GENERIC_KEY)])
def test_an_echoed_key_is_never_written_or_raised(keyed, log_dir, intent, key):
    router = Router(keyed, log=log_dir)
    with pytest.raises(NoEligibleRoute) as e:
        router.complete(intent, "hello")
    assert e.value.record["attempts"][0]["outcome"] == "auth"
    # the provider really echoed it: the scrub is what keeps it out
    assert "credential provided: [REDACTED]" in e.value.record["attempts"][0]["message"]
    assert key not in str(e.value) and key not in json.dumps(e.value.record)
    written = "".join(f.read_text() for f in log_dir.rglob("*.jsonl"))
    assert written and key not in written


@pytest.mark.parametrize("intent, key", [("azure", AZURE_KEY), ("generic", GENERIC_KEY)])
def test_route_json_never_prints_the_key(keyed, tmp_path, intent, key):
    r = subprocess.run([sys.executable, "-m", "toolkit.cli", "route", "--policy", str(keyed), "--json",
                        "--log", str(tmp_path / "log"), "--intent", intent, "hello"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "auth" in r.stdout
    assert key not in r.stdout and key not in r.stderr and "Traceback" not in r.stderr


def test_values_of_policy_named_variables_are_scrubbed_whatever_their_shape(tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTEKIT_TEST_HOOK", "https://hooks.example/T000/B000/xyzzy-plugh")
    monkeypatch.setenv("ROUTEKIT_TEST_KEY2", "correct-horse-battery")
    p = tmp_path / "p.yaml"
    p.write_text(textwrap.dedent("""\
        models:
          a: {model: openai/gpt-4o-mini, tier: 1, api_key_env: ROUTEKIT_TEST_KEY2}
        routes:
          t: {primary: a}
        budgets:
          - {name: b, limit_usd: 5, alert_webhook_env: ROUTEKIT_TEST_HOOK}
        """))
    load_policy(p)
    text = "posting to https://hooks.example/T000/B000/xyzzy-plugh with correct-horse-battery failed"
    out = redact.scrub(text)
    assert "xyzzy-plugh" not in out and "correct-horse-battery" not in out and out.count(redact.REDACTED) == 2


def test_short_or_common_values_are_not_treated_as_secrets(monkeypatch):
    monkeypatch.setenv("ROUTEKIT_TEST_TOKEN", "1")   # a flag, not a secret: scrubbing every "1" would ruin logs
    assert redact.scrub("retry 1 of 1") == "retry 1 of 1"
