"""Honesty around the answer: the context-window filter, a provider that serves another model, a restarted stream."""
from __future__ import annotations

import subprocess
import sys

from toolkit.router import Router

from .conftest import read_records
from .test_providers import policy_with


def test_a_prompt_longer_than_a_window_skips_that_candidate(sim_env, tmp_path, log_dir):
    p = policy_with(tmp_path, {"work": {"primary": "small", "fallbacks": ["fast-google"]}},
                    models={"small": {"model": "openai/gpt-4o-mini", "tier": 1, "context_window": 50,
                                      "api_base": f"{sim_env.url}/v1"}})
    prompt = "Please summarise the following incident report carefully. " * 20   # ~200 tokens
    r = Router(p, log=log_dir).complete("work", prompt)
    assert r.served_model == "fast-google" and r.fallback_used
    [skip] = r.skipped
    assert skip.alias == "small" and skip.reason == "context_window" and "> window 50" in skip.detail
    assert sim_env.state.stats.get(("openai", "gpt-4o-mini"), 0) == 0          # never sent
    short = Router(p, log=log_dir).complete("work", "hi")
    assert short.served_model == "small" and not short.skipped


def test_a_provider_serving_another_model_is_flagged(sim_env, policy_copy, log_dir):
    router = Router(policy_copy, log=log_dir)
    sim_env.state.set("gpt-4.1", {"served_model": "gpt-4.1-2025-04-14"})     # a dated snapshot: the same model
    router.complete("code", "dedupe a list")
    sim_env.state.set("gpt-4.1", {"served_model": "gpt-4.1-mini"})           # a cheaper model than asked for
    r = router.complete("code", "dedupe a list")
    assert r.response_model == "gpt-4.1-mini" and r.model_mismatch
    snapshot, cheaper = read_records(log_dir)
    assert snapshot["model_mismatch"] is False and cheaper["model_mismatch"] is True
    assert "gpt-4.1-mini" in cheaper["warnings"] and "MODEL MISMATCH" in r.explain()


def test_a_restarted_stream_marks_the_discarded_text_on_stdout(sim_env, tmp_path):
    p = policy_with(tmp_path, {"work": {"primary": "strong-anthropic", "fallbacks": ["strong-openai"],
                                        "stream_restart": True}})
    sim_env.state.set("claude-sonnet-4-6", {"fault": "cut_stream"})
    r = subprocess.run([sys.executable, "-m", "toolkit.cli", "route", "--policy", str(p), "--log",
                        str(tmp_path / "log"), "--intent", "work", "--stream", "Summarise the week."],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "[claude-sonnet-4-6]"                 # what was shown before the cut, on its own line
    assert lines[1].startswith("[discarded above: the answer starts over")
    assert lines[2] == "[gpt-4.1] Summarise the week."
    assert "[claude-sonnet-4-6][gpt-4.1]" not in r.stdout
