"""Trained routers: honest cross-validation, baselines, calibration, emitted policies the Router runs - offline."""
from __future__ import annotations

import hashlib
import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from toolkit import research
from toolkit.research import calibrate, emit, evaluate, features, learned, policy_replay

from .conftest import DATA, ROOT, read_records
from .test_research import plain_apgr

pytest.importorskip("sklearn")
GSM8K = DATA / "outcomes" / "routellm-gsm8k.csv"
ARENA = DATA / "outcomes" / "routerarena.csv"
STRONG, WEAK = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"


def cli(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "toolkit.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600, env=env)


def synthetic(tmp_path: Path, n: int = 240, signal: bool = True, seed: int = 0) -> Path:
    """A strong/weak table over three intents.  With ``signal``, the word 'hard' marks the prompts only the
    strong model gets right; without it the outcomes are coin flips and the words mean nothing."""
    rng = np.random.default_rng(seed)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"]
    rows, prompts = [], []
    for i in range(n):
        hard = rng.random() < 0.4
        text = " ".join(rng.choice(words, 6)) + (" hard" if hard and signal else "")
        weak_ok = (not hard) if signal else rng.random() < 0.5
        strong_ok = True if signal else rng.random() < 0.7
        pid, intent = f"p{i:04d}", ["a", "b", "c"][i % 3]
        rows += [(pid, intent, "big", float(strong_ok), 0.01), (pid, intent, "small", float(weak_ok), 0.001)]
        prompts.append({"prompt_id": pid, "text": text})
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "synthetic.csv"
    pl.DataFrame(rows, schema=["prompt_id", "intent", "model", "score", "cost_usd"], orient="row").write_csv(path)
    (tmp_path / "synthetic.prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    return path


def run(path: Path, **kw) -> evaluate.Trained:
    o = research.load_outcomes(path)
    target = kw.pop("target", None)
    setup = evaluate.Setup(**{"bootstrap": 100, **kw})
    return evaluate.train(o, features.read_prompts(path, o.prompt_ids), setup, target=target, cache=False)


# --- the Must-show figures on real data -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gsm8k_linear():
    r = cli("research", "train", str(GSM8K), "--router", "linear", "--features", "tfidf", "--cv", "5",
            "--bootstrap", "300", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_gsm8k_five_fold_report_has_the_issue_keys_and_honest_baselines(gsm8k_linear):
    doc = gsm8k_linear
    assert {"router", "features", "cv", "n", "apgr", "apgr_ci", "cpt50", "cpt80", "aiq", "baselines"} <= set(doc)
    assert (doc["router"], doc["features"], doc["cv"], doc["n"]) == ("linear", "tfidf", 5, 1307)
    for key in ("apgr", "cpt50", "cpt80", "aiq"):
        lo, hi = doc[f"{key}_ci"]
        assert lo <= doc[key] <= hi, key
    b = doc["baselines"]
    assert abs(b["random"]["apgr"] - 0.5) < 0.02          # RouteLLM's random router, mean over 20 seeds
    assert b["lookup"]["intents"] == 1 and b["lookup"]["apgr"] == pytest.approx(0.5)   # one intent: a coin
    o = research.load_outcomes(GSM8K)
    best = research.single(o, STRONG)
    assert b["best_single"] == {"model": STRONG, "quality": best.quality,
                                "cost_per_request_usd": best.cost_per_request_usd}
    orc = research.oracle(o)
    assert (b["oracle"]["quality"], b["oracle"]["cost_per_request_usd"]) == (orc.quality, orc.cost_per_request_usd)
    assert b["zero_router"]["aiq"] == pytest.approx(research.aiq([research.single(o, m) for m in o.models]))
    # on GSM8K's words alone a linear router recovers more of the gap than chance (RouteLLM: about 0.6)
    assert doc["apgr_ci"][0] > b["random"]["apgr_ci"][1] - 0.05 and doc["apgr"] > 0.55
    assert doc["vs_lookup"]["apgr_diff"] == pytest.approx(doc["apgr"] - b["lookup"]["apgr"])
    assert doc["lodo"] is None    # a single intent: no leave-one-domain-out split


def test_report_metrics_are_the_frontier_metrics_of_its_own_curve(gsm8k_linear, tmp_path):
    """APGR recomputed from the reported held-out curve with the plain trapezoid of test_research."""
    t = run(GSM8K, router="linear", bootstrap=20, lodo=False)
    curve = sorted((p["strong_share"], p["quality"]) for p in t.report["points"]["router"])
    q = {p["policy"]: p["quality"] for p in t.report["points"]["models"]}
    assert t.report["apgr"] == pytest.approx(plain_apgr(curve, q[STRONG], q[WEAK]), abs=1e-12)
    assert t.report["apgr"] == pytest.approx(gsm8k_linear["apgr"], abs=1e-12)   # CLI and library agree


# --- honesty of the split -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("router", ["linear", "knn", "mf"])
def test_held_out_prompts_are_never_seen_and_real_signal_is_found(tmp_path, router):
    noise = run(synthetic(tmp_path / "noise", signal=False), router=router, cv=4)
    # words that mean nothing recover nothing on held-out prompts; a router scored on prompts it was
    # trained on would memorise them, towards the oracle (which picks per prompt: APGR above 1 here)
    assert noise.report["baselines"]["oracle"]["apgr"] > 1.2
    assert noise.report["apgr"] < 0.68 and noise.report["apgr_ci"][0] < 0.55
    found = run(synthetic(tmp_path / "signal", signal=True), router=router, cv=4)
    best = found.report["baselines"]["oracle"]["apgr"]       # 40 % 'hard': 0.8 at best
    # mf learns from wins only (RouteLLM): the easy prompts, ties, teach it nothing, so it gets less close
    slack = 0.12 if router == "mf" else 0.03
    assert found.report["apgr"] > best - slack and found.report["cpt80"] < 0.5
    assert found.report["baselines"]["lookup"]["apgr"] < 0.65   # intents carry no signal here
    assert found.report["lodo"]["domains"] == 3 and found.report["lodo"]["router"]["apgr"] > best - slack


def test_same_seed_same_numbers_other_seed_other_folds(tmp_path):
    path = synthetic(tmp_path, n=150)
    a = run(path, router="mf", cv=3, seed=4, target=calibrate.Target(strong_share=0.3))
    b = run(path, router="mf", cv=3, seed=4, target=calibrate.Target(strong_share=0.3))
    assert json.dumps(a.report, sort_keys=True) == json.dumps(b.report, sort_keys=True)
    c = run(path, router="mf", cv=3, seed=5, target=calibrate.Target(strong_share=0.3))
    assert not np.array_equal(a.folds, c.folds)


def test_a_trained_report_is_kept_and_retrained_only_when_its_inputs_change(tmp_path, monkeypatch):
    """The research notebook's training is most of `routekit report all`: its reports are kept under the content of
    table, prompts and setup (and the research code); the same inputs read the kept report back."""
    path = synthetic(tmp_path / "t")
    o = research.load_outcomes(path)
    texts = features.read_prompts(path, o.prompt_ids)
    setup = evaluate.Setup(router="linear", cv=3, bootstrap=50, lodo=False)
    fresh = evaluate.train(o, texts, setup, cache=False).report
    calls = []
    real = evaluate.train
    monkeypatch.setattr(evaluate, "train", lambda *a, **kw: calls.append(a[2]) or real(*a, **kw))
    cache = tmp_path / "cache"
    first = evaluate.trained_report(o, texts, setup, cache=cache)
    [kept] = cache.glob("report-linear-*.json")
    assert first["apgr"] == pytest.approx(fresh["apgr"]) and first["points"] == json.loads(json.dumps(fresh["points"]))
    assert evaluate.trained_report(o, texts, setup, cache=cache) == first and len(calls) == 1   # read back
    evaluate.trained_report(o, texts, evaluate.Setup(router="linear", cv=3, bootstrap=50, lodo=False, seed=1),
                            cache=cache)
    other = synthetic(tmp_path / "u", seed=5)
    o2 = research.load_outcomes(other)
    evaluate.trained_report(o2, features.read_prompts(other, o2.prompt_ids), setup, cache=cache)
    assert [c.seed for c in calls] == [0, 1, 0] and len(list(cache.glob("report-linear-*.json"))) == 3
    kept.write_text('{"torn')       # a torn file (a crash while writing) is trained again, not an error
    assert evaluate.trained_report(o, texts, setup, cache=cache) == first and len(calls) == 4
    assert json.loads(kept.read_text()) == first


def test_calibration_reports_the_held_out_share_and_its_error(tmp_path):
    t = run(synthetic(tmp_path, n=300), router="linear", cv=5, target=calibrate.Target(strong_share=0.4))
    cal = t.report["calibration"]
    h = cal["held_out"]["router"]
    assert h["error"] == pytest.approx(h["strong_share"] - 0.4)
    assert abs(h["error"]) < 0.08   # 'hard' prompts are 40 %: the threshold lands near them on new prompts
    # the pooled held-out choice is what each fold's own threshold did to its own prompts
    for j, param in enumerate(t.fold_params["router"]):
        rows = np.flatnonzero(t.folds == j)
        expected = t.rule.choose(t.router.values[rows], t.router.unit_cost[rows], param)
        assert np.array_equal(t.calibrated["router"][rows], expected)
    budget = run(synthetic(tmp_path / "b", n=300), router="linear", target=calibrate.Target(max_cost_per_request=0.005))
    hb = budget.report["calibration"]["held_out"]["router"]
    assert hb["error"] == pytest.approx(hb["cost_per_request_usd"] - 0.005) and hb["error"] < 0.001


# --- from research to policy ----------------------------------------------------------------------------------------


def test_gsm8k_emitted_router_policy_checks_and_replays_to_its_held_out_figures(tmp_path):
    policy = tmp_path / "gsm8k.yaml"
    r = cli("research", "train", str(GSM8K), "--router", "linear", "--target-strong-share", "0.5",
            "--bootstrap", "200", "--emit-policy", str(policy), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    emitted = doc["policy"]
    assert emitted["kind"] == "router"     # beats the one-intent lookup table by a clear margin
    text = policy.read_text()
    assert "router: &learned" in text and f"quality {emitted['held_out']['quality']:.4f}" in text
    model = Path(emitted["model_file"])
    assert emitted["version"] == hashlib.sha256(model.read_bytes()).hexdigest()[:12] == model.stem
    check = cli("policy", "check", str(policy))
    assert check.returncode == 0, check.stderr
    assert "trained router" in check.stdout
    replay = cli("research", "frontier", str(GSM8K), "--policy", str(policy), "--only-prompts",
                 emitted["held_out_prompts"], "--json")
    assert replay.returncode == 0, replay.stderr
    got = json.loads(replay.stdout)
    held = emitted["held_out"]
    assert got["prompts"] == held["prompts"] == len(Path(emitted["held_out_prompts"]).read_text().split())
    assert got["policy"]["quality"] == pytest.approx(held["quality"], abs=1e-12)
    assert got["policy"]["cost_per_request_usd"] == pytest.approx(held["cost_per_request_usd"], rel=1e-9)
    lo, hi = doc["calibration"]["held_out"]["router"]["quality_ci"]   # and inside the k-fold interval
    assert lo <= got["policy"]["quality"] <= hi
    # a changed model file is refused by name
    model.write_bytes(model.read_bytes() + b"x")
    bad = cli("policy", "check", str(policy))
    assert bad.returncode == 1 and "routes.math.router.file" in bad.stderr and "changed" in bad.stderr


def test_routerarena_multi_router_against_the_zero_router_emits_a_route_table(tmp_path):
    policy = tmp_path / "arena.yaml"
    r = cli("research", "train", str(ARENA), "--router", "multi", "--bootstrap", "100", "--no-lodo",
            "--emit-policy", str(policy), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["apgr"] is None and doc["aiq"] is not None        # many-model metrics, not a threshold pair
    zero = doc["baselines"]["zero_router"]["aiq"]
    o = research.load_outcomes(ARENA)
    assert zero == pytest.approx(research.aiq([research.single(o, m) for m in o.models]))
    # gemini-2.0-flash is better *and* cheaper on average: no learned router beats its point
    assert doc["aiq"] <= zero + 1e-12
    assert doc["policy"]["kind"] == "lookup" and "router:" not in policy.read_text()
    assert "input_per_mtok: 0.25, output_per_mtok: 1.25" in policy.read_text()   # RouterArena's haiku price
    assert cli("policy", "check", str(policy)).returncode == 0
    replay = cli("research", "frontier", str(ARENA), "--policy", str(policy), "--only-prompts",
                 doc["policy"]["held_out_prompts"], "--json")
    got = json.loads(replay.stdout)["policy"]
    assert got["quality"] == pytest.approx(doc["policy"]["held_out"]["quality"], abs=1e-12)


def test_the_router_runs_an_emitted_router_block_and_records_it(tmp_path, sim_env, log_dir):
    from toolkit.router import Router

    path = synthetic(tmp_path, n=200)
    t = run(path, router="linear", cv=4, target=calibrate.Target(strong_share=0.4))
    policy = tmp_path / "learned.yaml"
    emitted = emit.emit_policy(t, policy, table=str(path), command="test")
    assert emitted["kind"] == "router"
    # point the two aliases at the simulator; the router: block is untouched
    text = policy.read_text()
    text = re.sub(r'"big": \{model: "big"', f'"big": {{model: "openai/gpt-4.1", api_base: "{sim_env.url}/v1"', text)
    text = re.sub(r'"small": \{model: "small"', f'"small": {{model: "openai/gpt-4o-mini", api_base: "{sim_env.url}/v1"',
                  text)
    policy.write_text(text)
    router = Router(policy, log=log_dir)
    prompts = ["alpha beta gamma delta omega sigma hard", "alpha beta gamma delta omega sigma"]
    served = [router.complete("a", p).served_model for p in prompts]
    assert served == ["big", "small"]
    records = read_records(log_dir)
    spec = router.policy.routes["a"].router
    for rec, p in zip(records, prompts):
        assert (rec["router_name"], rec["router_version"]) == (spec.name, spec.version)
        assert (rec["router_score"] >= spec.threshold) == (rec["served_alias"] == "big")
        assert rec["router_score"] == pytest.approx(learned.choose_texts(spec, str(policy), [p])[0].score)
        assert rec["requested_alias"] == rec["served_alias"]      # the router's pick goes first
    # the same block, replayed offline, routes the table's prompts as the Router would
    o = research.load_outcomes(path)
    texts = features.read_prompts(path, o.prompt_ids)
    replay = policy_replay.replay_policy(o, policy, texts)
    picks = [c.alias for c in learned.choose_texts(spec, str(policy), texts)]
    assert replay.share["big"] == pytest.approx(picks.count("big") / len(picks))


# --- offline, always ------------------------------------------------------------------------------------------------


@pytest.fixture
def loopback_only(monkeypatch):
    """Sockets to anything but 127.0.0.1 / ::1 are refused for the test's duration."""
    real = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ConnectionRefusedError(f"test: no network ({address})")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: connect(socket.socket(), address))


def test_training_and_prediction_need_no_network(tmp_path, loopback_only, monkeypatch):
    pytest.importorskip("wordllama")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("93.184.216.34", 80), timeout=1)   # the guard holds
    monkeypatch.setattr(features.Embed, "_model", None)   # load the weights from the wheel under the guard
    monkeypatch.setenv("ROUTEKIT_CACHE_DIR", str(tmp_path / "cache"))
    path = synthetic(tmp_path, n=200)
    o = research.load_outcomes(path)
    texts = features.read_prompts(path, o.prompt_ids)
    for kind in ("embed", "tfidf"):
        t = evaluate.train(o, texts, evaluate.Setup(router="linear", features=kind, cv=3, bootstrap=20),
                           target=calibrate.Target(strong_share=0.4), source=str(path))
        policy = tmp_path / f"{kind}.yaml"
        out = emit.emit_policy(t, policy, table=str(path), command="test")
        assert out["kind"] == "router"   # the replay below runs the block's choose(), as the Router does
        sub = policy_replay.only_prompts(o, out["held_out_prompts"])
        held = [texts[o.prompt_ids.index(p)] for p in sub.prompt_ids]
        assert policy_replay.replay_policy(sub, policy, held).quality == pytest.approx(out["held_out"]["quality"])
    assert list((tmp_path / "cache" / "features").glob("synthetic-embed-*.npy"))   # embeddings cached per table
    vectors = features.Embed().transform(["sort a list", "quicksort an array", "the capital of France"])
    assert vectors.shape == (3, features.EMBED_DIM)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


# --- clear errors ---------------------------------------------------------------------------------------------------


def test_bad_input_is_named_not_a_traceback(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("prompt_id,model,score,cost_usd\np1,a,1,0.1\np1,b,0,0.2\np2,a,0,0.1\np2,b,1,0.2\n")
    r = cli("research", "train", str(table), "--json")
    assert r.returncode == 2 and "no prompt text" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "t.prompts.jsonl").write_text('{"prompt_id": "p1", "text": "x"}\nnot json\n')
    r = cli("research", "train", str(table))
    assert r.returncode == 2 and "t.prompts.jsonl:2" in r.stderr
    (tmp_path / "t.prompts.jsonl").write_text('{"prompt_id": "p1", "text": "x"}\n')
    r = cli("research", "train", str(table))
    assert r.returncode == 2 and "no text for 1 of 2 prompts" in r.stderr and "'p2'" in r.stderr
    (tmp_path / "t.prompts.jsonl").write_text('{"prompt_id": "p1", "text": "x"}\n{"prompt_id": "p2", "text": "y"}\n')
    r = cli("research", "train", str(table), "--cv", "9")
    assert r.returncode == 2 and "--cv 9" in r.stderr
    r = cli("research", "train", str(table), "--strong", "zzz", "--cv", "2")
    assert r.returncode == 2 and "no model 'zzz'" in r.stderr


def test_a_missing_extra_is_named_in_one_line(tmp_path):
    code = ("import sys; sys.modules['sklearn'] = None; from toolkit.cli import main; "
            f"sys.exit(main(['research', 'train', {str(GSM8K)!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["routekit research train: scikit-learn is not installed: "
                                             "pip install 'routekit[research]'"]
