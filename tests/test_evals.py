"""Prompt sets, scorers, the routed LLM judge, baselines (resumable) and measured floors."""
from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import sys
import time

import polars as pl
import pytest

from toolkit import evals
from toolkit.evals import LLMJudge, PromptItem, PromptSetError, load_prompts, run_baseline

from .conftest import DATA, ROOT, read_records

PROMPTS = DATA / "prompts"


def item(expected=None, check="normalized", **kw) -> PromptItem:
    check = {"type": check} if isinstance(check, str) else check
    return PromptItem(id="x", intent="t", messages=({"role": "user", "content": "q?"},), expected=expected,
                      check=check, **kw)


def length_scorer(output: str, item: PromptItem) -> float:
    """A custom scorer for the callable check: 1 for answers of at most `max_words` words."""
    return float(len(output.split()) <= item.check.get("max_words", 3))


# --- prompt sets -------------------------------------------------------------------------------------

def test_shipped_prompt_sets_load():
    items = load_prompts(sorted(PROMPTS.glob("*.jsonl")))
    intents = {i.intent for i in items}
    assert {"math", "triage", "extraction", "synthesis", "code", "review", "private", "private-chat"} == intents
    assert all(i.local_only and i.sensitivity == "private" for i in items if i.intent.startswith("private"))
    assert len({i.id for i in items}) == len(items)


def test_gsm8k_set_answers_are_the_ones_routellm_graded():
    """Each expected answer is the last integer of a response RouteLLM marked correct; no prompt is contaminated."""
    src = DATA / "outcomes" / "routellm-gsm8k"
    contaminated = {json.loads(line)["eval_prompt"] for line in (src / "contaminated_prompts.jsonl").open()}
    with (src / "gsm8k_responses.csv").open(newline="") as f:
        raw = list(csv.DictReader(f))
    items = load_prompts(PROMPTS / "gsm8k.jsonl")
    assert len(items) == 24
    for it in items:
        row = raw[int(it.id.rsplit("-", 1)[1])]
        assert it.question == row["prompt"] and row["prompt"] not in contaminated
        graded = {int(re.findall(r"\d+", row[f"{m}_response"].replace(",", ""))[-1])
                  for m in ("gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1") if row[m] == "True"}
        assert graded == {it.expected}


def test_bad_prompt_lines_are_named_by_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    lines = [
        '{"id": "a", "intent": "t", "prompt": "hi", "expected": "x"}',
        '{"id": "b", "intent": "t", "prompt": "hi", "expected": "x"',                 # 2: broken JSON
        '{"id": "c", "prompt": "hi", "expected": "x"}',                                # 3: no intent
        '{"id": "d", "intent": "t", "prompt": "hi", "expected": "x", "check": "fuzzy"}',  # 4: unknown scorer
        '{"id": "a", "intent": "t", "prompt": "hi", "expected": "x"}',                 # 5: duplicate id
        '{"id": "e", "intent": "t", "prompt": "hi", "check": {"type": "regex", "pattern": "(("}}',  # 6
        '{"id": "f", "intent": "t", "prompt": "hi", "expected": "ten", "check": "numeric"}',        # 7
        '',
        '{"id": "g", "intent": "t", "messages": [{"role": "user"}], "expected": "x"}',  # 9: bad messages
        '{"id": "h", "intent": "t", "prompt": "hi", "check": {"type": "json_schema", "schema": {"type": 5}}}',
        '{"id": "i", "intent": "t", "prompt": "hi", "check": {"type": "callable", "ref": "no.such:fn"}}',
        '{"id": "j", "intent": "t", "prompt": "hi", "expected": "x", "colour": "red"}',
    ]
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(PromptSetError) as e:
        load_prompts(bad)
    msg = str(e.value)
    for n, what in [(2, "not valid JSON"), (3, "intent: required"), (4, "unknown scorer 'fuzzy'"),
                    (5, "duplicate id 'a'"), (6, "bad regex"), (7, "numeric needs a number"), (9, "messages:"),
                    (10, "bad JSON schema"), (11, "callable:"), (12, "colour: unknown field")]:
        assert f"{bad}:{n}: " in msg and what in msg, (n, what)
    assert len(e.value.problems) == 10


# --- scorers -----------------------------------------------------------------------------------------

def test_scorers():
    s = lambda it, out: evals.score(it, out).value  # noqa: E731
    assert s(item("Billing", "exact"), " Billing\n") == 1 and s(item("Billing", "exact"), "billing") == 0
    assert s(item("How-to", "normalized"), "  HOWTO.") == 1 and s(item("How-to", "normalized"), "how to") == 0
    assert s(item("the Bug", "normalized"), "bug!") == 1
    assert s(item(["cache", "rollback"], "contains"), "Cache failed; a ROLLBACK fixed it") == 1
    assert s(item(["cache", "rollback"], "contains"), "the cache failed") == 0
    assert s(item(["cache", "rollback"], {"type": "contains", "any": True}), "the cache failed") == 1
    assert s(item("Cache", {"type": "contains", "case_sensitive": True}), "the cache") == 0
    assert s(item(None, {"type": "regex", "pattern": r"def\s+f\("}), "x\ndef  f(a):") == 1
    assert s(item("^ok", {"type": "regex", "ignore_case": True}), "OK fine") == 1
    num = item(1240.5, "numeric")
    assert s(num, "Total is 1,240.50 dollars") == 1 and s(num, "no idea") == 0
    assert s(item(18, "numeric"), "16 - 3 - 4 = 9; 9 * 2 = 18\n#### 18\nwith 2 extra") == 1   # #### wins
    assert s(item(49, "numeric"), r"so the sum is \boxed{{49}}, not 50") == 1
    assert s(item(100, {"type": "numeric", "rel": 0.05}), "about 96") == 1
    assert s(item(100, {"type": "numeric", "tolerance": 2}), "about 96") == 0
    schema = {"type": "object", "required": ["email"], "properties": {"email": {"type": "string"}}}
    js = item(None, {"type": "json_schema", "schema": schema})
    assert s(js, 'Here:\n```json\n{"email": "a@b.example"}\n```') == 1
    assert s(js, '{"mail": "a@b.example"}') == 0 and s(js, "no json") == 0
    custom = item(None, {"type": "callable", "ref": "tests.test_evals:length_scorer", "max_words": 2})
    assert s(custom, "two words") == 1 and s(custom, "three words here") == 0
    with pytest.raises(ValueError, match="LLM judge"):
        evals.score(item(None, "judge"), "x")


def test_judge_is_a_routed_call_with_its_cost_logged(sim_env, policy_copy, log_dir):
    from toolkit.router import Router

    sim_env.state.set("gemini-3.1-pro-preview", {"answer": "SCORE: 8\nCorrect and concise."})   # review's primary
    judge = LLMJudge(Router(policy_copy, log=log_dir))
    got = judge.score(item("Paris", "judge"), "It is Paris.")
    assert got.value == pytest.approx(0.8) and got.cost_usd and got.cost_usd > 0
    [rec] = read_records(log_dir)
    assert rec["intent"] == "review" and rec["team"] == "eval-judge" and rec["served_alias"] == "strong-google"
    assert rec["cost_usd"] == pytest.approx(got.cost_usd)
    sim_env.state.set("gemini-3.1-pro-preview", {"answer": "It looks fine to me"})
    assert judge.score(item("Paris", "judge"), "Paris").value is None
    assert LLMJudge.parse("score = 7/10") == pytest.approx(0.7) and LLMJudge.parse("SCORE: 12") == 1.0


# --- baselines ---------------------------------------------------------------------------------------

def test_a_model_named_twice_is_called_once_per_prompt(sim_env, policy_copy, tmp_path):
    # before: each prompt was called (and paid) twice on it
    items = load_prompts(PROMPTS / "gsm8k.jsonl")[:2]
    run = run_baseline(policy_copy, items, ["fast-openai", "fast-openai"], tmp_path / "base", progress=False)
    assert run.called == 2 and sum(sim_env.state.stats.values()) == 2 and run.scores.height == 2



def test_a_label_the_policy_does_not_declare_is_refused_before_any_call(sim_env, policy_copy, tmp_path):
    # before: the first such prompt raised mid-run (after others were paid for), naming no prompt file
    lines = [{"id": f"p{k}", "intent": "triage", "prompt": f"spam {k}?", "expected": "no", "check": "contains",
              **({"sensitivity": "internal"} if k == 2 else {})} for k in range(3)]
    src = tmp_path / "labelled.jsonl"
    src.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(PromptSetError) as e:
        run_baseline(policy_copy, load_prompts(src), ["fast-openai"], tmp_path / "base", progress=False)
    assert f"{src}:3: unknown sensitivity 'internal'" in str(e.value) and "private (local)" in str(e.value)
    assert sum(sim_env.state.stats.values()) == 0 and not (tmp_path / "base").exists()


def test_baseline_against_simulator_and_real_local_model(sim_env, local_model, policy_copy, tmp_path, monkeypatch):
    """Scores mean something: gpt-4.1 answers '#### 540' to everything, right only on the first GSM8K item."""
    monkeypatch.setenv("ROUTEKIT_LOCAL_URL", local_model)
    math_items = load_prompts(PROMPTS / "gsm8k.jsonl")[:4]
    private = [next(i for i in load_prompts(PROMPTS / "private.jsonl") if i.intent == intent)
               for intent in ("private", "private-chat")]
    assert math_items[0].expected == 540 and all(i.expected != 540 for i in math_items[1:])
    sim_env.state.set("gpt-4.1", {"answer": "Step by step...\n#### 540"})
    sim_env.state.set("gpt-4o-mini", {"answer": "I am not sure."})
    out, log = tmp_path / "base", tmp_path / "log"
    vendors = ["strong-openai", "fast-openai"]
    run = run_baseline(policy_copy, math_items + private, vendors, out, concurrency=3, log=log, progress=False)
    summary = {(r["model"], r["intent"]): r for r in run.summary.iter_rows(named=True)}
    assert summary[("strong-openai", "math")]["mean_score"] == pytest.approx(0.25)
    assert summary[("fast-openai", "math")]["mean_score"] == 0.0
    # private prompts never leave local models: refused before any call, no measurement
    refused = run.scores.filter(pl.col("intent").str.starts_with("private"))
    assert refused["error"].to_list() == ["boundary"] * 4 and refused["attempts"].to_list() == [0] * 4
    assert summary[("strong-openai", "private")]["scored"] == 0
    assert dict(sim_env.state.stats) == {("openai", "gpt-4.1"): 4, ("openai", "gpt-4o-mini"): 4}
    assert (run.called, run.reused) == (8, 0)   # 12 pairs, 4 refused without a call
    again = run_baseline(policy_copy, math_items + private, vendors, out, log=log, progress=False)
    assert (again.called, again.reused) == (0, 12) and sum(sim_env.state.stats.values()) == 8
    # a baseline written before the rename (outcomes.jsonl) resumes as well: nothing is paid twice
    old = tmp_path / "old"
    old.mkdir()
    (out / "scores.jsonl").rename(old / "outcomes.jsonl")
    legacy = run_baseline(policy_copy, math_items + private, vendors, old, log=log, progress=False)
    assert (legacy.called, legacy.reused) == (0, 12) and sum(sim_env.state.stats.values()) == 8
    assert legacy.summary.equals(run.summary) and not (old / "scores.jsonl").exists()
    records = read_records(log)
    assert len(records) == 8 and {r["team"] for r in records} == {"eval"} and {r["intent"] for r in records} == {"math"}
    assert all(not r["fallback_used"] and r["attempt_count"] == 1 for r in records)
    paid = run.scores.filter(pl.col("model") == "strong-openai", pl.col("intent") == "math")["cost_usd"].sum()
    assert paid == pytest.approx(sum(r["cost_usd"] for r in records if r["served_alias"] == "strong-openai"))
    for name in ("scores.parquet", "scores.csv", "summary.csv"):
        assert (out / name).exists()
    # the score table feeds the research tools as an outcome table as it is (the refused private rows are left out)
    from toolkit.research import load_outcomes, single

    o = load_outcomes(out / "scores.parquet")
    assert o.n == 4 and single(o, "strong-openai").quality == pytest.approx(0.25)

    # the real local model answers the private prompts (contains-scored), free, with its own token counts
    local = run_baseline(policy_copy, private, ["local"], tmp_path / "local", log=log, progress=False).scores
    assert local["error"].to_list() == [None, None] and local["cost_usd"].to_list() == [0.0, 0.0]
    assert all(t > 0 for t in local["output_tokens"].to_list())
    assert set(local["score"].to_list()) <= {0.0, 1.0}
    assert {r["served_alias"] for r in read_records(log)[8:]} == {"local"}


def test_baseline_interrupted_then_resumed_pays_no_prompt_twice(sim_env, policy_copy, tmp_path):
    for wire in ("gpt-4o-mini", "gpt-4.1"):
        sim_env.state.set(wire, {"latency_ms": 120})
    prompts = [str(PROMPTS / "triage.jsonl"), str(PROMPTS / "code.jsonl")]   # 20 prompts x 2 models
    out, log = tmp_path / "base", tmp_path / "log"
    cmd = [sys.executable, "-m", "toolkit.cli", "eval", "baseline", "--policy", str(policy_copy),
           "--prompts", prompts[0], "--prompts", prompts[1], "--models", "fast-openai,strong-openai",
           "--out", str(out), "--log", str(log), "--concurrency", "3", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = out / "scores.jsonl"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and (not lines.exists() or len(lines.read_text().splitlines()) < 12):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in err
    first = len(lines.read_text().splitlines())
    assert 12 <= first < 40
    # calls in flight at Ctrl-C were finished and recorded: every request the simulator saw is in the file
    assert sum(sim_env.state.stats.values()) == first

    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"{40 - first} calls made, {first} scored answers reused" in done.stdout
    rows = [json.loads(x) for x in lines.read_text().splitlines()]
    assert len(rows) == 40 and len({(r["prompt_id"], r["model"]) for r in rows}) == 40
    # the simulator's own counts: each prompt reached each model exactly once over both runs
    assert dict(sim_env.state.stats) == {("openai", "gpt-4o-mini"): 20, ("openai", "gpt-4.1"): 20}
    assert len(read_records(log)) == 40
    table = pl.read_parquet(out / "scores.parquet")
    assert table.height == 40 and table["error"].null_count() == 40


def test_floor_from_measured_scores(tmp_path, policy_copy):
    rows = []
    for alias, hits, errs in [("fast-openai", 9, 0), ("fast-google", 5, 1), ("mid-anthropic", 10, 0)]:
        for k in range(10):
            err = "server_error" if k < errs else None
            rows.append({"prompt_id": f"p{k}", "intent": "triage", "model": alias, "attempts": 1, "error": err,
                         "score": None if err else float(k < hits)})
    rows.append({"prompt_id": "p0", "intent": "private", "model": "fast-openai", "attempts": 0,
                 "error": "boundary", "score": None})
    table = evals.scores_frame(rows)
    [s] = [x for x in evals.suggest_floor(table, policy_copy, min_score=0.8) if x.intent == "triage"]
    # fast-google: p0 a failed call (counts 0), p1-p4 right, p5-p9 wrong -> 0.4 < 0.8, so tier 1 is not safe;
    # at tier 2 only mid-anthropic (1.0) remains
    assert s.measured["fast-google"] == {"score": pytest.approx(0.4), "n": 10, "tier": 1, "in_chain": True}
    assert s.measured["fast-openai"]["score"] == pytest.approx(0.9)
    assert (s.current_min_tier, s.suggested_min_tier) == (1, 2)
    assert "private" not in {x.intent for x in evals.suggest_floor(table, policy_copy, 0.8)}  # never measured
    path = tmp_path / "scores.parquet"
    table.write_parquet(path)
    # --scores takes the table or a baseline directory, even one written before the rename (outcomes.jsonl);
    # --outcomes is the old spelling of the flag
    old = tmp_path / "old-baseline"
    old.mkdir()
    (old / "outcomes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for flag, where in [("--outcomes", path), ("--scores", path), ("--scores", old)]:
        r = subprocess.run([sys.executable, "-m", "toolkit.cli", "eval", "floor", flag, str(where),
                            "--policy", str(policy_copy), "--min-score", "0.8"], capture_output=True, text=True,
                           cwd=ROOT, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "routes.triage.min_tier: 1 -> change to 2" in r.stdout
    import yaml

    block = yaml.safe_load(r.stdout[r.stdout.index("baselines:"):])
    assert block["baselines"]["triage"]["scores"]["mid-anthropic"] == {"score": 1.0, "n": 10}


def test_reference_answers_are_accepted_by_their_own_checks(tmp_path):
    """The simulator's answer key from a prompt set: one answer per literal-expected item, and each is scored 1."""
    from toolkit.evals import reference_answers

    items = load_prompts([DATA / "prompts" / "triage.jsonl", DATA / "prompts" / "gsm8k.jsonl",
                          DATA / "prompts" / "code.jsonl"])
    key = reference_answers(items)
    keyed = [i for i in items if i.question in key]
    assert len(keyed) == len([i for i in items if i.intent in ("triage", "math")]) > 0   # code: regex, no literal
    assert all(evals.score(i, key[i.question]).value == 1.0 for i in keyed)
