"""``routekit export litellm-proxy`` (toolkit/proxy/export.py) without running the proxy: what the config holds,
what it lists as not held, and the refusal of an unsafe chain in the words of ``routekit policy check``.
The real proxy serving such a config is tests/test_proxy.py."""
from __future__ import annotations

import dataclasses

import pytest
import yaml

from toolkit.cli import main
from toolkit.errors import PolicyError
from toolkit.policy import load_policy, static_checks
from toolkit.proxy.export import export_litellm_proxy

from .conftest import DATA

EXAMPLE = DATA / "policy.example.yaml"


def test_example_policy_exports_one_group_per_intent_and_lists_what_it_cannot_hold(tmp_path, capsys):
    out = tmp_path / "proxy.yaml"
    assert main(["export", "litellm-proxy", "--policy", str(EXAMPLE), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "not held by the proxy" in printed
    for rule in ("route extraction: regex-extract", "route extraction: verify", "on_exhausted: degrade",
                 "budget support-monthly", "budget synthesis-daily", "sensitivity", "kill switch"):
        assert rule in printed, rule
    config = yaml.safe_load(out.read_text())
    policy = load_policy(EXAMPLE)
    groups = {d["model_name"]: d for d in config["model_list"]}
    assert set(policy.routes) <= set(groups)                      # clients send model: "<intent>"
    fallbacks = {k: v for f in config["router_settings"]["fallbacks"] for k, v in f.items()}
    assert fallbacks["triage"] == ["triage@fast-google", "triage@mid-anthropic"]
    assert fallbacks["review"] == ["review@open-llama", "review@strong-anthropic", "review@strong-openai",
                                   "review@mid-anthropic"]          # route: references expanded
    assert "extraction@regex-extract" not in groups               # a tool: listed above, not in the proxy
    triage = groups["triage"]["litellm_params"]
    assert triage["api_key"] == "os.environ/OPENAI_API_KEY" and triage["max_retries"] == 0
    assert groups["private"]["litellm_params"]["api_base"] == "http://127.0.0.1:8089/v1"
    assert "private" not in fallbacks or all(g.startswith("private@local") for g in fallbacks["private"])
    assert config["router_settings"]["num_retries"] == 0 and config["litellm_settings"]["num_retries"] == 0
    assert config["router_settings"]["cooldown_time"] == 30 and config["router_settings"]["allowed_fails"] == 2
    assert config["litellm_settings"]["callbacks"] == ["toolkit.proxy.callback.handler"]
    assert config["general_settings"]["master_key"] == "os.environ/LITELLM_MASTER_KEY"
    assert "redis_url" not in config["router_settings"]
    assert out.read_text().startswith("# LiteLLM proxy config")


def test_redis_state_gives_the_proxy_redis_by_variable_name(tmp_path, monkeypatch):
    policy = tmp_path / "p.yaml"
    policy.write_text(EXAMPLE.read_text() + "\nstate: {backend: redis, url_env: ROUTEKIT_REDIS_URL}\n")
    monkeypatch.setenv("ROUTEKIT_REDIS_URL", "redis://:hunter2-secret-pw@cache.internal:6379/0")
    config = export_litellm_proxy(load_policy(policy)).config
    assert config["router_settings"]["redis_url"] == "os.environ/ROUTEKIT_REDIS_URL"
    assert "hunter2" not in yaml.safe_dump(config)


def test_a_local_intent_reaching_a_vendor_is_refused_as_policy_check_says(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("private:    {primary: local, fallbacks: [local-ollama],",
                                               "private:    {primary: local, fallbacks: [local-ollama, fast-openai],"))
    assert main(["policy", "check", str(bad), "--no-prices"]) == 1
    check = capsys.readouterr().err
    assert main(["export", "litellm-proxy", "--policy", str(bad), "-o", str(tmp_path / "x.yaml")]) == 1
    export = capsys.readouterr().err
    assert "has boundary 'local' but model 'fast-openai'" in check and export == check
    assert not (tmp_path / "x.yaml").exists()


def test_a_policy_built_in_code_meets_the_same_checks():
    policy = load_policy(EXAMPLE)
    route = policy.routes["private"].model_copy(update={"fallbacks": ("local-ollama", "fast-openai")})
    unsafe = dataclasses.replace(policy, routes={**policy.routes, "private": route})
    with pytest.raises(PolicyError) as e:
        export_litellm_proxy(unsafe)
    assert [p.message for p in e.value.problems] == [m for _, m in static_checks(unsafe)]
