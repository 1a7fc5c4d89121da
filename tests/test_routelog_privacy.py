"""No record holds a raw prompt unless its route opted in, nor anything that looks like a key.

Every route log the whole test session writes is scanned the same way when it ends (tests/conftest.py,
``every_route_log_is_clean``), whichever test wrote it.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from toolkit.redact import REDACTED, SECRET_PATTERNS
from toolkit.routelog import JSONL_NAME, privacy_findings
from toolkit.router import NoEligibleRoute, Router

KEY = "sk-ant-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3" * 2
CANARY = "CANARY-PRIVATE-7731"
PROMPT = f"Customer {CANARY} pasted their key {KEY} into the ticket; is this billing?"


def route_some(sim_env, policy_copy: Path, log_dir: Path) -> Router:
    """Real routed calls (litellm -> simulator): triage opts in to storing prompts, synthesis does not."""
    text = policy_copy.read_text()
    policy_copy.write_text(text.replace("owner: support-platform}", "owner: support-platform, store_prompts: true}"))
    router = Router(policy_copy, log=log_dir)
    assert router.policy.routes["triage"].store_prompts and not router.policy.routes["synthesis"].store_prompts
    router.complete("triage", PROMPT, team="support")
    router.complete("synthesis", PROMPT, team="research")
    for model in ("claude-sonnet-4-6", "gpt-4.1"):
        sim_env.state.set(model, {"error_rate": 1.0, "error_status": 503})
    with pytest.raises(NoEligibleRoute):
        router.complete("synthesis", PROMPT, team="research")
    return router


def test_raw_prompt_only_where_the_route_opted_in(sim_env, policy_copy, log_dir):
    router = route_some(sim_env, policy_copy, log_dir)
    lines = [json.loads(x) for f in log_dir.glob(f"date=*/{JSONL_NAME}") for x in f.read_text().splitlines()]
    by_intent = {}
    for rec in lines:
        by_intent.setdefault(rec["intent"], []).append(rec)
    [triage] = by_intent["triage"]
    assert CANARY in triage["prompt"] and triage["output"]           # opted in: stored...
    assert KEY not in triage["prompt"] and REDACTED in triage["prompt"]  # ...but never a key
    for rec in by_intent["synthesis"]:
        assert rec["prompt"] is None and rec["output"] is None
        assert CANARY not in json.dumps(rec) and len(rec["prompt_hash"]) == 64
    allowed = {(router.policy.version, "triage")}
    assert privacy_findings(log_dir, allowed) == []
    # The audit has teeth: without the opt-in the stored prompt is reported, and so is a raw key
    # (planted in a copy outside pytest's temporary tree, which the session-wide scan reads).
    assert [f for f in privacy_findings(log_dir) if "'triage'" in f]
    assert SECRET_PATTERNS[0].search(KEY)
    with tempfile.TemporaryDirectory() as other:
        shutil.copytree(log_dir, other, dirs_exist_ok=True)
        with open(next(Path(other).glob(f"date=*/{JSONL_NAME}")), "a") as f:
            f.write(f'{{"request_id": "x", "note": "{KEY}"}}\n')
        assert any("secret-looking" in f for f in privacy_findings(other, allowed))
